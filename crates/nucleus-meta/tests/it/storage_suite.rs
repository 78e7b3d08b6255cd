//! openraft's own storage test suite against the RocksDB log store and state machine.

use nucleus_meta::store::{Db, Keyspace, LogStore, StateMachine};
use nucleus_meta::types::TypeConfig;
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path()).expect("open rocksdb");
        let (events, _) = tokio::sync::broadcast::channel(16);
        Ok((dir, LogStore::new(db.clone(), Keyspace::of(1)), StateMachine::new(db, Keyspace::of(1), events)))
    }
}

#[test]
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(RocksBuilder) {
        panic!("openraft storage suite failed: {e}");
    }
}
