use nucleus_proto::meta::v1 as pb;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_get_list_delete() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let mut c = client(&node).await;

    let resp = write(&mut c, "", vec![], vec![put("a/1", "x"), put("a/2", "y"), put("b/1", "z")]).await;
    assert_eq!((resp.succeeded, resp.revision), (true, 1));

    let resp = write(&mut c, "", vec![], vec![put("a/1", "x2")]).await;
    assert_eq!(resp.revision, 2);
    let got = get(&mut c, "a/1").await;
    let kv = got.kv.expect("a/1 exists");
    assert_eq!((kv.value.as_slice(), kv.create_revision, kv.mod_revision), (b"x2".as_slice(), 1, 2));
    assert_eq!(got.revision, 2);
    assert!(get(&mut c, "missing").await.kv.is_none());

    assert_eq!(list(&mut c, "a/").await, (pairs(&[("a/1", "x2"), ("a/2", "y")]), 2));

    assert_eq!(write(&mut c, "", vec![], vec![delete("a/2")]).await.revision, 3);
    assert!(get(&mut c, "a/2").await.kv.is_none());

    // delete_prefix in the same write as a put: atomic, one revision.
    let resp = write(&mut c, "", vec![], vec![put("a/3", "new"), delete_prefix("a/"), put("c", "1")]).await;
    assert_eq!((resp.succeeded, resp.revision), (true, 4));
    assert_eq!(list(&mut c, "").await, (pairs(&[("b/1", "z"), ("c", "1")]), 4));

    // Re-creating a deleted key starts a new create_revision.
    write(&mut c, "", vec![], vec![put("a/1", "again")]).await;
    let kv = get(&mut c, "a/1").await.kv.unwrap();
    assert_eq!((kv.create_revision, kv.mod_revision), (5, 5));

    let err = c
        .write(pb::WriteRequest { request_id: String::new(), conditions: vec![], ops: vec![put("", "v")], group_id: 0 })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    let status = c.status(pb::StatusRequest::default()).await.unwrap().into_inner();
    assert_eq!((status.node_id, status.leader_id, status.revision), (1, Some(1), 5));
    assert_eq!(status.members, vec![pb::Member { id: 1, addr: node.addr().to_string() }]);
    assert!(status.term >= 1 && status.applied_index >= 6);

    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_writes() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let mut c = client(&node).await;

    assert_eq!(write(&mut c, "", vec![], vec![put("k", "v1")]).await.revision, 1);

    // Holds: k is at mod_revision 1, "fresh" does not exist.
    let resp = write(&mut c, "", vec![cond("k", 1), cond("fresh", 0)], vec![put("k", "v2"), put("fresh", "f")]).await;
    assert_eq!((resp.succeeded, resp.revision, resp.failed_key.as_str()), (true, 2, ""));

    // Stale revision: nothing applies, revision does not move.
    let resp = write(&mut c, "", vec![cond("k", 1)], vec![put("k", "v3"), put("other", "o"), delete("fresh")]).await;
    assert_eq!((resp.succeeded, resp.revision, resp.failed_key.as_str()), (false, 2, "k"));
    // Must-not-exist on an existing key.
    let resp = write(&mut c, "", vec![cond("k", 2), cond("fresh", 0)], vec![put("other", "o")]).await;
    assert_eq!((resp.succeeded, resp.failed_key.as_str()), (false, "fresh"));

    assert_eq!(list(&mut c, "").await, (pairs(&[("fresh", "f"), ("k", "v2")]), 2));

    node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_request_id_applies_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let mut c = client(&node).await;

    let first = write(&mut c, "req-1", vec![], vec![put("k", "first")]).await;
    assert_eq!((first.succeeded, first.revision), (true, 1));
    // A retry, even with different content, answers the recorded response and changes nothing.
    let retry = write(&mut c, "req-1", vec![], vec![put("k", "second")]).await;
    assert_eq!(retry, first);
    assert_eq!(list(&mut c, "").await, (pairs(&[("k", "first")]), 1));

    // A recorded failure is replayed too, even once the condition would hold.
    let failed = write(&mut c, "req-2", vec![cond("k", 7)], vec![put("k", "x")]).await;
    assert!(!failed.succeeded);
    assert_eq!(write(&mut c, "req-2", vec![cond("k", 1)], vec![put("k", "x")]).await, failed);

    // Without an id, every write applies.
    write(&mut c, "", vec![], vec![put("k", "a")]).await;
    assert_eq!(write(&mut c, "", vec![], vec![put("k", "a")]).await.revision, 3);

    node.shutdown().await.unwrap();
}

/// Five values of 1.9 MiB: no answer may carry them all (gRPC refuses messages over 4 MiB), so a
/// list comes in pages of about 1 MiB, each with at least one key, and resumes after the last key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_come_in_pages_that_stay_under_the_message_limit() {
    let dir = tempfile::tempdir().unwrap();
    let node = start(dir.path()).await;
    let mut c = client(&node).await;
    let big = "x".repeat(1_900_000);
    for i in 0..5 {
        assert!(write(&mut c, "", vec![], vec![put(&format!("big/{i}"), &big)]).await.succeeded);
    }
    write(&mut c, "", vec![], vec![put("big/small", "s"), put("bigger/0", "not under big/")]).await;

    let mut seen = Vec::new();
    let mut start_after = String::new();
    let mut pages = 0;
    loop {
        let request = pb::ListRequest { prefix: "big/".into(), group_id: 0, start_after: start_after.clone(), page_bytes: 0 };
        let page = c.list(request).await.expect("every page fits in a message").into_inner();
        pages += 1;
        assert!(!page.kvs.is_empty(), "a page has at least one key");
        let bytes: usize = page.kvs.iter().map(|kv| kv.key.len() + kv.value.len()).sum();
        assert!(page.kvs.len() == 1 || bytes <= 1024 * 1024, "a page of {} keys holds {bytes} bytes", page.kvs.len());
        seen.extend(page.kvs.iter().map(|kv| kv.key.clone()));
        start_after = page.kvs.last().unwrap().key.clone();
        if !page.more {
            break;
        }
    }
    assert_eq!(seen, ["big/0", "big/1", "big/2", "big/3", "big/4", "big/small"]);
    assert!(pages >= 5, "{pages} pages");

    // A smaller page asked for is honoured; the small key shares a page with nothing big.
    let request = pb::ListRequest { prefix: "big/".into(), group_id: 0, start_after: "big/4".into(), page_bytes: 10 };
    let last = c.list(request).await.expect("list").into_inner();
    assert_eq!(last.kvs.iter().map(|kv| kv.key.as_str()).collect::<Vec<_>>(), ["big/small"]);
    assert!(!last.more);
}
