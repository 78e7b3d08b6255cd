//! Watch streams of a meta prefix, and the resumable watch that callers keep open for good.

use std::time::Duration;

use nucleus_proto::meta::v1 as pb;
use nucleus_proto::meta::v1::watch_event::Kind;

use crate::meta::rpc;
use crate::{Error, MetaClient};

/// Pause before re-watching after a failed attempt, doubled up to [`MAX_RETRY_AFTER`].
const RETRY_AFTER: Duration = Duration::from_millis(100);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(2);

/// A change seen by a watch.
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// The whole prefix as of now: replace what you had.
    Reset(Vec<pb::KeyValue>),
    /// The key's new value; `kv.mod_revision` is the revision of the change.
    Put(pb::KeyValue),
    Delete { key: String, revision: u64 },
}

/// A watch of one prefix. Ends (with an error) when the connection breaks or the watcher fell
/// behind; see [`ResumableWatch`] for one that carries on from where it was.
pub struct WatchStream {
    inner: tonic::Streaming<pb::WatchEvent>,
    /// Snapshot entries collected until SNAPSHOT_END.
    snapshot: Vec<pb::KeyValue>,
}

/// What a stream delivered: the event and the revision it belongs to.
struct Delivered {
    event: WatchEvent,
    revision: u64,
}

impl WatchStream {
    pub(crate) fn new(inner: tonic::Streaming<pb::WatchEvent>) -> WatchStream {
        WatchStream { inner, snapshot: Vec::new() }
    }

    pub async fn next(&mut self) -> Result<Option<WatchEvent>, Error> {
        Ok(self.next_delivered().await?.map(|d| d.event))
    }

    async fn next_delivered(&mut self) -> Result<Option<Delivered>, Error> {
        while let Some(event) = self.inner.message().await.map_err(rpc)? {
            let kind = event.kind();
            let revision = event.revision;
            let kv = event.kv.unwrap_or_default();
            let event = match kind {
                Kind::Snapshot => {
                    self.snapshot.push(kv);
                    continue;
                }
                Kind::SnapshotEnd => WatchEvent::Reset(std::mem::take(&mut self.snapshot)),
                Kind::Put => WatchEvent::Put(kv),
                Kind::Delete => WatchEvent::Delete { key: kv.key, revision },
                Kind::Unspecified => continue,
            };
            return Ok(Some(Delivered { event, revision }));
        }
        Ok(None)
    }
}

/// Where a resumed watch picks up: the revision to start from and how many events of that
/// revision were already delivered (one write can change several keys under the prefix, and the
/// stream may break between them; the server replays a revision's events in the same order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    revision: u64,
    delivered: usize,
}

impl Position {
    fn advance(&mut self, event: &WatchEvent, revision: u64) {
        *self = match event {
            // The snapshot includes everything up to its revision.
            WatchEvent::Reset(_) => Position { revision: revision + 1, delivered: 0 },
            _ if revision == self.revision => Position { revision, delivered: self.delivered + 1 },
            _ => Position { revision, delivered: 1 },
        };
    }
}

/// A watch that never ends: when its stream breaks it watches again from the last revision it
/// delivered, so nothing is lost or repeated. Only when meta no longer has that history
/// (compacted) does it start over with a fresh [`WatchEvent::Reset`]; the first event is always one.
pub struct ResumableWatch {
    meta: MetaClient,
    prefix: String,
    stream: Option<WatchStream>,
    /// None until the first snapshot arrives.
    position: Option<Position>,
    /// Events of `position.revision` still to drop from a resumed stream.
    to_skip: usize,
    retry_after: Duration,
}

impl ResumableWatch {
    pub(crate) fn new(meta: MetaClient, prefix: &str) -> ResumableWatch {
        ResumableWatch {
            meta,
            prefix: prefix.to_owned(),
            stream: None,
            position: None,
            to_skip: 0,
            retry_after: RETRY_AFTER,
        }
    }

    /// The next change, re-watching (with back-off) for as long as it takes.
    pub async fn next(&mut self) -> WatchEvent {
        loop {
            match self.try_next().await {
                Ok(Some(event)) => return event,
                Ok(None) => tracing::debug!(prefix = self.prefix, "meta watch ended; resuming"),
                Err(err) => {
                    tracing::debug!(prefix = self.prefix, error = %err, "meta watch failed; resuming");
                    tokio::time::sleep(self.retry_after).await;
                    self.retry_after = (self.retry_after * 2).min(MAX_RETRY_AFTER);
                }
            }
            self.stream = None;
        }
    }

    /// One event of the current stream (opening one if needed); `Ok(None)` when it ended.
    async fn try_next(&mut self) -> Result<Option<WatchEvent>, Error> {
        if self.stream.is_none() {
            self.stream = Some(self.open().await?);
        }
        let stream = self.stream.as_mut().expect("opened above");
        while let Some(Delivered { event, revision }) = stream.next_delivered().await? {
            self.retry_after = RETRY_AFTER;
            if self.to_skip > 0 && self.position.is_some_and(|p| p.revision == revision) {
                self.to_skip -= 1;
                continue;
            }
            self.to_skip = 0;
            self.position.get_or_insert(Position { revision: 0, delivered: 0 }).advance(&event, revision);
            return Ok(Some(event));
        }
        Ok(None)
    }

    async fn open(&mut self) -> Result<WatchStream, Error> {
        if let Some(position) = self.position {
            match self.meta.watch_from(&self.prefix, position.revision).await {
                Ok(stream) => {
                    self.to_skip = position.delivered;
                    return Ok(stream);
                }
                Err(err) if err.is_compacted() => {
                    tracing::info!(prefix = self.prefix, error = %err, "watch history compacted; re-listing");
                }
                Err(err) => return Err(err),
            }
        }
        // A fresh snapshot restarts the count (its Reset sets the position).
        self.position = None;
        self.to_skip = 0;
        self.meta.watch(&self.prefix).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(revision: u64) -> WatchEvent {
        WatchEvent::Put(pb::KeyValue { mod_revision: revision, ..Default::default() })
    }

    #[test]
    fn position_counts_events_of_the_same_revision() {
        let mut position = Position { revision: 0, delivered: 0 };
        position.advance(&WatchEvent::Reset(Vec::new()), 4);
        assert_eq!(position, Position { revision: 5, delivered: 0 });
        position.advance(&put(5), 5);
        position.advance(&WatchEvent::Delete { key: "k".into(), revision: 5 }, 5);
        assert_eq!(position, Position { revision: 5, delivered: 2 });
        position.advance(&put(7), 7);
        assert_eq!(position, Position { revision: 7, delivered: 1 });
    }
}
