//! Every role as its own process: meta, scheduler, agent and gateway. An agent that dies makes its
//! workloads `unknown` (not silently `running`); its replicas keep running and serving, and the
//! agent that comes back on the same data dir adopts them instead of starting copies.

use std::process::Child;
use std::time::Instant;

use reqwest::StatusCode;

use crate::harness::{Stack, free_port, send_signal, spawn_nucleus, temp_dir, whoami_artifact, workload};

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        send_signal(self.0.id() as i32, libc::SIGTERM);
        let _ = self.0.wait();
    }
}

async fn agent(meta: &str, listen: &str, dir: &std::path::Path) -> Process {
    let args = ["agent", "--meta", meta, "--listen", listen, "--data-dir", &dir.to_string_lossy()].map(String::from);
    Process(spawn_nucleus(&args, "serving on ").await.0)
}

#[tokio::test]
async fn a_dead_agent_makes_workloads_unknown_until_it_returns() {
    let dir = temp_dir();
    let meta_addr = format!("127.0.0.1:{}", free_port());
    let meta_args = ["meta", "--listen", &meta_addr, "--data-dir", &dir.path().join("meta").to_string_lossy()].map(String::from);
    let _meta = Process(spawn_nucleus(&meta_args, "serving on ").await.0);
    let _scheduler = Process(spawn_nucleus(&["scheduler", "--meta", &meta_addr].map(String::from), "started (meta").await.0);
    let agent_addr = format!("127.0.0.1:{}", free_port());
    let mut first_agent = agent(&meta_addr, &agent_addr, dir.path()).await;
    let gateway = Stack::gateway(std::slice::from_ref(&meta_addr)).await;

    let (code, created) = gateway.post("/workloads", workload("roles", whoami_artifact("roles", &[]), 1)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let running = gateway.wait_status(id, "running").await;
    let replicas = gateway.replica_addresses(&running).await;

    send_signal(first_agent.0.id() as i32, libc::SIGKILL);
    let _ = first_agent.0.wait();
    for address in &replicas {
        assert!(tokio::net::TcpStream::connect(address).await.is_ok(), "replica {address} died with its agent");
    }
    let unknown = gateway.wait_status(id, "unknown").await;
    let message = unknown["statusDetails"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("does not answer"), "{unknown:#}");
    // Routing follows the replicas, not the summary: the replica still runs, so it still serves.
    let (code, echo) = gateway.invoke(id, "while-unknown").await;
    assert_eq!(code, StatusCode::OK, "{echo}");

    let started = Instant::now();
    let _second_agent = agent(&meta_addr, &agent_addr, dir.path()).await;
    let back = gateway.wait_status(id, "running").await;
    println!("adopted {:?} after the agent came back", started.elapsed());
    assert_eq!(gateway.replica_addresses(&back).await, replicas, "the same replicas, adopted, not started again");
    let (code, echo) = gateway.invoke(id, "back").await;
    assert_eq!(code, StatusCode::OK, "{echo}");
}
