//! Typed gRPC clients for Nucleus' internal services.
//!
//! [`MetaClient`] talks to the metadata service: JSON documents under [`keys`], conditional
//! multi-key writes ([`Txn`]) that carry a request id so retries apply once, and watches
//! ([`ResumableWatch`] resumes from the last revision it delivered when its stream breaks).
//! Meta is several Raft groups (a root and shards); the client sends each call to the group its
//! key or prefix belongs to ([`keys::group_of_key`], [`keys::groups_of_prefix`]), fanning out
//! lists and resumable watches that span groups.
//! [`AgentClient`] is what schedulers use to drive node agents.

mod agent;
mod error;
mod gateway;
pub mod keys;
mod members;
mod meta;
mod txn;
mod watch;

pub use agent::AgentClient;
pub use error::Error;
pub use gateway::{GatewayClient, GatewayRecord};
pub use meta::{MetaClient, Versioned, decode, node_status, node_status_of};
pub use nucleus_proto::meta::v1::KeyValue;
pub use nucleus_proto::meta::v1::StatusResponse as NodeStatus;
pub use txn::{Txn, WriteOutcome};
pub use watch::{ResumableWatch, WatchEvent, WatchStream};

/// Registration of a node agent in meta (`agents/<name>`), refreshed by its heartbeat.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentRecord {
    pub name: String,
    pub address: String,
    pub driver: String,
    pub cluster: String,
    pub region: String,
    /// RFC 3339 time of the last heartbeat.
    pub heartbeat_at: String,
    /// What the agent can run replicas on, as its driver last reported (refreshed by every
    /// heartbeat): this host for the process driver, the cluster's schedulable nodes for the
    /// Kubernetes driver.
    #[serde(default)]
    pub nodes: Vec<NodeRecord>,
    /// Who may have its process driver run an entrypoint (`--allow-exec`).
    #[serde(default)]
    pub exec: nucleus_api::exec_policy::ExecPolicy,
}

/// One node of an agent's capacity.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    pub name: String,
    #[serde(default)]
    pub zone: String,
    pub cpu_millis: u32,
    pub memory_bytes: u64,
    #[serde(default)]
    pub gpu_count: u32,
    /// Catalogue GPU type (`nvidia-l4`, ...); empty without GPUs.
    #[serde(default)]
    pub gpu_type: String,
    #[serde(default)]
    pub gpu_memory_bytes: u64,
}

/// A node as an agent's `Info` reports it, as stored in its agent record.
impl From<nucleus_proto::agent::v1::NodeCapacity> for NodeRecord {
    fn from(node: nucleus_proto::agent::v1::NodeCapacity) -> NodeRecord {
        NodeRecord {
            name: node.name,
            zone: node.zone,
            cpu_millis: node.cpu_millis,
            memory_bytes: node.memory_bytes,
            gpu_count: node.gpu_count,
            gpu_type: node.gpu_type,
            gpu_memory_bytes: node.gpu_memory_bytes,
        }
    }
}
