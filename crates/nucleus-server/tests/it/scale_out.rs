//! The scale-out drill: 3 meta processes, 2 schedulers, 2 agents (two clusters in two regions)
//! and a gateway. One scheduler is SIGKILLed while workloads are being created: the other takes
//! its shards over, every workload reaches `running`, and no replica runs twice. Then one agent
//! dies for good: its workloads are placed on the other one, and when it comes back the replicas
//! it left running are stopped.

use std::collections::BTreeSet;
use std::process::Child;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Stack, free_port, send_signal, spawn_nucleus, temp_dir, whoami_artifact, workload};

const WORKLOADS: usize = 8;

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        send_signal(self.0.id() as i32, libc::SIGTERM);
        let _ = self.0.wait();
    }
}

async fn nucleus(args: &[&str], marker: &'static str) -> Process {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    Process(spawn_nucleus(&args, marker).await.0)
}

/// Pids of the live processes whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { continue };
        let ppid = status.lines().find_map(|l| l.strip_prefix("PPid:")).and_then(|v| v.trim().parse::<u32>().ok());
        let zombie = status.lines().any(|l| l.starts_with("State:") && l.contains('Z'));
        if ppid == Some(parent) && !zombie {
            found.push(pid);
        }
    }
    found
}

#[tokio::test]
async fn killing_a_scheduler_while_creating_workloads_runs_each_once() {
    let dir = temp_dir();
    let path = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    let meta_addrs: Vec<String> = (0..3).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let mut metas = Vec::new();
    for (i, addr) in meta_addrs.iter().enumerate() {
        let id = (i + 1).to_string();
        let data = path(&format!("meta-{id}"));
        let mut args = vec!["meta", "--id", &id, "--listen", addr, "--data-dir", &data];
        if i > 0 {
            args.extend(["--join", &meta_addrs[0]]);
        }
        metas.push(nucleus(&args, "serving on ").await);
    }
    let meta = meta_addrs.join(",");
    let mut first_scheduler = nucleus(&["scheduler", "--meta", &meta, "--name", "s1"], "started (meta").await;
    let _second_scheduler = nucleus(&["scheduler", "--meta", &meta, "--name", "s2"], "started (meta").await;
    let mut agents = Vec::new();
    let mut agent_args = Vec::new();
    for (cluster, region) in [("east-1", "us-east"), ("west-1", "us-west")] {
        let listen = format!("127.0.0.1:{}", free_port());
        let data = path(cluster);
        let args = ["agent", "--meta", &meta, "--listen", &listen, "--cluster", cluster, "--region", region, "--data-dir", &data];
        agents.push(nucleus(&args, "serving on ").await);
        agent_args.push(args.map(str::to_owned));
    }
    let gateway = Stack::gateway(&meta_addrs).await;

    let mut ids = Vec::new();
    for i in 0..WORKLOADS {
        if i == WORKLOADS / 2 {
            send_signal(first_scheduler.0.id() as i32, libc::SIGKILL);
            let _ = first_scheduler.0.wait();
        }
        let name = format!("drill-{i}");
        let (code, created) = gateway.post("/workloads", workload(&name, whoami_artifact(&name, &[]), 1)).await;
        assert_eq!(code, StatusCode::CREATED, "{created}");
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let started = Instant::now();
    let mut addresses = BTreeSet::new();
    for id in &ids {
        let running = gateway.wait_status(id, "running").await;
        let replicas = gateway.replica_addresses(&running).await;
        assert_eq!(replicas.len(), 1, "workload {id} runs exactly its one replica: {replicas:?}");
        addresses.extend(replicas);
    }
    println!("all {WORKLOADS} workloads running {:?} after the last create", started.elapsed());
    assert_eq!(addresses.len(), WORKLOADS, "every workload has its own replica");
    // Give a duplicate launch time to show up, then count the replica processes of both agents.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let replica_processes: usize = agents.iter().map(|agent| children(agent.0.id()).len()).sum();
    assert_eq!(replica_processes, WORKLOADS, "one process per replica across both agents, none launched twice");
    for id in &ids {
        let (code, echo) = gateway.invoke(id, "once").await;
        assert_eq!(code, StatusCode::OK, "{echo}");
    }
    // Both agents registered where they run and what they can run on.
    let meta_client = nucleus_client::MetaClient::new(&meta_addrs, &nucleus_tls::Dialer::plaintext()).unwrap();
    let records = meta_client.list_json::<nucleus_client::AgentRecord>(nucleus_client::keys::AGENTS).await.unwrap();
    let placed: BTreeSet<(String, String)> = records.iter().map(|r| (r.value.cluster.clone(), r.value.region.clone())).collect();
    let expected: BTreeSet<(String, String)> =
        [("east-1", "us-east"), ("west-1", "us-west")].map(|(c, r)| (c.to_owned(), r.to_owned())).into();
    assert_eq!(placed, expected);
    for record in &records {
        assert_eq!(record.value.driver, "process");
        let node = record.value.nodes.first().unwrap_or_else(|| panic!("{} registered no capacity", record.value.name));
        assert!(node.cpu_millis >= 1000 && node.memory_bytes > 0, "{node:?}");
    }

    // The east agent dies for good (its replicas keep running): after the lost-agent period its
    // workloads run on the west agent; when it comes back, its old replicas are stopped.
    send_signal(agents[0].0.id() as i32, libc::SIGKILL);
    let _ = agents[0].0.wait();
    let died = Instant::now();
    let on_west = |agent: &Value| agent.as_str().is_some_and(|a| a.contains("west"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut moved = true;
        for id in &ids {
            let (_, protons) = gateway.get(&format!("/workloads/{id}/protons")).await;
            let proton = &protons["data"][0];
            moved &= on_west(&proton["agent"]) && proton["status"] == "running";
        }
        if moved {
            break;
        }
        assert!(Instant::now() < deadline, "the east agent's workloads were not placed elsewhere within 60 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("the lost agent's workloads run elsewhere {:?} after it died", died.elapsed());
    for id in &ids {
        let (code, echo) = gateway.invoke(id, "moved").await;
        assert_eq!(code, StatusCode::OK, "{echo}");
    }
    let args: Vec<&str> = agent_args[0].iter().map(String::as_str).collect();
    let _east_again = nucleus(&args, "serving on ").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let twice: Vec<&String> = ids.iter().filter(|id| replica_processes_of(id) > 1).collect();
        if twice.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "workloads {twice:?} still run on both agents 30 s after the east agent came back");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(metas);
}

/// Live processes of `workload`'s replicas (by the `NUCLEUS_WORKLOAD_ID` the driver gives them).
fn replica_processes_of(workload: &str) -> usize {
    let wanted = format!("NUCLEUS_WORKLOAD_ID={workload}");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| {
            let zombie = std::fs::read_to_string(entry.path().join("status"))
                .is_ok_and(|s| s.lines().any(|l| l.starts_with("State:") && l.contains('Z')));
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            !zombie && environ.split(|b| *b == 0).any(|var| var == wanted.as_bytes())
        })
        .count()
}
