//! Watch streams: a snapshot of a prefix, then every later change under it, in revision order.

use std::sync::Arc;

use nucleus_proto::meta::v1 as pb;
use nucleus_proto::meta::v1::watch_event::Kind;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::store::KvReader;
use crate::types::{Change, ChangeSet, KeyValue, SmEvent};

/// Events buffered per watcher between its task and the gRPC stream.
const STREAM_BUFFER: usize = 128;

pub type WatchStream = ReceiverStream<Result<pb::WatchEvent, Status>>;

/// Starts a watch. `events` must have been subscribed BEFORE this call reads the snapshot, so that
/// no change falls between the snapshot and the live events (changes at or below the snapshot
/// revision are skipped).
pub(crate) fn start(
    prefix: String,
    reader: &KvReader,
    events: broadcast::Receiver<Arc<SmEvent>>,
    shutdown: watch::Receiver<bool>,
) -> Result<WatchStream, Status> {
    let (revision, kvs) = {
        let view = reader.view();
        let revision = view.revision().map_err(|e| Status::internal(e.to_string()))?;
        (revision, view.list(&prefix).map_err(|e| Status::internal(e.to_string()))?)
    };
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    tokio::spawn(async move {
        let mut initial = kvs.into_iter().map(|kv| Ok(event(Kind::Snapshot, Some(kv), revision))).collect::<Vec<_>>();
        initial.push(Ok(event(Kind::SnapshotEnd, None, revision)));
        for item in initial {
            if tx.send(item).await.is_err() {
                return;
            }
        }
        if let Err(status) = forward(&prefix, revision, events, &tx, shutdown).await {
            let _ = tx.send(Err(status)).await;
        }
    });
    Ok(ReceiverStream::new(rx))
}

/// Forwards live changes until the client goes away (Ok) or the watch must end (Err).
async fn forward(
    prefix: &str,
    snapshot_revision: u64,
    mut events: broadcast::Receiver<Arc<SmEvent>>,
    tx: &mpsc::Sender<Result<pb::WatchEvent, Status>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Status> {
    loop {
        let received = tokio::select! {
            received = events.recv() => received,
            _ = tx.closed() => return Ok(()),
            _ = shutdown.wait_for(|stop| *stop) => return Err(Status::unavailable("meta node shutting down")),
        };
        let change_set = match received {
            Ok(event) => match &*event {
                SmEvent::Applied(change_set) => change_set.clone(),
                SmEvent::Reset => return Err(Status::data_loss("state replaced by a snapshot; re-list")),
            },
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::info!(prefix, missed, "watcher fell behind");
                return Err(Status::data_loss("watch fell behind; re-list"));
            }
            Err(broadcast::error::RecvError::Closed) => return Err(Status::unavailable("meta node shutting down")),
        };
        if change_set.revision <= snapshot_revision {
            continue;
        }
        for item in matching(prefix, change_set) {
            if tx.send(Ok(item)).await.is_err() {
                return Ok(());
            }
        }
    }
}

fn matching(prefix: &str, change_set: ChangeSet) -> impl Iterator<Item = pb::WatchEvent> + '_ {
    let revision = change_set.revision;
    change_set.changes.into_iter().filter_map(move |change| match change {
        Change::Put(kv) if kv.key.starts_with(prefix) => Some(event(Kind::Put, Some(kv), revision)),
        Change::Delete(key) if key.starts_with(prefix) => {
            let kv = KeyValue { key, value: Vec::new(), create_revision: 0, mod_revision: revision };
            Some(event(Kind::Delete, Some(kv), revision))
        }
        _ => None,
    })
}

fn event(kind: Kind, kv: Option<KeyValue>, revision: u64) -> pb::WatchEvent {
    pb::WatchEvent { kind: kind as i32, kv: kv.map(to_pb), revision }
}

pub(crate) fn to_pb(kv: KeyValue) -> pb::KeyValue {
    pb::KeyValue { key: kv.key, value: kv.value, create_revision: kv.create_revision, mod_revision: kv.mod_revision }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, revision: u64) -> Arc<SmEvent> {
        let kv = KeyValue { key: key.into(), value: b"v".to_vec(), create_revision: revision, mod_revision: revision };
        Arc::new(SmEvent::Applied(ChangeSet { revision, changes: vec![Change::Put(kv)] }))
    }

    #[tokio::test]
    async fn lagging_watcher_gets_data_loss() {
        let (events, rx) = broadcast::channel(2);
        for revision in 1..=5 {
            events.send(put("p/k", revision)).unwrap();
        }
        let (tx, _rx) = mpsc::channel(16);
        let (_stop, stop_rx) = watch::channel(false);
        let status = forward("p/", 0, rx, &tx, stop_rx).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::DataLoss);
    }

    #[tokio::test]
    async fn skips_old_revisions_and_other_prefixes() {
        let (events, rx) = broadcast::channel(16);
        events.send(put("p/old", 1)).unwrap();
        events.send(put("q/other", 2)).unwrap();
        events.send(put("p/new", 3)).unwrap();
        events.send(Arc::new(SmEvent::Reset)).unwrap();
        let (tx, mut out) = mpsc::channel(16);
        let (_stop, stop_rx) = watch::channel(false);
        let status = forward("p/", 1, rx, &tx, stop_rx).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::DataLoss);
        let first = out.recv().await.unwrap().unwrap();
        assert_eq!((first.kv.unwrap().key, first.revision), ("p/new".to_owned(), 3));
        assert!(out.try_recv().is_err());
    }
}
