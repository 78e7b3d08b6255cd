//! Integration tests: one binary (RocksDB links slowly), one module per concern.

mod common;
mod kv;
mod persistence;
mod storage_suite;
mod watch;
