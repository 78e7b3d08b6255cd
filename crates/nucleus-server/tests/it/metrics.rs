//! Prometheus metrics of every role, each its own process with `--metrics-listen`, and the
//! gateway's `/metrics` on its API port (admin token only): valid Prometheus text by
//! `promtool check metrics`, with the series of what just happened (a Raft write, a placement, a
//! launched replica, an invoke).

use std::io::Write;
use std::process::{Child, Command, Stdio};

use reqwest::StatusCode;

use crate::harness::{Stack, TOKEN, free_port, send_signal, spawn_nucleus, temp_dir, whoami_artifact, workload};

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        send_signal(self.0.id() as i32, libc::SIGTERM);
        let _ = self.0.wait();
    }
}

async fn role(args: &[&str], metrics: &str, marker: &'static str) -> Process {
    let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    args.extend(["--metrics-listen".to_owned(), metrics.to_owned()]);
    Process(spawn_nucleus(&args, marker).await.0)
}

/// `promtool check metrics` on `text`; panics with its complaints.
fn promtool_accepts(what: &str, text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (apt-get install -y prometheus, or `cargo xtask test`, which installs it)");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write");
    let output = child.wait_with_output().expect("promtool");
    assert!(
        output.status.success(),
        "promtool rejects the metrics of {what}:\n{}{}\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn scrape(http: &reqwest::Client, address: &str) -> String {
    let response = http.get(format!("http://{address}/metrics")).send().await.expect("scrape");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()["content-type"].to_str().unwrap_or_default().starts_with("text/plain"));
    response.text().await.expect("text")
}

/// The value of the first sample of `name` whose labels contain every one of `labels`.
fn value(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} ")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn every_role_serves_valid_prometheus_metrics() {
    let dir = temp_dir();
    let meta_addr = format!("127.0.0.1:{}", free_port());
    let [meta_metrics, scheduler_metrics, agent_metrics] = [0; 3].map(|_| format!("127.0.0.1:{}", free_port()));
    let meta_dir = dir.path().join("meta").to_string_lossy().into_owned();
    let _meta = role(&["meta", "--listen", &meta_addr, "--data-dir", &meta_dir], &meta_metrics, "serving on ").await;
    let _scheduler = role(&["scheduler", "--meta", &meta_addr], &scheduler_metrics, "started (meta").await;
    let agent_addr = format!("127.0.0.1:{}", free_port());
    let agent_dir = dir.path().to_string_lossy().into_owned();
    let _agent =
        role(&["agent", "--meta", &meta_addr, "--listen", &agent_addr, "--data-dir", &agent_dir], &agent_metrics, "serving on ").await;
    let gateway = Stack::gateway(std::slice::from_ref(&meta_addr)).await;

    let (code, created) = gateway.post("/workloads", workload("metered", whoami_artifact("metered", &[]), 1)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    gateway.wait_status(&id, "running").await;
    let (code, _) = gateway.invoke(&id, "hello").await;
    assert_eq!(code, StatusCode::OK);

    let http = reqwest::Client::new();
    let meta = scrape(&http, &meta_metrics).await;
    promtool_accepts("meta", &meta);
    assert_eq!(value(&meta, "nucleus_raft_is_leader", &["group=\"0\""]), Some(1.0), "{meta}");
    assert!(value(&meta, "nucleus_raft_term", &[]).is_some_and(|term| term >= 1.0), "{meta}");
    assert!(value(&meta, "nucleus_raft_commit_seconds_count", &[]).is_some_and(|n| n >= 1.0), "{meta}");

    let scheduler = scrape(&http, &scheduler_metrics).await;
    promtool_accepts("the scheduler", &scheduler);
    assert!(value(&scheduler, "nucleus_scheduler_placements_total", &["result=\"placed\""]).is_some_and(|n| n >= 1.0), "{scheduler}");
    assert!(value(&scheduler, "nucleus_scheduler_leases_held", &[]).is_some_and(|n| n >= 1.0), "{scheduler}");

    let agent = scrape(&http, &agent_metrics).await;
    promtool_accepts("the agent", &agent);
    assert_eq!(value(&agent, "nucleus_agent_replicas", &["phase=\"running\"", "ready=\"true\""]), Some(1.0), "{agent}");
    assert!(value(&agent, "nucleus_agent_launch_seconds_count", &[]).is_some_and(|n| n >= 1.0), "{agent}");

    // The gateway's own port: the admin token, not anyone.
    let anonymous = http.get(format!("{}/metrics", gateway.base)).send().await.expect("answer");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let response = http.get(format!("{}/metrics", gateway.base)).bearer_auth(TOKEN).send().await.expect("answer");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("text");
    promtool_accepts("the gateway", &text);
    let invoked = value(&text, "nucleus_gateway_requests_total", &["class=\"invoke\"", &format!("workload=\"{id}\""), "code=\"2xx\""]);
    assert_eq!(invoked, Some(1.0), "{text}");
    assert!(value(&text, "nucleus_gateway_requests_total", &["class=\"api\"", "code=\"2xx\""]).is_some_and(|n| n >= 2.0), "{text}");
}
