//! The worker's expiry pass: draft workloads whose time is up are deleted.

use nucleus_api::Workload;
use nucleus_client::{MetaClient, Txn, Versioned, keys};

use super::World;
use crate::Error;
use crate::lease::{Fence, Held};

impl World {
    /// Removes the draft workloads of this worker's shards whose time is up (docs/api/README.md, "Lifetime"), as a
    /// DELETE would; their protons are then stopped and forgotten like those of any deleted
    /// workload. One whose artifact was locked meanwhile is kept and loses its expiry.
    pub(super) async fn expire_drafts(&mut self, meta: &MetaClient, shard_count: u64, leases: &Held) {
        let now = nucleus_api::clock::now();
        let due: Vec<(Versioned<Workload>, Fence)> = self
            .workloads
            .values()
            .filter(|w| w.value.expires_at.is_some_and(|at| at <= now))
            .filter_map(|w| {
                let group = keys::group_of_key(&w.key, shard_count);
                Some((w.clone(), Fence { group, token: *leases.get(&group)? }))
            })
            .collect();
        for (workload, fence) in due {
            if let Err(err) = expire(meta, fence, &workload).await {
                tracing::warn!(workload = workload.value.id, error = %err, "cannot expire draft workload; will retry");
            }
        }
    }
}

async fn expire(meta: &MetaClient, fence: Fence, workload: &Versioned<Workload>) -> Result<(), Error> {
    let id = &workload.value.id;
    let artifact = match &workload.value.artifact_id {
        Some(artifact_id) => meta.get_json::<nucleus_api::Artifact>(&keys::artifact(artifact_id)).await?,
        None => None,
    };
    let locked = artifact.is_some_and(|a| a.value.status == nucleus_api::ArtifactStatus::Locked);
    let txn = fence.guard(Txn::new()).require(&workload.key, workload.mod_revision);
    let txn = if locked {
        let mut kept = workload.value.clone();
        kept.expires_at = None;
        txn.put_json(&workload.key, &kept)?
    } else {
        txn.delete(&workload.key).delete_prefix(&keys::events_of(id)).delete_prefix(&keys::history_of(id))
    };
    if meta.write(txn).await?.applied() {
        if locked {
            tracing::info!(workload = id, "artifact locked: the workload no longer expires");
        } else {
            tracing::info!(workload = id, "draft workload expired: removed");
        }
    }
    Ok(())
}
