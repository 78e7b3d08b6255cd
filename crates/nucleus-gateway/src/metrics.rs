//! The gateway's Prometheus series: requests, errors and latency per workload and route class
//! (`invoke` for invoke URLs, `api` for the REST API), and requests held for a workload at zero.
//! Served at `GET /metrics` (admin token) with every other series of the process.

use std::sync::LazyLock;

use axum::extract::{Extension, Request};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use nucleus_telemetry::{Counter, CounterVec, Gauge, GaugeVec, Histogram, HistogramVec, LATENCY_BUCKETS};

use crate::ApiError;
use crate::auth::Caller;

pub struct GatewayMetrics {
    requests: CounterVec,
    latency: HistogramVec,
    held: GaugeVec,
}

static METRICS: LazyLock<GatewayMetrics> = LazyLock::new(|| {
    let registry = nucleus_telemetry::global();
    GatewayMetrics {
        requests: registry.counter_vec(
            "nucleus_gateway_requests_total",
            "Requests answered, by route class (invoke, api), workload (invoke only) and status class (2xx..5xx).",
            &["class", "workload", "code"],
        ),
        latency: registry.histogram_vec(
            "nucleus_gateway_request_seconds",
            "Time from a request's arrival to its answer's head, by route class and workload (invoke only).",
            &["class", "workload"],
            LATENCY_BUCKETS,
        ),
        held: registry.gauge_vec(
            "nucleus_gateway_held_requests",
            "Requests the activator holds for a workload scaled to zero, waiting for a replica.",
            &["workload"],
        ),
    }
});

pub fn metrics() -> &'static GatewayMetrics {
    &METRICS
}

/// The series of one workload's invoke calls, made once per route (no look-up per request).
#[derive(Clone)]
pub struct InvokeSeries {
    /// By status class: 1xx at 0 .. 5xx at 4.
    answered: [Counter; 5],
    latency: Histogram,
}

impl std::fmt::Debug for InvokeSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InvokeSeries").finish_non_exhaustive()
    }
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn class_index(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5) - 1)
}

impl GatewayMetrics {
    pub fn invoke(&self, workload: &str) -> InvokeSeries {
        InvokeSeries {
            answered: CLASSES.map(|code| self.requests.with(&["invoke", workload, code])),
            latency: self.latency.with(&["invoke", workload]),
        }
    }

    /// Forgets `workload`'s invoke series (nobody routes to it any more).
    pub fn forget(&self, workload: &str) {
        for code in CLASSES {
            self.requests.remove(&["invoke", workload, code]);
        }
        self.latency.remove(&["invoke", workload]);
        self.held.remove(&[workload]);
    }

    /// Counts a request held for `workload` while the returned gauge lives.
    pub fn held(&self, workload: &str) -> HeldRequest {
        let gauge = self.held.with(&[workload]);
        gauge.add(1.0);
        HeldRequest(gauge)
    }
}

impl InvokeSeries {
    pub fn record(&self, status: u16, seconds: f64) {
        self.answered[class_index(status)].inc();
        self.latency.observe(seconds);
    }
}

pub struct HeldRequest(Gauge);

impl Drop for HeldRequest {
    fn drop(&mut self) {
        self.0.add(-1.0);
    }
}

/// Counts and times every REST API request (middleware).
pub async fn record_api(request: Request, next: Next) -> Response {
    let started = tokio::time::Instant::now();
    let response = next.run(request).await;
    let metrics = metrics();
    let code = CLASSES[class_index(response.status().as_u16())];
    metrics.requests.with(&["api", "", code]).inc();
    metrics.latency.with(&["api", ""]).observe(started.elapsed().as_secs_f64());
    response
}

/// `GET /metrics`: every series of this process, as Prometheus text. Admin only: the series name
/// every workload.
pub async fn serve(Extension(caller): Extension<Caller>) -> Result<Response, ApiError> {
    if caller != Caller::Admin {
        return Err(ApiError::Forbidden("GET /metrics needs the admin token (the series name every workload)".into()));
    }
    Ok(([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], nucleus_telemetry::encode()).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoke_answers_count_by_status_class() {
        let series = metrics().invoke("metrics-test-workload");
        series.record(200, 0.01);
        series.record(503, 0.5);
        series.record(204, 0.02);
        let text = nucleus_telemetry::encode();
        assert!(text.contains(r#"nucleus_gateway_requests_total{class="invoke",workload="metrics-test-workload",code="2xx"} 2"#), "{text}");
        assert!(text.contains(r#"nucleus_gateway_requests_total{class="invoke",workload="metrics-test-workload",code="5xx"} 1"#));
        assert!(text.contains(r#"nucleus_gateway_request_seconds_count{class="invoke",workload="metrics-test-workload"} 3"#));
        let held = metrics().held("metrics-test-workload");
        assert!(nucleus_telemetry::encode().contains(r#"nucleus_gateway_held_requests{workload="metrics-test-workload"} 1"#));
        drop(held);
        assert!(nucleus_telemetry::encode().contains(r#"nucleus_gateway_held_requests{workload="metrics-test-workload"} 0"#));
    }
}
