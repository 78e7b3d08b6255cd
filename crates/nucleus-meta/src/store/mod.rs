//! RocksDB storage of one metadata node: the Raft log, the Raft metadata and the state machine,
//! each in its own column families of a single DB (so one synced WAL write covers them all). Every
//! Raft group the node hosts has its own key range in each column family (see [`Keyspace`]).

mod codec;
mod history;
mod keyspace;
mod log;
mod reader;
mod sm;

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, Options};

use crate::error::Error;

pub use self::keyspace::Keyspace;
pub use self::log::LogStore;
pub use self::reader::KvReader;
pub use self::sm::StateMachine;

/// Log entries, keyed by big-endian index.
pub(crate) const CF_LOG: &str = "log";
/// Vote, committed log id, last purged log id.
pub(crate) const CF_RAFT: &str = "raft";
/// User keys -> encoded value with revisions.
pub(crate) const CF_KV: &str = "sm_kv";
/// Last applied log id, membership, revision, current snapshot, dedup sequence.
pub(crate) const CF_SM: &str = "sm_meta";
/// Recorded responses of request ids (idempotency table).
pub(crate) const CF_DEDUP: &str = "sm_dedup";

/// Change log for watches: revision (big-endian) -> change set, the last N revisions.
pub(crate) const CF_HISTORY: &str = "sm_history";

/// Node-local key (in CF_RAFT): the shard count this node was created or joined with.
const KEY_SHARD_COUNT: &[u8] = b"shard_count";

const ALL_CFS: [&str; 6] = [CF_LOG, CF_RAFT, CF_KV, CF_SM, CF_DEDUP, CF_HISTORY];

/// The shared RocksDB handle; every column family is known to exist once opened.
#[derive(Clone)]
pub struct Db(Arc<DB>);

impl Db {
    /// Opens (creating if needed) the DB at `path` with all column families, compression off.
    pub fn open(path: &Path) -> Result<Db, Error> {
        std::fs::create_dir_all(path).map_err(|source| Error::Io { path: path.to_owned(), source })?;
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(DBCompressionType::None);
        let cfs = ALL_CFS.iter().map(|name| {
            let mut cf_opts = Options::default();
            cf_opts.set_compression_type(DBCompressionType::None);
            ColumnFamilyDescriptor::new(*name, cf_opts)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        for name in ALL_CFS {
            if db.cf_handle(name).is_none() {
                return Err(Error::MissingColumnFamily(name));
            }
        }
        tracing::info!(path = %path.display(), "opened meta rocksdb");
        Ok(Db(Arc::new(db)))
    }

    pub(crate) fn db(&self) -> &DB {
        &self.0
    }

    pub(crate) fn cf(&self, name: &'static str) -> &ColumnFamily {
        // Checked in `open` for every name in ALL_CFS, and column families are never dropped.
        self.0.cf_handle(name).expect("column family checked at open")
    }

    /// The cluster's shard count as this node last recorded it (node-local, not replicated).
    pub(crate) fn shard_count(&self) -> Result<Option<u64>, Error> {
        let raw = self.0.get_cf(self.cf(CF_RAFT), Keyspace::node_local().key(KEY_SHARD_COUNT))?;
        raw.map(|raw| codec::be_u64("shard count", &raw)).transpose()
    }

    /// Records the shard count (synced: groups are created from it on every start).
    pub(crate) fn set_shard_count(&self, count: u64) -> Result<(), Error> {
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        let key = Keyspace::node_local().key(KEY_SHARD_COUNT);
        self.0.put_cf_opt(self.cf(CF_RAFT), key, count.to_be_bytes(), &opts)?;
        Ok(())
    }

    /// How many handles to the DB are alive (the DB closes when the last is dropped).
    pub(crate) fn handles(&self) -> usize {
        Arc::strong_count(&self.0)
    }
}
