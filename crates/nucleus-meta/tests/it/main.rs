//! Integration tests: one binary (RocksDB links slowly), one module per concern.

mod common;
mod group;
mod kv;
mod multi_node;
mod persistence;
mod shards;
mod storage_suite;
mod watch;
