//! What a held lease lets a worker do: fence its writes to the shard and its calls to agents.

use nucleus_client::{Txn, keys};
use nucleus_proto::agent::v1::StopRequest;

/// Seconds an agent gives a stopped replica before it kills it.
const STOP_GRACE_SECONDS: u32 = 10;

/// A shard this worker holds the lease of, and the fencing token that goes with it: every write
/// there is conditioned on the lease, and every agent call carries the token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fence {
    pub(crate) group: u64,
    pub(crate) token: u64,
}

impl Fence {
    /// `txn`, applied only while this worker still holds the lease at its token.
    pub(crate) fn guard(&self, txn: Txn) -> Txn {
        txn.require(&keys::shard_lease(self.group), self.token)
    }

    /// A fenced Stop of `proton` with the usual grace period.
    pub(crate) fn stop(&self, proton: &str) -> StopRequest {
        StopRequest {
            proton_id: proton.to_owned(),
            grace_period_seconds: STOP_GRACE_SECONDS,
            fencing_token: self.token,
            meta_shard: self.group,
        }
    }
}
