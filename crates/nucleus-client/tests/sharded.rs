//! Routing against a real meta node with several shard groups: fan-out lists, refused
//! cross-group transactions and a resumable watch merged over every shard.

use std::time::Duration;

use nucleus_client::{Error, MetaClient, Txn, WatchEvent, WriteOutcome, keys};
use nucleus_meta::{MetaConfig, MetaNode};

const SHARDS: u64 = 4;

/// Workload ids that land in at least two different shards.
fn workload_ids() -> Vec<String> {
    let ids: Vec<String> = (0..8).map(|i| format!("w{i}")).collect();
    let groups: std::collections::BTreeSet<u64> = ids.iter().map(|id| keys::group_of_key(&keys::workload(id), SHARDS)).collect();
    assert!(groups.len() > 1, "test ids should spread over shards");
    ids
}

async fn put(meta: &MetaClient, key: &str) -> u64 {
    match meta.write(Txn::new().put_json(key, &"x").unwrap()).await.expect("write") {
        WriteOutcome::Applied { revision } => revision,
        other => panic!("unconditional write: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_lists_writes_and_watches_over_shards() {
    let dir = tempfile::tempdir().unwrap();
    let config = MetaConfig { shards: SHARDS, ..MetaConfig::new(1, dir.path(), "127.0.0.1:0".parse().unwrap()) };
    let node = MetaNode::start(config).await.expect("start meta node");
    let meta = MetaClient::new(&[node.addr().to_string()], &nucleus_tls::Dialer::plaintext()).unwrap();
    assert_eq!(meta.shard_count().await.unwrap(), SHARDS);

    let ids = workload_ids();
    for id in &ids[..4] {
        put(&meta, &keys::workload(id)).await;
    }
    put(&meta, &keys::proton(&ids[0], "p")).await;
    put(&meta, &keys::artifact("a")).await;

    let mut watch = meta.watch_resumable(keys::WORKLOADS);
    let first = tokio::time::timeout(Duration::from_secs(10), watch.next()).await.expect("reset in time");
    let expected: Vec<String> = ids[..4].iter().map(|id| keys::workload(id)).collect();
    match &first {
        WatchEvent::Reset(kvs) => assert_eq!(kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(), expected),
        other => panic!("expected a reset, got {other:?}"),
    }

    let (kvs, revision) = meta.list(keys::WORKLOADS).await.unwrap();
    assert_eq!(kvs.iter().map(|kv| kv.key.clone()).collect::<Vec<_>>(), expected, "merged, sorted by key");
    assert_eq!(revision, 0, "a fan-out has no single revision");
    let (protons, revision) = meta.list(&keys::protons_of(&ids[0])).await.unwrap();
    assert_eq!(protons.len(), 1);
    assert!(revision > 0, "one group: its revision");
    assert!(meta.get(&keys::artifact("a")).await.unwrap().is_some());

    let cross = Txn::new().put_json(&keys::artifact("b"), &1).unwrap().put_json(&keys::workload(&ids[5]), &1).unwrap();
    assert!(matches!(meta.write(cross).await, Err(Error::CrossGroup { .. })));
    assert!(meta.get(&keys::artifact("b")).await.unwrap().is_none(), "nothing was sent");
    assert!(matches!(meta.watch(keys::WORKLOADS).await, Err(Error::MultiGroupWatch { .. })));

    // Changes from every shard reach the merged watch.
    let mut written = Vec::new();
    for id in &ids[4..] {
        put(&meta, &keys::workload(id)).await;
        written.push(keys::workload(id));
    }
    let mut seen = Vec::new();
    while seen.len() < written.len() {
        match tokio::time::timeout(Duration::from_secs(10), watch.next()).await.expect("event in time") {
            WatchEvent::Put(kv) => seen.push(kv.key),
            other => panic!("expected puts, got {other:?}"),
        }
    }
    seen.sort();
    assert_eq!(seen, written);
    node.shutdown().await.unwrap();
}
