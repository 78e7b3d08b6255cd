//! GPU-aware placement of a proton's replicas on nodes: which bundle, which node for each replica,
//! and, when the cluster is full, which less important replicas to stop.
//!
//! Pure: no I/O, no clocks, no randomness. The scheduler feeds it the nodes and the current
//! allocations and commits what it answers:
//!
//! - [`place`] chooses, for every replica of a [`Request`], a node with room for the first bundle of
//!   the request's preference list that fits them all (all replicas or none), packing GPUs tightly,
//!   spreading replicas across nodes and zones and preferring the workload's region;
//! - [`preempt`] does the same, stopping the fewest replicas of strictly less important workloads
//!   (never `critical` ones) when that is the only way;
//! - [`verify`] re-checks a plan against the allocations current at commit time, so that two
//!   workers planning from the same snapshot cannot double-book a node;
//! - [`default_bundles`] is the bundle catalogue, and [`parse_memory`] / [`parse_cpu`] read the
//!   Workload API's quantities.

mod catalogue;
mod ledger;
mod model;
mod place;
mod placer;
mod preempt;
mod shortage;
pub(crate) mod units;
mod verify;

pub use catalogue::{GPU_TYPE_A10G, GPU_TYPE_H100, GPU_TYPE_L4, default_bundles};
pub use model::{Allocation, AllocationId, Assignment, Bundle, Node, Plan, Request, ResourceAllocation};
pub use nucleus_api::Importance;
pub use place::place;
pub use placer::Placer;
pub use preempt::{EXACT_SEARCH_LIMIT, Preemption, preempt};
pub use shortage::{FailedBundle, Largest, Missing, Shortage};
pub use units::{UnitError, cpu_millicores, gpu_count, parse_cpu, parse_memory};
pub use verify::{Conflict, Resource, verify};

#[cfg(test)]
mod tests;
