//! The agent's Prometheus series: its replicas by phase and readiness (read from the status hub
//! when scraped), how long Launch calls take, and replicas restarted.

use std::sync::LazyLock;

use nucleus_telemetry::{CounterVec, HistogramVec, LATENCY_BUCKETS, Sample};

use nucleus_proto::agent::v1::ProtonReport;

pub(crate) struct AgentMetrics {
    pub launch: HistogramVec,
    pub restarts: CounterVec,
}

static METRICS: LazyLock<AgentMetrics> = LazyLock::new(|| {
    let registry = nucleus_telemetry::global();
    AgentMetrics {
        launch: registry.histogram_vec(
            "nucleus_agent_launch_seconds",
            "Time an agent takes to act on a Launch (replicas started or re-scaled, not yet ready).",
            &["agent"],
            LATENCY_BUCKETS,
        ),
        restarts: registry.counter_vec(
            "nucleus_agent_replica_restarts_total",
            "Replica containers restarted after they exited or failed their liveness probe (by the process driver, or seen restarted by the kubelet).",
            &["driver"],
        ),
    }
});

pub(crate) fn metrics() -> &'static AgentMetrics {
    &METRICS
}

/// Reports `agent`'s replicas by phase and readiness at each scrape, from `reports` (the status
/// hub's snapshot; `None` once the agent is gone).
pub(crate) fn watch_replicas(agent: &str, reports: impl Fn() -> Option<Vec<ProtonReport>> + Send + Sync + 'static) {
    let agent = agent.to_owned();
    nucleus_telemetry::global().collector(
        "nucleus_agent_replicas",
        "Replicas an agent runs, by phase (pending, running, succeeded, failed, unknown) and readiness.",
        &["agent", "phase", "ready"],
        Box::new(move || {
            let mut counts: std::collections::BTreeMap<(String, bool), f64> = Default::default();
            for report in reports()? {
                for replica in &report.replicas {
                    let ready = replica.conditions.iter().any(|c| c.r#type == "Ready" && c.met);
                    *counts.entry((replica.phase.clone(), ready)).or_default() += 1.0;
                }
            }
            Some(
                counts
                    .into_iter()
                    .map(|((phase, ready), count)| Sample::new(&[&agent, &phase, if ready { "true" } else { "false" }], count))
                    .collect(),
            )
        }),
    );
}
