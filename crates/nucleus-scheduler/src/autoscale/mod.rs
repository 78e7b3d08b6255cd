//! Autoscaling: the signals of every group (the gateways' request load, in memory only: no meta
//! write per sample), the pure [`decider`], and the per-proton memory the worker keeps. Only
//! decisions are written (the proton's `replicaCount`, with an `autoscaled` event).

pub mod decider;
pub mod signals;

use std::collections::HashMap;

use nucleus_api::Proton;
use nucleus_api::autoscaling::{Autoscaling, ScalingMetric};
use nucleus_proto::agent::v1::ScrapedMetric;
use tokio::time::Instant;

pub use decider::{Decision, Group, Observation, Scaler, Settings};
pub use signals::{Loads, Usage};

/// How often a proton's load is sampled into its scaler.
const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_millis(900);

/// The worker's autoscaling memory: the gateways' loads and each autoscaled proton's scaler.
#[derive(Debug, Default)]
pub struct Autoscaler {
    pub settings: Settings,
    pub loads: Loads,
    pub usage: Usage,
    scalers: HashMap<String, (Instant, Scaler)>,
}

impl Autoscaler {
    pub fn new(settings: Settings) -> Autoscaler {
        Autoscaler { settings, ..Autoscaler::default() }
    }

    /// Samples the proton's load (at most every [`SAMPLE_EVERY`]) and decides its replicas.
    pub fn decide(&mut self, proton: &Proton, autoscaling: &Autoscaling, ready: u32, now: Instant) -> Decision {
        let total = self.loads.total(&proton.id, now);
        let observation = signals::observation(autoscaling, total, self.usage.of(&proton.id, now));
        let (sampled, scaler) =
            self.scalers.entry(proton.id.clone()).or_insert_with(|| (now.checked_sub(SAMPLE_EVERY).unwrap_or(now), Scaler::new(now)));
        if now.saturating_duration_since(*sampled) >= SAMPLE_EVERY {
            scaler.observe(now, &observation, &self.settings);
            *sampled = now;
        }
        let (min, max) = autoscaling.bounds();
        let targets: Vec<f64> = autoscaling.policies.iter().map(|p| p.target).collect();
        let group = Group { current: proton.replica_count, ready, min, max };
        scaler.decide(now, &targets, group, observation.queued, &self.settings)
    }

    /// What the agent's usage poll must measure for `proton`, if anything.
    pub fn usage_query(proton: &Proton) -> Option<nucleus_proto::agent::v1::UsageQuery> {
        let autoscaling = proton.runtime.autoscaling()?;
        let cpu = autoscaling.policies.iter().any(|p| p.scaling_metric == ScalingMetric::CpuAverageUtilization);
        let metrics: Vec<ScrapedMetric> = autoscaling
            .policies
            .iter()
            .filter_map(|p| Some(ScrapedMetric { name: p.scaling_metric.prometheus_name()?.to_owned(), path: p.metrics_path().to_owned() }))
            .collect();
        (cpu || !metrics.is_empty()).then(|| nucleus_proto::agent::v1::UsageQuery { proton_id: proton.id.clone(), cpu, metrics })
    }

    /// Forgets the scalers of protons no longer autoscaled here.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.scalers.retain(|proton, _| keep(proton));
    }
}
