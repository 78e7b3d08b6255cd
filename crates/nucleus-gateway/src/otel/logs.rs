//! `GET /otel/workload/{id}/logs/`: the records of what the workload's replicas printed (every
//! proton of the workload, active and candidate together), newest first, read from the agents
//! that run them. Filters go to the agents; the pages are cut here from their merged answers.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use nucleus_api::otel::{LogEntry, LogLevel};
use nucleus_api::page::{Page, neighbours};
use nucleus_api::validation::Loc;
use nucleus_api::{FieldError, Proton};
use nucleus_client::{AgentRecord, keys};
use nucleus_proto::agent::v1::{LogAttribute, LogRecord, LogsRequest, Severity};

use crate::access::Need;
use crate::auth::Caller;
use crate::listing::check;
use crate::request::{Query, base_url};
use crate::workloads::load;
use crate::{ApiError, AppState};

pub const DEFAULT_LIMIT: usize = 100;
/// The most records one page holds (the hosted API's limit, which DataRobot's CLI relies on).
pub const MAX_LIMIT: usize = 1000;
/// How deep pages go: an agent answers at most `offset + limit` records.
const MAX_OFFSET: usize = 9000;
/// What `searchKeys` can name.
pub const SEARCH_KEYS: &[&str] = &["proton_id", "replica", "stream"];

/// A logs request, checked.
#[derive(Clone)]
pub struct LogsQuery {
    pub(super) offset: usize,
    pub(super) limit: usize,
    pub(super) request: LogsRequest,
    /// `searchKeys=proton_id`: only these protons.
    pub(super) protons: Option<Vec<String>>,
}

impl LogsQuery {
    pub fn parse(query: &Query) -> Result<LogsQuery, ApiError> {
        let mut errors = Vec::new();
        let offset = query.int("offset", 0, 0, MAX_OFFSET, &mut errors);
        let limit = query.int("limit", DEFAULT_LIMIT, 1, MAX_LIMIT, &mut errors);
        let level = match query.one("level") {
            None | Some("") => LogLevel::Debug,
            Some(value) => LogLevel::from_query(value).unwrap_or_else(|| {
                errors.push(FieldError::new(
                    &Loc::query().key("level"),
                    format!("Unknown level '{value}'; use one of debug, info, warn, warning, error, critical"),
                    "enum",
                ));
                LogLevel::Debug
            }),
        };
        let start = query_time(query, "startTime", &mut errors);
        let end = query_time(query, "endTime", &mut errors);
        if let (Some(start), Some(end)) = (start, end)
            && start > end
        {
            errors.push(FieldError::new(&Loc::query().key("endTime"), "endTime must not be before startTime", "value_error"));
        }
        let pairs = search_pairs(query, "logs", SEARCH_KEYS, &mut errors);
        check(errors)?;
        let attributes: Vec<LogAttribute> = pairs.into_iter().map(|(key, value)| LogAttribute { key, value }).collect();
        let protons = attributes
            .iter()
            .any(|a| a.key == "proton_id")
            .then(|| attributes.iter().filter(|a| a.key == "proton_id").map(|a| a.value.clone()).collect::<Vec<_>>());
        let request = LogsRequest {
            proton_ids: Vec::new(),
            min_severity: severity(level) as i32,
            start_unix_nanos: start.map(nanos),
            end_unix_nanos: end.map(nanos),
            includes: query.each("includes"),
            excludes: query.each("excludes"),
            trace_id: query.one("traceId").unwrap_or_default().to_owned(),
            span_id: query.one("spanId").unwrap_or_default().to_owned(),
            attributes,
            limit: u32::try_from(offset + limit).unwrap_or(u32::MAX),
        };
        Ok(LogsQuery { offset, limit, request, protons })
    }
}

/// `searchKeys`/`searchValues` (parallel lists) as (key, value) pairs; keys outside `allowed`,
/// and lists of different lengths, are field errors naming the parameter.
pub(super) fn search_pairs(query: &Query, what: &str, allowed: &[&str], errors: &mut Vec<FieldError>) -> Vec<(String, String)> {
    let keys = query.each("searchKeys");
    let values = query.each("searchValues");
    if keys.len() != values.len() {
        errors.push(FieldError::new(
            &Loc::query().key("searchValues"),
            format!("searchKeys and searchValues are parallel lists: {} keys but {} values", keys.len(), values.len()),
            "value_error",
        ));
    }
    for key in keys.iter().filter(|key| !allowed.contains(&key.as_str())) {
        errors.push(FieldError::new(
            &Loc::query().key("searchKeys"),
            format!("Cannot search {what} by '{key}'; use one of {}", allowed.join(", ")),
            "enum",
        ));
    }
    keys.into_iter().zip(values).collect()
}

/// An RFC 3339 time parameter; a bad one is a field error naming it.
pub(super) fn query_time(query: &Query, key: &str, errors: &mut Vec<FieldError>) -> Option<DateTime<Utc>> {
    let raw = query.one(key).filter(|raw| !raw.is_empty())?;
    match DateTime::parse_from_rfc3339(raw) {
        Ok(at) => Some(at.with_timezone(&Utc)),
        Err(err) => {
            errors.push(FieldError::new(
                &Loc::query().key(key),
                format!("'{raw}' is not an RFC 3339 time ({err}); e.g. 2026-12-07T10:00:00Z"),
                "datetime_parsing",
            ));
            None
        }
    }
}

/// Unix nanoseconds, clamped: a time past 2262 or before 1677 still bounds the window.
fn nanos(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(if at.timestamp() > 0 { i64::MAX } else { i64::MIN })
}

fn severity(level: LogLevel) -> Severity {
    match level {
        LogLevel::Debug => Severity::Debug,
        LogLevel::Info => Severity::Info,
        LogLevel::Warning => Severity::Warning,
        LogLevel::Error => Severity::Error,
        LogLevel::Critical => Severity::Critical,
    }
}

fn level(severity: Severity) -> LogLevel {
    match severity {
        Severity::Debug => LogLevel::Debug,
        Severity::Info | Severity::Unspecified => LogLevel::Info,
        Severity::Warning => LogLevel::Warning,
        Severity::Error => LogLevel::Error,
        Severity::Critical => LogLevel::Critical,
    }
}

pub fn entry(record: LogRecord) -> LogEntry {
    let non_empty = |text: String| (!text.is_empty()).then_some(text);
    LogEntry {
        timestamp: DateTime::from_timestamp_nanos(record.unix_nanos),
        level: level(record.severity()),
        message: record.message,
        trace_id: non_empty(record.trace_id),
        span_id: non_empty(record.span_id),
        proton_id: record.proton_id,
        replica: record.replica,
        stream: non_empty(record.stream),
    }
}

/// What the agents answered for one logs request: their records (newest first across agents),
/// how many matched in all, and the agents that could not be read.
pub(super) struct Gathered {
    pub records: Vec<LogRecord>,
    pub matched: usize,
    pub asked: usize,
    pub missing: Vec<ApiError>,
}

impl Gathered {
    /// A `Warning` value saying which agents are missing from the answer, if any are.
    pub fn warning(&self) -> Option<String> {
        let first = self.missing.first()?;
        let reason = first.to_string().replace(['"', '\\'], "'");
        Some(format!("{} of {} agents could not be read: {reason}", self.missing.len(), self.asked).replace(['\r', '\n'], " "))
    }
}

/// Asks every agent that runs (or ran) a proton of workload `id` for the records `logs` selects.
/// Fails only when every agent asked failed.
pub(super) async fn gather(state: &AppState, id: &str, logs: &LogsQuery) -> Result<Gathered, ApiError> {
    let protons = state.meta.list_json::<Proton>(&keys::protons_of(id)).await?;
    let mut by_agent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut unplaced = Vec::new();
    for proton in protons.into_iter().map(|p| p.value) {
        if !logs.protons.as_ref().is_none_or(|ids| ids.contains(&proton.id)) {
            continue;
        }
        match proton.agent {
            Some(agent) => by_agent.entry(agent).or_default().push(proton.id),
            None => unplaced.push(proton.id),
        }
    }
    if !unplaced.is_empty() {
        // A stopped (or preempted) proton gave up its placement, but the agent it ran on keeps
        // what it printed: ask every agent (those that never ran it answer nothing).
        for agent in state.meta.list_json::<AgentRecord>(keys::AGENTS).await? {
            by_agent.entry(agent.value.name).or_default().extend(unplaced.iter().cloned());
        }
    }
    let asks = by_agent.into_iter().map(|(agent, proton_ids)| {
        let request = LogsRequest { proton_ids, ..logs.request.clone() };
        async move {
            let client = state.agents.client(&state.meta, &agent).await?;
            client.logs(request).await.map_err(|err| {
                ApiError::Unavailable(format!("cannot read the logs agent {agent} keeps: {err}; retry shortly, or check the agent"))
            })
        }
    });
    let answers = futures::future::join_all(asks).await;
    let mut gathered = Gathered { records: Vec::new(), matched: 0, asked: answers.len(), missing: Vec::new() };
    for answer in answers {
        match answer {
            Ok(answer) => {
                gathered.matched += usize::try_from(answer.matched).unwrap_or(usize::MAX);
                gathered.records.extend(answer.records);
            }
            Err(err) => gathered.missing.push(err),
        }
    }
    if gathered.asked > 0 && gathered.missing.len() == gathered.asked {
        return Err(gathered.missing.remove(0));
    }
    // Newest first across agents; each agent's answer is newest first already.
    gathered.records.sort_by_key(|record| std::cmp::Reverse(record.unix_nanos));
    Ok(gathered)
}

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let query = Query::parse(uri.query());
    let logs = LogsQuery::parse(&query)?;
    load(&state, &caller, &id, Need::Read).await?;
    let gathered = gather(&state, &id, &logs).await?;
    let warning = gathered.warning();
    let total = gathered.matched;
    let data: Vec<LogEntry> = gathered.records.into_iter().skip(logs.offset).take(logs.limit).map(entry).collect();
    // No `next` past the deepest offset a request may ask for.
    let (next, previous) = neighbours(logs.offset, logs.limit, total.min(MAX_OFFSET + 1));
    let link = |offset: usize| format!("{}{}?{}", base_url(&state), uri.path(), query.with_offset(offset));
    let page = Page { count: data.len(), total_count: total, next: next.map(link), previous: previous.map(link), data };
    let mut response = Json(page).into_response();
    // Some agents answered: their records are worth having, with word of what is missing.
    if let Some(value) = warning.and_then(|w| HeaderValue::from_str(&format!("199 nucleus \"{w}\"")).ok()) {
        response.headers_mut().insert("warning", value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<LogsQuery, ApiError> {
        LogsQuery::parse(&Query::parse(Some(raw)))
    }

    fn fields(err: ApiError) -> Vec<String> {
        match err {
            ApiError::Validation(errors) => {
                errors.iter().filter_map(|e| e.loc.last().and_then(|v| v.as_str()).map(str::to_owned)).collect()
            }
            other => panic!("not a validation error: {other}"),
        }
    }

    #[test]
    fn the_query_becomes_one_agent_request() {
        let query = parse(
            "limit=50&offset=100&level=warn&startTime=2026-12-07T10:00:00Z&includes=a,b&includes=c&excludes[]=x\
             &traceId=t&spanId=s&searchKeys=proton_id&searchValues=p1&searchKeys=stream&searchValues=stderr",
        )
        .expect("valid");
        assert_eq!((query.offset, query.limit, query.request.limit), (100, 50, 150));
        assert_eq!(query.request.min_severity, Severity::Warning as i32);
        assert_eq!(query.request.includes, ["a,b", "c"], "commas are part of the text");
        assert_eq!(query.request.excludes, ["x"]);
        assert_eq!((query.request.trace_id.as_str(), query.request.span_id.as_str()), ("t", "s"));
        assert_eq!(query.protons, Some(vec!["p1".to_owned()]));
        assert_eq!(query.request.attributes.len(), 2);
        let start = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z").expect("time").timestamp_nanos_opt();
        assert_eq!(query.request.start_unix_nanos, start);
        let far = parse("startTime=2300-01-01T00:00:00Z").expect("valid");
        assert_eq!(far.request.start_unix_nanos, Some(i64::MAX), "out of range is clamped, not dropped");
        let defaults = parse("").expect("valid");
        assert_eq!((defaults.limit, defaults.request.min_severity, defaults.protons), (100, Severity::Debug as i32, None));
    }

    #[test]
    fn bad_parameters_are_named() {
        assert_eq!(fields(parse("level=loud").err().expect("invalid")), ["level"]);
        assert_eq!(fields(parse("limit=1001").err().expect("invalid")), ["limit"]);
        assert_eq!(fields(parse("startTime=yesterday").err().expect("invalid")), ["startTime"]);
        let backwards = "startTime=2026-12-07T11:00:00Z&endTime=2026-12-07T10:00:00Z";
        assert_eq!(fields(parse(backwards).err().expect("invalid")), ["endTime"]);
        assert_eq!(fields(parse("searchKeys=proton_id").err().expect("invalid")), ["searchValues"]);
        assert_eq!(fields(parse("searchKeys=pod&searchValues=x").err().expect("invalid")), ["searchKeys"]);
    }
}
