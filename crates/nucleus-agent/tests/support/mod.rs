//! Test harness: an agent served over a real socket, a gRPC client watching its reports, and
//! helpers to build launches and to look at processes.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use nucleus_agent::{Agent, AgentConfig, serve};
use nucleus_proto::agent::v1::agent_client::AgentClient;
use nucleus_proto::agent::v1::{ContainerSpec, LaunchRequest, Probe, ProtonReport, ReplicaStatus, StopRequest, WatchProtonsRequest};
use tokio::sync::oneshot;
use tonic::Streaming;
use tonic::transport::Channel;

pub const NODE_ADDRESS: &str = "10.1.2.3:7100";

pub struct Harness {
    pub agent: Agent,
    pub client: AgentClient<Channel>,
    reports: Streaming<ProtonReport>,
    /// The agent's data dir; pid files of test processes go there too.
    pub dir: Arc<tempfile::TempDir>,
    stop_server: Option<oneshot::Sender<()>>,
    /// Whether dropping the harness leaves the replicas running (for the next agent to adopt).
    leave_running: bool,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_in(Arc::new(tempfile::tempdir().expect("temp dir"))).await
    }

    /// An agent on the data dir `dir`, which an earlier agent may have used.
    pub async fn start_in(dir: Arc<tempfile::TempDir>) -> Harness {
        let agent =
            Agent::new(AgentConfig { name: "test-agent".into(), data_dir: dir.path().to_owned(), node_address: NODE_ADDRESS.into() })
                .expect("agent starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("local address");
        let (stop_server, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve(agent.clone(), listener, None, async move {
            let _ = stopped.await;
        }));
        let mut client = AgentClient::connect(format!("http://{address}")).await.expect("connect");
        let reports = client.watch_protons(WatchProtonsRequest {}).await.expect("watch").into_inner();
        Harness { agent, client, reports, dir, stop_server: Some(stop_server), leave_running: false }
    }

    /// Makes dropping the harness leave every process running, as a crashed agent would.
    pub fn leave_running(&mut self) {
        self.leave_running = true;
    }

    /// The current report of `proton_id`, from a new watch (whose first reports are the agent's
    /// state as of the call); panics when the agent has none.
    pub async fn current(&mut self, proton_id: &str) -> ProtonReport {
        let mut reports = self.client.watch_protons(WatchProtonsRequest {}).await.expect("watch").into_inner();
        let found = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let report = reports.message().await.expect("report stream").expect("stream open");
                if report.proton_id == proton_id {
                    return report;
                }
            }
        });
        found.await.unwrap_or_else(|_| panic!("the agent reports no proton {proton_id}"))
    }

    pub async fn launch(&mut self, request: LaunchRequest) -> Result<(), tonic::Status> {
        self.client.launch(request).await.map(drop)
    }

    pub async fn stop(&mut self, proton_id: &str, grace_period_seconds: u32, fencing_token: u64) -> Result<(), tonic::Status> {
        let request = StopRequest { proton_id: proton_id.into(), grace_period_seconds, fencing_token, ..Default::default() };
        self.client.stop(request).await.map(drop)
    }

    /// Reads reports until one of `proton_id` satisfies `done`; panics with the last one seen after
    /// `timeout`.
    pub async fn wait_for(&mut self, proton_id: &str, timeout: Duration, done: impl Fn(&ProtonReport) -> bool) -> ProtonReport {
        self.watch_until(proton_id, timeout, |_| {}, done).await
    }

    /// Same as `wait_for`, but also hands every report seen on the way to `seen`.
    pub async fn watch_until(
        &mut self,
        proton_id: &str,
        timeout: Duration,
        mut seen: impl FnMut(&ProtonReport),
        done: impl Fn(&ProtonReport) -> bool,
    ) -> ProtonReport {
        let mut last = None;
        let found = tokio::time::timeout(timeout, async {
            loop {
                let report = self.reports.message().await.expect("report stream").expect("stream open");
                if report.proton_id != proton_id {
                    continue;
                }
                seen(&report);
                if done(&report) {
                    return report;
                }
                last = Some(report);
            }
        })
        .await;
        match found {
            Ok(report) => report,
            Err(_) => panic!("timed out waiting for proton {proton_id}; last report: {last:#?}"),
        }
    }

    pub fn pid_file(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.pid"))
    }
}

impl Drop for Harness {
    /// Kills whatever the test left behind (see `kill_leftovers`) unless told to leave it running.
    fn drop(&mut self) {
        if let Some(stop_server) = self.stop_server.take() {
            let _ = stop_server.send(());
        }
        if !self.leave_running {
            kill_leftovers(self.dir.path());
        }
    }
}

/// Kills, when dropped, whatever the agents of a test left in the data dir (see
/// `kill_leftovers`): for tests in which a harness leaves its replicas running.
pub struct KillLeftovers(pub Arc<tempfile::TempDir>);

impl Drop for KillLeftovers {
    fn drop(&mut self) {
        kill_leftovers(self.0.path());
    }
}

/// Kills every process group the agent's state file in `data_dir` names and every process that
/// wrote a pid file there (replicas outlive the agent by design).
pub fn kill_leftovers(data_dir: &Path) {
    for group in recorded_process_groups(data_dir) {
        kill(-group, libc::SIGKILL);
    }
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if let Some(pid) = read_pid(&entry.path()) {
            kill(pid, libc::SIGKILL);
        }
    }
}

/// The process groups (leader pids) of the replicas the process driver's state file in
/// `data_dir` lists, running or retiring, whose leader is still the recorded process (same start
/// time), so that a recycled pid is never taken for one.
pub fn recorded_process_groups(data_dir: &Path) -> Vec<i32> {
    let Ok(text) = std::fs::read_to_string(data_dir.join("process-driver/state.json")) else {
        return Vec::new();
    };
    let Ok(state) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    let protons = state["protons"].as_object().into_iter().flat_map(|protons| protons.values());
    protons
        .flat_map(|proton| {
            let replicas = proton["replicas"].as_object().into_iter().flat_map(|r| r.values());
            let retiring = proton["retiring"].as_array().into_iter().flatten();
            replicas.chain(retiring).cloned().collect::<Vec<_>>()
        })
        .filter_map(|replica| {
            let process = &replica["process"];
            let pid = i32::try_from(process["pid"].as_i64()?).ok()?;
            (pid > 1 && start_time(pid)? == process["start_time"].as_u64()?).then_some(pid)
        })
        .collect()
}

/// Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

pub fn launch_request(proton_id: &str, replicas: u32, entrypoint: &[&str], fencing_token: u64) -> LaunchRequest {
    LaunchRequest {
        proton_id: proton_id.into(),
        workload_id: "workload-1".into(),
        artifact_id: "artifact-1".into(),
        replica_count: replicas,
        primary: Some(ContainerSpec {
            name: "web".into(),
            image_uri: "registry.example/web:1".into(),
            entrypoint: entrypoint.iter().map(|arg| (*arg).to_owned()).collect(),
            env: HashMap::from([("GREETING".to_owned(), "hello".to_owned())]),
            port: 8080,
            ..Default::default()
        }),
        fencing_token,
        ..Default::default()
    }
}

/// A quick HTTP probe on the declared port (8080, mapped to the chosen one).
pub fn probe(path: &str, failure_threshold: u32) -> Probe {
    Probe {
        path: path.into(),
        port: 8080,
        scheme: "HTTP".into(),
        period_seconds: 1,
        timeout_seconds: 1,
        failure_threshold,
        success_threshold: 1,
        ..Default::default()
    }
}

/// `sh -c` running python's HTTP server on $PORT after writing its pid to `pid_file`.
pub fn python_server(pid_file: &Path) -> Vec<String> {
    let script = format!("echo $$ > {}; exec python3 -u -m http.server $PORT --bind 127.0.0.1", pid_file.display());
    vec!["sh".into(), "-c".into(), script]
}

pub fn entrypoint(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

pub fn replica_ready(replica: &ReplicaStatus) -> bool {
    replica.containers.first().is_some_and(|container| container.ready)
        && replica.conditions.iter().any(|condition| condition.r#type == "Ready" && condition.met)
}

pub fn all_ready(report: &ProtonReport, count: usize) -> bool {
    report.lifecycle() == nucleus_proto::agent::v1::Lifecycle::Running
        && report.replicas.len() == count
        && report.replicas.iter().all(replica_ready)
}

/// The `nucleus-whoami` binary of this target directory, built on first use if missing.
pub fn whoami_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let test_binary = std::env::current_exe().expect("current exe");
        // target/debug/deps/<test> → target/debug/nucleus-whoami
        let binary = test_binary.parent().and_then(Path::parent).expect("target directory").join("nucleus-whoami");
        if !binary.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status =
                Command::new(cargo).args(["build", "-p", "nucleus-whoami", "--bin", "nucleus-whoami"]).status().expect("run cargo build");
            assert!(status.success(), "cargo build -p nucleus-whoami failed");
        }
        binary
    })
}

pub fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `pid` is a live process (a zombie awaiting its reaper counts as gone).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// kill(2): a negative pid names a process group.
#[allow(unsafe_code)]
pub fn kill(pid: i32, signal: i32) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe {
        libc::kill(pid, signal);
    }
}

pub async fn http_get(address: &str, path: &str) -> Result<reqwest::Response, reqwest::Error> {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build()?.get(format!("http://{address}{path}")).send().await
}

/// Polls until nothing accepts connections on `address` any more.
pub async fn wait_until_closed(address: &str, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::net::TcpStream::connect(address).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "{address} still accepts connections");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls until `pid` is gone.
pub async fn wait_until_gone(pid: i32, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while alive(pid) {
        assert!(tokio::time::Instant::now() < deadline, "process {pid} is still alive");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
