//! The worker's replacement pass: each replacement of its shards taken one step further by
//! [`replacement::step`] (with the candidate's gate reading, when a rollback gate watches it),
//! and the step written in one fenced transaction.

use nucleus_api::replacement::GateReading;
use nucleus_api::stats::MinuteStats;
use nucleus_api::{Workload, WorkloadEvent};
use nucleus_client::{MetaClient, Txn, Versioned, keys};
use serde_json::json;

use super::World;
use crate::Error;
use crate::lease::{Fence, Held};
use crate::replacement;

impl World {
    /// Takes every replacement of this worker's shards one step further (see [`replacement`]).
    pub(super) async fn advance_replacements(&mut self, meta: &MetaClient, shard_count: u64, leases: &Held) {
        let now = nucleus_api::clock::now();
        let under_way: Vec<(Versioned<Workload>, Fence)> = self
            .workloads
            .values()
            .filter(|w| w.value.active_replacement().is_some())
            .filter_map(|w| {
                let group = keys::group_of_key(&w.key, shard_count);
                Some((w.clone(), Fence { group, token: *leases.get(&group)? }))
            })
            .collect();
        for (workload, fence) in under_way {
            if let Err(err) = self.advance_replacement(meta, fence, &workload, now).await {
                tracing::warn!(workload = workload.value.id, error = %err, "replacement step failed; will retry");
            }
        }
    }

    async fn advance_replacement(
        &mut self,
        meta: &MetaClient,
        fence: Fence,
        workload: &Versioned<Workload>,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), Error> {
        let id = &workload.value.id;
        let find = |proton: &str| self.protons.get(&keys::proton(id, proton)).map(|d| &d.value);
        let reading = match workload.value.active_replacement().and_then(|r| Some((replacement::gate_phase_start(&r)?, r))) {
            Some((since, record)) => match record.candidate_proton_ids.first() {
                Some(candidate) => Some(gate_reading(meta, id, candidate, since).await?),
                None => None,
            },
            None => None,
        };
        let Some(mut step) = replacement::step(&workload.value, find, None, reading, now) else { return Ok(()) };
        let switching = step.workload.as_ref().is_some_and(|w| w.proton_id != workload.value.proton_id);
        if switching && let Some(next) = &step.workload {
            // The switch also shows the new artifact: read it once, now.
            let artifact = match &next.artifact_id {
                Some(a) => meta.get_json::<nucleus_api::Artifact>(&keys::artifact(a)).await?.map(|a| a.value.info()),
                None => None,
            };
            let find = |proton: &str| self.protons.get(&keys::proton(id, proton)).map(|d| &d.value);
            step = replacement::step(&workload.value, find, artifact, reading, now).unwrap_or(step);
        }
        let mut txn = fence.guard(Txn::new()).require(&workload.key, workload.mod_revision);
        if let Some(w) = &step.workload {
            txn = txn.put_json(&workload.key, w)?;
        }
        for proton in &step.protons {
            let key = keys::proton(id, &proton.id);
            let revision = self.protons.get(&key).map_or(0, |d| d.mod_revision);
            txn = txn.require(&key, revision).put_json(&key, proton)?;
        }
        for proton in &step.forget {
            let key = keys::proton(id, proton);
            let revision = self.protons.get(&key).map_or(0, |d| d.mod_revision);
            txn = txn.require(&key, revision).delete(&key).delete(&keys::snapshot(id, proton));
        }
        if let Some(record) = &step.history {
            txn = txn.put_json(&keys::history(id, &record.id), record)?;
        }
        if let Some((event_type, message)) = &step.event {
            let event = WorkloadEvent::new(id, event_type, json!({ "message": message }));
            txn = txn.put_json(&keys::event(id, &event.id), &event)?;
        }
        if meta.write(txn).await?.applied() {
            if let Some((event_type, message)) = &step.event {
                tracing::info!(workload = id, step = event_type, message, "replacement");
            }
            for proton in &step.forget {
                self.done.remove(proton);
                self.written.remove(proton);
            }
        }
        Ok(())
    }
}

/// The candidate `proton`'s requests in the minutes from `since` on (the minute of `since`
/// included: the candidate took no traffic before its phase began).
async fn gate_reading(meta: &MetaClient, workload: &str, proton: &str, since: chrono::DateTime<chrono::Utc>) -> Result<GateReading, Error> {
    let first_minute = since.timestamp().div_euclid(60);
    let mut sum = MinuteStats::default();
    for doc in meta.list_json::<MinuteStats>(&keys::stats_of_proton(workload, proton)).await? {
        // stats/<workload>/<proton>/<minute>/<gateway>
        let minute = doc.key.rsplit('/').nth(1).and_then(|m| m.parse::<i64>().ok());
        if minute.is_some_and(|m| m >= first_minute) {
            sum.merge(&doc.value);
        }
    }
    Ok(GateReading { requests: sum.total, server_errors: sum.server_errors, p95_ms: sum.latency_quantile_ms(0.95) })
}
