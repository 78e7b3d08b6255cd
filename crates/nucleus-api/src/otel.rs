//! The OpenTelemetry surface of a workload (`/otel/workload/{id}/...`): what its replicas printed,
//! the traces of its invokes and the metrics collected for it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One line a replica printed, as `GET /otel/workload/{id}/logs/` lists it (newest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    /// When the line was written: its own timestamp where it carries one, else when it was read.
    pub timestamp: DateTime<Utc>,
    pub level: LogLevel,
    pub message: String,
    /// The W3C trace and span the line names (JSON logs with `trace_id`/`span_id`), if any.
    #[serde(default)]
    pub trace_id: Option<String>,
    #[serde(default)]
    pub span_id: Option<String>,
    pub proton_id: String,
    /// The replica (pod, or process) that printed it.
    pub replica: String,
    /// `stdout` or `stderr`; absent where the driver cannot tell (Kubernetes pod logs).
    #[serde(default)]
    pub stream: Option<String>,
}

/// A log record's severity, least severe first (so `>=` means "at least as severe").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl LogLevel {
    /// The `level` query parameter: `debug`, `info`, `warn`/`warning`, `error`, `critical`
    /// (any case).
    pub fn from_query(value: &str) -> Option<LogLevel> {
        let level = match value.to_ascii_lowercase().as_str() {
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "warn" | "warning" => LogLevel::Warning,
            "error" => LogLevel::Error,
            "critical" => LogLevel::Critical,
            _ => return None,
        };
        Some(level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_read_from_the_query_and_order_by_severity() {
        assert_eq!(LogLevel::from_query("WARN"), Some(LogLevel::Warning));
        assert_eq!(LogLevel::from_query("warning"), Some(LogLevel::Warning));
        assert_eq!(LogLevel::from_query("fatal"), None);
        assert!(LogLevel::Error > LogLevel::Info);
        assert_eq!(serde_json::to_value(LogLevel::Warning).expect("json"), "WARNING");
    }
}

/// One trace of a workload, as `GET /otel/workload/{id}/traces/` lists it (newest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceSummary {
    pub trace_id: String,
    /// When its first span started.
    pub timestamp: DateTime<Utc>,
    pub root_span_name: String,
    pub root_service_name: String,
    /// Nanoseconds from the first span's start to the last one's end.
    pub duration: u64,
    pub spans_count: usize,
    /// Spans that ended in an error (an answer of 500 or more).
    pub error_spans_count: usize,
}

/// A trace's spans (`GET /otel/workload/{id}/traces/{traceId}/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    pub trace_id: String,
    /// Nanoseconds, as in the summary.
    pub duration: u64,
    pub spans: Vec<TraceSpan>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TraceSpan {
    pub span_id: String,
    /// The caller's span, when it sent a `traceparent`.
    #[serde(default)]
    pub parent_span_id: Option<String>,
    pub name: String,
    pub service_name: String,
    pub start_time: DateTime<Utc>,
    /// Nanoseconds.
    pub duration: u64,
    /// `ok` or `error`.
    pub status: String,
    /// e.g. `http.request.method`, `http.response.status_code`, `url.path`.
    #[serde(default)]
    pub attributes: std::collections::BTreeMap<String, String>,
}

/// A metric Nucleus collects for every workload, without instrumentation
/// (`GET /otel/workload/{id}/metrics/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OtelMetric {
    /// e.g. `http.server.request.count`.
    pub otel_name: String,
    pub display_name: String,
    pub description: String,
    /// UCUM, as OpenTelemetry writes units: `ms`, `1`, `{request}`.
    pub unit: String,
    pub metric_type: OtelMetricType,
    /// How `autocollectedValues` aggregates it over a period (a histogram has several).
    pub aggregations: Vec<MetricAggregation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OtelMetricType {
    Counter,
    Gauge,
    Histogram,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricAggregation {
    /// Added up over the period.
    Sum,
    /// The mean over the period.
    Avg,
    /// The highest over the period.
    Max,
    /// Percentiles of a histogram.
    P50,
    P95,
    P99,
    /// The value now (gauges of current state).
    Last,
}

/// One metric's value over a period (`GET /otel/workload/{id}/metrics/autocollectedValues/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutocollectedValue {
    pub otel_name: String,
    pub display_name: String,
    pub unit: String,
    pub aggregation: MetricAggregation,
    pub aggregated_value: f64,
}

/// The values of every collected metric of a workload over `[startTime, endTime)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AutocollectedValues {
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub data: Vec<AutocollectedValue>,
}
