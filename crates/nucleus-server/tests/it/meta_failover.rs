//! Three real `nucleus meta` processes behind a real gateway: SIGKILL the leader under write load;
//! writes resume within 3 s and every acknowledged write is still readable.

use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::harness::{free_port, send_signal, spawn_nucleus, temp_dir, whoami_artifact, Stack};

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

/// The leader id as the reachable nodes agree on it.
async fn leader(nodes: &[&MetaProcess]) -> Option<u64> {
    for node in nodes {
        if let Ok(status) = nucleus_client::node_status(&node.addr).await {
            if status.leader_id.is_some() && status.voter_ids.len() == 3 {
                return status.leader_id;
            }
        }
    }
    None
}

#[derive(Default)]
struct Log {
    acked: Vec<String>,
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
    let mut nodes = vec![first, second, third];
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
    let gateway = Arc::new(Stack::gateway(&addrs).await);

    let deadline = Instant::now() + Duration::from_secs(20);
    let leader_id = loop {
        if let Some(id) = leader(&nodes.iter().collect::<Vec<_>>()).await {
            break id;
        }
        assert!(Instant::now() < deadline, "the 3-node group never agreed on a leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

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
                let (code, body) = gateway.post("/artifacts", whoami_artifact(&format!("w{client}-{i}"), &[])).await;
                let mut log = log.lock().unwrap();
                if code == StatusCode::CREATED {
                    log.acked.push(body["id"].as_str().unwrap().to_owned());
                    log.times.push((sent, Instant::now()));
                } else {
                    log.failures += 1;
                }
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let victim = nodes.iter().position(|n| n.id == leader_id).expect("leader is one of ours");
    let acked_before_kill = log.lock().unwrap().acked.len();
    assert!(acked_before_kill > 0, "no write went through before the kill");
    let killed_at = Instant::now();
    send_signal(nodes[victim].child.id() as i32, libc::SIGKILL);
    let _ = nodes[victim].child.wait();
    *stop_at.lock().unwrap() = Some(Instant::now() + Duration::from_secs(5));
    for writer in writers {
        writer.await.unwrap();
    }

    let log = log.lock().unwrap();
    // Writes resume when the first write sent after the kill is acknowledged.
    let first_after = log.times.iter().filter(|(sent, _)| *sent > killed_at).map(|(_, acked)| *acked).min();
    let resumed_after = first_after.map(|t| t - killed_at);
    println!(
        "acked {} writes ({} before the kill), {} failed; first ack after the kill: {resumed_after:?}",
        log.acked.len(),
        acked_before_kill,
        log.failures
    );
    let resumed_after = resumed_after.expect("writes never resumed after the leader was killed");
    assert!(resumed_after < Duration::from_secs(3), "writes resumed only after {resumed_after:?}");

    let survivors: Vec<&MetaProcess> = nodes.iter().enumerate().filter(|(i, _)| *i != victim).map(|(_, n)| n).collect();
    let new_leader = nucleus_client::node_status(&survivors[0].addr).await.unwrap().leader_id;
    assert!(new_leader.is_some_and(|l| l != leader_id), "a surviving node leads now: {new_leader:?}");
    let reads_started = Instant::now();
    for id in &log.acked {
        let (code, body) = gateway.get(&format!("/artifacts/{id}")).await;
        assert_eq!(code, StatusCode::OK, "acknowledged write {id} is lost: {body}");
    }
    println!("read back {} writes in {:?}", log.acked.len(), reads_started.elapsed());
    let (code, page) = gateway.get("/artifacts?limit=1").await;
    assert_eq!(code, StatusCode::OK);
    assert!(page["totalCount"].as_u64().unwrap() as usize >= log.acked.len());
}
