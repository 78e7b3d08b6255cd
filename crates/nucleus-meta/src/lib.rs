//! Nucleus metadata node: a small etcd. A revisioned key-value store replicated by an openraft
//! group whose log and state machine live in RocksDB, served over gRPC (`nucleus.meta.v1.Meta`
//! for clients, `nucleus.raft.v1.Raft` between nodes).

mod error;
mod meta_service;
mod network;
mod node;
mod raft_service;
pub mod store;
pub mod types;
mod watch;

pub use error::Error;
pub use node::{GROUP_ID, MetaConfig, MetaNode};
