use std::time::Duration;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_restart() {
    let dir = tempfile::tempdir().unwrap();

    let node = start(dir.path()).await;
    let mut c = client(&node).await;
    write(&mut c, "w1", vec![], vec![put("a", "1"), put("b", "2")]).await;
    write(&mut c, "", vec![], vec![delete("b"), put("c", "3")]).await;
    // Snapshot part of the history so restart covers a node that has one.
    node.raft().trigger().snapshot().await.unwrap();
    node.raft().wait(Some(Duration::from_secs(5))).metrics(|m| m.snapshot.is_some(), "snapshot built").await.unwrap();
    write(&mut c, "", vec![], vec![put("d", "4")]).await;
    drop(c);
    node.shutdown().await.unwrap();

    let node = start(dir.path()).await;
    let mut c = client(&node).await;
    assert_eq!(list(&mut c, "").await, (pairs(&[("a", "1"), ("c", "3"), ("d", "4")]), 3));
    let kv = get(&mut c, "c").await.kv.unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (2, 2));
    // The idempotency table survived as well.
    assert_eq!(write(&mut c, "w1", vec![], vec![put("a", "changed")]).await.revision, 1);
    let resp = write(&mut c, "", vec![cond("a", 1)], vec![put("e", "5")]).await;
    assert_eq!((resp.succeeded, resp.revision), (true, 4));
    assert_eq!(get(&mut c, "e").await.kv.unwrap().value, b"5");
    drop(c);
    node.shutdown().await.unwrap();
}
