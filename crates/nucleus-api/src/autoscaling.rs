//! `runtime.containerGroups[].autoscaling`: what a group scales on and between which bounds.
//!
//! Two input shapes are accepted: the 11.5 spec's per-policy `minCount`/`maxCount`, and the newest
//! `minReplicaCount`/`maxReplicaCount` on the object. [`Autoscaling::hoisted`] turns the first into
//! the second, which is what is stored and returned.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The newest shape's defaults when neither shape gives a bound.
pub const DEFAULT_MIN_REPLICAS: i64 = 0;
pub const DEFAULT_MAX_REPLICAS: i64 = 1;
/// Where a replica exports Prometheus text when a policy names no `metricsPath`.
pub const DEFAULT_METRICS_PATH: &str = "/metrics";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Autoscaling {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0)]
    pub min_replica_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1)]
    pub max_replica_count: Option<i64>,
    #[serde(default)]
    pub policies: Vec<AutoscalingPolicy>,
}

fn yes() -> bool {
    true
}

/// One signal to scale on. With several, the group gets the largest count any of them asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoscalingPolicy {
    /// `httpRequestsConcurrency` (may scale to zero), `httpRequestsInFlight`, `httpRequestsPerHour`,
    /// `cpuAverageUtilization`, `gpuCacheUtilization`, `gpuRequestQueueDepth`, or a Prometheus
    /// metric the replicas export (a name with `:`, or any name with `metricsPath`).
    #[schema(value_type = String, example = "httpRequestsConcurrency")]
    pub scaling_metric: ScalingMetric,
    /// The value each replica should see: requests in flight per replica, requests per hour per
    /// replica, percent of its CPU, or the custom metric's value.
    #[schema(exclusive_minimum = 0)]
    pub target: f64,
    /// Legacy shape: hoisted into `minReplicaCount` on input, never returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_count: Option<i64>,
    /// Legacy shape: hoisted into `maxReplicaCount` on input, never returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Nucleus: for a custom metric, the path each replica serves Prometheus text on
    /// (default `/metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_path: Option<String>,
}

/// `ScalingMetricType`, plus any Prometheus metric a replica exports (for example
/// `vllm:num_requests_waiting`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ScalingMetric {
    /// Time-averaged requests in flight per replica; may scale to zero.
    HttpRequestsConcurrency,
    /// Requests in flight per replica, as sampled.
    HttpRequestsInFlight,
    /// Requests per hour per replica.
    HttpRequestsPerHour,
    /// Percent of the replica's CPU allocation in use (of one core without an allocation).
    CpuAverageUtilization,
    /// NIM's KV-cache use (`vllm:gpu_cache_usage_perc`, 0..1).
    GpuCacheUtilization,
    /// NIM's waiting requests (`vllm:num_requests_waiting`).
    GpuRequestQueueDepth,
    /// Any other name: a Prometheus metric scraped from the replicas.
    Custom(String),
}

impl ScalingMetric {
    pub fn name(&self) -> &str {
        match self {
            Self::HttpRequestsConcurrency => "httpRequestsConcurrency",
            Self::HttpRequestsInFlight => "httpRequestsInFlight",
            Self::HttpRequestsPerHour => "httpRequestsPerHour",
            Self::CpuAverageUtilization => "cpuAverageUtilization",
            Self::GpuCacheUtilization => "gpuCacheUtilization",
            Self::GpuRequestQueueDepth => "gpuRequestQueueDepth",
            Self::Custom(name) => name,
        }
    }

    /// Measured by the gateways, so it can wake a group at zero.
    pub fn is_http(&self) -> bool {
        matches!(self, Self::HttpRequestsConcurrency | Self::HttpRequestsInFlight | Self::HttpRequestsPerHour)
    }

    /// The Prometheus metric a replica is scraped for, if this policy is scraped.
    pub fn prometheus_name(&self) -> Option<&str> {
        match self {
            Self::GpuCacheUtilization => Some("vllm:gpu_cache_usage_perc"),
            Self::GpuRequestQueueDepth => Some("vllm:num_requests_waiting"),
            Self::Custom(name) => Some(name),
            _ => None,
        }
    }

    /// Whether `name` may name a Prometheus metric: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    pub fn is_prometheus_name(name: &str) -> bool {
        let mut chars = name.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
}

impl From<String> for ScalingMetric {
    fn from(name: String) -> Self {
        match name.as_str() {
            "httpRequestsConcurrency" => Self::HttpRequestsConcurrency,
            "httpRequestsInFlight" => Self::HttpRequestsInFlight,
            "httpRequestsPerHour" => Self::HttpRequestsPerHour,
            "cpuAverageUtilization" => Self::CpuAverageUtilization,
            "gpuCacheUtilization" => Self::GpuCacheUtilization,
            "gpuRequestQueueDepth" => Self::GpuRequestQueueDepth,
            _ => Self::Custom(name),
        }
    }
}

impl From<ScalingMetric> for String {
    fn from(metric: ScalingMetric) -> Self {
        metric.name().to_owned()
    }
}

impl fmt::Display for ScalingMetric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl AutoscalingPolicy {
    pub fn metrics_path(&self) -> &str {
        self.metrics_path.as_deref().unwrap_or(DEFAULT_METRICS_PATH)
    }
}

impl Autoscaling {
    /// The newest shape: per-policy bounds hoisted onto the object (the smallest minimum, the
    /// largest maximum) unless it gives its own, then dropped from the policies.
    pub fn hoisted(mut self) -> Autoscaling {
        if self.min_replica_count.is_none() {
            self.min_replica_count = self.policies.iter().filter_map(|p| p.min_count).min();
        }
        if self.max_replica_count.is_none() {
            self.max_replica_count = self.policies.iter().filter_map(|p| p.max_count).max();
        }
        self.min_replica_count.get_or_insert(DEFAULT_MIN_REPLICAS);
        self.max_replica_count.get_or_insert(DEFAULT_MAX_REPLICAS);
        for policy in &mut self.policies {
            policy.min_count = None;
            policy.max_count = None;
        }
        self
    }

    /// The bounds in effect (for a document that was stored hoisted, or not).
    pub fn bounds(&self) -> (u32, u32) {
        let hoisted = self.clone().hoisted();
        let to_u32 = |v: Option<i64>| v.and_then(|v| u32::try_from(v.max(0)).ok()).unwrap_or(0);
        let min = to_u32(hoisted.min_replica_count);
        (min, to_u32(hoisted.max_replica_count).max(min).max(1))
    }

    /// Whether the group may rest at zero replicas.
    pub fn scales_to_zero(&self) -> bool {
        self.enabled && self.bounds().0 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_per_policy_bounds_are_hoisted_and_not_returned() {
        let legacy: Autoscaling = serde_json::from_str(
            r#"{"enabled":true,"policies":[{"scalingMetric":"httpRequestsConcurrency","target":10,"minCount":2,"maxCount":10}]}"#,
        )
        .unwrap();
        let newest = legacy.hoisted();
        assert_eq!((newest.min_replica_count, newest.max_replica_count), (Some(2), Some(10)));
        let echoed = serde_json::to_value(&newest).unwrap();
        assert_eq!(
            echoed,
            serde_json::json!({"enabled":true,"minReplicaCount":2,"maxReplicaCount":10,
                "policies":[{"scalingMetric":"httpRequestsConcurrency","target":10.0}]})
        );
    }

    #[test]
    fn object_bounds_win_over_per_policy_ones_and_defaults_fill_the_rest() {
        let a: Autoscaling = serde_json::from_str(
            r#"{"minReplicaCount":1,"policies":[{"scalingMetric":"cpuAverageUtilization","target":70,"minCount":3,"maxCount":4}]}"#,
        )
        .unwrap();
        assert_eq!(a.bounds(), (1, 4));
        let bare: Autoscaling = serde_json::from_str(r#"{"policies":[{"scalingMetric":"httpRequestsConcurrency","target":1}]}"#).unwrap();
        assert_eq!(bare.bounds(), (0, 1));
        assert!(bare.scales_to_zero());
    }

    #[test]
    fn metrics_round_trip_by_name_and_custom_names_are_kept() {
        for name in ["httpRequestsConcurrency", "cpuAverageUtilization", "gpuRequestQueueDepth", "vllm:num_requests_waiting"] {
            let metric = ScalingMetric::from(name.to_owned());
            assert_eq!(serde_json::to_value(&metric).unwrap(), serde_json::json!(name));
        }
        assert_eq!(ScalingMetric::from("vllm:x".to_owned()), ScalingMetric::Custom("vllm:x".into()));
        assert!(ScalingMetric::is_prometheus_name("vllm:num_requests_waiting"));
        assert!(!ScalingMetric::is_prometheus_name("9lives"));
        assert!(!ScalingMetric::is_prometheus_name("a-b"));
    }
}
