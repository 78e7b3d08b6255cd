//! Request statistics (docs/api/README.md, "Stats"): what a gateway records per proton and minute, and the sums
//! the stats endpoints answer with.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Upper bounds (ms) of the latency bins; the last bin takes everything slower.
pub const LATENCY_BOUNDS_MS: [u64; 16] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 30_000, 60_000, 120_000];

/// The invocations one gateway forwarded to one proton in one minute.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MinuteStats {
    pub total: u64,
    /// 4xx answers.
    pub user_errors: u64,
    /// 5xx answers, and requests no replica answered.
    pub server_errors: u64,
    pub latency_ms_sum: f64,
    /// Counts per bin of [`LATENCY_BOUNDS_MS`] (one more bin for anything slower).
    pub latency_bins: Vec<u64>,
    /// The most requests in flight at once.
    pub max_concurrency: u32,
    #[serde(default)]
    pub last_request_at: Option<DateTime<Utc>>,
}

impl MinuteStats {
    pub fn record(&mut self, status: u16, latency_ms: f64, in_flight: u32, at: crate::Timestamp) {
        self.total += 1;
        match status {
            400..=499 => self.user_errors += 1,
            500..=599 => self.server_errors += 1,
            _ => {}
        }
        self.latency_ms_sum += latency_ms;
        if self.latency_bins.len() != LATENCY_BOUNDS_MS.len() + 1 {
            self.latency_bins.resize(LATENCY_BOUNDS_MS.len() + 1, 0);
        }
        let bin = LATENCY_BOUNDS_MS.iter().position(|&bound| latency_ms <= bound as f64).unwrap_or(LATENCY_BOUNDS_MS.len());
        self.latency_bins[bin] += 1;
        self.max_concurrency = self.max_concurrency.max(in_flight);
        self.last_request_at = Some(self.last_request_at.map_or(at, |last| last.max(at)));
    }

    /// Adds `other` (another minute, or another gateway's count of the same minute).
    pub fn merge(&mut self, other: &MinuteStats) {
        self.total += other.total;
        self.user_errors += other.user_errors;
        self.server_errors += other.server_errors;
        self.latency_ms_sum += other.latency_ms_sum;
        if self.latency_bins.len() < other.latency_bins.len() {
            self.latency_bins.resize(other.latency_bins.len(), 0);
        }
        for (mine, theirs) in self.latency_bins.iter_mut().zip(&other.latency_bins) {
            *mine += theirs;
        }
        self.max_concurrency = self.max_concurrency.max(other.max_concurrency);
        self.last_request_at = match (self.last_request_at, other.last_request_at) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    /// The latency below which `quantile` of the requests fell (the upper bound of its bin).
    pub fn latency_quantile_ms(&self, quantile: f64) -> f64 {
        let total: u64 = self.latency_bins.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let wanted = (quantile.clamp(0.0, 1.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bin, count) in self.latency_bins.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return LATENCY_BOUNDS_MS.get(bin).copied().unwrap_or(LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1] * 2) as f64;
            }
        }
        0.0
    }

    /// Requests slower than `threshold_ms` (counted by bins: those in bins wholly above it).
    pub fn slower_than(&self, threshold_ms: u64) -> u64 {
        self.latency_bins
            .iter()
            .enumerate()
            .filter(|(bin, _)| *bin > 0 && LATENCY_BOUNDS_MS.get(bin - 1).is_some_and(|&lower| lower >= threshold_ms))
            .map(|(_, count)| count)
            .sum()
    }
}

/// `RequestMetrics`, as the stats endpoints answer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestMetrics {
    pub total_requests: u64,
    pub server_errors: u64,
    pub user_errors: u64,
    pub slow_requests: u64,
    /// Milliseconds, at the requested quantile.
    pub response_time: f64,
    pub requests_per_minute: f64,
    pub concurrent_requests: u32,
    pub server_error_rate: f64,
    pub user_error_rate: f64,
    pub total_error_rate: f64,
}

impl RequestMetrics {
    /// The metrics of `sum` over `minutes` minutes.
    pub fn of(sum: &MinuteStats, minutes: f64, quantile: f64, slow_threshold_ms: u64) -> RequestMetrics {
        let rate = |n: u64| if sum.total == 0 { 0.0 } else { n as f64 / sum.total as f64 };
        RequestMetrics {
            total_requests: sum.total,
            server_errors: sum.server_errors,
            user_errors: sum.user_errors,
            slow_requests: sum.slower_than(slow_threshold_ms),
            response_time: sum.latency_quantile_ms(quantile),
            requests_per_minute: if minutes > 0.0 { sum.total as f64 / minutes } else { 0.0 },
            concurrent_requests: sum.max_concurrency,
            server_error_rate: rate(sum.server_errors),
            user_error_rate: rate(sum.user_errors),
            total_error_rate: rate(sum.server_errors + sum.user_errors),
        }
    }
}

/// A time span, `[start, end)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Period {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// `GET /workloads/{id}/stats` (`ProtonRequestStats`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProtonRequestStats {
    pub period: Period,
    pub metrics: RequestMetrics,
}

/// One bucket of a metric over time; `value` is a count or a rate, depending on the metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MetricBucket {
    pub period: Period,
    #[schema(value_type = f64)]
    pub value: serde_json::Number,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricSummary {
    pub period: Period,
    pub proton_id: Option<String>,
}

/// `GET /workloads/{id}/stats/{metric_name}` (`ProtonRequestMetricOverTime`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MetricOverTime {
    pub metric: String,
    pub summary: MetricSummary,
    pub buckets: Vec<MetricBucket>,
}

/// `requestStats` of a listed workload (`serviceStats=true`): the last 7 days, day by day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStats {
    pub total_requests: u64,
    pub error_rate: f64,
    pub error_rates: Vec<f64>,
    pub request_rates: Vec<f64>,
    pub response_time: f64,
    pub concurrent_requests: u32,
    pub last_request_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkloadCounts {
    pub total: usize,
    pub active: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequestCounts {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub trend: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RateTrend {
    pub rate: f64,
    pub trend: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MillisTrend {
    pub millis: f64,
    pub trend: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CountTrend {
    pub count: u32,
    pub trend: f64,
}

/// `GET /workloads/stats`: every visible workload's last 24 hours, trends against the 24 before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsOverview {
    pub workloads: WorkloadCounts,
    pub requests: RequestCounts,
    pub error_rate: RateTrend,
    pub response_time: MillisTrend,
    pub concurrent_requests: CountTrend,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> crate::Timestamp {
        "2026-11-23T10:00:00Z".parse().unwrap()
    }

    #[test]
    fn recorded_requests_add_up_and_quantiles_follow_the_bins() {
        let mut minute = MinuteStats::default();
        for latency in [0.5, 3.0, 3.0, 40.0, 2500.0] {
            minute.record(200, latency, 2, at());
        }
        minute.record(404, 1.0, 5, at());
        minute.record(502, 1.0, 1, at());
        assert_eq!((minute.total, minute.user_errors, minute.server_errors, minute.max_concurrency), (7, 1, 1, 5));
        assert_eq!(minute.latency_quantile_ms(0.5), 5.0, "the 4th of 7 is a 3 ms request, in the ≤5 ms bin");
        assert_eq!(minute.latency_quantile_ms(1.0), 5000.0);
        assert_eq!(minute.slower_than(2000), 1);
        let mut other = MinuteStats::default();
        other.record(200, 1.0, 9, at());
        minute.merge(&other);
        assert_eq!((minute.total, minute.max_concurrency), (8, 9));
        let metrics = RequestMetrics::of(&minute, 2.0, 0.5, 2000);
        assert_eq!((metrics.total_requests, metrics.requests_per_minute), (8, 4.0));
        assert_eq!(metrics.total_error_rate, 0.25);
    }
}
