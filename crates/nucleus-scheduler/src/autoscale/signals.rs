//! The gateways' load reports, kept in memory: the latest of each gateway for each proton, summed
//! over the gateways that reported lately (a silent gateway's share times out).

use std::collections::HashMap;
use std::time::Duration;

use nucleus_api::autoscaling::{Autoscaling, ScalingMetric};
use nucleus_proto::agent::v1::{ProtonUsage, ReplicaUsage};
use nucleus_proto::gateway::v1::{LoadReport, WorkloadLoad};
use tokio::time::Instant;

use super::Observation;

/// A gateway's report older than this no longer counts.
pub const SILENT_AFTER: Duration = Duration::from_secs(3);

/// One proton's load summed over the gateways.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Total {
    pub concurrency: f64,
    pub in_flight: f64,
    pub requests_per_second: f64,
    pub queued: u32,
    /// How many gateways' reports are in it.
    pub gateways: usize,
}

#[derive(Debug, Default)]
pub struct Loads {
    /// gateway → proton → (when received, what it said)
    by_gateway: HashMap<String, HashMap<String, (Instant, WorkloadLoad)>>,
}

impl Loads {
    pub fn record(&mut self, report: LoadReport, now: Instant) {
        let protons = self.by_gateway.entry(report.gateway).or_default();
        for load in report.workloads {
            let proton = load.proton_id.clone();
            match protons.get_mut(&proton) {
                // A wake says only how many requests are held: the rest of the last report stands.
                Some((_, last)) if report.wake => last.queued = load.queued,
                _ => {
                    protons.insert(proton, (now, load));
                }
            }
        }
    }

    /// Forgets a gateway that went away.
    pub fn forget(&mut self, gateway: &str) {
        self.by_gateway.remove(gateway);
    }

    pub fn total(&self, proton: &str, now: Instant) -> Option<Total> {
        let mut total = Total::default();
        for protons in self.by_gateway.values() {
            let Some((at, load)) = protons.get(proton) else { continue };
            if now.saturating_duration_since(*at) > SILENT_AFTER {
                continue;
            }
            total.concurrency += load.concurrency;
            total.in_flight += f64::from(load.in_flight);
            if load.interval_seconds > 0.0 {
                total.requests_per_second += load.requests as f64 / load.interval_seconds;
            }
            total.queued += load.queued;
            total.gateways += 1;
        }
        (total.gateways > 0).then_some(total)
    }
}

/// The agents' answers to the usage poll, by proton.
#[derive(Debug, Default)]
pub struct Usage {
    by_proton: HashMap<String, (Instant, Vec<ReplicaUsage>)>,
}

impl Usage {
    pub fn record(&mut self, protons: Vec<ProtonUsage>, now: Instant) {
        for proton in protons {
            self.by_proton.insert(proton.proton_id, (now, proton.replicas));
        }
        self.by_proton.retain(|_, (at, _)| now.saturating_duration_since(*at) <= SILENT_AFTER * 10);
    }

    /// The proton's replicas as last measured, if that is recent.
    pub fn of(&self, proton: &str, now: Instant) -> Option<&[ReplicaUsage]> {
        let (at, replicas) = self.by_proton.get(proton)?;
        (now.saturating_duration_since(*at) <= SILENT_AFTER).then_some(replicas.as_slice())
    }
}

/// The sum over ready replicas of what `value` reads of each; `None` when none has it.
fn sum_ready(replicas: Option<&[ReplicaUsage]>, value: impl Fn(&ReplicaUsage) -> Option<f64>) -> Option<f64> {
    replicas?.iter().filter(|r| r.ready).filter_map(value).fold(None, |sum, v| Some(sum.unwrap_or(0.0) + v))
}

/// What `autoscaling`'s policies see, in policy order: HTTP metrics from the gateways' `total`
/// (held requests count as concurrency: the replicas will have to serve them), CPU and scraped
/// metrics summed over the ready replicas of `usage` (desired = ceil(sum / target), as HPA's
/// average-value targets). `None` where nothing was measured (held at the current count).
pub fn observation(autoscaling: &Autoscaling, total: Option<Total>, usage: Option<&[ReplicaUsage]>) -> Observation {
    let values = autoscaling
        .policies
        .iter()
        .map(|policy| {
            let queued = total.map_or(0.0, |t| f64::from(t.queued));
            match &policy.scaling_metric {
                ScalingMetric::HttpRequestsConcurrency => total.map(|t| t.concurrency + queued),
                ScalingMetric::HttpRequestsInFlight => total.map(|t| t.in_flight + queued),
                ScalingMetric::HttpRequestsPerHour => total.map(|t| t.requests_per_second * 3600.0),
                ScalingMetric::CpuAverageUtilization => sum_ready(usage, |r| r.cpu_percent),
                scraped => {
                    let name = scraped.prometheus_name()?;
                    sum_ready(usage, |r| r.metrics.get(name).copied())
                }
            }
        })
        .collect();
    let (queued, active) = match total {
        Some(t) => (t.queued, t.queued > 0 || t.in_flight > 0.0 || t.concurrency > 0.0 || t.requests_per_second > 0.0),
        None => (0, false),
    };
    Observation { values, queued, active }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(proton: &str, concurrency: f64, requests: u64, queued: u32) -> WorkloadLoad {
        WorkloadLoad {
            workload_id: "w".into(),
            proton_id: proton.into(),
            concurrency,
            in_flight: concurrency as u32,
            requests,
            queued,
            interval_seconds: 1.0,
        }
    }

    fn report(gateway: &str, loads: Vec<WorkloadLoad>, wake: bool) -> LoadReport {
        LoadReport { gateway: gateway.into(), workloads: loads, wake }
    }

    #[test]
    fn gateways_are_summed_and_a_silent_one_times_out() {
        let start = Instant::now();
        let mut loads = Loads::default();
        loads.record(report("a", vec![load("p", 3.0, 30, 0)], false), start);
        loads.record(report("b", vec![load("p", 2.0, 20, 1)], false), start + Duration::from_secs(2));
        let both = loads.total("p", start + Duration::from_secs(2)).unwrap();
        assert_eq!((both.concurrency, both.requests_per_second, both.queued, both.gateways), (5.0, 50.0, 1, 2));
        let later = loads.total("p", start + Duration::from_secs(4)).unwrap();
        assert_eq!((later.concurrency, later.gateways), (2.0, 1), "gateway a went silent");
        assert_eq!(loads.total("p", start + Duration::from_secs(10)), None);
        assert_eq!(loads.total("other", start), None);
    }

    #[test]
    fn a_wake_updates_only_the_held_count() {
        let start = Instant::now();
        let mut loads = Loads::default();
        loads.record(report("a", vec![load("p", 4.0, 40, 0)], false), start);
        loads.record(report("a", vec![load("p", 0.0, 0, 7)], true), start);
        let total = loads.total("p", start).unwrap();
        assert_eq!((total.concurrency, total.queued), (4.0, 7));
    }

    #[test]
    fn policies_read_their_metric_and_held_requests_count_as_concurrency() {
        let autoscaling: Autoscaling = serde_json::from_value(serde_json::json!({"policies": [
            {"scalingMetric": "httpRequestsConcurrency", "target": 1},
            {"scalingMetric": "httpRequestsPerHour", "target": 3600},
            {"scalingMetric": "cpuAverageUtilization", "target": 70},
        ]}))
        .unwrap();
        let total = Total { concurrency: 2.0, in_flight: 2.0, requests_per_second: 3.0, queued: 5, gateways: 1 };
        let seen = observation(&autoscaling, Some(total), None);
        assert_eq!(seen.values, vec![Some(7.0), Some(10800.0), None]);
        assert!(seen.active);
        let replicas = [
            ReplicaUsage { replica: "r-0".into(), ready: true, cpu_percent: Some(90.0), metrics: Default::default() },
            ReplicaUsage { replica: "r-1".into(), ready: true, cpu_percent: Some(60.0), metrics: Default::default() },
            ReplicaUsage { replica: "r-2".into(), ready: false, cpu_percent: Some(100.0), metrics: Default::default() },
        ];
        let with_cpu = observation(&autoscaling, Some(total), Some(&replicas));
        assert_eq!(with_cpu.values[2], Some(150.0), "ready replicas only");
        let none = observation(&autoscaling, None, None);
        assert_eq!(none.values, vec![None, None, None]);
        assert!(!none.active);
    }

    #[test]
    fn scraped_metrics_are_summed_over_ready_replicas_that_export_them() {
        let autoscaling: Autoscaling = serde_json::from_value(serde_json::json!({"minReplicaCount": 1, "policies": [
            {"scalingMetric": "vllm:num_requests_waiting", "target": 5},
            {"scalingMetric": "gpuCacheUtilization", "target": 0.8},
        ]}))
        .unwrap();
        let replica = |ready, waiting: Option<f64>| ReplicaUsage {
            replica: "r".into(),
            ready,
            cpu_percent: None,
            metrics: waiting.map(|w| ("vllm:num_requests_waiting".to_owned(), w)).into_iter().collect(),
        };
        let replicas = [replica(true, Some(4.0)), replica(true, Some(8.0)), replica(true, None), replica(false, Some(50.0))];
        assert_eq!(observation(&autoscaling, None, Some(&replicas)).values, vec![Some(12.0), None]);
        let start = Instant::now();
        let mut usage = Usage::default();
        usage.record(vec![ProtonUsage { proton_id: "p".into(), replicas: replicas.to_vec() }], start);
        assert_eq!(usage.of("p", start).map(<[ReplicaUsage]>::len), Some(4));
        assert!(usage.of("p", start + Duration::from_secs(10)).is_none(), "stale usage is not used");
    }
}
