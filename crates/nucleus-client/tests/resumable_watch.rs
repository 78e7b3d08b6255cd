//! The resumable watch against a real meta node (RocksDB + gRPC) that is stopped and restarted
//! under it.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use nucleus_client::{KeyValue, MetaClient, ResumableWatch, Txn, WatchEvent};
use nucleus_meta::{MetaConfig, MetaNode};

async fn start(dir: &Path, listen: SocketAddr, watch_history: u64) -> MetaNode {
    let config = MetaConfig { watch_history, ..MetaConfig::new(1, dir, listen) };
    MetaNode::start(config).await.expect("start meta node")
}

async fn put(meta: &MetaClient, pairs: &[(&str, &str)]) -> u64 {
    let txn = pairs.iter().fold(Txn::new(), |txn, (k, v)| txn.put_json(k, v).expect("encode"));
    match meta.write(txn).await.expect("write") {
        nucleus_client::WriteOutcome::Applied { revision } => revision,
        other => panic!("unconditional write: {other:?}"),
    }
}

async fn next(watch: &mut ResumableWatch) -> WatchEvent {
    tokio::time::timeout(Duration::from_secs(10), watch.next()).await.expect("watch event in time")
}

fn put_event(key: &str, value: &str, revision: u64) -> WatchEvent {
    let value = serde_json::to_vec(value).unwrap();
    WatchEvent::Put(KeyValue { key: key.into(), value, create_revision: revision, mod_revision: revision })
}

fn keys(event: &WatchEvent) -> Vec<&str> {
    match event {
        WatchEvent::Reset(kvs) => kvs.iter().map(|kv| kv.key.as_str()).collect(),
        other => panic!("expected a reset, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumes_after_the_server_ends_the_stream_without_losing_or_repeating_events() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), "127.0.0.1:0".parse().unwrap(), 100).await;
    let addr = node.addr();
    let meta = MetaClient::new(&[addr.to_string()], &nucleus_tls::Dialer::plaintext()).unwrap();
    put(&meta, &[("r/a", "1")]).await;

    let mut watch = meta.watch_resumable("r/");
    assert_eq!(keys(&next(&mut watch).await), ["r/a"]);
    let two = put(&meta, &[("r/b", "2"), ("r/c", "3")]).await;
    let three = put(&meta, &[("r/d", "4"), ("elsewhere", "x")]).await;
    assert_eq!(next(&mut watch).await, put_event("r/b", "2", two));

    // The node goes away mid-revision (for the watch) and comes back on the same address.
    node.shutdown().await.unwrap();
    let node = start(dir.path(), addr, 100).await;
    let four = put(&meta, &[("r/e", "5")]).await;
    let txn = Txn::new().delete("r/a");
    let five = match meta.write(txn).await.unwrap() {
        nucleus_client::WriteOutcome::Applied { revision } => revision,
        other => panic!("{other:?}"),
    };

    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next(&mut watch).await);
    }
    assert_eq!(
        seen,
        [
            put_event("r/c", "3", two),
            put_event("r/d", "4", three),
            put_event("r/e", "5", four),
            WatchEvent::Delete { key: "r/a".into(), revision: five },
        ]
    );
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn falls_back_to_a_reset_when_the_history_is_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path(), "127.0.0.1:0".parse().unwrap(), 2).await;
    let addr = node.addr();
    let meta = MetaClient::new(&[addr.to_string()], &nucleus_tls::Dialer::plaintext()).unwrap();
    put(&meta, &[("r/a", "1")]).await;

    let mut watch = meta.watch_resumable("r/");
    assert_eq!(keys(&next(&mut watch).await), ["r/a"]);
    let two = put(&meta, &[("r/b", "2")]).await;
    assert_eq!(next(&mut watch).await, put_event("r/b", "2", two));

    // While the watch is down, more revisions go by than the node keeps.
    node.shutdown().await.unwrap();
    let node = start(dir.path(), addr, 2).await;
    for key in ["r/c", "r/d", "r/e"] {
        put(&meta, &[(key, "x")]).await;
    }
    assert!(meta.watch_from("r/", two + 1).await.err().is_some_and(|e| e.is_compacted()));

    assert_eq!(keys(&next(&mut watch).await), ["r/a", "r/b", "r/c", "r/d", "r/e"]);
    let six = put(&meta, &[("r/f", "6")]).await;
    assert_eq!(next(&mut watch).await, put_event("r/f", "6", six));
    node.shutdown().await.unwrap();
}
