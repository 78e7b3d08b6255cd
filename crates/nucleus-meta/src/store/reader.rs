//! Consistent reads of the state machine (one RocksDB snapshot per view).

use openraft::{LogId, StoredMembership};
use rocksdb::{Direction, IteratorMode};
use serde::de::DeserializeOwned;

use super::codec::{decode_kv, from_json};
use super::history::history_key;
use super::{CF_DEDUP, CF_HISTORY, CF_KV, CF_SM, Db, Keyspace};
use crate::error::Error;
use crate::types::{ChangeSet, KeyValue, NodeId, WriteOutcome};

pub(crate) const KEY_REVISION: &[u8] = b"revision";
pub(crate) const KEY_LAST_APPLIED: &[u8] = b"last_applied";
pub(crate) const KEY_MEMBERSHIP: &[u8] = b"membership";
pub(crate) const KEY_SNAPSHOT: &[u8] = b"snapshot";
/// Newest revision whose change set is no longer in the change log (see `history.rs`).
pub(crate) const KEY_COMPACT_REVISION: &[u8] = b"compact_revision";
/// Sequence number the next recorded request id gets (drives pruning of the dedup table).
pub(crate) const KEY_DEDUP_NEXT_SEQ: &[u8] = b"dedup_next_seq";

/// Dedup table keys: `id/<request_id>` -> DedupRecord, `seq/<u64 BE>` -> request_id.
pub(crate) fn dedup_id_key(request_id: &str) -> Vec<u8> {
    [b"id/".as_slice(), request_id.as_bytes()].concat()
}

pub(crate) fn dedup_seq_key(seq: u64) -> Vec<u8> {
    [b"seq/".as_slice(), &seq.to_be_bytes()].concat()
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct DedupRecord {
    pub seq: u64,
    pub outcome: WriteOutcome,
}

/// Read access to the state machine, shared with the gRPC service.
#[derive(Clone)]
pub struct KvReader {
    db: Db,
    keys: Keyspace,
}

impl KvReader {
    /// Reads the state machine of the group `keys` belongs to.
    pub fn new(db: Db, keys: Keyspace) -> Self {
        KvReader { db, keys }
    }

    /// A point-in-time view: everything read through it belongs to the same applied state.
    pub fn view(&self) -> ReadView<'_> {
        ReadView { snap: self.db.db().snapshot(), db: &self.db, keys: self.keys }
    }
}

pub struct ReadView<'a> {
    snap: rocksdb::Snapshot<'a>,
    db: &'a Db,
    keys: Keyspace,
}

impl ReadView<'_> {
    fn sm_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, Error> {
        let raw = self.snap.get_cf(self.db.cf(CF_SM), self.keys.key(key))?;
        raw.map(|raw| from_json(&raw).map_err(|e| Error::corrupt(String::from_utf8_lossy(key), e))).transpose()
    }

    pub fn revision(&self) -> Result<u64, Error> {
        Ok(self.sm_meta(KEY_REVISION)?.unwrap_or(0))
    }

    pub fn last_applied(&self) -> Result<Option<LogId<NodeId>>, Error> {
        Ok(self.sm_meta(KEY_LAST_APPLIED)?.flatten())
    }

    pub fn membership(&self) -> Result<StoredMembership<NodeId, openraft::BasicNode>, Error> {
        Ok(self.sm_meta(KEY_MEMBERSHIP)?.unwrap_or_default())
    }

    /// Newest revision whose changes can no longer be replayed; a watch may start above it.
    /// Absent on a store that predates the change log: nothing up to now is there.
    pub fn compact_revision(&self) -> Result<u64, Error> {
        match self.sm_meta(KEY_COMPACT_REVISION)? {
            Some(revision) => Ok(revision),
            None => self.revision(),
        }
    }

    /// The logged change sets from revision `from` on, in revision order.
    pub(crate) fn history_since(&self, from: u64) -> Result<Vec<ChangeSet>, Error> {
        let start = self.keys.key(&history_key(from));
        let mode = IteratorMode::From(&start, Direction::Forward);
        let mut out = Vec::new();
        for item in self.snap.iterator_cf(self.db.cf(CF_HISTORY), mode) {
            let (key, value) = item?;
            if self.keys.strip(&key).is_none() {
                break;
            }
            out.push(from_json(&value).map_err(|e| Error::corrupt("change set", e))?);
        }
        Ok(out)
    }

    pub(crate) fn dedup_next_seq(&self) -> Result<u64, Error> {
        Ok(self.sm_meta(KEY_DEDUP_NEXT_SEQ)?.unwrap_or(0))
    }

    pub(crate) fn snapshot_blob(&self) -> Result<Option<Vec<u8>>, Error> {
        Ok(self.snap.get_cf(self.db.cf(CF_SM), self.keys.key(KEY_SNAPSHOT))?)
    }

    pub fn get(&self, key: &str) -> Result<Option<KeyValue>, Error> {
        let raw = self.snap.get_cf(self.db.cf(CF_KV), self.keys.key(key.as_bytes()))?;
        raw.map(|raw| decode_kv(key.as_bytes(), &raw)).transpose()
    }

    /// Every key starting with `prefix`, in key order.
    pub fn list(&self, prefix: &str) -> Result<Vec<KeyValue>, Error> {
        Ok(self.list_page(prefix, "", usize::MAX)?.0)
    }

    /// The keys under `prefix` after `start_after` (from the first when empty), in key order, up
    /// to `budget` bytes of keys and values but at least one; true when more follow.
    pub fn list_page(&self, prefix: &str, start_after: &str, budget: usize) -> Result<(Vec<KeyValue>, bool), Error> {
        let from = if start_after.as_bytes() > prefix.as_bytes() { start_after } else { prefix };
        let start = self.keys.key(from.as_bytes());
        let mode = IteratorMode::From(&start, Direction::Forward);
        let mut out = Vec::new();
        let mut used = 0usize;
        for item in self.snap.iterator_cf(self.db.cf(CF_KV), mode) {
            let (key, value) = item?;
            let Some(key) = self.keys.strip(&key).filter(|key| key.starts_with(prefix.as_bytes())) else { break };
            if !start_after.is_empty() && key <= start_after.as_bytes() {
                continue;
            }
            let size = key.len() + value.len();
            if !out.is_empty() && used.saturating_add(size) > budget {
                return Ok((out, true));
            }
            used = used.saturating_add(size);
            out.push(decode_kv(key, &value)?);
        }
        Ok((out, false))
    }

    pub(crate) fn dedup(&self, request_id: &str) -> Result<Option<DedupRecord>, Error> {
        let raw = self.snap.get_cf(self.db.cf(CF_DEDUP), self.keys.key(&dedup_id_key(request_id)))?;
        raw.map(|raw| from_json(&raw).map_err(|e| Error::corrupt("dedup record", e))).transpose()
    }

    pub(crate) fn dedup_id_at(&self, seq: u64) -> Result<Option<String>, Error> {
        let raw = self.snap.get_cf(self.db.cf(CF_DEDUP), self.keys.key(&dedup_seq_key(seq)))?;
        raw.map(|raw| String::from_utf8(raw).map_err(|e| Error::corrupt("dedup seq", e))).transpose()
    }

    /// All dedup records with their request ids, for snapshots.
    pub(crate) fn dedup_all(&self) -> Result<Vec<(String, DedupRecord)>, Error> {
        let start = self.keys.key(b"id/");
        let mode = IteratorMode::From(&start, Direction::Forward);
        let mut out = Vec::new();
        for item in self.snap.iterator_cf(self.db.cf(CF_DEDUP), mode) {
            let (key, value) = item?;
            let Some(id) = self.keys.strip(&key).and_then(|key| key.strip_prefix(b"id/")) else { break };
            let id = String::from_utf8(id.to_vec()).map_err(|e| Error::corrupt("dedup id", e))?;
            out.push((id, from_json(&value).map_err(|e| Error::corrupt("dedup record", e))?));
        }
        Ok(out)
    }
}
