//! Watch streams: a snapshot of a prefix (or the logged changes from a start revision), then every
//! later change under it, in revision order.

use std::sync::Arc;

use nucleus_proto::meta::v1 as pb;
use nucleus_proto::meta::v1::watch_event::Kind;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::Error;
use crate::store::KvReader;
use crate::types::{Change, ChangeSet, KeyValue, SmEvent};

/// Events buffered per watcher between its task and the gRPC stream.
const STREAM_BUFFER: usize = 128;

pub type WatchStream = ReceiverStream<Result<pb::WatchEvent, Status>>;

/// Starts a watch: from a snapshot (`start_revision` None) or replaying the change log from
/// `start_revision`. `events` must have been subscribed BEFORE this call reads the store, so that
/// no change falls between what was read and the live events (changes at or below the revision
/// read are skipped).
pub(crate) fn start(
    prefix: String,
    start_revision: Option<u64>,
    reader: &KvReader,
    events: broadcast::Receiver<Arc<SmEvent>>,
    shutdown: watch::Receiver<bool>,
) -> Result<WatchStream, Error> {
    let (initial, revision) = match start_revision {
        None => snapshot(&prefix, reader)?,
        Some(start) => replay(&prefix, start.max(1), reader)?,
    };
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    tokio::spawn(async move {
        for item in initial {
            if tx.send(Ok(item)).await.is_err() {
                return;
            }
        }
        if let Err(error) = forward(&prefix, revision, events, &tx, shutdown).await {
            let _ = tx.send(Err(error.into())).await;
        }
    });
    Ok(ReceiverStream::new(rx))
}

/// The prefix's keys and SNAPSHOT_END, at the revision returned.
fn snapshot(prefix: &str, reader: &KvReader) -> Result<(Vec<pb::WatchEvent>, u64), Error> {
    let view = reader.view();
    let revision = view.revision()?;
    let mut events: Vec<_> = view.list(prefix)?.into_iter().map(|kv| event(Kind::Snapshot, Some(kv), revision)).collect();
    events.push(event(Kind::SnapshotEnd, None, revision));
    Ok((events, revision))
}

/// The logged changes under the prefix from `start` on, and the revision live events continue after.
fn replay(prefix: &str, start: u64, reader: &KvReader) -> Result<(Vec<pb::WatchEvent>, u64), Error> {
    let view = reader.view();
    let compacted = view.compact_revision()?;
    if start <= compacted {
        return Err(Error::Compacted { start, compacted });
    }
    let revision = view.revision()?;
    let mut events = Vec::new();
    for change_set in view.history_since(start)? {
        events.extend(matching(prefix, change_set));
    }
    // A start beyond the current revision waits for it: nothing before it is sent.
    Ok((events, revision.max(start - 1)))
}

/// Forwards live changes until the client goes away (Ok) or the watch must end (Err).
async fn forward(
    prefix: &str,
    after_revision: u64,
    mut events: broadcast::Receiver<Arc<SmEvent>>,
    tx: &mpsc::Sender<Result<pb::WatchEvent, Status>>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    loop {
        let received = tokio::select! {
            received = events.recv() => received,
            _ = tx.closed() => return Ok(()),
            _ = shutdown.wait_for(|stop| *stop) => return Err(Error::ShuttingDown),
        };
        let change_set = match received {
            Ok(event) => match &*event {
                SmEvent::Applied(change_set) => change_set.clone(),
                SmEvent::Reset => return Err(Error::SnapshotInstalled),
            },
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::info!(prefix, missed, "watcher fell behind");
                return Err(Error::FellBehind);
            }
            Err(broadcast::error::RecvError::Closed) => return Err(Error::ShuttingDown),
        };
        if change_set.revision <= after_revision {
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
        let error = forward("p/", 0, rx, &tx, stop_rx).await.unwrap_err();
        assert!(matches!(error, Error::FellBehind), "{error}");
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
        let error = forward("p/", 1, rx, &tx, stop_rx).await.unwrap_err();
        assert!(matches!(error, Error::SnapshotInstalled), "{error}");
        let first = out.recv().await.unwrap().unwrap();
        assert_eq!((first.kv.unwrap().key, first.revision), ("p/new".to_owned(), 3));
        assert!(out.try_recv().is_err());
    }
}
