//! Re-checking a plan against the allocations current at commit time, like Nomad's plan applier:
//! two workers that planned from the same snapshot cannot both fill the last GPU.

use std::fmt;

use super::ledger::{Ledger, Usage};
use super::model::{Allocation, AllocationId, Node, Plan};

/// A reason a plan can no longer be committed as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// The plan uses a node the cluster no longer has.
    UnknownNode {
        /// The replica placed there.
        replica: u32,
        /// The node's name.
        node: String,
    },
    /// The node's GPU model or GPU memory does not suit the plan's bundle.
    Unsuitable {
        /// The replica placed there.
        replica: u32,
        /// The node's name.
        node: String,
    },
    /// An allocation with the same id already exists (another worker placed this replica).
    AlreadyAllocated {
        /// The replica's id.
        id: AllocationId,
        /// Where the existing allocation is.
        node: String,
    },
    /// The node would hold more of a resource than it has.
    OverCommitted {
        /// The node's name.
        node: String,
        /// Which resource.
        resource: Resource,
        /// What the node has.
        capacity: u64,
        /// What its allocations and the plan together would use.
        requested: u64,
    },
}

/// A resource a node can run out of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Resource {
    /// Whole GPUs.
    Gpus,
    /// CPU, in millicores.
    Cpu,
    /// Memory, in bytes.
    Memory,
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Resource::Gpus => "GPUs",
            Resource::Cpu => "cpu (millicores)",
            Resource::Memory => "memory (bytes)",
        })
    }
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::UnknownNode { replica, node } => {
                write!(f, "replica {replica}: node {node} is unknown")
            }
            Conflict::Unsuitable { replica, node } => {
                write!(f, "replica {replica}: node {node} lacks the bundle's GPU model or GPU memory")
            }
            Conflict::AlreadyAllocated { id, node } => {
                write!(f, "{id} is already allocated on node {node}")
            }
            Conflict::OverCommitted { node, resource, capacity, requested } => {
                write!(f, "node {node} would be over-committed on {resource}: {requested} of {capacity}")
            }
        }
    }
}

/// Checks that `plan` still fits next to `allocations` (those current now, without any victims the
/// plan preempts): every node exists and suits the bundle, no replica is allocated twice, and no node
/// the plan uses would exceed its capacity. Nodes the plan does not use are not judged.
pub fn verify(plan: &Plan, nodes: &[Node], allocations: &[Allocation]) -> Result<(), Vec<Conflict>> {
    let mut ledger = Ledger::new(nodes, allocations);
    let mut conflicts = Vec::new();
    let mut touched = Vec::new();
    for assignment in &plan.assignments {
        let id = AllocationId { proton: plan.proton.clone(), replica: assignment.replica };
        if let Some(existing) = allocations.iter().find(|allocation| allocation.id == id) {
            conflicts.push(Conflict::AlreadyAllocated { id, node: existing.node.clone() });
        }
        let Some(position) = ledger.position(&assignment.node) else {
            conflicts.push(Conflict::UnknownNode { replica: assignment.replica, node: assignment.node.clone() });
            continue;
        };
        if !ledger.nodes()[position].suits(&plan.bundle) {
            conflicts.push(Conflict::Unsuitable { replica: assignment.replica, node: assignment.node.clone() });
        }
        ledger.reserve(position, &plan.bundle);
        if !touched.contains(&position) {
            touched.push(position);
        }
    }
    for position in touched {
        let node = ledger.nodes()[position];
        let capacity = Usage::capacity(node);
        let used = ledger.used(position);
        let checks = [
            (Resource::Gpus, capacity.gpus, used.gpus),
            (Resource::Cpu, capacity.cpu_millicores, used.cpu_millicores),
            (Resource::Memory, capacity.memory_bytes, used.memory_bytes),
        ];
        for (resource, capacity, requested) in checks {
            if requested > capacity {
                conflicts.push(Conflict::OverCommitted { node: node.name.clone(), resource, capacity, requested });
            }
        }
    }
    if conflicts.is_empty() { Ok(()) } else { Err(conflicts) }
}
