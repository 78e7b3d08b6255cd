//! The scheduler's Prometheus series: how long its reconcile passes take and how many inputs wait
//! for them, placements and preemptions, and the shard leases it takes and holds. Every
//! scheduler of the process shares the families; `scheduler` (its name) tells the series apart.

use std::sync::LazyLock;
use std::time::Duration;

use nucleus_telemetry::{CounterVec, GaugeVec, HistogramVec, LATENCY_BUCKETS};

use crate::lease::Held;

struct Families {
    reconcile_seconds: HistogramVec,
    queue_depth: GaugeVec,
    placements: CounterVec,
    preemptions: CounterVec,
    lease_acquisitions: CounterVec,
    leases_held: GaugeVec,
}

static FAMILIES: LazyLock<Families> = LazyLock::new(|| {
    let registry = nucleus_telemetry::global();
    Families {
        reconcile_seconds: registry.histogram_vec(
            "nucleus_scheduler_reconcile_seconds",
            "Duration of one reconcile pass of a scheduler over every proton and workload of the shards it holds.",
            &["scheduler"],
            LATENCY_BUCKETS,
        ),
        queue_depth: registry.gauge_vec(
            "nucleus_scheduler_queue_depth",
            "Inputs (meta watch events, agent and gateway reports) that were waiting for a scheduler when its last pass began.",
            &["scheduler"],
        ),
        placements: registry.counter_vec(
            "nucleus_scheduler_placements_total",
            "Attempts to place a proton on an agent, by result: placed, or unplaceable (no agent can take it now; counted at each pass).",
            &["scheduler", "result"],
        ),
        preemptions: registry.counter_vec(
            "nucleus_scheduler_preemptions_total",
            "Protons a scheduler stopped and unplaced to make room for a more important one.",
            &["scheduler"],
        ),
        lease_acquisitions: registry.counter_vec(
            "nucleus_scheduler_lease_acquisitions_total",
            "Shard leases a scheduler took (a shard handed over to it).",
            &["scheduler"],
        ),
        leases_held: registry.gauge_vec("nucleus_scheduler_leases_held", "Shard leases a scheduler holds.", &["scheduler"]),
    }
});

/// The series of one scheduler. Series are looked up when updated (a few times per pass at most),
/// so that a default one (of a worker's empty state) registers nothing until used.
#[derive(Debug, Clone, Default)]
pub(crate) struct SchedulerMetrics {
    scheduler: String,
}

impl SchedulerMetrics {
    pub(crate) fn of(scheduler: &str) -> SchedulerMetrics {
        SchedulerMetrics { scheduler: scheduler.to_owned() }
    }

    /// A reconcile pass began with `waiting` inputs having waited for it.
    pub(crate) fn pass_started(&self, waiting: usize) {
        FAMILIES.queue_depth.with(&[&self.scheduler]).set(waiting as f64);
    }

    pub(crate) fn pass_took(&self, took: Duration) {
        FAMILIES.reconcile_seconds.with(&[&self.scheduler]).observe(took.as_secs_f64());
    }

    pub(crate) fn placed(&self) {
        FAMILIES.placements.with(&[&self.scheduler, "placed"]).inc();
    }

    pub(crate) fn unplaceable(&self) {
        FAMILIES.placements.with(&[&self.scheduler, "unplaceable"]).inc();
    }

    pub(crate) fn preempted(&self) {
        FAMILIES.preemptions.with(&[&self.scheduler]).inc();
    }

    /// A lease round went from holding `before` to holding `after`: a shard held now but not
    /// before, or under a newer fencing token, is a lease taken.
    pub(crate) fn leases(&self, before: &Held, after: &Held) {
        let taken = after.iter().filter(|(group, token)| before.get(group) != Some(token)).count();
        FAMILIES.lease_acquisitions.with(&[&self.scheduler]).inc_by(taken as f64);
        FAMILIES.leases_held.with(&[&self.scheduler]).set(after.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the series `series` (name and labels as written) in the process's metrics.
    fn value(series: &str) -> Option<f64> {
        let text = nucleus_telemetry::encode();
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn lease_rounds_count_shards_taken_and_held() {
        let metrics = SchedulerMetrics::of("metrics-test-leases");
        let taken = r#"nucleus_scheduler_lease_acquisitions_total{scheduler="metrics-test-leases"}"#;
        let held = r#"nucleus_scheduler_leases_held{scheduler="metrics-test-leases"}"#;
        metrics.leases(&Held::new(), &Held::from([(1, 10), (2, 11)]));
        assert_eq!((value(taken), value(held)), (Some(2.0), Some(2.0)), "{}", nucleus_telemetry::encode());
        // Renewed (same tokens): nothing taken.
        metrics.leases(&Held::from([(1, 10), (2, 11)]), &Held::from([(1, 10), (2, 11)]));
        assert_eq!((value(taken), value(held)), (Some(2.0), Some(2.0)));
        // Shard 2 lost, shard 1 lost and taken again under a newer token, shard 3 handed over.
        metrics.leases(&Held::from([(1, 10), (2, 11)]), &Held::from([(1, 15), (3, 16)]));
        assert_eq!((value(taken), value(held)), (Some(4.0), Some(2.0)));
        metrics.leases(&Held::from([(1, 15), (3, 16)]), &Held::new());
        assert_eq!((value(taken), value(held)), (Some(4.0), Some(0.0)));
    }

    #[test]
    fn passes_placements_and_preemptions_are_counted_per_scheduler() {
        let metrics = SchedulerMetrics::of("metrics-test-placements");
        let other = SchedulerMetrics::of("metrics-test-other");
        metrics.pass_started(3);
        metrics.pass_took(Duration::from_millis(20));
        metrics.placed();
        metrics.placed();
        metrics.unplaceable();
        metrics.preempted();
        other.placed();
        let text = nucleus_telemetry::encode();
        let series = |name: &str, labels: &str| value(&format!(r#"{name}{{scheduler="metrics-test-placements"{labels}}}"#));
        assert_eq!(series("nucleus_scheduler_queue_depth", ""), Some(3.0), "{text}");
        assert_eq!(series("nucleus_scheduler_reconcile_seconds_count", ""), Some(1.0));
        assert_eq!(series("nucleus_scheduler_reconcile_seconds_bucket", r#",le="0.025""#), Some(1.0));
        assert_eq!(series("nucleus_scheduler_reconcile_seconds_bucket", r#",le="0.01""#), Some(0.0));
        assert_eq!(series("nucleus_scheduler_placements_total", r#",result="placed""#), Some(2.0));
        assert_eq!(series("nucleus_scheduler_placements_total", r#",result="unplaceable""#), Some(1.0));
        assert_eq!(series("nucleus_scheduler_preemptions_total", ""), Some(1.0));
        assert_eq!(value(r#"nucleus_scheduler_placements_total{scheduler="metrics-test-other",result="placed"}"#), Some(1.0));
    }
}
