use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const TOKEN: &str = "test-admin-token-0123456789abcdef";
pub const SECRET_VAR: &str = "AWS_SECRET_ACCESS_KEY";
pub const SECRET_CANARY: &str = "canary-the-agent-s-own-secret";
const WAIT: Duration = Duration::from_secs(60);

/// A running `nucleus dev`, stopped with SIGTERM when dropped.
pub struct Stack {
    child: Option<Child>,
    pub base: String,
    pub http: reqwest::Client,
}

impl Stack {
    pub async fn start(data_dir: &Path) -> Stack {
        Stack::start_with(data_dir, &[]).await
    }

    /// `nucleus dev` with further flags.
    pub async fn start_with(data_dir: &Path, extra: &[&str]) -> Stack {
        let mut args: Vec<String> = ["dev", "--listen", "127.0.0.1:0", "--token", TOKEN, "--data-dir"].map(String::from).to_vec();
        args.push(data_dir.to_string_lossy().into_owned());
        args.extend(extra.iter().map(|a| a.to_string()));
        let (child, api) = spawn_nucleus(&args, "REST API at ").await;
        Stack {
            child: Some(child),
            base: api.trim_end_matches("/api/v2").to_owned(),
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
        }
    }

    /// A gateway process (`nucleus gateway`) in front of the given meta nodes.
    pub async fn gateway(meta: &[String]) -> Stack {
        Stack::gateway_with(meta, &[]).await
    }

    /// [`Stack::gateway`] with further flags.
    pub async fn gateway_with(meta: &[String], extra: &[String]) -> Stack {
        let mut args: Vec<String> =
            ["gateway", "--listen", "127.0.0.1:0", "--token", TOKEN, "--meta", &meta.join(",")].map(String::from).to_vec();
        args.extend(extra.iter().cloned());
        let (child, base) = spawn_nucleus(&args, "listening on ").await;
        Stack {
            child: Some(child),
            base,
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id() as i32;
            send_signal(pid, libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    assert!(status.success(), "nucleus dev exited with {status}");
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("nucleus dev did not stop within 30 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v2{path}", self.base)
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call_as(TOKEN, method, path, body).await
    }

    /// A call with another API token.
    pub async fn call_as(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("gateway answers");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Polls the workload until its status is `want`; panics with the last document otherwise.
    pub async fn wait_status(&self, id: &str, want: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let (code, w) = self.get(&format!("/workloads/{id}")).await;
            assert_eq!(code, StatusCode::OK, "{w}");
            if w["status"] == want {
                return w;
            }
            if Instant::now() > deadline {
                panic!("workload {id} did not become {want}: {w:#}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn invoke(&self, id: &str, path: &str) -> (StatusCode, Value) {
        self.get(&format!("/endpoints/workloads/{id}/{path}")).await
    }

    /// Addresses of the active proton's replicas, from statusDetails.
    pub async fn replica_addresses(&self, workload: &Value) -> Vec<String> {
        let path =
            format!("/workloads/{}/protons/{}/statusDetails", workload["id"].as_str().unwrap(), workload["protonId"].as_str().unwrap());
        let (code, details) = self.get(&path).await;
        assert_eq!(code, StatusCode::OK, "{details}");
        details["replicas"].as_array().unwrap().iter().map(|r| r["address"].as_str().unwrap().to_owned()).collect()
    }
}

/// Runs `nucleus ARGS` and waits for the stdout line containing `marker`; returns the child and
/// the word that follows the marker (an address).
pub async fn spawn_nucleus(args: &[String], marker: &'static str) -> (Child, String) {
    spawn_nucleus_in(None, args, marker).await
}

/// [`spawn_nucleus`] in the network namespace `netns` (`ip netns exec`).
pub async fn spawn_nucleus_in(netns: Option<&str>, args: &[String], marker: &'static str) -> (Child, String) {
    let nucleus = env!("CARGO_BIN_EXE_nucleus");
    let mut command = match netns {
        Some(netns) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", netns, nucleus]);
            command
        }
        None => Command::new(nucleus),
    };
    let mut child = command
        .args(args)
        // Quiet by default; NUCLEUS_TEST_LOG=info shows what the processes do.
        .env("RUST_LOG", std::env::var("NUCLEUS_TEST_LOG").unwrap_or_else(|_| "warn,openraft=off".to_owned()))
        // A credential in the control plane's environment, which no workload may see.
        .env(SECRET_VAR, SECRET_CANARY)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nucleus binary runs");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.split(marker).nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
            }
        }
    });
    let found = tokio::task::spawn_blocking(move || rx.recv_timeout(WAIT)).await.expect("join");
    match found {
        Ok(word) => (child, word),
        Err(_) => {
            let _ = child.kill();
            panic!("`nucleus {}` never printed {marker:?}", args.join(" "));
        }
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind").port()
}

impl Drop for Stack {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            send_signal(child.id() as i32, libc::SIGTERM);
            let _ = child.wait();
        }
    }
}

pub use nucleus_testkit::send_signal;

/// The example workload binary, built next to `nucleus`.
pub fn whoami() -> String {
    let nucleus = PathBuf::from(env!("CARGO_BIN_EXE_nucleus"));
    let path = nucleus.with_file_name("nucleus-whoami");
    // Built once per test run, so that a changed whoami is never run stale (a no-op when fresh).
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let status = Command::new(env!("CARGO")).args(["build", "-p", "nucleus-whoami"]).status().expect("cargo runs");
        assert!(status.success(), "building nucleus-whoami failed");
    });
    assert!(path.exists(), "{} was not built", path.display());
    path.to_string_lossy().into_owned()
}

/// An inline artifact running whoami with `args`, probed on /ready every second.
pub fn whoami_artifact(name: &str, args: &[&str]) -> Value {
    let mut entrypoint = vec![whoami(), "--port".to_owned(), "$PORT".to_owned()];
    entrypoint.extend(args.iter().map(|a| a.to_string()));
    json!({
        "name": name,
        "spec": {"containerGroups": [{"name": "default", "containers": [{
            "name": "web",
            "imageUri": "example/whoami:1",
            "primary": true,
            "port": 8080,
            "entrypoint": entrypoint,
            "environmentVars": [{"name": "GREETING", "value": "hello"}],
            "readinessProbe": {"path": "/ready", "port": 8080, "initialDelaySeconds": 0, "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 30}
        }]}]}
    })
}

pub fn workload(name: &str, artifact: Value, replicas: u32) -> Value {
    json!({
        "name": name,
        "artifact": artifact,
        "runtime": {"containerGroups": [{"name": "default", "replicaCount": replicas}]}
    })
}

/// True when nothing accepts connections on `address` any more.
pub async fn gone(address: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(address).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("nucleus-it-").tempdir().expect("temp dir")
}
