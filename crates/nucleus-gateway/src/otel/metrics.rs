//! `GET /otel/workload/{id}/metrics/` (also `/metrics/summary/`): the metrics Nucleus collects for
//! every workload without instrumentation; `GET /otel/workload/{id}/metrics/autocollectedValues/`:
//! their values over a period. Request metrics are summed from the same per-minute invoke counters
//! as the stats endpoints (every proton of the workload, active and candidate); replica metrics are
//! the states the agents report now.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::Uri;
use nucleus_api::otel::{AutocollectedValue, AutocollectedValues, MetricAggregation, OtelMetric, OtelMetricType};
use nucleus_api::page::Page;
use nucleus_api::proton::ReplicaStatusesSnapshot;
use nucleus_api::stats::{MinuteStats, RequestMetrics};
use nucleus_api::validation::Loc;
use nucleus_api::{FieldError, Proton};
use nucleus_client::keys;

use super::logs::{query_time, search_pairs};
use crate::access::Need;
use crate::auth::Caller;
use crate::listing::check;
use crate::request::Query;
use crate::stats::endpoints::{minutes, sum_between};
use crate::workloads::load;
use crate::{ApiError, AppState};

/// Without `startTime`, values cover the hour before `endTime` (default now).
const DEFAULT_PERIOD: chrono::Duration = chrono::Duration::hours(1);

use MetricAggregation::{Avg, Last, Max, P50, P95, P99, Sum};
use OtelMetricType::{Counter, Gauge, Histogram};

/// A metric of the catalogue.
struct Collected {
    name: &'static str,
    display: &'static str,
    description: &'static str,
    unit: &'static str,
    kind: OtelMetricType,
    aggregations: &'static [MetricAggregation],
}

const fn collected(
    name: &'static str,
    display: &'static str,
    description: &'static str,
    unit: &'static str,
    kind: OtelMetricType,
    aggregations: &'static [MetricAggregation],
) -> Collected {
    Collected { name, display, description, unit, kind, aggregations }
}

/// What the catalogue lists and the values answer, in this order.
const CATALOGUE: &[Collected] = &[
    collected("http.server.request.count", "Requests", "Invokes the gateways forwarded", "{request}", Counter, &[Sum]),
    collected("http.server.request.rate", "Request rate", "Invokes per minute", "{request}/min", Gauge, &[Avg]),
    collected("http.server.request.client_errors", "Client errors", "Invokes answered 4xx", "{request}", Counter, &[Sum]),
    collected(
        "http.server.request.server_errors",
        "Server errors",
        "Invokes answered 5xx, or that no replica answered",
        "{request}",
        Counter,
        &[Sum],
    ),
    collected("http.server.request.error_rate", "Error rate", "The share of invokes answered 4xx or 5xx", "1", Gauge, &[Avg]),
    collected(
        "http.server.request.duration",
        "Response time",
        "From the gateway's forward to the replica's answer",
        "ms",
        Histogram,
        &[Avg, P50, P95, P99],
    ),
    collected("http.server.active_requests", "Concurrent requests", "Invokes in flight at once", "{request}", Gauge, &[Max]),
    collected(
        "nucleus.replicas.desired",
        "Desired replicas",
        "The replicas the workload's protons should run",
        "{replica}",
        Gauge,
        &[Last],
    ),
    collected("nucleus.replicas.ready", "Ready replicas", "The replicas that receive traffic now", "{replica}", Gauge, &[Last]),
    collected(
        "nucleus.container.restarts",
        "Container restarts",
        "Restarts of the replicas' containers so far",
        "{restart}",
        Counter,
        &[Last],
    ),
];

fn catalogue() -> Vec<OtelMetric> {
    CATALOGUE
        .iter()
        .map(|m| OtelMetric {
            otel_name: m.name.to_owned(),
            display_name: m.display.to_owned(),
            description: m.description.to_owned(),
            unit: m.unit.to_owned(),
            metric_type: m.kind,
            aggregations: m.aggregations.to_vec(),
        })
        .collect()
}

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Page<OtelMetric>>, ApiError> {
    load(&state, &caller, &id, Need::Read).await?;
    let data = catalogue();
    Ok(Json(Page { count: data.len(), total_count: data.len(), next: None, previous: None, data }))
}

/// The period and protons a values request asks for.
struct ValuesQuery {
    start: nucleus_api::Timestamp,
    end: nucleus_api::Timestamp,
    /// `searchKeys=proton_id`: only these protons.
    protons: Option<Vec<String>>,
}

impl ValuesQuery {
    fn parse(query: &Query) -> Result<ValuesQuery, ApiError> {
        let mut errors = Vec::new();
        let start = query_time(query, "startTime", &mut errors);
        let end = query_time(query, "endTime", &mut errors);
        let pairs = search_pairs(query, "metrics", &["proton_id"], &mut errors);
        let end = end.unwrap_or_else(nucleus_api::clock::now);
        let start = start.unwrap_or(end - DEFAULT_PERIOD);
        if start >= end {
            errors.push(FieldError::new(&Loc::query().key("endTime"), "endTime must be after startTime", "value_error"));
        }
        check(errors)?;
        let protons = (!pairs.is_empty()).then(|| pairs.into_iter().map(|(_, proton)| proton).collect());
        Ok(ValuesQuery { start, end, protons })
    }
}

pub async fn autocollected_values(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Json<AutocollectedValues>, ApiError> {
    let query = ValuesQuery::parse(&Query::parse(uri.query()))?;
    load(&state, &caller, &id, Need::Read).await?;
    let mut requests = MinuteStats::default();
    match &query.protons {
        None => requests = sum_between(&minutes(&state, &id, None).await?, query.start, query.end),
        Some(protons) => {
            for proton in protons {
                requests.merge(&sum_between(&minutes(&state, &id, Some(proton)).await?, query.start, query.end));
            }
        }
    }
    let chosen = |proton: &str| query.protons.as_ref().is_none_or(|ids| ids.iter().any(|id| id == proton));
    let desired: u32 = state
        .meta
        .list_json::<Proton>(&keys::protons_of(&id))
        .await?
        .into_iter()
        .filter(|p| chosen(&p.value.id) && p.value.desired_state == nucleus_api::DesiredState::Running)
        .map(|p| p.value.replica_count)
        .sum();
    let (mut ready, mut restarts) = (0u64, 0u64);
    for snapshot in state.meta.list_json::<ReplicaStatusesSnapshot>(&keys::snapshots_of(&id)).await? {
        if chosen(keys::id_of(&snapshot.key)) {
            ready += snapshot.value.replicas.iter().filter(|r| r.is_ready()).count() as u64;
            restarts += snapshot.value.replicas.iter().flat_map(|r| &r.containers).map(|c| u64::from(c.restart_count)).sum::<u64>();
        }
    }
    let minutes = (query.end - query.start).num_seconds() as f64 / 60.0;
    let data = values(&requests, minutes, Replicas { desired, ready, restarts });
    Ok(Json(AutocollectedValues { start_time: query.start, end_time: query.end, data }))
}

/// The replicas of the chosen protons now.
struct Replicas {
    desired: u32,
    ready: u64,
    restarts: u64,
}

/// Every catalogued metric's value, from the requests of a period `minutes` long.
fn values(requests: &MinuteStats, minutes: f64, replicas: Replicas) -> Vec<AutocollectedValue> {
    let metrics = RequestMetrics::of(requests, minutes, 0.5, 2000);
    let value = |name: &str, aggregation: MetricAggregation| -> f64 {
        match (name, aggregation) {
            ("http.server.request.count", _) => requests.total as f64,
            ("http.server.request.rate", _) => metrics.requests_per_minute,
            ("http.server.request.client_errors", _) => requests.user_errors as f64,
            ("http.server.request.server_errors", _) => requests.server_errors as f64,
            ("http.server.request.error_rate", _) => metrics.total_error_rate,
            ("http.server.request.duration", Avg) if requests.total > 0 => requests.latency_ms_sum / requests.total as f64,
            ("http.server.request.duration", P50) => requests.latency_quantile_ms(0.5),
            ("http.server.request.duration", P95) => requests.latency_quantile_ms(0.95),
            ("http.server.request.duration", P99) => requests.latency_quantile_ms(0.99),
            ("http.server.active_requests", _) => f64::from(requests.max_concurrency),
            ("nucleus.replicas.desired", _) => f64::from(replicas.desired),
            ("nucleus.replicas.ready", _) => replicas.ready as f64,
            ("nucleus.container.restarts", _) => replicas.restarts as f64,
            _ => 0.0,
        }
    };
    CATALOGUE
        .iter()
        .flat_map(|m| {
            m.aggregations.iter().map(move |&aggregation| AutocollectedValue {
                otel_name: m.name.to_owned(),
                display_name: m.display.to_owned(),
                unit: m.unit.to_owned(),
                aggregation,
                aggregated_value: value(m.name, aggregation),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<ValuesQuery, ApiError> {
        ValuesQuery::parse(&Query::parse(Some(raw)))
    }

    #[test]
    fn the_period_defaults_to_the_last_hour_and_bad_parameters_are_named() {
        let query = parse("endTime=2026-12-07T10:00:00Z&searchKeys=proton_id&searchValues=p1").expect("valid");
        assert_eq!(query.start.to_rfc3339(), "2026-12-07T09:00:00+00:00");
        assert_eq!(query.protons, Some(vec!["p1".to_owned()]));
        for bad in ["startTime=2026-12-07T11:00:00Z&endTime=2026-12-07T10:00:00Z", "searchKeys=pod&searchValues=x", "startTime=soon"] {
            assert!(matches!(parse(bad), Err(ApiError::Validation(_))), "{bad}");
        }
    }

    #[test]
    fn every_catalogued_metric_has_a_value() {
        let at = "2026-12-07T10:00:00Z".parse().expect("time");
        let mut requests = MinuteStats::default();
        for (status, latency) in [(200, 3.0), (200, 40.0), (404, 1.0), (503, 900.0)] {
            requests.record(status, latency, 2, at);
        }
        let values = values(&requests, 2.0, Replicas { desired: 3, ready: 2, restarts: 1 });
        // A metric added to the catalogue without a rule would answer 0 for ever.
        let zero: Vec<_> = values.iter().filter(|v| v.aggregated_value == 0.0).collect();
        assert!(zero.is_empty(), "{zero:?}");
        let of = |name: &str, aggregation| {
            values.iter().find(|v| v.otel_name == name && v.aggregation == aggregation).expect(name).aggregated_value
        };
        assert_eq!(of("http.server.request.count", Sum), 4.0);
        assert_eq!(of("http.server.request.rate", Avg), 2.0);
        assert_eq!(of("http.server.request.error_rate", Avg), 0.5);
        assert_eq!(of("http.server.request.duration", Avg), 236.0);
        assert_eq!(of("http.server.request.duration", P99), 1000.0, "the upper bound of the 900 ms request's bin");
        assert_eq!(of("nucleus.replicas.ready", Last), 2.0);
        assert_eq!(values.len(), CATALOGUE.iter().map(|m| m.aggregations.len()).sum::<usize>());
    }
}
