//! The allocation ledger: which replica holds which bundle on which node, cluster-wide, in meta.
//!
//! Workers of different shards place protons on the same agents, so what a node has promised
//! cannot live with the protons (a transaction spans one Raft group). It lives in the root group,
//! one document per node (`allocations/<agent>/<node>`), and every placement is committed like
//! Nomad's plan applier: the worker plans on its (watched) copy of the ledger with the pure
//! [`crate::placement`] code, then writes the nodes it uses on the condition that each is still
//! at the revision it planned on. Two workers that planned on the same snapshot cannot both fill
//! the last GPU: the second commit is refused and re-planned on the newer ledger.
//!
//! The ledger is written before the proton: a worker that dies in between leaves a reservation
//! for an unplaced proton, which the next worker of that shard adopts ([`holding`]) rather than
//! placing the proton a second time; reservations of protons that are gone, stopped or placed
//! elsewhere are released by the worker that holds the proton's shard.

mod fleet;
mod ledgers;
mod record;

pub use fleet::{AgentNodes, Ask, Change, Holding, apply_event, bundle_of, grow, holding, node_of, place, release, reserved, shrink};
pub use ledgers::Ledgers;
pub use record::{AllocationRecord, NodeAllocations, Preemptor};
