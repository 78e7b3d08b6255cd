//! Nucleus metadata node: a small etcd. A revisioned key-value store replicated by an openraft
//! group whose log and state machine live in RocksDB, served over gRPC (`nucleus.meta.v1.Meta`
//! for clients, `nucleus.raft.v1.Raft` between nodes).

mod base64_bytes;
mod config;
mod error;
mod joiner;
mod leader;
mod membership;
mod meta_service;
mod network;
mod node;
mod raft_service;
mod startup;
mod transport;
pub mod store;
pub mod types;
mod watch;

pub use config::{DEFAULT_SNAPSHOT_AFTER_LOGS, DEFAULT_WATCH_HISTORY, MetaConfig};
pub use error::Error;
pub use leader::{LEADER_ADDR_METADATA, LEADER_ID_METADATA};
pub use node::{GROUP_ID, MetaNode};
pub use transport::{TokioTransport, Transport};
pub use watch::COMPACT_REVISION_METADATA;
