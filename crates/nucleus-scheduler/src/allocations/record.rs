//! The stored form of the allocation ledger: one document per node (`allocations/<agent>/<node>`).

use nucleus_api::Importance;
use nucleus_api::bundle::ResourceBundle;
use serde::{Deserialize, Serialize};

/// What the replicas placed on one node of one agent reserve there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeAllocations {
    pub agent: String,
    pub node: String,
    pub allocations: Vec<AllocationRecord>,
}

/// One replica's reservation on the node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocationRecord {
    pub proton: String,
    pub workload: String,
    pub replica: u32,
    pub bundle: ResourceBundle,
    pub importance: Importance,
    /// Set when a more important proton took this room: the replica no longer counts against the
    /// node, and the worker of its proton stops it, marks it `interrupted` and drops the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempted_by: Option<Preemptor>,
}

/// The proton a preemption made room for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preemptor {
    pub proton: String,
    pub workload: String,
    pub importance: Importance,
}

impl AllocationRecord {
    /// Whether it still holds room on its node.
    pub fn is_live(&self) -> bool {
        self.preempted_by.is_none()
    }
}
