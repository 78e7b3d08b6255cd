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

use std::time::Duration;

use nucleus_api::replacement::{Replacement, ReplacementStatus};
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
/// `candidate_artifact` is the candidate artifact's `ArtifactInfo`, for the switch.
pub fn step<'a>(
    workload: &Workload,
    find: impl Fn(&str) -> Option<&'a Proton>,
    candidate_artifact: Option<serde_json::Value>,
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
                record.status = ReplacementStatus::Errored;
                record.message = Some(format!(
                    "Candidate proton {} failed: {reason}. The current proton keeps serving; fix the artifact or runtime and start a new replacement",
                    candidate.id
                ));
                step.protons.push(stopped(candidate, now));
                step.event = Some(("replacementErrored", record.message.clone().unwrap_or_default()));
                let mut w = workload.clone();
                w.replacement = Some(record.clone());
                w.updated_at = now;
                step.workload = Some(w);
                step.history = Some(record);
                return Some(step);
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
            // The switch: one write moves traffic and swaps the roles.
            record.status = ReplacementStatus::Finalizing;
            record.switched_at = Some(now);
            let mut w = workload.clone();
            w.proton_id = Some(candidate.id.clone());
            w.artifact_id = Some(record.candidate_artifact_id.clone());
            if candidate_artifact.is_some() {
                w.artifact = candidate_artifact;
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
            step.event = Some(("replacementSwitched", format!("Traffic switched to proton {}", candidate.id)));
            return Some(with_record(&w, record, step, now));
        }
        ReplacementStatus::Finalizing => {
            let switched = record.switched_at.unwrap_or(now);
            let keep = chrono::Duration::minutes(i64::from(record.config.keep_old_version_minutes));
            let drain = keep.max(chrono::Duration::from_std(DRAIN).unwrap_or_default());
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
