//! The Raft log and Raft metadata (vote, committed, last purged) in RocksDB.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, OptionalSend, RaftLogId, RaftLogReader, StorageError, StorageIOError, Vote};
use rocksdb::{Direction, IteratorMode, WriteBatch, WriteOptions};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::codec::{be_u64, from_json, to_json};
use super::{CF_LOG, CF_RAFT, Db, Keyspace};
use crate::types::{NodeId, TypeConfig};

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_LAST_PURGED: &[u8] = b"last_purged";

type StorageResult<T> = Result<T, StorageError<NodeId>>;

/// The log store; clones share the DB and serve as log readers.
#[derive(Clone)]
pub struct LogStore {
    db: Db,
    keys: Keyspace,
    inline_writes: bool,
}

impl LogStore {
    /// The log of the group `keys` belongs to.
    pub fn new(db: Db, keys: Keyspace) -> Self {
        LogStore { db, keys, inline_writes: false }
    }

    fn entry_key(&self, index: u64) -> Vec<u8> {
        self.keys.key(&index.to_be_bytes())
    }

    /// Runs synced writes on the calling task instead of tokio's blocking pool (see
    /// [`MetaConfig::inline_storage_writes`](crate::MetaConfig::inline_storage_writes)).
    pub fn inline_writes(self, inline: bool) -> Self {
        LogStore { inline_writes: inline, ..self }
    }

    fn read_meta<T: DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, String> {
        let raw = self.db.db().get_cf(self.db.cf(CF_RAFT), self.keys.key(key)).map_err(|e| e.to_string())?;
        raw.map(|raw| from_json(&raw).map_err(|e| format!("{}: {e}", String::from_utf8_lossy(key)))).transpose()
    }

    fn meta_batch<T: Serialize>(&self, batch: &mut WriteBatch, key: &[u8], value: &T) -> Result<(), serde_json::Error> {
        batch.put_cf(self.db.cf(CF_RAFT), self.keys.key(key), to_json(value)?);
        Ok(())
    }

    /// Writes with fsync of the WAL, off the async runtime threads unless told to stay inline.
    async fn write_synced(&self, batch: WriteBatch) -> Result<(), std::io::Error> {
        let write = |db: &Db, batch: WriteBatch| {
            let mut opts = WriteOptions::default();
            opts.set_sync(true);
            db.db().write_opt(batch, &opts).map_err(std::io::Error::other)
        };
        if self.inline_writes {
            return write(&self.db, batch);
        }
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || write(&db, batch)).await.map_err(std::io::Error::other)?
    }

    fn last_entry_log_id(&self) -> Result<Option<LogId<NodeId>>, String> {
        let last = self.entry_key(u64::MAX);
        let mut iter = self.db.db().iterator_cf(self.db.cf(CF_LOG), IteratorMode::From(&last, Direction::Reverse));
        match iter.next() {
            None => Ok(None),
            Some(item) => {
                let (key, value) = item.map_err(|e| e.to_string())?;
                if self.keys.strip(&key).is_none() {
                    return Ok(None);
                }
                let entry: Entry<TypeConfig> = from_json(&value).map_err(|e| e.to_string())?;
                Ok(Some(*entry.get_log_id()))
            }
        }
    }
}

fn start_index(range: &impl RangeBounds<u64>) -> u64 {
    match range.start_bound() {
        Bound::Included(i) => *i,
        Bound::Excluded(i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let start = self.entry_key(start_index(&range));
        let iter = self.db.db().iterator_cf(self.db.cf(CF_LOG), IteratorMode::From(&start, Direction::Forward));
        let mut entries = Vec::new();
        for item in iter {
            let (key, value) = item.map_err(|e| StorageIOError::read_logs(&e))?;
            let Some(key) = self.keys.strip(&key) else { break };
            let index = be_u64("log index", key).map_err(|e| StorageIOError::read_logs(openraft::AnyError::error(e)))?;
            if !range.contains(&index) {
                break;
            }
            let entry = from_json(&value).map_err(|e| StorageIOError::read_log_at_index(index, &e))?;
            entries.push(entry);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let read_err = |e: String| StorageIOError::read_logs(openraft::AnyError::error(e));
        let last_purged_log_id: Option<LogId<NodeId>> = self.read_meta(KEY_LAST_PURGED).map_err(read_err)?;
        let last_log_id = self.last_entry_log_id().map_err(read_err)?.or(last_purged_log_id);
        Ok(LogState { last_purged_log_id, last_log_id })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        let mut batch = WriteBatch::default();
        self.meta_batch(&mut batch, KEY_VOTE, vote).map_err(|e| StorageIOError::write_vote(&e))?;
        self.write_synced(batch).await.map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        Ok(self.read_meta(KEY_VOTE).map_err(|e| StorageIOError::read_vote(openraft::AnyError::error(e)))?)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        // Not synced: losing it only means re-applying from the last applied id after a crash.
        let raw = to_json(&committed).map_err(|e| StorageIOError::write(&e))?;
        self.db.db().put_cf(self.db.cf(CF_RAFT), self.keys.key(KEY_COMMITTED), raw).map_err(|e| StorageIOError::write(&e))?;
        Ok(())
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        let committed: Option<Option<LogId<NodeId>>> =
            self.read_meta(KEY_COMMITTED).map_err(|e| StorageIOError::read(openraft::AnyError::error(e)))?;
        Ok(committed.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        for entry in entries {
            let log_id = *entry.get_log_id();
            let raw = to_json(&entry).map_err(|e| StorageIOError::write_log_entry(log_id, &e))?;
            batch.put_cf(self.db.cf(CF_LOG), self.entry_key(log_id.index), raw);
        }
        // The callback tells openraft the entries are durable, so it runs only after the fsync.
        let result = self.write_synced(batch).await;
        let storage_result = result.as_ref().map(|_| ()).map_err(|e| StorageIOError::write_logs(openraft::AnyError::error(e)));
        callback.log_io_completed(result);
        Ok(storage_result?)
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        tracing::debug!(%log_id, "truncating raft log");
        let mut batch = WriteBatch::default();
        let (_, end) = self.keys.bounds();
        batch.delete_range_cf(self.db.cf(CF_LOG), self.entry_key(log_id.index), end);
        self.write_synced(batch).await.map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        tracing::debug!(%log_id, "purging raft log");
        let mut batch = WriteBatch::default();
        self.meta_batch(&mut batch, KEY_LAST_PURGED, &log_id).map_err(|e| StorageIOError::write_logs(&e))?;
        batch.delete_range_cf(self.db.cf(CF_LOG), self.entry_key(0), self.entry_key(log_id.index + 1));
        self.write_synced(batch).await.map_err(|e| StorageIOError::write_logs(&e))?;
        Ok(())
    }
}
