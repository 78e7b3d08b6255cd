//! Three real `nucleus meta` processes behind a real gateway: SIGKILL the node that leads the most
//! shard groups (and maybe the root) under a load of artifact (root group) and workload (shard
//! groups) creates; every group takes writes again within 3 s and every acknowledged write is still
//! readable.

use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::harness::{Stack, free_port, send_signal, spawn_nucleus, temp_dir, whoami_artifact, workload};

struct MetaProcess {
    id: u64,
    addr: String,
    child: Child,
}

impl Drop for MetaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_meta(id: u64, dir: &std::path::Path, join: Option<&str>) -> MetaProcess {
    let addr = format!("127.0.0.1:{}", free_port());
    let data_dir = dir.join(format!("meta-{id}"));
    let mut args = vec!["meta".to_owned(), "--id".into(), id.to_string(), "--listen".into(), addr.clone()];
    args.extend(["--data-dir".to_owned(), data_dir.to_string_lossy().into_owned()]);
    if let Some(join) = join {
        args.extend(["--join".to_owned(), join.to_owned()]);
    }
    let (child, _) = spawn_nucleus(&args, "serving on ").await;
    MetaProcess { id, addr, child }
}

/// Once every group (root and shards) has 3 voters and leadership is spread (each node leads some
/// shard): the node leading the most shards, and how many it leads.
async fn busiest_leader(nodes: &[&MetaProcess]) -> Option<(u64, usize)> {
    let mut led: std::collections::BTreeMap<u64, usize> = std::collections::BTreeMap::new();
    for node in nodes {
        let status = nucleus_client::node_status(&node.addr, &nucleus_tls::Dialer::plaintext()).await.ok()?;
        if status.shard_count == 0 || status.groups.len() as u64 != status.shard_count + 1 {
            return None;
        }
        for group in &status.groups {
            if group.voter_ids.len() != 3 {
                return None;
            }
            if group.group_id != 0 && group.state == "leader" {
                *led.entry(node.id).or_default() += 1;
            }
        }
    }
    if led.len() < nodes.len() {
        return None;
    }
    led.into_iter().max_by_key(|(_, count)| *count)
}

#[derive(Default)]
struct Log {
    /// Artifact ids (root group).
    acked: Vec<String>,
    /// Workload ids (shard groups).
    acked_workloads: Vec<String>,
    /// (sent, acknowledged) per acknowledged write.
    times: Vec<(Instant, Instant)>,
    failures: usize,
}

#[tokio::test]
async fn killing_the_meta_leader_loses_no_acknowledged_write() {
    let dir = temp_dir();
    let first = start_meta(1, dir.path(), None).await;
    let second = start_meta(2, dir.path(), Some(&first.addr)).await;
    let third = start_meta(3, dir.path(), Some(&first.addr)).await;
    let mut nodes = [first, second, third];
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let gateway = Arc::new(Stack::gateway(&addrs).await);

    let deadline = Instant::now() + Duration::from_secs(60);
    let (leader_id, shards_led) = loop {
        if let Some(busiest) = busiest_leader(&nodes.iter().collect::<Vec<_>>()).await {
            break busiest;
        }
        assert!(Instant::now() < deadline, "the 3-node cluster never placed every group on 3 voters with leaders spread");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("killing node {leader_id}, which leads {shards_led} shard group(s)");

    let log = Arc::new(Mutex::new(Log::default()));
    let stop_at = Arc::new(Mutex::new(None::<Instant>));
    let mut writers = Vec::new();
    for client in 0..4 {
        let (gateway, log, stop_at) = (gateway.clone(), log.clone(), stop_at.clone());
        writers.push(tokio::spawn(async move {
            for i in 0.. {
                if stop_at.lock().unwrap().is_some_and(|t| Instant::now() > t) {
                    break;
                }
                let sent = Instant::now();
                let name = format!("w{client}-{i}");
                let creates_workload = i % 2 == 1;
                let (code, body) = if creates_workload {
                    gateway.post("/workloads", workload(&name, whoami_artifact(&name, &[]), 1)).await
                } else {
                    gateway.post("/artifacts", whoami_artifact(&name, &[])).await
                };
                let mut log = log.lock().unwrap();
                if code == StatusCode::CREATED {
                    let id = body["id"].as_str().unwrap().to_owned();
                    if creates_workload {
                        log.acked_workloads.push(id)
                    } else {
                        log.acked.push(id)
                    }
                    log.times.push((sent, Instant::now()));
                } else {
                    log.failures += 1;
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let victim = nodes.iter().position(|n| n.id == leader_id).expect("leader is one of ours");
    let acked_before_kill = log.lock().unwrap().times.len();
    assert!(acked_before_kill > 0, "no write went through before the kill");
    let killed_at = Instant::now();
    send_signal(nodes[victim].child.id() as i32, libc::SIGKILL);
    let _ = nodes[victim].child.wait();
    *stop_at.lock().unwrap() = Some(Instant::now() + Duration::from_secs(5));
    for writer in writers {
        writer.await.unwrap();
    }

    let log = std::mem::take(&mut *log.lock().unwrap());
    // Writes resume when the first write sent after the kill is acknowledged.
    let first_after = log.times.iter().filter(|(sent, _)| *sent > killed_at).map(|(_, acked)| *acked).min();
    let resumed_after = first_after.map(|t| t - killed_at);
    // No write waited more than 3 s past the kill: every group the victim led had a new leader by then.
    let longest_stall = log.times.iter().map(|(sent, acked)| *acked - (*sent).max(killed_at)).max().unwrap_or_default();
    println!(
        "acked {} artifact and {} workload creates ({} before the kill), {} failed; first ack after the kill: \
         {resumed_after:?}; longest wait past the kill: {longest_stall:?}",
        log.acked.len(),
        log.acked_workloads.len(),
        acked_before_kill,
        log.failures
    );
    let resumed_after = resumed_after.expect("writes never resumed after the leader was killed");
    assert!(resumed_after < Duration::from_secs(3), "writes resumed only after {resumed_after:?}");
    assert!(longest_stall < Duration::from_secs(3), "a write waited {longest_stall:?} past the kill");
    assert!(log.acked_workloads.len() > 1, "workload creates (shard groups) went through");
    assert_eq!(log.failures, 0, "the gateway retried through the failover: no request failed");

    let survivors: Vec<&MetaProcess> = nodes.iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, n)| n).collect();
    let status = nucleus_client::node_status(&survivors[0].addr, &nucleus_tls::Dialer::plaintext()).await.unwrap();
    for group in &status.groups {
        assert!(group.leader_id.is_some_and(|l| l != leader_id), "group {} has a surviving leader: {group:?}", group.group_id);
    }
    let reads_started = Instant::now();
    for id in &log.acked {
        let (code, body) = gateway.get(&format!("/artifacts/{id}")).await;
        assert_eq!(code, StatusCode::OK, "acknowledged write {id} is lost: {body}");
    }
    for id in &log.acked_workloads {
        let (code, body) = gateway.get(&format!("/workloads/{id}")).await;
        assert_eq!(code, StatusCode::OK, "acknowledged workload create {id} is lost: {body}");
    }
    println!("read back {} writes in {:?}", log.times.len(), reads_started.elapsed());
    let (code, page) = gateway.get("/artifacts?limit=1").await;
    assert_eq!(code, StatusCode::OK);
    assert!(page["totalCount"].as_u64().unwrap() as usize >= log.acked.len());
    let (code, page) = gateway.get("/workloads?limit=1").await;
    assert_eq!(code, StatusCode::OK);
    assert!(page["totalCount"].as_u64().unwrap() as usize >= log.acked_workloads.len(), "the shard fan-out lists every workload");
}
