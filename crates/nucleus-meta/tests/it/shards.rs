//! Shard groups across nodes: replicas on every node of a 3-node cluster with leaders spread,
//! rebalancing onto new nodes and off a node that leaves, with no write lost on the way.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use nucleus_meta::{MetaConfig, MetaNode, SHARD_REPLICAS, placement};
use nucleus_proto::meta::v1 as pb;

use crate::common::*;
use crate::group::*;

const SHARDS: u64 = 4;
const SETTLE: Duration = Duration::from_secs(60);

async fn start_sharded(id: u64, dir: &Path, join: &[&MetaNode]) -> MetaNode {
    let config = MetaConfig {
        join: join.iter().map(|node| node.advertise().to_owned()).collect(),
        shards: SHARDS,
        ..MetaConfig::new(id, dir.join(format!("node-{id}")), ANY_PORT.parse::<SocketAddr>().unwrap())
    };
    MetaNode::start(config).await.unwrap_or_else(|e| panic!("start node {id}: {e}"))
}

/// group id -> (voters, leader) once each shard's leader (the newest that claims to be one)
/// reports exactly the placement over `members` as voters and no learners, and every replica
/// follows that leader. A node removed from a shard is never told and may keep a stale view, so
/// only the leader's view of the membership counts.
async fn settled_shards(nodes: &[&MetaNode], members: &BTreeSet<u64>) -> BTreeMap<u64, (Vec<u64>, u64)> {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let mut reports: BTreeMap<u64, Vec<(u64, pb::GroupStatus)>> = BTreeMap::new();
        for node in nodes {
            let status = status(node).await;
            assert_eq!(status.shard_count, SHARDS, "node {} knows the shard count", node.node_id());
            for group in status.groups.into_iter().filter(|g| g.group_id != 0) {
                reports.entry(group.group_id).or_default().push((node.node_id(), group));
            }
        }
        match settled(&reports, members) {
            Ok(settled) => return settled,
            Err(why) if tokio::time::Instant::now() >= deadline => {
                let views: Vec<String> = reports
                    .values()
                    .flatten()
                    .map(|(node, g)| {
                        format!(
                            "  node {node} group {} {} term {} leader {:?} voters {:?} learners {:?}",
                            g.group_id, g.state, g.term, g.leader_id, g.voter_ids, g.learner_ids
                        )
                    })
                    .collect();
                panic!("shards not settled after {SETTLE:?}: {why}\n{}", views.join("\n"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn settled(
    reports: &BTreeMap<u64, Vec<(u64, pb::GroupStatus)>>,
    members: &BTreeSet<u64>,
) -> Result<BTreeMap<u64, (Vec<u64>, u64)>, String> {
    let mut settled = BTreeMap::new();
    for (group_id, views) in reports {
        let (leader, view) = views
            .iter()
            .filter(|(_, g)| g.state == "leader")
            .max_by_key(|(_, g)| g.term)
            .ok_or_else(|| format!("group {group_id} has no leader"))?;
        let placed: Vec<u64> = placement::replicas(*group_id, members, SHARD_REPLICAS).into_iter().collect();
        if view.voter_ids != placed || !view.learner_ids.is_empty() {
            return Err(format!("group {group_id}: voters {:?} learners {:?}, placement {placed:?}", view.voter_ids, view.learner_ids));
        }
        if let Some((id, g)) = views.iter().find(|(id, g)| placed.contains(id) && g.leader_id != Some(*leader)) {
            return Err(format!("group {group_id}: node {id} follows {:?}, not {leader}", g.leader_id));
        }
        settled.insert(*group_id, (placed, *leader));
    }
    if settled.len() as u64 != SHARDS {
        return Err(format!("{} of {SHARDS} shards reported", settled.len()));
    }
    Ok(settled)
}

fn node_of<'a>(nodes: &[&'a MetaNode], id: u64) -> &'a MetaNode {
    nodes.iter().find(|n| n.node_id() == id).copied().expect("node in list")
}

async fn shard_write(nodes: &[&MetaNode], group: u64, leader: u64, key: &str, value: &str) {
    let mut client = client_at(node_of(nodes, leader).advertise()).await;
    let request =
        pb::WriteRequest { request_id: format!("{group}-{key}"), conditions: vec![], ops: vec![put(key, value)], group_id: group };
    assert!(client.write(request).await.expect("shard write").into_inner().succeeded);
}

/// Reads from the group's leader, asking the other nodes while leadership moves (a hand-over or an
/// election may follow the moment the placement settled).
async fn shard_get(nodes: &[&MetaNode], group: u64, leader: u64, key: &str) -> Option<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut candidates: Vec<u64> = std::iter::once(leader).chain(nodes.iter().map(|n| n.node_id())).collect();
    loop {
        for id in &candidates {
            let mut client = client_at(node_of(nodes, *id).advertise()).await;
            match client.get(pb::GetRequest { key: key.into(), group_id: group }).await {
                Ok(response) => return response.into_inner().kv.map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
                Err(status) if status.code() == tonic::Code::Unavailable => continue,
                Err(status) => panic!("shard get: {status}"),
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no leader of group {group} answered a read");
        tokio::time::sleep(Duration::from_millis(100)).await;
        candidates.dedup();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shards_spread_over_three_nodes_then_rebalance_onto_new_nodes_and_off_a_leaving_one() {
    let dir = tempfile::tempdir().unwrap();
    let n1 = start_sharded(1, dir.path(), &[]).await;
    let n2 = start_sharded(2, dir.path(), &[&n1]).await;
    let n3 = start_sharded(3, dir.path(), &[&n1]).await;

    // Three nodes: every shard on all three, and each node leads at least one shard.
    let three: Vec<&MetaNode> = vec![&n1, &n2, &n3];
    let all3 = BTreeSet::from([1, 2, 3]);
    let shards = eventually("leaders to spread", SETTLE, || async {
        let shards = settled_shards(&three, &all3).await;
        let leaders: BTreeSet<u64> = shards.values().map(|(_, leader)| *leader).collect();
        (leaders == all3).then_some(shards)
    })
    .await;
    for (group, (_, leader)) in &shards {
        shard_write(&three, *group, *leader, "before", &format!("g{group}")).await;
    }
    // Groups are separate stores: a key written in one shard is not in another.
    let (first, (_, first_leader)) = shards.iter().next().unwrap();
    assert_eq!(shard_get(&three, *first, *first_leader, "before").await.as_deref(), Some(format!("g{first}").as_str()));
    let mut root = client_at(n1.advertise()).await;
    let root_read = root.get(pb::GetRequest { key: "before".into(), group_id: 0 }).await.expect("root read (node 1 leads the root)");
    assert_eq!(root_read.into_inner().kv, None, "the root group does not see shard keys");

    // Two more nodes: each shard keeps 3 replicas, and the new nodes take some.
    let n4 = start_sharded(4, dir.path(), &[&n1]).await;
    let n5 = start_sharded(5, dir.path(), &[&n2]).await;
    let five: Vec<&MetaNode> = vec![&n1, &n2, &n3, &n4, &n5];
    let all5 = BTreeSet::from([1, 2, 3, 4, 5]);
    let shards = settled_shards(&five, &all5).await;
    let holders: BTreeSet<u64> = shards.values().flat_map(|(voters, _)| voters.iter().copied()).collect();
    assert!(holders.contains(&4) || holders.contains(&5), "placement puts some shards on the new nodes: {shards:?}");
    for (group, (_, leader)) in &shards {
        let value = shard_get(&five, *group, *leader, "before").await;
        assert_eq!(value, Some(format!("g{group}")), "shard {group} kept its data through rebalancing");
    }

    // Node 2 leaves: no shard keeps it, all still have 3 replicas and their data.
    let leader_client = client_at(n1.advertise()).await;
    let leave = eventually("leave to be accepted", SETTLE, || {
        let mut c = leader_client.clone();
        async move { c.leave(pb::LeaveRequest { node_id: 2 }).await.ok() }
    })
    .await;
    assert!(leave.into_inner().members.iter().all(|m| m.id != 2));
    let four: Vec<&MetaNode> = vec![&n1, &n3, &n4, &n5];
    let without2 = BTreeSet::from([1, 3, 4, 5]);
    let shards = settled_shards(&four, &without2).await;
    for (group, (_, leader)) in &shards {
        let value = shard_get(&four, *group, *leader, "before").await;
        assert_eq!(value, Some(format!("g{group}")), "shard {group} kept its data after node 2 left");
    }
    shutdown_all(vec![n1, n2, n3, n4, n5]).await;
}
