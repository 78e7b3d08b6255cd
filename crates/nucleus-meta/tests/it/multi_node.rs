//! Groups of several nodes: joining, leader hints, leader loss and restart, catch-up, leaving.

use std::time::{Duration, Instant};

use nucleus_meta::{MetaConfig, MetaNode};
use nucleus_proto::meta::v1 as pb;
use nucleus_proto::metadata::{LEADER_ADDR as LEADER_ADDR_METADATA, LEADER_ID as LEADER_ID_METADATA};

use crate::common::*;
use crate::group::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_share_a_leader_and_followers_point_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = three_nodes(dir.path()).await;
    let refs: Vec<&MetaNode> = nodes.iter().collect();
    assert_eq!(agreed_leader(&refs, &[1, 2, 3]).await, 1);

    let leader = &nodes[0];
    let status = status(leader).await;
    assert_eq!((status.state.as_str(), status.leader_addr.as_deref()), ("leader", Some(leader.advertise())));
    let expected_members: Vec<pb::Member> = nodes.iter().map(|n| pb::Member { id: n.node_id(), addr: n.advertise().to_owned() }).collect();
    assert_eq!(status.members, expected_members);
    for follower in &nodes[1..] {
        let status = crate::group::status(follower).await;
        assert_eq!(status.state, "follower");
        assert_eq!(status.leader_addr.as_deref(), Some(leader.advertise()));
    }

    let mut c = client_at(leader.advertise()).await;
    assert!(write(&mut c, "w1", vec![], vec![put("k", "v")]).await.succeeded);
    assert_eq!(get(&mut c, "k").await.kv.unwrap().value, b"v");

    // Leader-only calls on a follower: UNAVAILABLE with the leader's id and address.
    let mut f = client_at(nodes[2].advertise()).await;
    let request = pb::WriteRequest { request_id: "w2".into(), conditions: vec![], ops: vec![put("k", "no")], group_id: 0 };
    let err = f.write(request).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable);
    assert_eq!(metadata(&err, LEADER_ADDR_METADATA).as_deref(), Some(leader.advertise()));
    assert_eq!(metadata(&err, LEADER_ID_METADATA).as_deref(), Some("1"));
    let err = f.get(pb::GetRequest { key: "k".into(), group_id: 0 }).await.unwrap_err();
    assert_eq!((err.code(), metadata(&err, LEADER_ADDR_METADATA).as_deref()), (tonic::Code::Unavailable, Some(leader.advertise())));
    let err = f.join(pb::JoinRequest { node_id: 9, addr: "127.0.0.1:9".into() }).await.unwrap_err();
    assert_eq!((err.code(), metadata(&err, LEADER_ADDR_METADATA).as_deref()), (tonic::Code::Unavailable, Some(leader.advertise())));
    // The rejected write changed nothing.
    assert_eq!(get(&mut c, "k").await.kv.unwrap().value, b"v");

    shutdown_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn join_is_idempotent_and_leave_removes_a_voter() {
    let dir = tempfile::tempdir().unwrap();
    let nodes = three_nodes(dir.path()).await;
    let refs: Vec<&MetaNode> = nodes.iter().collect();
    agreed_leader(&refs, &[1, 2, 3]).await;
    let mut c = client_at(nodes[0].advertise()).await;

    let again = c.join(pb::JoinRequest { node_id: 2, addr: nodes[1].advertise().into() }).await.unwrap().into_inner();
    assert_eq!(again.members.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2, 3]);
    let before = status(&nodes[0]).await;
    let err = c.join(pb::JoinRequest { node_id: 4, addr: String::new() }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(status(&nodes[0]).await.last_log_index, before.last_log_index, "an idempotent join writes nothing");

    let left = c.leave(pb::LeaveRequest { node_id: 3 }).await.unwrap().into_inner();
    assert_eq!(left.members.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(agreed_leader(&refs[..2], &[1, 2]).await, 1);
    let again = c.leave(pb::LeaveRequest { node_id: 3 }).await.unwrap().into_inner();
    assert_eq!(again.members.iter().map(|m| m.id).collect::<Vec<_>>(), [1, 2]);
    // The group still commits with its two voters.
    assert!(write(&mut c, "", vec![], vec![put("after-leave", "1")]).await.succeeded);

    shutdown_all(nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_loss_elects_a_new_leader_and_the_old_one_rejoins() {
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = three_nodes(dir.path()).await;
    let refs: Vec<&MetaNode> = nodes.iter().collect();
    assert_eq!(agreed_leader(&refs, &[1, 2, 3]).await, 1);

    let mut c = client_at(nodes[0].advertise()).await;
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        let (key, value) = (format!("k{i:02}"), format!("v{i}"));
        assert!(write(&mut c, &format!("req-{i}"), vec![], vec![put(&key, &value)]).await.succeeded);
        acknowledged.push((key, value));
    }
    drop(c);

    let old = nodes.remove(0);
    let old_listen = old.addr();
    old.shutdown().await.unwrap();
    let lost_at = Instant::now();
    let refs: Vec<&MetaNode> = nodes.iter().collect();
    let new_leader_id = agreed_leader_except(&refs, &[1, 2, 3], Some(1)).await;
    let failover = lost_at.elapsed();
    assert_ne!(new_leader_id, 1);
    assert!(failover < Duration::from_secs(3), "new leader after {failover:?}");
    let new_leader = nodes.iter().find(|n| n.node_id() == new_leader_id).unwrap();

    let mut c = client_at(new_leader.advertise()).await;
    assert_eq!(list(&mut c, "k").await.0, acknowledged, "every acknowledged write survived");
    // A retried request id is still recognized by the new leader.
    assert_eq!(write(&mut c, "req-0", vec![], vec![put("k00", "again")]).await.revision, 1);
    assert!(write(&mut c, "", vec![], vec![put("k20", "v20")]).await.succeeded);
    acknowledged.push(("k20".into(), "v20".into()));

    // The old leader comes back on its data dir and address (no join list: a member rejoins by itself).
    let old = MetaNode::start(MetaConfig::new(1, dir.path().join("node-1"), old_listen)).await.expect("restart old leader");
    let mut all = vec![old];
    all.extend(nodes);
    let refs: Vec<&MetaNode> = all.iter().collect();
    assert_eq!(agreed_leader(&refs, &[1, 2, 3]).await, new_leader_id);
    assert_eq!(status(&all[0]).await.state, "follower");
    let leader_applied = status(all.iter().find(|n| n.node_id() == new_leader_id).unwrap()).await.applied_index;
    eventually("the old leader to catch up", Duration::from_secs(10), || async {
        (status(&all[0]).await.applied_index >= leader_applied).then_some(())
    })
    .await;
    assert_eq!(local_pairs(&all[0]), acknowledged);
    assert_eq!(list(&mut c, "").await.0, acknowledged);

    shutdown_all(all).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_joiner_catches_up_from_a_snapshot_and_a_moved_node_is_readdressed() {
    let dir = tempfile::tempdir().unwrap();
    let small_snapshots = |id, join: &[&MetaNode]| MetaConfig { snapshot_after_logs: 10, ..config(id, dir.path(), ANY_PORT, join) };
    let n1 = MetaNode::start(small_snapshots(1, &[])).await.unwrap();
    let mut c = client_at(n1.advertise()).await;
    let mut expected = Vec::new();
    for i in 0..40 {
        let (key, value) = (format!("k{i:02}"), format!("v{i}"));
        write(&mut c, "", vec![], vec![put(&key, &value)]).await;
        expected.push((key, value));
    }
    // The first entries are purged, so a new member can only get them from a snapshot.
    n1.raft()
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.purged.is_some_and(|p| p.index > 5), "log purged behind a snapshot")
        .await
        .expect("leader purged its log");

    let n2 = MetaNode::start(small_snapshots(2, &[&n1])).await.expect("join");
    assert!(n2.raft().metrics().borrow().snapshot.is_some(), "node 2 installed a snapshot");
    assert_eq!(local_pairs(&n2), expected);
    assert_eq!(agreed_leader(&[&n1, &n2], &[1, 2]).await, 1);

    // Node 2 comes back on another port: it re-joins and the leader records its new address.
    let old_addr = n2.advertise().to_owned();
    n2.shutdown().await.unwrap();
    let n2 = MetaNode::start(small_snapshots(2, &[])).await.expect("restart on a new port");
    assert_ne!(n2.advertise(), old_addr);
    let member = status(&n1).await.members.into_iter().find(|m| m.id == 2).unwrap();
    assert_eq!(member.addr, n2.advertise());
    assert!(write(&mut c, "", vec![], vec![put("moved", "yes")]).await.succeeded);
    expected.push(("moved".into(), "yes".into()));
    eventually("node 2 to apply the write at its new address", Duration::from_secs(5), || async {
        (local_pairs(&n2) == expected).then_some(())
    })
    .await;

    shutdown_all(vec![n1, n2]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_installs_a_snapshot_keeps_no_watch_history_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let small_snapshots =
        |id, listen: &str, join: &[&MetaNode]| MetaConfig { snapshot_after_logs: 10, ..config(id, dir.path(), listen, join) };
    let n1 = MetaNode::start(small_snapshots(1, ANY_PORT, &[])).await.unwrap();
    let n2 = MetaNode::start(small_snapshots(2, ANY_PORT, &[&n1])).await.expect("join");
    let n3 = MetaNode::start(small_snapshots(3, ANY_PORT, &[&n1])).await.expect("join");
    let mut c = client_at(n1.advertise()).await;
    write(&mut c, "", vec![], vec![put("early", "1")]).await;
    eventually("node 2 to apply the first write", Duration::from_secs(5), || async { (local_pairs(&n2).len() == 1).then_some(()) }).await;
    assert_eq!(n2.reader().view().compact_revision().unwrap(), 0, "node 2 replicated it: full history");

    // Node 2 misses 40 writes whose log entries the leader purges: it catches up from a snapshot.
    let n2_listen = n2.addr();
    let n2_last = n2.raft().metrics().borrow().last_log_index.unwrap();
    n2.shutdown().await.unwrap();
    for i in 0..40 {
        write(&mut c, "", vec![], vec![put(&format!("k{i:02}"), "v")]).await;
    }
    n1.raft()
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.purged.is_some_and(|p| p.index > n2_last), "log purged behind a snapshot")
        .await
        .expect("leader purged its log");
    let n2 = MetaNode::start(small_snapshots(2, &n2_listen.to_string(), &[])).await.expect("restart");
    let expected = local_pairs(&n1);
    eventually("node 2 to catch up", Duration::from_secs(10), || async { (local_pairs(&n2) == expected).then_some(()) }).await;

    let snapshot = n2.raft().get_snapshot().await.unwrap().expect("node 2 installed a snapshot");
    let (_, revision) = snapshot.meta.snapshot_id.rsplit_once("-rev").expect("snapshot id names its revision");
    let snapshot_revision: u64 = revision.parse().unwrap();
    assert!(snapshot_revision > 1, "the snapshot covers the missed writes");
    assert_eq!(n2.reader().view().compact_revision().unwrap(), snapshot_revision);
    assert_eq!(n1.reader().view().compact_revision().unwrap(), 0, "the leader kept its history");

    shutdown_all(vec![n1, n2, n3]).await;
}
