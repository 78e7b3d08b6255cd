//! Watch streams of a meta prefix in one group, and the resumable watch that callers keep open for
//! good, which covers every group the prefix spans.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::{BoxStream, SelectAll};
use nucleus_proto::meta::v1 as pb;
use nucleus_proto::meta::v1::watch_event::Kind;

use crate::meta::rpc;
use crate::{Error, MetaClient, keys};

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
    Delete {
        key: String,
        revision: u64,
    },
}

/// A watch of one prefix in one group. Ends (with an error) when the connection breaks or the watcher fell
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

/// Every group's events, as they come, tagged with the group.
type GroupStreams = SelectAll<BoxStream<'static, (u64, WatchEvent)>>;

/// A watch that never ends, of a prefix that may span several groups (`protons/` spans every
/// shard): one [`GroupWatch`] per group, merged by [`Merge`].
///
/// The first event is always one [`WatchEvent::Reset`] with the whole prefix across all groups;
/// then every change, from whichever group. When a group's stream breaks it watches again from the
/// last revision it delivered, so nothing is lost or repeated. Only when meta no longer has that
/// history (compacted) does that group re-list, and the watch emits a fresh `Reset` of the whole
/// prefix (all groups).
pub struct ResumableWatch {
    meta: MetaClient,
    prefix: String,
    /// Opened on the first [`ResumableWatch::next`], once the shard count is known.
    groups: Option<(GroupStreams, Merge)>,
    retry_after: Duration,
}

impl ResumableWatch {
    pub(crate) fn new(meta: MetaClient, prefix: &str) -> ResumableWatch {
        ResumableWatch { meta, prefix: prefix.to_owned(), groups: None, retry_after: RETRY_AFTER }
    }

    /// The next change, re-watching (with back-off) for as long as it takes. Cancel-safe: the
    /// per-group streams keep their state between calls.
    pub async fn next(&mut self) -> WatchEvent {
        loop {
            let Some((streams, merge)) = &mut self.groups else {
                match self.meta.shard_count().await {
                    Ok(shard_count) => self.groups = Some(self.open(shard_count)),
                    Err(err) => {
                        tracing::debug!(prefix = self.prefix, error = %err, "shard count unknown; retrying");
                        tokio::time::sleep(self.retry_after).await;
                        self.retry_after = (self.retry_after * 2).min(MAX_RETRY_AFTER);
                    }
                }
                continue;
            };
            let (group, event) = streams.next().await.expect("group watches never end");
            if let Some(event) = merge.apply(group, event) {
                return event;
            }
        }
    }

    fn open(&self, shard_count: u64) -> (GroupStreams, Merge) {
        let groups = keys::groups_of_prefix(&self.prefix, shard_count);
        let streams = groups.iter().map(|&group| {
            let watch = GroupWatch::new(self.meta.clone(), group, &self.prefix);
            futures::stream::unfold(watch, |mut watch| async move {
                let event = watch.next().await;
                Some(((watch.group, event), watch))
            })
            .boxed()
        });
        (futures::stream::select_all(streams), Merge::new(&groups))
    }
}

/// The resumable watch of a prefix within one group: resumes from its own position (revisions
/// are per group), re-lists when that history is compacted. Its first event is a Reset.
struct GroupWatch {
    meta: MetaClient,
    group: u64,
    prefix: String,
    stream: Option<WatchStream>,
    /// None until the first snapshot arrives.
    position: Option<Position>,
    /// Events of `position.revision` still to drop from a resumed stream.
    to_skip: usize,
    retry_after: Duration,
}

impl GroupWatch {
    fn new(meta: MetaClient, group: u64, prefix: &str) -> GroupWatch {
        GroupWatch { meta, group, prefix: prefix.to_owned(), stream: None, position: None, to_skip: 0, retry_after: RETRY_AFTER }
    }

    /// The next change, re-watching (with back-off) for as long as it takes.
    async fn next(&mut self) -> WatchEvent {
        loop {
            match self.try_next().await {
                Ok(Some(event)) => return event,
                Ok(None) => tracing::debug!(prefix = self.prefix, group = self.group, "meta watch ended; resuming"),
                Err(err) => {
                    let (prefix, group) = (&self.prefix, self.group);
                    tracing::debug!(prefix, group, error = %err, "meta watch failed; resuming");
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
            match self.meta.watch_group(self.group, &self.prefix, Some(position.revision)).await {
                Ok(stream) => {
                    self.to_skip = position.delivered;
                    return Ok(stream);
                }
                Err(err) if err.is_compacted() => {
                    let (prefix, group) = (&self.prefix, self.group);
                    tracing::info!(prefix, group, error = %err, "watch history compacted; re-listing");
                }
                Err(err) => return Err(err),
            }
        }
        // A fresh snapshot restarts the count (its Reset sets the position).
        self.position = None;
        self.to_skip = 0;
        self.meta.watch_group(self.group, &self.prefix, None).await
    }
}

/// Merges the events of per-group watches into the events of one watch of the whole prefix.
/// Fed `(group, event)` pairs where each group's first event is a Reset; keeps each group's current
/// contents so that a later Reset of one group can be told as a Reset of all.
#[derive(Debug)]
struct Merge {
    /// Per group: its current contents, None until its first Reset. Unused (empty) with one group,
    /// whose events pass through as they are.
    contents: BTreeMap<u64, Option<BTreeMap<String, pb::KeyValue>>>,
    /// Whether the first Reset went out (every group had delivered its own).
    synced: bool,
}

impl Merge {
    fn new(groups: &[u64]) -> Merge {
        let contents = if groups.len() > 1 { groups.iter().map(|g| (*g, None)).collect() } else { BTreeMap::new() };
        Merge { contents, synced: false }
    }

    /// What the merged watch emits for `event` of `group`, if anything.
    fn apply(&mut self, group: u64, event: WatchEvent) -> Option<WatchEvent> {
        if self.contents.is_empty() {
            return Some(event);
        }
        let contents = self.contents.get_mut(&group)?;
        match event {
            WatchEvent::Reset(kvs) => {
                *contents = Some(kvs.into_iter().map(|kv| (kv.key.clone(), kv)).collect());
                self.reset()
            }
            WatchEvent::Put(kv) => {
                contents.as_mut()?.insert(kv.key.clone(), kv.clone());
                self.synced.then_some(WatchEvent::Put(kv))
            }
            WatchEvent::Delete { key, revision } => {
                contents.as_mut()?.remove(&key);
                self.synced.then_some(WatchEvent::Delete { key, revision })
            }
        }
    }

    /// A Reset of every group's contents, sorted by key, once every group has had its snapshot.
    fn reset(&mut self) -> Option<WatchEvent> {
        if self.contents.values().any(Option::is_none) {
            return None;
        }
        self.synced = true;
        let mut kvs: Vec<pb::KeyValue> = self.contents.values().flatten().flat_map(|c| c.values().cloned()).collect();
        kvs.sort_by(|a, b| a.key.cmp(&b.key));
        Some(WatchEvent::Reset(kvs))
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

    fn kv(key: &str, revision: u64) -> pb::KeyValue {
        pb::KeyValue { key: key.into(), value: b"1".to_vec(), create_revision: revision, mod_revision: revision }
    }

    fn reset_keys(event: Option<WatchEvent>) -> Vec<String> {
        match event {
            Some(WatchEvent::Reset(kvs)) => kvs.into_iter().map(|kv| kv.key).collect(),
            other => panic!("expected a reset, got {other:?}"),
        }
    }

    #[test]
    fn one_group_passes_through() {
        let mut merge = Merge::new(&[0]);
        assert_eq!(merge.apply(0, WatchEvent::Reset(vec![kv("a", 1)])), Some(WatchEvent::Reset(vec![kv("a", 1)])));
        assert_eq!(merge.apply(0, WatchEvent::Put(kv("b", 2))), Some(WatchEvent::Put(kv("b", 2))));
    }

    #[test]
    fn the_first_reset_waits_for_every_group_and_includes_changes_seen_meanwhile() {
        let mut merge = Merge::new(&[1, 2, 3]);
        assert_eq!(merge.apply(2, WatchEvent::Reset(vec![kv("p/b", 4)])), None);
        assert_eq!(merge.apply(2, WatchEvent::Put(kv("p/c", 5))), None);
        assert_eq!(merge.apply(1, WatchEvent::Reset(vec![kv("p/d", 9), kv("p/a", 8)])), None);
        assert_eq!(merge.apply(1, WatchEvent::Delete { key: "p/d".into(), revision: 10 }), None);
        assert_eq!(reset_keys(merge.apply(3, WatchEvent::Reset(Vec::new()))), ["p/a", "p/b", "p/c"]);
        // From now on, changes as they come, from any group.
        assert_eq!(merge.apply(3, WatchEvent::Put(kv("p/e", 2))), Some(WatchEvent::Put(kv("p/e", 2))));
        let delete = WatchEvent::Delete { key: "p/a".into(), revision: 11 };
        assert_eq!(merge.apply(1, delete.clone()), Some(delete));
    }

    #[test]
    fn a_group_that_re_lists_resets_the_whole_prefix() {
        let mut merge = Merge::new(&[0, 1]);
        assert_eq!(merge.apply(0, WatchEvent::Reset(vec![kv("a", 1)])), None);
        assert_eq!(reset_keys(merge.apply(1, WatchEvent::Reset(vec![kv("b", 1), kv("c", 1)]))), ["a", "b", "c"]);
        merge.apply(0, WatchEvent::Put(kv("d", 2)));
        // Group 1's history was compacted: its re-list drops c and adds e.
        let reset = merge.apply(1, WatchEvent::Reset(vec![kv("b", 1), kv("e", 7)]));
        assert_eq!(reset, Some(WatchEvent::Reset(vec![kv("a", 1), kv("b", 1), kv("d", 2), kv("e", 7)])));
        assert_eq!(merge.apply(7, WatchEvent::Put(kv("x", 1))), None, "not a group of this watch");
    }
}
