//! `PATCH /workloads/{id}/settings` that changes only autoscaling (bounds, targets, policies of
//! groups that autoscale before and after): applied in place, with no rolling replacement. The
//! workload's and the active proton's runtime are rewritten in one transaction, the proton's
//! replica count is brought inside the new bounds, and the change is an event and a completed
//! record in the history (the answer has the `Replacement` shape the endpoint always answers with).

use nucleus_api::replacement::{Replacement, ReplacementStatus};
use nucleus_api::workload::GroupRuntime;
use nucleus_api::{Proton, Workload, WorkloadEvent, WorkloadRuntime};
use nucleus_client::{Txn, Versioned, keys};
use serde_json::json;

use crate::auth::Caller;
use crate::replacements::TENANT_ID;
use crate::{ApiError, AppState};

/// Whether `new` differs from `current` and only in the autoscaling of groups that autoscale in
/// both (both normalized).
pub(crate) fn only_autoscaling_changed(current: &WorkloadRuntime, new: &WorkloadRuntime) -> bool {
    let autoscaled = |g: &GroupRuntime| g.autoscaling.as_ref().is_some_and(|a| a.enabled);
    let strip = |rt: &WorkloadRuntime| {
        let mut rt = rt.clone();
        for g in &mut rt.container_groups {
            g.autoscaling = None;
            g.resolved_bundle = None;
        }
        rt
    };
    let same_groups = current.container_groups.len() == new.container_groups.len()
        && current.container_groups.iter().zip(&new.container_groups).all(|(a, b)| a.name == b.name && autoscaled(a) == autoscaled(b));
    let changed = current.container_groups.iter().zip(&new.container_groups).any(|(a, b)| autoscaled(a) && a.autoscaling != b.autoscaling);
    same_groups && changed && strip(current) == strip(new)
}

/// Applies `runtime` (normalized, checked) to the workload and its active proton in place.
pub(crate) async fn apply(
    state: &AppState,
    caller: &Caller,
    workload: &Versioned<Workload>,
    runtime: WorkloadRuntime,
) -> Result<Replacement, ApiError> {
    let id = &workload.value.id;
    let Some(proton_id) = workload.value.proton_id.clone() else {
        return Err(ApiError::Unprocessable(format!("Workload {id} has no active proton to change")));
    };
    let proton_key = keys::proton(id, &proton_id);
    let Some(proton) = state.meta.get_json::<Proton>(&proton_key).await? else {
        return Err(ApiError::Conflict(format!("Workload {id} changed meanwhile; retry")));
    };
    let now = nucleus_api::clock::now();
    let mut p = proton.value.clone();
    for group in &mut p.runtime.container_groups {
        if let Some(new) = runtime.container_groups.iter().find(|g| g.name == group.name) {
            group.autoscaling.clone_from(&new.autoscaling);
        }
    }
    if let Some((min, max)) = p.runtime.autoscaling().map(|a| a.bounds()) {
        // A group resting at zero stays there if zero is still allowed; otherwise within bounds.
        p.replica_count = p.replica_count.clamp(min, max);
    }
    p.updated_at = now;
    let mut w = workload.value.clone();
    let resolved: Vec<_> = w.runtime.container_groups.iter().map(|g| (g.name.clone(), g.resolved_bundle.clone())).collect();
    w.runtime = runtime.clone();
    for group in &mut w.runtime.container_groups {
        if let Some((_, bundle)) = resolved.iter().find(|(name, _)| *name == group.name) {
            group.resolved_bundle.clone_from(bundle);
        }
    }
    w.updated_at = now;
    let name = format!("autoscaling of {} changed in place", w.name);
    let artifact = w.artifact_id.clone().unwrap_or_default();
    let record = Replacement {
        candidate_proton_ids: vec![proton_id.clone()],
        previous_proton_ids: vec![proton_id.clone()],
        runtime: Some(runtime),
        ..Replacement::new(name, id, &artifact, ReplacementStatus::Completed, caller.id(), TENANT_ID, now)
    };
    let mut event = WorkloadEvent::new(
        id,
        "autoscalingUpdated",
        json!({
            "message": format!("Autoscaling changed in place (no replacement); the proton asks for {} replica(s) now", p.replica_count),
            "protonId": proton_id, "replicaCount": p.replica_count,
        }),
    );
    event.actor_id = Some(caller.id().to_owned());
    let txn = Txn::new()
        .require(&workload.key, workload.mod_revision)
        .require(&proton.key, proton.mod_revision)
        .put_json(&workload.key, &w)?
        .put_json(&proton.key, &p)?
        .put_json(&keys::history(id, &record.id), &record)?
        .put_json(&keys::event(id, &event.id), &event)?;
    if !state.meta.write(txn).await?.applied() {
        return Err(ApiError::Conflict(format!("Workload {id} changed meanwhile (a status change or another settings change); retry")));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(value: serde_json::Value) -> WorkloadRuntime {
        serde_json::from_value::<WorkloadRuntime>(value).unwrap().normalized(&["default".to_owned()])
    }

    #[test]
    fn only_a_change_of_autoscaling_on_an_autoscaled_group_is_applied_in_place() {
        let policies = serde_json::json!([{"scalingMetric": "httpRequestsConcurrency", "target": 1}]);
        let current = runtime(
            serde_json::json!({"containerGroups": [{"autoscaling": {"minReplicaCount": 1, "maxReplicaCount": 2, "policies": policies}}]}),
        );
        let wider = runtime(
            serde_json::json!({"containerGroups": [{"autoscaling": {"minReplicaCount": 1, "maxReplicaCount": 5, "policies": policies}}]}),
        );
        assert!(only_autoscaling_changed(&current, &wider));
        assert!(!only_autoscaling_changed(&current, &current.clone()), "unchanged settings still roll, as the spec says");
        let fixed = runtime(serde_json::json!({"containerGroups": [{"replicaCount": 2}]}));
        assert!(!only_autoscaling_changed(&current, &fixed), "leaving autoscaling rolls");
        assert!(!only_autoscaling_changed(&fixed, &current), "entering autoscaling rolls");
        let mut other = wider.clone();
        other.invoke_timeout_seconds = Some(5);
        assert!(!only_autoscaling_changed(&current, &other), "any other change rolls");
    }
}
