//! The status hub: the last report of every proton and a broadcast of the ones that change.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, SecondsFormat, Utc};
use nucleus_proto::agent::v1::ProtonReport;
use tokio::sync::broadcast;

/// Changes buffered for watchers; one that falls further behind is resent the full state.
const CHANGES_BUFFER: usize = 256;

#[derive(Clone)]
pub(crate) struct StatusHub {
    inner: Arc<HubInner>,
}

struct HubInner {
    reports: Mutex<BTreeMap<String, ProtonReport>>,
    changes: broadcast::Sender<ProtonReport>,
}

impl StatusHub {
    pub(crate) fn new() -> StatusHub {
        let (changes, _) = broadcast::channel(CHANGES_BUFFER);
        StatusHub { inner: Arc::new(HubInner { reports: Mutex::new(BTreeMap::new()), changes }) }
    }

    /// Records `report` and broadcasts it if it differs from the last one of its proton in
    /// anything but `observed_at` and `log_tail` (logs alone do not make a change, or every
    /// request a replica logs would be a report).
    pub(crate) fn publish(&self, mut report: ProtonReport) {
        let mut reports = self.reports();
        if reports.get(&report.proton_id).is_some_and(|last| same_state(last, &report)) {
            return;
        }
        report.observed_at = rfc3339(nucleus_api::clock::now());
        reports.insert(report.proton_id.clone(), report.clone());
        // No receiver is not an error: nobody is watching right now.
        let _ = self.inner.changes.send(report);
    }

    /// The current report of every proton.
    pub(crate) fn snapshot(&self) -> Vec<ProtonReport> {
        self.reports().values().cloned().collect()
    }

    /// The current reports and a receiver of every later change, taken atomically so that no
    /// change falls between the two.
    pub(crate) fn subscribe(&self) -> (Vec<ProtonReport>, broadcast::Receiver<ProtonReport>) {
        let reports = self.reports();
        (reports.values().cloned().collect(), self.inner.changes.subscribe())
    }

    fn reports(&self) -> MutexGuard<'_, BTreeMap<String, ProtonReport>> {
        // The map is consistent even if a holder panicked: every update is a single insert.
        self.inner.reports.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn same_state(a: &ProtonReport, b: &ProtonReport) -> bool {
    let strip = |report: &ProtonReport| {
        let mut report = report.clone();
        report.observed_at.clear();
        report.replicas.iter_mut().for_each(|replica| replica.log_tail.clear());
        report
    };
    strip(a) == strip(b)
}

pub(crate) fn rfc3339(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use nucleus_proto::agent::v1::{Lifecycle, ReplicaStatus};

    use super::*;

    fn report(lifecycle: Lifecycle, log_line: &str) -> ProtonReport {
        ProtonReport {
            proton_id: "p".into(),
            lifecycle: lifecycle as i32,
            replicas: vec![ReplicaStatus { name: "p-0".into(), log_tail: vec![log_line.into()], ..Default::default() }],
            ..Default::default()
        }
    }

    #[test]
    fn only_changes_are_broadcast() {
        let hub = StatusHub::new();
        let (initial, mut changes) = hub.subscribe();
        assert!(initial.is_empty());

        hub.publish(report(Lifecycle::Running, "a"));
        hub.publish(report(Lifecycle::Running, "b"));
        hub.publish(report(Lifecycle::Stopping, "b"));

        assert_eq!(changes.try_recv().map(|r| r.lifecycle()).ok(), Some(Lifecycle::Running));
        assert_eq!(changes.try_recv().map(|r| r.lifecycle()).ok(), Some(Lifecycle::Stopping));
        assert!(changes.try_recv().is_err(), "a log line alone must not be broadcast");
        let snapshot = hub.snapshot();
        assert_eq!(snapshot.len(), 1);
        assert!(!snapshot[0].observed_at.is_empty());
    }
}
