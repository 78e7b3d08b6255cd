//! Nucleus metadata node: a small, sharded etcd. Each node hosts several openraft groups (the root
//! and the shards), each a revisioned key-value store whose log and state machine live in the
//! node's one RocksDB, served over gRPC (`nucleus.meta.v1.Meta` for clients, one multiplexed
//! `nucleus.raft.v1.Raft` service between nodes).

mod base64_bytes;
mod config;
mod error;
mod groups;
mod joiner;
mod leader;
mod membership;
mod meta_service;
mod metrics;
mod network;
mod node;
pub mod placement;
mod raft_service;
mod rebalancer;
mod startup;
mod status;
pub mod store;
mod transport;
pub mod types;
mod watch;

pub use config::{
    DEFAULT_RAFT_HEARTBEAT, DEFAULT_SHARDS, DEFAULT_SNAPSHOT_AFTER_LOGS, DEFAULT_WATCH_HISTORY, MAX_SHARDS, MetaConfig, SHARD_REPLICAS,
};
pub use error::Error;
pub use groups::{Group, ROOT_GROUP};
pub use node::MetaNode;
pub use transport::{TlsTransport, TokioTransport, Transport};
