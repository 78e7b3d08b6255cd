//! Helpers for multi-node tests: in-process nodes on 127.0.0.1 sockets, each with its own RocksDB.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use nucleus_meta::{MetaConfig, MetaNode};
use nucleus_proto::meta::v1 as pb;
use nucleus_proto::meta::v1::meta_client::MetaClient;

use crate::common::Client;

pub const ANY_PORT: &str = "127.0.0.1:0";

pub fn config(id: u64, dir: &Path, listen: &str, join: &[&MetaNode]) -> MetaConfig {
    MetaConfig {
        join: join.iter().map(|node| node.advertise().to_owned()).collect(),
        ..MetaConfig::new(id, dir.join(format!("node-{id}")), listen.parse::<SocketAddr>().expect("listen addr"))
    }
}

pub async fn start_node(id: u64, dir: &Path, join: &[&MetaNode]) -> MetaNode {
    MetaNode::start(config(id, dir, ANY_PORT, join)).await.unwrap_or_else(|e| panic!("start node {id}: {e}"))
}

/// Node 1 bootstraps, nodes 2 and 3 join through it.
pub async fn three_nodes(dir: &Path) -> Vec<MetaNode> {
    let n1 = start_node(1, dir, &[]).await;
    let n2 = start_node(2, dir, &[&n1]).await;
    let n3 = start_node(3, dir, &[&n1]).await;
    vec![n1, n2, n3]
}

pub async fn client_at(addr: &str) -> Client {
    MetaClient::connect(format!("http://{addr}")).await.expect("connect")
}

pub async fn status(node: &MetaNode) -> pb::StatusResponse {
    client_at(node.advertise()).await.status(pb::StatusRequest::default()).await.expect("status").into_inner()
}

pub use nucleus_testkit::eventually;

/// Every node reports the same leader and exactly `voters` as voters; returns the leader's id.
pub async fn agreed_leader(nodes: &[&MetaNode], voters: &[u64]) -> u64 {
    agreed_leader_except(nodes, voters, None).await
}

/// As [`agreed_leader`], waiting past a leader `old` that the nodes may still remember.
pub async fn agreed_leader_except(nodes: &[&MetaNode], voters: &[u64], old: Option<u64>) -> u64 {
    eventually("all nodes to agree on leader and voters", Duration::from_secs(10), || async {
        let mut leader = None;
        for node in nodes {
            let status = status(node).await;
            let unsettled = status.leader_id.is_none() || status.leader_id == old;
            if status.voter_ids != voters || unsettled || (leader.is_some() && status.leader_id != leader) {
                return None;
            }
            leader = status.leader_id;
        }
        leader
    })
    .await
}

/// Every (key, value) in the node's local, applied state.
pub fn local_pairs(node: &MetaNode) -> Vec<(String, String)> {
    let kvs = node.reader().view().list("").expect("local list");
    kvs.into_iter().map(|kv| (kv.key, String::from_utf8_lossy(&kv.value).into_owned())).collect()
}

pub fn metadata(status: &tonic::Status, key: &str) -> Option<String> {
    status.metadata().get(key).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

pub async fn shutdown_all(nodes: Vec<MetaNode>) {
    for node in nodes {
        node.shutdown().await.expect("shutdown");
    }
}
