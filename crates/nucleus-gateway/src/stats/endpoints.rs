//! `GET/DELETE /workloads/{id}/stats`, `GET /workloads/{id}/stats/{metric}`, `GET /workloads/stats`
//! and the `requestStats` of `serviceStats=true`, all summed from the per-minute documents.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, Uri};
use nucleus_api::stats::{
    CountTrend, MetricBucket, MetricOverTime, MetricSummary, MillisTrend, MinuteStats, Period, ProtonRequestStats, RateTrend,
    RequestCounts, RequestMetrics, ServiceStats, StatsOverview, WorkloadCounts,
};
use nucleus_api::validation::Loc;
use nucleus_api::{FieldError, ProtonStatus, Timestamp, Workload};
use nucleus_client::{Txn, keys};

use crate::access::{Need, role_of};
use crate::auth::Caller;
use crate::listing::check;
use crate::request::Query;
use crate::workloads::load;
use crate::{ApiError, AppState};

const METRICS: [&str; 6] = ["totalRequests", "requestsOverN", "requestsPerMinute", "concurrentRequests", "responseTime", "totalErrorRate"];
const RESOLUTIONS: [(&str, i64); 6] = [("PT1M", 1), ("PT5M", 5), ("PT1H", 60), ("P1D", 1440), ("P7D", 10_080), ("P1M", 43_200)];
const MAX_BUCKETS: i64 = 10_000;

/// The period and knobs of a stats request.
struct Window {
    proton: Option<String>,
    start: Timestamp,
    end: Timestamp,
    quantile: f64,
    slow_ms: u64,
}

impl Window {
    /// Without `startTime`, the last `default_span` before `endTime` (default now).
    fn parse(query: &Query, default_span: chrono::Duration) -> Result<Window, ApiError> {
        let mut errors = Vec::new();
        let time = |key: &str, errors: &mut Vec<FieldError>| -> Option<Timestamp> {
            let raw = query.one(key)?;
            match chrono::DateTime::parse_from_rfc3339(raw) {
                Ok(t) => Some(t.with_timezone(&chrono::Utc)),
                Err(_) => {
                    errors.push(FieldError::new(
                        &Loc::query().key(key),
                        format!("'{raw}' is not an RFC 3339 date-time"),
                        "datetime_parsing",
                    ));
                    None
                }
            }
        };
        let end = time("endTime", &mut errors).unwrap_or_else(nucleus_api::clock::now);
        let start = time("startTime", &mut errors).unwrap_or(end - default_span);
        let quantile = match query.one("responseTimeQuantile").map(str::parse::<f64>) {
            None => 0.5,
            Some(Ok(q)) if (0.0..=1.0).contains(&q) => q,
            Some(_) => {
                errors.push(FieldError::new(
                    &Loc::query().key("responseTimeQuantile"),
                    "Input should be a number from 0 to 1",
                    "value_error",
                ));
                0.5
            }
        };
        let slow_ms = query.int("slowRequestsThreshold", 2000, 0, u32::MAX as usize, &mut errors) as u64;
        check(errors)?;
        if start >= end {
            return Err(ApiError::BadRequest(format!("Invalid time range: startTime {start} is not before endTime {end}")));
        }
        Ok(Window { proton: query.one("protonId").map(str::to_owned), start, end, quantile, slow_ms })
    }

    fn minutes(&self) -> f64 {
        (self.end - self.start).num_seconds() as f64 / 60.0
    }
}

fn minute_of(key: &str) -> Option<i64> {
    key.rsplit('/').nth(1)?.parse().ok()
}

/// Per-minute sums (over gateways) of one proton's documents, or of every proton's when `None`.
pub(crate) async fn minutes(state: &AppState, workload: &str, proton: Option<&str>) -> Result<BTreeMap<i64, MinuteStats>, ApiError> {
    let prefix = match proton {
        Some(p) => keys::stats_of_proton(workload, p),
        None => keys::stats_of(workload),
    };
    let mut sums: BTreeMap<i64, MinuteStats> = BTreeMap::new();
    for doc in state.meta.list_json::<MinuteStats>(&prefix).await? {
        if let Some(minute) = minute_of(&doc.key) {
            sums.entry(minute).or_default().merge(&doc.value);
        }
    }
    Ok(sums)
}

/// The minutes a period touches, as `[from, to)` in minutes since the epoch.
fn minute_range(start: Timestamp, end: Timestamp) -> (i64, i64) {
    (start.timestamp().div_euclid(60), (end.timestamp() + 59).div_euclid(60))
}

fn sum_minutes(minutes: &BTreeMap<i64, MinuteStats>, from: i64, to: i64) -> MinuteStats {
    let mut sum = MinuteStats::default();
    for (_, counts) in minutes.range(from..to.max(from)) {
        sum.merge(counts);
    }
    sum
}

pub(crate) fn sum_between(minutes: &BTreeMap<i64, MinuteStats>, start: Timestamp, end: Timestamp) -> MinuteStats {
    let (from, to) = minute_range(start, end);
    sum_minutes(minutes, from, to)
}

fn at_minute(minute: i64) -> Timestamp {
    chrono::DateTime::from_timestamp(minute * 60, 0).unwrap_or_default()
}

/// The proton asked for, or the workload's current one.
fn proton_of(window: &Window, workload: &Workload) -> Option<String> {
    window.proton.clone().or_else(|| workload.proton_id.clone())
}

pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Json<ProtonRequestStats>, ApiError> {
    let window = Window::parse(&Query::parse(uri.query()), chrono::Duration::days(1))?;
    let workload = load(&state, &caller, &id, Need::Read).await?.value;
    let minutes = match proton_of(&window, &workload) {
        Some(proton) => minutes(&state, &id, Some(&proton)).await?,
        None => BTreeMap::new(),
    };
    let sum = sum_between(&minutes, window.start, window.end);
    let metrics = RequestMetrics::of(&sum, window.minutes(), window.quantile, window.slow_ms);
    Ok(Json(ProtonRequestStats { period: Period { start: window.start, end: window.end }, metrics }))
}

pub async fn metric(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, metric)): Path<(String, String)>,
    uri: Uri,
) -> Result<Json<MetricOverTime>, ApiError> {
    let query = Query::parse(uri.query());
    let mut errors = Vec::new();
    if !METRICS.contains(&metric.as_str()) {
        errors.push(FieldError::new(&Loc::path().key("metric_name"), format!("Input should be one of {}", METRICS.join(", ")), "enum"));
    }
    let resolution = query.one("resolution").unwrap_or("P1D");
    let step = RESOLUTIONS.iter().find(|(name, _)| *name == resolution).map(|(_, minutes)| *minutes);
    if step.is_none() {
        let names: Vec<&str> = RESOLUTIONS.iter().map(|(n, _)| *n).collect();
        errors.push(FieldError::new(&Loc::query().key("resolution"), format!("Input should be one of {}", names.join(", ")), "enum"));
    }
    check(errors)?;
    let step = chrono::Duration::minutes(step.unwrap_or(1440));
    let window = Window::parse(&query, step * 7)?;
    let buckets_wanted = (window.end - window.start).num_minutes() / step.num_minutes().max(1);
    if buckets_wanted > MAX_BUCKETS {
        return Err(ApiError::BadRequest(format!(
            "{buckets_wanted} buckets of {resolution} are too many (at most {MAX_BUCKETS}); use a coarser resolution or a shorter period"
        )));
    }
    let workload = load(&state, &caller, &id, Need::Read).await?.value;
    let proton = proton_of(&window, &workload);
    let minutes = match &proton {
        Some(p) => minutes(&state, &id, Some(p)).await?,
        None => BTreeMap::new(),
    };
    // Buckets on whole minutes, so that each minute is counted in exactly one.
    let (from, to) = minute_range(window.start, window.end);
    let step_minutes = step.num_minutes().max(1);
    let mut buckets = Vec::new();
    let mut bucket_start = from;
    while bucket_start < to {
        let bucket_end = (bucket_start + step_minutes).min(to);
        let sum = sum_minutes(&minutes, bucket_start, bucket_end);
        let m = RequestMetrics::of(&sum, (bucket_end - bucket_start) as f64, window.quantile, window.slow_ms);
        let rate = |x: f64| serde_json::Number::from_f64(x).unwrap_or_else(|| 0.into());
        let value = match metric.as_str() {
            "totalRequests" => m.total_requests.into(),
            "requestsOverN" => m.slow_requests.into(),
            "requestsPerMinute" => rate(m.requests_per_minute),
            "concurrentRequests" => m.concurrent_requests.into(),
            "responseTime" => rate(m.response_time),
            _ => rate(m.total_error_rate),
        };
        buckets.push(MetricBucket { period: Period { start: at_minute(bucket_start), end: at_minute(bucket_end) }, value });
        bucket_start = bucket_end;
    }
    Ok(Json(MetricOverTime {
        metric,
        summary: MetricSummary { period: Period { start: window.start, end: window.end }, proton_id: proton },
        buckets,
    }))
}

/// Deletes the counts of one proton (or all) within the period (or all time); 204.
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<StatusCode, ApiError> {
    let query = Query::parse(uri.query());
    let everything = query.one("startTime").is_none() && query.one("endTime").is_none();
    let window = Window::parse(&query, chrono::Duration::days(365 * 100))?;
    load(&state, &caller, &id, Need::Change).await?;
    let prefix = match &window.proton {
        Some(p) => keys::stats_of_proton(&id, p),
        None => keys::stats_of(&id),
    };
    let (from, to) = minute_range(window.start, window.end);
    let mut txn = Txn::new();
    let (kvs, _) = state.meta.list(&prefix).await?;
    for kv in kvs {
        if everything || minute_of(&kv.key).is_some_and(|m| (from..to).contains(&m)) {
            txn = txn.delete(&kv.key);
        }
    }
    if !txn.is_empty() {
        state.meta.write(txn).await?;
    }
    state.stats.forget(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// `requestStats` of a workload: the last 7 days, day by day.
pub async fn request_stats(state: &AppState, workload: &Workload) -> Result<ServiceStats, ApiError> {
    let minutes = minutes(state, &workload.id, None).await?;
    let now = nucleus_api::clock::now();
    let days: Vec<MinuteStats> =
        (0..7).rev().map(|d| sum_between(&minutes, now - chrono::Duration::days(d + 1), now - chrono::Duration::days(d))).collect();
    let mut week = MinuteStats::default();
    for day in &days {
        week.merge(day);
    }
    let metrics = RequestMetrics::of(&week, 7.0 * 1440.0, 0.5, 2000);
    Ok(ServiceStats {
        total_requests: week.total,
        error_rate: metrics.total_error_rate,
        error_rates: days.iter().map(|d| RequestMetrics::of(d, 1440.0, 0.5, 2000).total_error_rate).collect(),
        request_rates: days.iter().map(|d| d.total as f64 / 1440.0).collect(),
        response_time: metrics.response_time,
        concurrent_requests: week.max_concurrency,
        last_request_at: week.last_request_at,
    })
}

/// `GET /workloads/stats`: every workload's last 24 hours, with the trend against the 24 before.
pub async fn overview(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Result<Json<StatsOverview>, ApiError> {
    let workloads = state.meta.list_json::<Workload>(keys::WORKLOADS).await?;
    let now = nucleus_api::clock::now();
    let day = chrono::Duration::days(1);
    let (mut today, mut yesterday) = (MinuteStats::default(), MinuteStats::default());
    let workloads: Vec<_> = workloads
        .into_iter()
        .filter(|w| {
            role_of(&caller, w.value.creator.as_ref(), &w.value.shared_roles).is_some_and(|r| r >= nucleus_api::identity::Role::User)
        })
        .collect();
    for w in &workloads {
        let minutes = minutes(&state, &w.value.id, None).await?;
        today.merge(&sum_between(&minutes, now - day, now));
        yesterday.merge(&sum_between(&minutes, now - day - day, now - day));
    }
    let (t, y) = (RequestMetrics::of(&today, 1440.0, 0.5, 2000), RequestMetrics::of(&yesterday, 1440.0, 0.5, 2000));
    let trend = |now: f64, before: f64| if before == 0.0 { 0.0 } else { (now - before) / before };
    let failed = today.server_errors + today.user_errors;
    Ok(Json(StatsOverview {
        workloads: WorkloadCounts {
            total: workloads.len(),
            active: workloads.iter().filter(|w| w.value.status == ProtonStatus::Running).count(),
        },
        requests: RequestCounts {
            total: today.total,
            succeeded: today.total - failed,
            failed,
            trend: trend(today.total as f64, yesterday.total as f64),
        },
        error_rate: RateTrend { rate: t.total_error_rate, trend: trend(t.total_error_rate, y.total_error_rate) },
        response_time: MillisTrend { millis: t.response_time, trend: trend(t.response_time, y.response_time) },
        concurrent_requests: CountTrend {
            count: t.concurrent_requests,
            trend: trend(f64::from(t.concurrent_requests), f64::from(y.concurrent_requests)),
        },
    }))
}
