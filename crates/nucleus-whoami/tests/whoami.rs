//! Runs the built `nucleus-whoami` binary on a free port and talks to it over HTTP.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Whoami {
    child: Child,
    base: String,
}

impl Drop for Whoami {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Starts whoami with `args` and waits for its "listening" line, which must name `name`.
fn start(args: &[&str], name: &str) -> Whoami {
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nucleus-whoami"))
        .args(args)
        .env("PORT", port.to_string())
        .env("NUCLEUS_REPLICA", "web-0")
        .env("NUCLEUS_ARTIFACT_ID", "artifact-7")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn nucleus-whoami");
    let stdout = child.stdout.take().expect("piped stdout");
    // Built before any assertion, so that a failing one still kills the child.
    let whoami = Whoami { child, base: format!("http://127.0.0.1:{port}") };
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("a first line").expect("readable stdout");
    assert_eq!(first, format!("whoami listening on 127.0.0.1:{port} as {name}"));
    // Keep draining stdout so that the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    whoami
}

#[tokio::test]
async fn echoes_the_request_with_its_identity() {
    let whoami = start(&[], "web-0");
    let client = reqwest::Client::new();

    let answer = client
        .post(format!("{}/some/path?a=1&b=two", whoami.base))
        .header("x-test", "yes")
        .body("hello body")
        .send()
        .await
        .expect("echo request");
    assert_eq!(answer.status(), 200);
    let echo: serde_json::Value = answer.json().await.expect("JSON echo");
    assert_eq!(echo["replica"], "web-0");
    assert_eq!(echo["artifactId"], "artifact-7");
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/some/path");
    assert_eq!(echo["query"], "a=1&b=two");
    assert_eq!(echo["headers"]["x-test"], "yes");
    assert_eq!(echo["body"], "hello body");

    for path in ["/healthz", "/ready"] {
        let answer = client.get(format!("{}{path}", whoami.base)).send().await.expect("health request");
        assert_eq!(answer.status(), 200, "{path}");
        assert_eq!(answer.text().await.expect("body"), "ok");
    }
}

#[tokio::test]
async fn flags_override_the_environment_and_readiness_can_fail() {
    let whoami = start(&["--name", "custom", "--artifact-id", "a-1", "--fail-readiness"], "custom");
    let client = reqwest::Client::new();

    let ready = client.get(format!("{}/ready", whoami.base)).send().await.expect("ready request");
    assert_eq!(ready.status(), 503);
    let healthz = client.get(format!("{}/healthz", whoami.base)).send().await.expect("healthz request");
    assert_eq!(healthz.status(), 200);
    let echo: serde_json::Value = client.get(format!("{}/", whoami.base)).send().await.expect("echo").json().await.expect("JSON");
    assert_eq!(echo["replica"], "custom");
    assert_eq!(echo["artifactId"], "a-1");
}

#[tokio::test]
async fn crash_after_exits_with_status_one() {
    let mut whoami = start(&["--crash-after", "2"], "web-0");
    let client = reqwest::Client::new();

    // Health checks do not count towards --crash-after.
    for _ in 0..3 {
        let answer = client.get(format!("{}/healthz", whoami.base)).send().await.expect("healthz");
        assert_eq!(answer.status(), 200);
    }
    for _ in 0..2 {
        let answer = client.get(format!("{}/echo", whoami.base)).send().await.expect("echo before the crash");
        assert_eq!(answer.status(), 200);
    }

    let deadline = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(status) = whoami.child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "whoami did not exit after --crash-after");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(1));
}
