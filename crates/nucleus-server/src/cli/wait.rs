//! Waiting for a workload to reach a status, with live progress: a spinner naming the status and
//! the ready replicas on a terminal, a plain line per change otherwise. Ctrl-C stops the waiting,
//! not the operation.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use nucleus_api::ReplicaStatusesSnapshot;
use serde_json::Value;

use super::api::Api;

const POLL_EVERY: Duration = Duration::from_millis(500);

/// Statuses a wait for `running` gives up on.
const FAILED: &[&str] = &["errored", "failed", "stopped", "interrupted", "terminated"];

/// What the wait saw last: the workload's status, and its active proton's replicas.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    status: String,
    ready: usize,
    replicas: usize,
    message: String,
}

impl Seen {
    fn line(&self, id: &str) -> String {
        let mut line = format!("workload {id}: {} · replicas {}/{} ready", self.status, self.ready, self.replicas);
        if !self.message.is_empty() {
            line.push_str(" · ");
            line.push_str(&self.message);
        }
        line
    }
}

async fn look(api: &Api, id: &str) -> anyhow::Result<Seen> {
    let workload: Value = api.get(&format!("/workloads/{id}/")).await?;
    let status = workload["status"].as_str().unwrap_or("unknown").to_owned();
    let message = workload["statusDetails"]["message"].as_str().unwrap_or_default().to_owned();
    let (mut ready, mut replicas) = (0, 0);
    if let Some(proton) = workload["protonId"].as_str() {
        let (code, text) = api.send(reqwest::Method::GET, &format!("/workloads/{id}/protons/{proton}/statusDetails/"), None).await?;
        if code == reqwest::StatusCode::OK
            && let Ok(snapshot) = serde_json::from_str::<ReplicaStatusesSnapshot>(&text)
        {
            replicas = snapshot.replicas.len();
            ready = snapshot.replicas.iter().filter(|r| r.is_ready()).count();
        }
    }
    Ok(Seen { status, ready, replicas, message })
}

/// Polls until the workload's status is `want`; fails on a status it cannot come back from.
pub async fn until(api: &Api, id: &str, want: &str, timeout: Duration) -> anyhow::Result<()> {
    let terminal = std::io::stderr().is_terminal();
    let spinner = terminal.then(|| {
        let bar = ProgressBar::new_spinner();
        bar.set_style(ProgressStyle::with_template("{spinner} {msg} ({elapsed})").unwrap_or_else(|_| ProgressStyle::default_spinner()));
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    });
    super::exit_on_ctrl_c(format!("stopped waiting; the workload carries on: follow it with `nucleus workload get {id}`"));
    let started = tokio::time::Instant::now();
    let mut last: Option<Seen> = None;
    let result = loop {
        let seen = match look(api, id).await {
            Ok(seen) => seen,
            Err(err) => break Err(err),
        };
        if last.as_ref() != Some(&seen) {
            match &spinner {
                Some(bar) => bar.set_message(seen.line(id)),
                None => eprintln!("{}", seen.line(id)),
            }
            last = Some(seen.clone());
        }
        if seen.status == want {
            break Ok(());
        }
        if want == "running" && FAILED.contains(&seen.status.as_str()) {
            break Err(anyhow::anyhow!(
                "workload {id} is {}{}; see `nucleus workload logs {id}` and `nucleus workload events {id}`",
                seen.status,
                if seen.message.is_empty() { String::new() } else { format!(": {}", seen.message) }
            ));
        }
        if started.elapsed() > timeout {
            break Err(anyhow::anyhow!(
                "workload {id} is still {} after {}s; it carries on: follow it with `nucleus workload get {id}`",
                seen.status,
                timeout.as_secs()
            ));
        }
        tokio::time::sleep(POLL_EVERY).await;
    };
    if let Some(bar) = spinner {
        match (&result, &last) {
            (Ok(()), Some(seen)) => bar.finish_with_message(format!("✓ {}", seen.line(id))),
            _ => bar.finish_and_clear(),
        }
    }
    if let Err(err) = result {
        bail!(err);
    }
    Ok(())
}
