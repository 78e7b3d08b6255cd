//! Agents that are gone for good: a proton whose agent has been out of reach for [`AGENT_LOST`]
//! is placed again on an agent that answers (Nomad's "lost" allocations, Kubernetes' eviction
//! from a node that is not ready); when the lost agent comes back still running its replicas,
//! they are stopped there, so that no replica runs twice once the agent answers again.

use std::time::Duration;

use nucleus_api::{DesiredState, ProtonStatus, WorkloadEvent};
use nucleus_client::{MetaClient, Txn, keys};
use nucleus_proto::agent::v1::Lifecycle;
use serde_json::json;

use super::World;
use crate::Error;
use crate::lease::{Fence, Held};

/// How long an agent may be out of reach before its protons are placed elsewhere. Longer than a
/// restart (its replicas keep running meanwhile, and an agent that returns adopts them), short
/// enough that a lost region's workloads come back within a minute elsewhere.
pub(super) const AGENT_LOST: Duration = Duration::from_secs(15);

impl World {
    /// Unplaces (fenced) every running proton of this worker's shards whose agent is lost; the
    /// reconcile that follows places it on an agent that answers.
    pub(super) async fn fail_over(&mut self, meta: &MetaClient, shard_count: u64, leases: &Held) {
        if !self.synced_agents {
            return;
        }
        let lost: Vec<String> =
            self.agents.iter().filter(|(_, a)| !a.connected && a.since.elapsed() >= AGENT_LOST).map(|(name, _)| name.clone()).collect();
        let stranded: Vec<_> = self
            .protons
            .values()
            .filter(|doc| doc.value.desired_state == DesiredState::Running)
            .filter(|doc| doc.value.agent.as_ref().is_some_and(|agent| lost.contains(agent)))
            .cloned()
            .collect();
        for doc in stranded {
            let group = keys::group_of_key(&doc.key, shard_count);
            let Some(&token) = leases.get(&group) else { continue };
            let fence = Fence { group, token };
            let agent = doc.value.agent.clone().unwrap_or_default();
            let mut proton = doc.value.clone();
            proton.agent = None;
            proton.status = ProtonStatus::Provisioning;
            proton.message = Some(format!("Agent {agent} has not answered for {} s: placing the replicas elsewhere", AGENT_LOST.as_secs()));
            proton.updated_at = nucleus_api::clock::now();
            let event = WorkloadEvent::new(
                &proton.workload_id,
                "protonFailedOver",
                json!({ "message": proton.message.clone(), "protonId": proton.id, "agent": agent }),
            );
            let written = fence
                .guard(Txn::new())
                .require(&doc.key, doc.mod_revision)
                .put_json(&doc.key, &proton)
                .and_then(|txn| txn.put_json(&keys::event(&proton.workload_id, &event.id), &event));
            let outcome = match written {
                Ok(txn) => meta.write(txn).await.map_err(Error::from),
                Err(err) => Err(Error::from(err)),
            };
            match outcome {
                Ok(done) if done.applied() => {
                    tracing::warn!(proton = proton.id, agent, "agent lost: placing the proton elsewhere");
                    self.done.remove(&proton.id);
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(proton = proton.id, error = %err, "cannot fail the proton over; will retry"),
            }
        }
    }

    /// Stops, on an agent that answers, the protons it still runs that are placed elsewhere now
    /// (it was lost, and they were placed again).
    pub(super) async fn stop_strays(&mut self, shard_count: u64, leases: &Held) {
        let mut strays = Vec::new();
        for (agent, reports) in &self.reports {
            for report in reports.values().filter(|r| !r.removed && r.lifecycle() == Lifecycle::Running) {
                let key = keys::proton(&report.workload_id, &report.proton_id);
                let Some(doc) = self.protons.get(&key) else { continue };
                if doc.value.agent.as_deref() != Some(agent.as_str()) {
                    strays.push((agent.clone(), key, report.proton_id.clone()));
                }
            }
        }
        for (agent, key, proton) in strays {
            let group = keys::group_of_key(&key, shard_count);
            let (Some(&token), Some(followed)) = (leases.get(&group), self.agents.get(&agent)) else { continue };
            if !followed.connected {
                continue;
            }
            match followed.client.stop(Fence { group, token }.stop(&proton)).await {
                Ok(()) => tracing::info!(proton, agent, "stopped replicas left on an agent the proton moved away from"),
                Err(err) => tracing::warn!(proton, agent, error = %err, "cannot stop a moved proton's old replicas; will retry"),
            }
        }
    }
}
