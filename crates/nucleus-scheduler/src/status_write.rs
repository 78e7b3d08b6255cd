//! What a reconcile pass writes about a proton's status, decided without I/O: the proton's new
//! document, the replica snapshot, the workload's status (when the proton is its active one) and a
//! status-change event, each only when it changed. The worker puts what comes back into one
//! conditional, fenced transaction.

use chrono::{DateTime, Utc};
use nucleus_api::proton::{OverallStatus, ReplicaStatusesSnapshot};
use nucleus_api::workload::WorkloadStatusDetails;
use nucleus_api::{Proton, ProtonStatus, Workload, WorkloadEvent};
use serde_json::json;

use crate::plan::{AgentView, Report};

/// Lines of a replica's log kept on a proton that is not serving.
pub const LOG_TAIL_LINES: usize = 20;

/// What is known when the status is written.
pub struct StatusInput<'a> {
    pub proton: &'a Proton,
    /// The proton's workload, if it still exists.
    pub workload: Option<&'a Workload>,
    pub view: &'a AgentView,
    /// The status and message [`crate::plan::plan`] decided.
    pub status: ProtonStatus,
    pub message: Option<String>,
    /// The snapshot this worker last wrote for the proton.
    pub last_written: Option<&'a ReplicaStatusesSnapshot>,
    pub now: DateTime<Utc>,
}

/// The documents to write; `None` where nothing changed.
#[derive(Debug, Default, PartialEq)]
pub struct StatusWrite {
    pub proton: Option<Proton>,
    pub snapshot: Option<ReplicaStatusesSnapshot>,
    pub workload: Option<Workload>,
    pub event: Option<WorkloadEvent>,
}

impl StatusWrite {
    pub fn is_empty(&self) -> bool {
        self.proton.is_none() && self.snapshot.is_none() && self.workload.is_none() && self.event.is_none()
    }
}

pub fn status_write(input: StatusInput<'_>) -> StatusWrite {
    let StatusInput { proton, workload, view, status, message, last_written, now } = input;
    let reported = match view {
        AgentView::Reported(Report::Running(s) | Report::Stopping(s)) => Some(s),
        _ => None,
    };
    let snapshot = match view {
        // Nothing runs: say so once, replacing the last snapshot that listed replicas.
        AgentView::Reported(Report::Absent | Report::Stopped) => last_written
            .filter(|previous| !previous.replicas.is_empty() || previous.overall_status.state != status)
            .map(|_| ReplicaStatusesSnapshot {
                overall_status: OverallStatus { state: status, summary: format!("no replicas ({status})"), last_updated: now.to_rfc3339() },
                replicas: Vec::new(),
            }),
        _ => reported.cloned(),
    };
    let snapshot = snapshot.filter(|s| {
        last_written.is_none_or(|w| {
            // `lastUpdated` alone changing is not news.
            (&w.replicas, w.overall_status.state, &w.overall_status.summary)
                != (&s.replicas, s.overall_status.state, &s.overall_status.summary)
        })
    });
    let log_tail = reported.and_then(|s| {
        let replica = s.replicas.iter().find(|r| !r.is_ready()).or(s.replicas.first())?;
        let lines = &replica.log_tail;
        (!lines.is_empty()).then(|| lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].to_vec())
    });
    let log_tail = if status.for_workload() == ProtonStatus::Running { None } else { log_tail.or(proton.status_details.log_tail.clone()) };

    let mut updated = proton.clone();
    updated.status = status;
    updated.message = message.clone();
    if status == ProtonStatus::Stopped && matches!(view, AgentView::Reported(Report::Absent | Report::Stopped)) {
        // Nothing runs any more: give up the placement (and so the reservation); a start places it afresh.
        updated.agent = None;
    }
    updated.status_details.log_tail = log_tail.clone();
    let serving = status.for_workload() == ProtonStatus::Running; // running, warming or draining
    if serving && updated.running_since.is_none() {
        updated.running_since = Some(now);
    } else if !serving {
        updated.running_since = None;
    }
    let proton_changed = updated.status != proton.status
        || updated.message != proton.message
        || updated.status_details != proton.status_details
        || updated.running_since != proton.running_since
        || updated.agent != proton.agent;
    let event = (proton_changed && updated.status != proton.status).then(|| status_event(&updated, proton.status));
    let workload = workload.filter(|w| w.proton_id.as_deref() == Some(proton.id.as_str())).and_then(|w| {
        let mut wl = w.clone();
        wl.status = status.for_workload();
        wl.status_details = (message.is_some() || log_tail.is_some())
            .then(|| WorkloadStatusDetails { log_tail: log_tail.clone(), message: message.clone() });
        (wl.status != w.status || wl.status_details != w.status_details).then(|| {
            wl.updated_at = now;
            wl
        })
    });
    let proton = proton_changed.then(|| {
        updated.updated_at = now;
        updated
    });
    StatusWrite { proton, snapshot, workload, event }
}

pub(crate) fn status_event(proton: &Proton, previous: ProtonStatus) -> WorkloadEvent {
    let message = match &proton.message {
        Some(m) => format!("Proton {} is {}: {m}", proton.id, proton.status),
        None => format!("Proton {} is {} (was {previous})", proton.id, proton.status),
    };
    let details = json!({ "message": message, "protonId": proton.id, "status": proton.status, "previousStatus": previous });
    WorkloadEvent::new(&proton.workload_id, "protonStatusChanged", details)
}

#[cfg(test)]
mod tests;
