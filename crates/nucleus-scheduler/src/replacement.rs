//! The rolling replacement state machine, as a pure function of the workload, its two protons and
//! the time: what to write next.
//!
//! - `submitted` → `initializing` once the candidate is being placed or started;
//! - `initializing` → `promoting` once every candidate replica is ready (the candidate shows
//!   `warming` while `warmupDurationMinutes` pass);
//! - `promoting` → `finalizing`: one write of the workload moves traffic to the candidate (its
//!   `protonId`, artifact and runtime) and swaps the roles; the old proton shows `draining`;
//! - `finalizing` → `completed` once the old proton, stopped after the drain period (at least
//!   [`DRAIN`], or `keepOldVersionMinutes`), is gone: the record moves to the history.
//! - A candidate that fails ends it `errored` (the candidate is stopped, the old proton keeps
//!   serving); a cancel (`deleting`) stops and removes the candidate.
//! - With a rollback gate (`config.rollback`), a ready candidate first takes a canary share of the
//!   traffic for the gate's window (`promoting`, `canaryStartedAt` set), then all of it while the
//!   old proton keeps running for another window. A breach in either phase ends it `errored`
//!   with the measurements: the canary is stopped, or after the switch the old proton takes the
//!   traffic back.

use std::time::Duration;

use nucleus_api::replacement::{GateReading, Replacement, ReplacementStatus, RollbackGate};
use nucleus_api::{DesiredState, Proton, ProtonRole, ProtonStatus, Workload};

/// The least time old replicas keep running after traffic moved away from them, so that
/// in-flight requests finish and every gateway has seen the switch.
pub const DRAIN: Duration = Duration::from_secs(5);

/// What to write for one step.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Step {
    /// The workload with its replacement (and, at the switch, its new proton and artifact).
    pub workload: Option<Workload>,
    /// Protons to rewrite (roles, desired state).
    pub protons: Vec<Proton>,
    /// Protons to delete with their snapshots.
    pub forget: Vec<String>,
    /// A record for the history, when the replacement ends.
    pub history: Option<Replacement>,
    /// (event type, message) to record.
    pub event: Option<(&'static str, String)>,
}

fn serving(status: ProtonStatus) -> bool {
    matches!(status, ProtonStatus::Running | ProtonStatus::Warming | ProtonStatus::Draining)
}

/// The next step, if there is one. `find` looks a proton of the workload up by id;
/// `next_artifact` is the `ArtifactInfo` of the artifact a step switches the workload to (the
/// candidate's at the switch, the old one's at a rollback); `reading` is what the candidate
/// showed in the current phase of a rollback gate (see [`gate_phase_start`]).
pub fn step<'a>(
    workload: &Workload,
    find: impl Fn(&str) -> Option<&'a Proton>,
    next_artifact: Option<nucleus_api::artifact::ArtifactInfo>,
    reading: Option<GateReading>,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Step> {
    let mut record = workload.active_replacement()?;
    let candidate = record.candidate_proton_ids.first().and_then(|id| find(id));
    let previous = record.previous_proton_ids.first().and_then(|id| find(id));
    let mut step = Step::default();
    match record.status {
        ReplacementStatus::Deleting => {
            match candidate {
                Some(c) if c.desired_state == DesiredState::Running => step.protons.push(stopped(c, now)),
                Some(c) if c.status != ProtonStatus::Stopped => return None, // still stopping
                _ => {
                    step.forget.extend(candidate.map(|c| c.id.clone()));
                    record.is_deleted = true;
                    record.deleted_at = Some(now);
                    record.message = Some("Cancelled; the current proton kept serving".to_owned());
                    step.event = Some(("replacementCancelled", format!("Replacement {} cancelled", record.id)));
                    return Some(finish(workload, record, None, step, now));
                }
            }
        }
        ReplacementStatus::Submitted | ReplacementStatus::Initializing | ReplacementStatus::Promoting => {
            let candidate = candidate?;
            if candidate.status.is_failure() {
                let reason = candidate.message.clone().unwrap_or_else(|| format!("it is {}", candidate.status));
                let message = format!(
                    "Candidate proton {} failed: {reason}. The current proton keeps serving; fix the artifact or runtime and start a new replacement",
                    candidate.id
                );
                step.protons.push(stopped(candidate, now));
                return Some(errored(workload.clone(), record, "replacementErrored", message, step, now));
            }
            if !serving(candidate.status) {
                if record.status == ReplacementStatus::Submitted && candidate.status != ProtonStatus::Submitted {
                    record.status = ReplacementStatus::Initializing;
                    step.event = Some(("replacementInitializing", format!("Candidate proton {} is starting", candidate.id)));
                    return Some(with_record(workload, record, step, now));
                }
                return None;
            }
            let warmup = chrono::Duration::minutes(i64::from(record.config.warmup_duration_minutes));
            let ready_since = candidate.running_since.unwrap_or(now);
            if now < ready_since + warmup {
                if record.status != ReplacementStatus::Promoting {
                    record.status = ReplacementStatus::Promoting;
                    step.event = Some(("replacementWarmingUp", format!("Candidate proton {} is ready; warming up", candidate.id)));
                    return Some(with_record(workload, record, step, now));
                }
                return None;
            }
            let mut passed = None;
            if let Some(gate) = record.config.rollback.clone() {
                let Some(since) = record.canary_started_at else {
                    record.status = ReplacementStatus::Promoting;
                    record.canary_started_at = Some(now);
                    step.event = Some((
                        "replacementCanary",
                        format!(
                            "Candidate proton {} takes {}% of the traffic for {}; it rolls back if {}",
                            candidate.id,
                            gate.canary_percent,
                            gate.window,
                            gate_terms(&gate)
                        ),
                    ));
                    return Some(with_record(workload, record, step, now));
                };
                let reading = reading.unwrap_or_default();
                if let Some(why) = gate.breach(&reading) {
                    let message = format!(
                        "Rolled back: canary proton {} broke the gate ({why}; {reading}). The current proton kept serving; fix the artifact and start a new replacement",
                        candidate.id
                    );
                    step.protons.push(stopped(candidate, now));
                    return Some(errored(workload.clone(), record, "replacementRolledBack", message, step, now));
                }
                if now < since + window_of(&gate) {
                    return None;
                }
                passed = Some(format!(" after the canary held the gate ({reading})"));
            }
            // The switch: one write moves traffic and swaps the roles.
            record.status = ReplacementStatus::Finalizing;
            record.switched_at = Some(now);
            let mut w = workload.clone();
            w.proton_id = Some(candidate.id.clone());
            w.artifact_id = Some(record.candidate_artifact_id.clone());
            if next_artifact.is_some() {
                w.artifact = next_artifact;
            }
            w.runtime = candidate.runtime.clone();
            w.status = ProtonStatus::Running;
            w.status_details = None;
            let mut promoted = candidate.clone();
            promoted.role = Some(ProtonRole::Active);
            promoted.updated_at = now;
            step.protons.push(promoted);
            if let Some(p) = previous {
                let mut old = p.clone();
                old.role = None;
                old.updated_at = now;
                step.protons.push(old);
            }
            let gated = passed.unwrap_or_default();
            step.event = Some(("replacementSwitched", format!("Traffic switched to proton {}{gated}", candidate.id)));
            return Some(with_record(&w, record, step, now));
        }
        ReplacementStatus::Finalizing => {
            let switched = record.switched_at.unwrap_or(now);
            let keep = chrono::Duration::minutes(i64::from(record.config.keep_old_version_minutes));
            let mut drain = keep.max(chrono::Duration::from_std(DRAIN).unwrap_or_default());
            if let Some(gate) = record.config.rollback.clone() {
                // The old proton stays until the candidate held the gate on all the traffic.
                let watched = window_of(&gate);
                drain = drain.max(watched);
                let reading = reading.unwrap_or_default();
                if let (Some(old), Some(candidate), true) = (previous, candidate, now < switched + watched)
                    && old.desired_state == DesiredState::Running
                    && let Some(why) = gate.breach(&reading)
                {
                    let message = format!(
                        "Rolled back: proton {} broke the gate after the switch ({why}; {reading}). Traffic is back on proton {}; fix the artifact and start a new replacement",
                        candidate.id, old.id
                    );
                    let mut w = workload.clone();
                    w.proton_id = Some(old.id.clone());
                    w.artifact_id = Some(old.artifact_id.clone());
                    if next_artifact.is_some() {
                        w.artifact = next_artifact;
                    }
                    w.runtime = old.runtime.clone();
                    w.status = ProtonStatus::Running;
                    let mut restored = old.clone();
                    restored.role = Some(ProtonRole::Active);
                    restored.updated_at = now;
                    let mut demoted = stopped(candidate, now);
                    demoted.role = None;
                    step.protons.extend([restored, demoted]);
                    return Some(errored(w, record, "replacementRolledBack", message, step, now));
                }
            }
            match previous {
                Some(p) if p.desired_state == DesiredState::Running => {
                    if now < switched + drain {
                        return None;
                    }
                    step.protons.push(stopped(p, now));
                    step.event = Some(("replacementDrained", format!("Old proton {} drained; stopping it", p.id)));
                    return Some(step);
                }
                Some(p) if p.status != ProtonStatus::Stopped => return None,
                _ => {
                    step.forget.extend(previous.map(|p| p.id.clone()));
                    step.event = Some(("replacementCompleted", format!("Replacement {} completed", record.id)));
                    return Some(finish(workload, record, Some(ReplacementStatus::Completed), step, now));
                }
            }
        }
        ReplacementStatus::Completed | ReplacementStatus::Errored | ReplacementStatus::Unknown => return None,
    }
    Some(step)
}

/// When the current phase of a gated replacement began (the canary's start, then the switch):
/// the candidate's requests since then are its reading. `None` when nothing is being watched.
pub fn gate_phase_start(record: &Replacement) -> Option<chrono::DateTime<chrono::Utc>> {
    record.config.rollback.as_ref()?;
    match record.status {
        ReplacementStatus::Promoting => record.canary_started_at,
        ReplacementStatus::Finalizing => record.switched_at,
        _ => None,
    }
}

fn window_of(gate: &RollbackGate) -> chrono::Duration {
    chrono::Duration::from_std(gate.window().unwrap_or(Duration::from_secs(60))).unwrap_or(chrono::Duration::minutes(1))
}

/// `server errors above 5.0% or p95 above 300 ms, over at least 20 requests`.
fn gate_terms(gate: &RollbackGate) -> String {
    let latency = gate.max_p95_latency_ms.map(|ms| format!(" or p95 above {ms} ms")).unwrap_or_default();
    format!("server errors go above {:.1}%{latency}, over at least {} requests", gate.max_error_rate * 100.0, gate.min_requests)
}

/// The replacement ends `errored`: the record stays on `workload` (the one to write) and goes
/// to the history, with `message` as its message and event.
fn errored(
    mut workload: Workload,
    mut record: Replacement,
    event: &'static str,
    message: String,
    mut step: Step,
    now: chrono::DateTime<chrono::Utc>,
) -> Step {
    record.status = ReplacementStatus::Errored;
    record.message = Some(message.clone());
    record.updated_at = now;
    step.event = Some((event, message));
    workload.replacement = Some(record.clone());
    workload.updated_at = now;
    step.workload = Some(workload);
    step.history = Some(record);
    step
}

fn stopped(proton: &Proton, now: chrono::DateTime<chrono::Utc>) -> Proton {
    let mut p = proton.clone();
    p.desired_state = DesiredState::Stopped;
    p.updated_at = now;
    p
}

fn with_record(workload: &Workload, mut record: Replacement, mut step: Step, now: chrono::DateTime<chrono::Utc>) -> Step {
    record.updated_at = now;
    let mut w = workload.clone();
    w.replacement = Some(record.clone());
    w.updated_at = now;
    step.workload = Some(w);
    step
}

/// The replacement is over: off the workload, into the history.
fn finish(
    workload: &Workload,
    mut record: Replacement,
    status: Option<ReplacementStatus>,
    mut step: Step,
    now: chrono::DateTime<chrono::Utc>,
) -> Step {
    if let Some(status) = status {
        record.status = status;
    }
    record.updated_at = now;
    let mut w = workload.clone();
    w.replacement = None;
    w.updated_at = now;
    step.workload = Some(w);
    step.history = Some(record);
    step
}

/// The status to show for a proton in a replacement: `warming` for a ready candidate waiting out
/// its warm-up, `draining` for a running old proton after the switch.
pub fn shown_status(workload: &Workload, proton: &Proton, status: ProtonStatus) -> ProtonStatus {
    let Some(record) = workload.replacement_record() else { return status };
    let is = |ids: &[String]| ids.contains(&proton.id);
    match record.status {
        ReplacementStatus::Promoting if status == ProtonStatus::Running && is(&record.candidate_proton_ids) => ProtonStatus::Warming,
        ReplacementStatus::Finalizing if status == ProtonStatus::Running && is(&record.previous_proton_ids) => ProtonStatus::Draining,
        _ => status,
    }
}

#[cfg(test)]
mod tests;
