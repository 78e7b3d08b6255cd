//! Agents that are gone for good: a proton whose agent has been out of reach for [`AGENT_LOST`]
//! (or whose last heartbeat in meta is that old, for a worker that just started), or whose agent's
//! record is gone, is placed again on an agent that answers (Nomad's "lost" allocations,
//! Kubernetes' eviction from a node that is not ready); when the lost agent comes back still running its replicas,
//! they are stopped there, so that no replica runs twice once the agent answers again. Replicas of
//! a proton meta no longer has are stopped too.

use std::time::Duration;

use nucleus_api::{DesiredState, ProtonStatus, WorkloadEvent};
use nucleus_client::{AgentRecord, MetaClient, Txn, keys};
use nucleus_proto::agent::v1::Lifecycle;
use serde_json::json;

use super::World;
use crate::Error;
use crate::lease::{Fence, Held};

/// How long an agent may be out of reach before its protons are placed elsewhere. Longer than a
/// restart (its replicas keep running meanwhile, and an agent that returns adopts them), short
/// enough that a lost region's workloads come back within a minute elsewhere.
pub(super) const AGENT_LOST: Duration = Duration::from_secs(15);

/// Whether the agent's last heartbeat in meta is older than [`AGENT_LOST`]: a worker that just
/// started (its own count of the agent's silence starts at zero) then need not wait it out again.
fn silent_since_lost(record: &AgentRecord, now: chrono::DateTime<chrono::Utc>) -> bool {
    chrono::DateTime::parse_from_rfc3339(&record.heartbeat_at)
        .is_ok_and(|beat| (now - beat.to_utc()).to_std().is_ok_and(|silent| silent >= AGENT_LOST))
}

impl World {
    /// Unplaces (fenced) every running proton of this worker's shards whose agent is lost; the
    /// reconcile that follows places it on an agent that answers.
    pub(super) async fn fail_over(&mut self, meta: &MetaClient, shard_count: u64, leases: &Held) {
        if !self.synced_agents {
            return;
        }
        let now = nucleus_api::clock::now();
        let lost: Vec<String> = self
            .agents
            .iter()
            .filter(|(_, a)| !a.connected && (a.since.elapsed() >= AGENT_LOST || (a.unreachable() && silent_since_lost(&a.record, now))))
            .map(|(name, _)| name.clone())
            .collect();
        // An agent whose record was removed (`nucleus agent` retired, or removed by hand) is lost too.
        let gone = |agent: &String| !self.agent_records.contains_key(agent);
        let stranded: Vec<_> = self
            .protons
            .values()
            .filter(|doc| doc.value.desired_state == DesiredState::Running)
            .filter(|doc| doc.value.agent.as_ref().is_some_and(|agent| lost.contains(agent) || gone(agent)))
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
    /// (it was lost, and they were placed again), and those meta no longer has at all (orphans: a
    /// launch that raced the proton's removal, by a worker whose picture was behind).
    pub(super) async fn stop_strays(&mut self, meta: &MetaClient, shard_count: u64, leases: &Held) {
        let mut strays = Vec::new();
        let mut orphans = Vec::new();
        for (agent, reports) in &self.reports {
            for report in reports.values().filter(|r| !r.removed && r.lifecycle() == Lifecycle::Running) {
                let key = keys::proton(&report.workload_id, &report.proton_id);
                match self.protons.get(&key) {
                    Some(doc) if doc.value.agent.as_deref() != Some(agent.as_str()) => {
                        strays.push((agent.clone(), key, report.proton_id.clone()))
                    }
                    Some(_) => {}
                    None if self.synced_protons => orphans.push((agent.clone(), key, report.proton_id.clone())),
                    None => {}
                }
            }
        }
        for (agent, key, proton) in orphans {
            let group = keys::group_of_key(&key, shard_count);
            if !leases.contains_key(&group) {
                continue;
            }
            // The watch may only be behind (a proton made since): an orphan is one meta lacks now.
            match meta.get(&key).await {
                Ok(None) => strays.push((agent, key, proton)),
                Ok(Some(_)) => {}
                Err(err) => tracing::warn!(proton, error = %err, "cannot check whether a reported proton still exists; will retry"),
            }
        }
        for (agent, key, proton) in strays {
            let group = keys::group_of_key(&key, shard_count);
            let (Some(&token), Some(followed)) = (leases.get(&group), self.agents.get(&agent)) else { continue };
            if !followed.connected {
                continue;
            }
            match followed.client.stop(Fence { group, token }.stop(&proton)).await {
                Ok(()) => tracing::info!(proton, agent, "stopped replicas of a proton that is not placed there"),
                Err(err) => tracing::warn!(proton, agent, error = %err, "cannot stop replicas of a proton not placed there; will retry"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::at;

    fn record(heartbeat_at: &str) -> AgentRecord {
        AgentRecord {
            name: "a".into(),
            address: "127.0.0.1:1".into(),
            driver: "process".into(),
            cluster: "c".into(),
            region: "r".into(),
            heartbeat_at: heartbeat_at.into(),
            nodes: Vec::new(),
            exec: Default::default(),
        }
    }

    #[test]
    fn only_a_heartbeat_older_than_the_loss_threshold_counts_as_silent() {
        let now = at(100);
        assert!(silent_since_lost(&record(&at(100 - 15).to_rfc3339()), now));
        assert!(silent_since_lost(&record(&at(0).to_rfc3339()), now));
        assert!(!silent_since_lost(&record(&at(100 - 14).to_rfc3339()), now));
        assert!(!silent_since_lost(&record(&at(110).to_rfc3339()), now), "a heartbeat ahead of this clock is not silence");
        assert!(!silent_since_lost(&record(""), now), "no heartbeat read is not proof of silence");
    }
}
