//! The worker's autoscaling pass (see [`crate::autoscale`]).

use std::collections::{HashMap, HashSet};

use nucleus_api::{DesiredState, Importance, Proton, ProtonStatus, WorkloadEvent};
use nucleus_client::{MetaClient, Txn, Versioned, keys};
use nucleus_proto::agent::v1::UsageQuery;
use serde_json::json;

use super::{World, commit};
use crate::Error;
use crate::allocations::{self, AgentNodes, Ask};
use crate::autoscale::{Autoscaler, Decision};
use crate::lease::{Fence, Held};
use crate::plan::{AgentView, Report};

impl World {
    /// Decides the replicas of every autoscaled proton of this worker's shards, most important
    /// workload first (their scale-ups are reserved first when bundles are short), and records
    /// each change: the allocation ledger grown first for a bundle-placed proton (preempting less
    /// important ones if it must), then the proton's `replicaCount` (fenced) with an `autoscaled`
    /// event, then the ledger shrunk after a scale-down. The launch that follows is the ordinary
    /// one of [`plan`](crate::plan::plan).
    pub(super) async fn autoscale(&mut self, meta: &MetaClient, shard_count: u64, leases: &Held) {
        let now = tokio::time::Instant::now();
        let mut scaled = Vec::new();
        let mut autoscaled = HashSet::new();
        for key in self.queue() {
            let Some(doc) = self.protons.get(&key) else { continue };
            let proton = &doc.value;
            let group = keys::group_of_key(&doc.key, shard_count);
            let Some(&token) = leases.get(&group) else { continue };
            let Some(workload) = self.workloads.get(&proton.workload_id) else { continue };
            let Some(autoscaling) = proton.runtime.autoscaling() else { continue };
            let active = workload.value.proton_id.as_deref() == Some(proton.id.as_str()) && workload.value.active_replacement().is_none();
            let preempted = allocations::holding(&self.ledgers, &proton.id).is_some_and(|h| h.preempted_by.is_some());
            if !active
                || preempted
                || proton.desired_state != DesiredState::Running
                || proton.agent.is_none()
                || proton.status == ProtonStatus::Errored
            {
                continue;
            }
            autoscaled.insert(proton.id.clone());
            let ready = match self.view(proton) {
                AgentView::Reported(Report::Running(snapshot)) => snapshot.replicas.iter().filter(|r| r.is_ready()).count() as u32,
                _ => 0,
            };
            let decision = self.autoscaler.decide(proton, autoscaling, ready, now);
            if decision.desired != proton.replica_count {
                scaled.push((doc.clone(), workload.value.importance, Fence { group, token }, decision));
            }
        }
        self.autoscaler.retain(|proton| autoscaled.contains(proton));
        self.ask_usage(&autoscaled);
        for (doc, importance, fence, mut decision) in scaled {
            if let Err(err) = self.scale(meta, &doc, importance, fence, &mut decision).await {
                tracing::warn!(proton = doc.value.id, error = %err, "cannot record an autoscaling decision; will retry");
            }
        }
    }

    /// Asks each agent's usage poll for what its autoscaled protons' policies need.
    fn ask_usage(&self, autoscaled: &HashSet<String>) {
        let mut queries: HashMap<&str, Vec<UsageQuery>> = HashMap::new();
        for doc in self.protons.values().filter(|d| autoscaled.contains(&d.value.id)) {
            if let (Some(agent), Some(query)) = (doc.value.agent.as_deref(), Autoscaler::usage_query(&doc.value)) {
                queries.entry(agent).or_default().push(query);
            }
        }
        for (name, agent) in &self.agents {
            let wanted = queries.remove(name.as_str()).unwrap_or_default();
            agent.usage_queries.send_if_modified(|asked| {
                let changed = *asked != wanted;
                if changed {
                    asked.clone_from(&wanted);
                }
                changed
            });
        }
    }

    async fn scale(
        &mut self,
        meta: &MetaClient,
        doc: &Versioned<Proton>,
        importance: Importance,
        fence: Fence,
        decision: &mut Decision,
    ) -> Result<(), Error> {
        let proton = &doc.value;
        let from = proton.replica_count;
        if let Some(held) = allocations::holding(&self.ledgers, &proton.id) {
            let reserved = allocations::reserved(&self.ledgers, &proton.id);
            if decision.desired > reserved {
                let Some(agent) = self.agents.get(&held.agent).filter(|a| a.connected) else { return Ok(()) };
                let nodes = AgentNodes { name: &held.agent, region: &agent.record.region, nodes: &agent.record.nodes };
                let bundles = [held.bundle.clone()];
                let ask = Ask {
                    proton: &proton.id,
                    workload: &proton.workload_id,
                    replicas: decision.desired - reserved,
                    importance,
                    bundles: &bundles,
                };
                match allocations::grow(nodes, &self.ledgers, &held, &ask) {
                    Ok(change) => {
                        if !commit(meta, &change, &mut self.ledgers).await? {
                            return Ok(()); // the ledger moved: decided again on the next pass
                        }
                        if !change.interrupted.is_empty() {
                            tracing::info!(proton = proton.id, victims = ?change.interrupted, "a scale-up preempted less important protons");
                        }
                    }
                    Err(shortage) => {
                        decision.reason = format!("{}; capped at {reserved}: {shortage}", decision.reason);
                        decision.desired = reserved;
                        if decision.desired == from {
                            tracing::debug!(proton = proton.id, %shortage, "no room to scale up");
                            return Ok(());
                        }
                    }
                }
            }
        }
        let mut updated = proton.clone();
        updated.replica_count = decision.desired;
        updated.updated_at = nucleus_api::clock::now();
        let message = format!("Scaled from {from} to {} replica(s): {}", decision.desired, decision.reason);
        let event =
            WorkloadEvent::new(&proton.workload_id, "autoscaled", json!({ "message": message, "from": from, "to": decision.desired }));
        let txn = fence
            .guard(Txn::new())
            .require(&doc.key, doc.mod_revision)
            .put_json(&doc.key, &updated)?
            .put_json(&keys::event(&proton.workload_id, &event.id), &event)?;
        if !meta.write(txn).await?.applied() {
            return Ok(()); // the proton changed meanwhile: decided again on the next pass
        }
        tracing::info!(proton = proton.id, from, to = decision.desired, reason = decision.reason, "autoscaled");
        if decision.desired < from && allocations::holding(&self.ledgers, &proton.id).is_some() {
            let change = allocations::shrink(&self.ledgers, &proton.id, decision.desired);
            if !change.is_empty() && !commit(meta, &change, &mut self.ledgers).await? {
                tracing::debug!(proton = proton.id, "ledger moved; the stale reservation is released on a later pass");
            }
        }
        Ok(())
    }
}
