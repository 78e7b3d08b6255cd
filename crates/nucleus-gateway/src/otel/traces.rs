//! `GET /otel/workload/{id}/traces/` and `/traces/{traceId}/`: the recent invoke spans this
//! gateway made for a workload (kept in memory, the last [`KEPT_PER_WORKLOAD`] per workload,
//! while traces are exported), grouped by trace. The full traces, every role's spans, are in the
//! OTLP collector the roles export to.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use nucleus_api::otel::{Trace, TraceSpan, TraceSummary};

use super::logs::query_time;
use crate::access::Need;
use crate::auth::Caller;
use crate::listing::{Window, check, paginate};
use crate::request::Query;
use crate::workloads::load;
use crate::{ApiError, AppState};

pub const KEPT_PER_WORKLOAD: usize = 1000;
const SERVICE: &str = "nucleus-gateway";

/// One span this gateway made.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub trace_id: String,
    pub span: TraceSpan,
}

#[derive(Clone, Default)]
pub struct RecentSpans {
    by_workload: Arc<Mutex<HashMap<String, VecDeque<SpanRecord>>>>,
}

impl RecentSpans {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, VecDeque<SpanRecord>>> {
        self.by_workload.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps the invoke span of `workload` whose `traceparent` the replica got (`00-trace-span-01`).
    #[allow(clippy::too_many_arguments)] // one span's fields
    pub fn record_invoke(
        &self,
        workload: &str,
        traceparent: &str,
        caller_traceparent: Option<&str>,
        method: &str,
        path: &str,
        status: u16,
        started: DateTime<Utc>,
        nanos: u64,
    ) {
        let Some((trace_id, span_id)) = ids(traceparent) else { return };
        let parent_span_id = caller_traceparent.and_then(ids).filter(|(trace, _)| *trace == trace_id).map(|(_, span)| span);
        let attributes = BTreeMap::from([
            ("http.request.method".to_owned(), method.to_owned()),
            ("http.response.status_code".to_owned(), status.to_string()),
            ("url.path".to_owned(), path.to_owned()),
        ]);
        let span = TraceSpan {
            span_id,
            parent_span_id,
            name: "invoke".to_owned(),
            service_name: SERVICE.to_owned(),
            start_time: started,
            duration: nanos,
            status: if status >= 500 { "error" } else { "ok" }.to_owned(),
            attributes,
        };
        let mut by_workload = self.lock();
        let kept = by_workload.entry(workload.to_owned()).or_default();
        kept.push_back(SpanRecord { trace_id, span });
        while kept.len() > KEPT_PER_WORKLOAD {
            kept.pop_front();
        }
    }

    pub fn forget(&self, workload: &str) {
        self.lock().remove(workload);
    }

    fn spans(&self, workload: &str) -> Vec<SpanRecord> {
        self.lock().get(workload).map(|kept| kept.iter().cloned().collect()).unwrap_or_default()
    }
}

/// `(trace id, span id)` of a `traceparent`.
fn ids(traceparent: &str) -> Option<(String, String)> {
    let mut parts = traceparent.split('-');
    let (_version, trace, span) = (parts.next()?, parts.next()?, parts.next()?);
    (trace.len() == 32 && span.len() == 16).then(|| (trace.to_owned(), span.to_owned()))
}

fn end_of(span: &TraceSpan) -> DateTime<Utc> {
    span.start_time + chrono::Duration::nanoseconds(i64::try_from(span.duration).unwrap_or(i64::MAX))
}

fn trace_of(trace_id: &str, spans: Vec<TraceSpan>) -> Option<Trace> {
    let start = spans.iter().map(|s| s.start_time).min()?;
    let end = spans.iter().map(end_of).max()?;
    let duration = u64::try_from((end - start).num_nanoseconds().unwrap_or(0)).unwrap_or(0);
    Some(Trace { trace_id: trace_id.to_owned(), duration, spans })
}

fn summary(trace: &Trace) -> Option<TraceSummary> {
    let ids: Vec<&str> = trace.spans.iter().map(|s| s.span_id.as_str()).collect();
    let root = trace
        .spans
        .iter()
        .filter(|s| s.parent_span_id.as_deref().is_none_or(|parent| !ids.contains(&parent)))
        .min_by_key(|s| s.start_time)?;
    Some(TraceSummary {
        trace_id: trace.trace_id.clone(),
        timestamp: root.start_time,
        root_span_name: root.name.clone(),
        root_service_name: root.service_name.clone(),
        duration: trace.duration,
        spans_count: trace.spans.len(),
        error_spans_count: trace.spans.iter().filter(|s| s.status == "error").count(),
    })
}

fn traces(records: Vec<SpanRecord>) -> Vec<Trace> {
    let mut by_trace: BTreeMap<String, Vec<TraceSpan>> = BTreeMap::new();
    for record in records {
        by_trace.entry(record.trace_id).or_default().push(record.span);
    }
    by_trace.into_iter().filter_map(|(id, spans)| trace_of(&id, spans)).collect()
}

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let query = Query::parse(uri.query());
    let mut errors = Vec::new();
    let window = Window::from_query(&query, &mut errors);
    let (start, end) = (query_time(&query, "startTime", &mut errors), query_time(&query, "endTime", &mut errors));
    check(errors)?;
    load(&state, &caller, &id, Need::Read).await?;
    let mut summaries: Vec<TraceSummary> = traces(state.recent_spans.spans(&id))
        .iter()
        .filter_map(summary)
        .filter(|s| start.is_none_or(|start| s.timestamp >= start) && end.is_none_or(|end| s.timestamp <= end))
        .collect();
    summaries.sort_by_key(|s| std::cmp::Reverse(s.timestamp));
    Ok(Json(paginate(summaries, &window, &query, &state, &uri)).into_response())
}

pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, trace_id)): Path<(String, String)>,
) -> Result<Json<Trace>, ApiError> {
    load(&state, &caller, &id, Need::Read).await?;
    let records: Vec<SpanRecord> = state.recent_spans.spans(&id).into_iter().filter(|r| r.trace_id == trace_id).collect();
    let mut trace = traces(records).pop().ok_or_else(|| {
        ApiError::NotFound(format!(
            "Trace {trace_id} of workload {id} not found at this gateway (it keeps the last {KEPT_PER_WORKLOAD} invoke spans per workload \
             while traces are exported; the OTLP collector has every role's spans)"
        ))
    })?;
    trace.spans.sort_by_key(|s| s.start_time);
    Ok(Json(trace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoke_spans_group_into_traces_with_nanosecond_durations() {
        let spans = RecentSpans::default();
        let at = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z").expect("time").with_timezone(&Utc);
        let trace = "0af7651916cd43dd8448eb211c80319c";
        let caller = format!("00-{trace}-b7ad6b7169203331-01");
        spans.record_invoke("w", &format!("00-{trace}-00f067aa0ba902b7-01"), Some(&caller), "GET", "/a", 200, at, 2_000_000);
        spans.record_invoke("w", &format!("00-{trace}-1111111111111111-01"), Some(&caller), "GET", "/b", 503, at, 5_000_000);
        spans.record_invoke("w", "not-a-traceparent", None, "GET", "/c", 200, at, 1);
        let all = traces(spans.spans("w"));
        assert_eq!(all.len(), 1);
        let summary = summary(&all[0]).expect("summary");
        assert_eq!((summary.spans_count, summary.error_spans_count, summary.duration), (2, 1, 5_000_000));
        assert_eq!(summary.root_span_name, "invoke");
        assert_eq!(all[0].spans[0].parent_span_id.as_deref(), Some("b7ad6b7169203331"));
        spans.forget("w");
        assert!(spans.spans("w").is_empty());
    }
}
