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
    let (key, value) = event.kv.map_or((String::new(), String::new()), |kv| {
        (kv.key, String::from_utf8_lossy(&kv.value).into_owned())
    });
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

    let mut stream = c.watch(pb::WatchRequest { prefix: "w/".into() }).await.unwrap().into_inner();
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
    let mut stream = c.watch(pb::WatchRequest { prefix: String::new() }).await.unwrap().into_inner();
    assert_eq!(next(&mut stream).await, ev(Kind::SnapshotEnd, "", "", 0));

    tokio::time::timeout(Duration::from_secs(3), node.shutdown()).await.expect("shutdown in time").unwrap();
    let end = tokio::time::timeout(Duration::from_secs(3), stream.message()).await.expect("stream ends");
    assert!(!matches!(end, Ok(Some(_))), "no more events after shutdown: {end:?}");
}
