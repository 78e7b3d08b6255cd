use std::time::Duration;

use nucleus_proto::meta::v1 as pb;
use nucleus_proto::meta::v1::watch_event::Kind;
use tonic::Streaming;

use crate::common::*;

async fn next(stream: &mut Streaming<pb::WatchEvent>) -> (Kind, String, String, u64) {
    let event = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .expect("watch event in time")
        .expect("watch stream ok")
        .expect("watch stream open");
    let kind = Kind::try_from(event.kind).expect("known kind");
    let (key, value) = event.kv.map_or((String::new(), String::new()), |kv| (kv.key, String::from_utf8_lossy(&kv.value).into_owned()));
    (kind, key, value, event.revision)
}

fn ev(kind: Kind, key: &str, value: &str, revision: u64) -> (Kind, String, String, u64) {
    (kind, key.into(), value.into(), revision)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_live_events_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let mut c = client(&node).await;
    write(&mut c, "", vec![], vec![put("w/a", "1"), put("w/b", "2"), put("x", "out")]).await;

    let mut stream = c.watch(pb::WatchRequest { prefix: "w/".into(), start_revision: None, group_id: 0 }).await.unwrap().into_inner();
    assert_eq!(next(&mut stream).await, ev(Kind::Snapshot, "w/a", "1", 1));
    assert_eq!(next(&mut stream).await, ev(Kind::Snapshot, "w/b", "2", 1));
    assert_eq!(next(&mut stream).await, ev(Kind::SnapshotEnd, "", "", 1));

    write(&mut c, "", vec![], vec![put("w/c", "3")]).await; // rev 2
    write(&mut c, "", vec![], vec![put("x", "still out"), put("wx", "not under w/")]).await; // rev 3
    write(&mut c, "", vec![], vec![delete("w/a"), put("w/b", "22")]).await; // rev 4
    write(&mut c, "", vec![], vec![delete_prefix("w/")]).await; // rev 5

    assert_eq!(next(&mut stream).await, ev(Kind::Put, "w/c", "3", 2));
    assert_eq!(next(&mut stream).await, ev(Kind::Delete, "w/a", "", 4));
    assert_eq!(next(&mut stream).await, ev(Kind::Put, "w/b", "22", 4));
    assert_eq!(next(&mut stream).await, ev(Kind::Delete, "w/b", "", 5));
    assert_eq!(next(&mut stream).await, ev(Kind::Delete, "w/c", "", 5));

    drop(stream);
    drop(c);
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_watches() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let mut c = client(&node).await;
    let mut stream = c.watch(pb::WatchRequest { prefix: String::new(), start_revision: None, group_id: 0 }).await.unwrap().into_inner();
    assert_eq!(next(&mut stream).await, ev(Kind::SnapshotEnd, "", "", 0));

    tokio::time::timeout(Duration::from_secs(3), node.shutdown()).await.expect("shutdown in time").unwrap();
    let end = tokio::time::timeout(Duration::from_secs(3), stream.message()).await.expect("stream ends");
    assert!(!matches!(end, Ok(Some(_))), "no more events after shutdown: {end:?}");
}

fn from(prefix: &str, start_revision: u64) -> pb::WatchRequest {
    pb::WatchRequest { prefix: prefix.into(), start_revision: Some(start_revision), group_id: 0 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_a_revision_replays_exactly_the_later_changes_then_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let mut c = client(&node).await;
    write(&mut c, "", vec![], vec![put("w/a", "1")]).await; // rev 1
    write(&mut c, "", vec![], vec![put("w/b", "2")]).await; // rev 2
    write(&mut c, "", vec![], vec![put("x", "out"), put("w/a", "11")]).await; // rev 3
    write(&mut c, "", vec![], vec![delete_prefix("w/")]).await; // rev 4

    let mut stream = c.watch(from("w/", 3)).await.unwrap().into_inner();
    assert_eq!(next(&mut stream).await, ev(Kind::Put, "w/a", "11", 3));
    assert_eq!(next(&mut stream).await, ev(Kind::Delete, "w/a", "", 4));
    assert_eq!(next(&mut stream).await, ev(Kind::Delete, "w/b", "", 4));
    write(&mut c, "", vec![], vec![put("x", "still out")]).await; // rev 5
    write(&mut c, "", vec![], vec![put("w/c", "3")]).await; // rev 6
    assert_eq!(next(&mut stream).await, ev(Kind::Put, "w/c", "3", 6));

    // A start beyond the current revision sends nothing until that revision.
    let mut ahead = c.watch(from("w/", 8)).await.unwrap().into_inner();
    write(&mut c, "", vec![], vec![put("w/d", "4")]).await; // rev 7
    write(&mut c, "", vec![], vec![put("w/e", "5")]).await; // rev 8
    assert_eq!(next(&mut ahead).await, ev(Kind::Put, "w/e", "5", 8));
    assert_eq!(next(&mut stream).await, ev(Kind::Put, "w/d", "4", 7));
    assert_eq!(next(&mut stream).await, ev(Kind::Put, "w/e", "5", 8));

    drop((stream, ahead, c));
    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_older_than_the_kept_history_is_out_of_range_with_the_compact_revision() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        nucleus_meta::MetaConfig { watch_history: 3, ..nucleus_meta::MetaConfig::new(1, dir.path(), "127.0.0.1:0".parse().unwrap()) };
    let node = nucleus_meta::MetaNode::start(config).await.unwrap();
    let mut c = client(&node).await;
    for i in 1..=6 {
        write(&mut c, "", vec![], vec![put("w/k", &i.to_string())]).await;
    }
    assert_eq!(node.reader().view().compact_revision().unwrap(), 3);

    for start in [1, 3] {
        let err = c.watch(from("w/", start)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::OutOfRange, "start {start}: {err:?}");
        assert!(err.message().contains("compacted") && err.message().contains('4'), "{}", err.message());
        let compact = err.metadata().get(nucleus_proto::metadata::COMPACT_REVISION).unwrap().to_str().unwrap();
        assert_eq!(compact, "3");
    }
    let mut stream = c.watch(from("w/", 4)).await.unwrap().into_inner();
    for revision in 4..=6 {
        assert_eq!(next(&mut stream).await, ev(Kind::Put, "w/k", &revision.to_string(), revision));
    }

    drop((stream, c));
    node.shutdown().await.unwrap();
}
