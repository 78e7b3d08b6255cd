//! Which records a `Logs` request asks for, and its answer: the newest matching records first.

use std::collections::BTreeMap;

use nucleus_proto::agent::v1::{LogRecord, LogsRequest, LogsResponse};

/// Records sent when a request names no limit, and the most any request gets.
pub const DEFAULT_LIMIT: usize = 1000;
pub const MAX_LIMIT: usize = 10_000;

/// The most message bytes one answer carries (under the gateway's gRPC decoding limit); a page
/// of long lines is cut short rather than refused.
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// The attributes a request can match records on (`LogAttribute.key`).
pub const ATTRIBUTES: &[&str] = &["proton_id", "replica", "stream"];

pub struct LogFilter {
    min_severity: i32,
    start: Option<i64>,
    end: Option<i64>,
    includes: Vec<String>,
    excludes: Vec<String>,
    trace_id: String,
    span_id: String,
    /// Attribute name → the values it may have.
    attributes: BTreeMap<String, Vec<String>>,
}

impl LogFilter {
    pub fn new(request: &LogsRequest) -> LogFilter {
        let mut attributes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for attribute in &request.attributes {
            attributes.entry(attribute.key.clone()).or_default().push(attribute.value.clone());
        }
        LogFilter {
            min_severity: request.min_severity,
            start: request.start_unix_nanos,
            end: request.end_unix_nanos,
            includes: request.includes.clone(),
            excludes: request.excludes.clone(),
            trace_id: request.trace_id.clone(),
            span_id: request.span_id.clone(),
            attributes,
        }
    }

    pub fn matches(&self, record: &LogRecord) -> bool {
        record.severity >= self.min_severity
            && self.start.is_none_or(|start| record.unix_nanos >= start)
            && self.end.is_none_or(|end| record.unix_nanos <= end)
            && (self.trace_id.is_empty() || record.trace_id == self.trace_id)
            && (self.span_id.is_empty() || record.span_id == self.span_id)
            && self.includes.iter().all(|text| record.message.contains(text.as_str()))
            && !self.excludes.iter().any(|text| record.message.contains(text.as_str()))
            && self.attributes.iter().all(|(key, values)| {
                let value = match key.as_str() {
                    "proton_id" => &record.proton_id,
                    "replica" => &record.replica,
                    "stream" => &record.stream,
                    _ => return false,
                };
                values.iter().any(|wanted| wanted == value)
            })
    }
}

/// The answer to `request` from `records` (any order): the newest `limit` matching ones, newest
/// first (records of the same time keep their order of arrival, newest last in, first out).
pub fn answer<'a>(records: impl Iterator<Item = &'a LogRecord>, request: &LogsRequest) -> LogsResponse {
    let filter = LogFilter::new(request);
    let mut matching: Vec<&LogRecord> = records.filter(|record| filter.matches(record)).collect();
    let matched = matching.len() as u64;
    matching.reverse();
    matching.sort_by_key(|record| std::cmp::Reverse(record.unix_nanos));
    let limit = match request.limit as usize {
        0 => DEFAULT_LIMIT,
        limit => limit.min(MAX_LIMIT),
    };
    let mut bytes = 0;
    let records = matching
        .into_iter()
        .take(limit)
        .take_while(|record| {
            bytes += record.message.len() + 128;
            bytes <= MAX_ANSWER_BYTES
        })
        .cloned()
        .collect();
    LogsResponse { records, matched }
}

#[cfg(test)]
mod tests {
    use nucleus_proto::agent::v1::{LogAttribute, Severity};

    use super::*;

    fn record(at: i64, severity: Severity, message: &str, replica: &str) -> LogRecord {
        LogRecord {
            unix_nanos: at,
            severity: severity as i32,
            message: message.into(),
            proton_id: "p".into(),
            replica: replica.into(),
            stream: "stdout".into(),
            trace_id: if message.contains("traced") { "t1".into() } else { String::new() },
            span_id: String::new(),
        }
    }

    fn records() -> Vec<LogRecord> {
        vec![
            record(10, Severity::Debug, "tick", "p-0"),
            record(20, Severity::Info, "request traced", "p-0"),
            record(30, Severity::Warning, "slow request", "p-1"),
            record(40, Severity::Error, "request failed", "p-1"),
            record(40, Severity::Critical, "gave up", "p-0"),
        ]
    }

    fn messages(request: LogsRequest) -> (Vec<String>, u64) {
        let answer = answer(records().iter(), &request);
        (answer.records.into_iter().map(|r| r.message).collect(), answer.matched)
    }

    #[test]
    fn newest_first_within_the_limit() {
        let (all, matched) = messages(LogsRequest::default());
        assert_eq!(all, ["gave up", "request failed", "slow request", "request traced", "tick"]);
        assert_eq!(matched, 5);
        let (two, matched) = messages(LogsRequest { limit: 2, ..Default::default() });
        assert_eq!((two, matched), (vec!["gave up".to_owned(), "request failed".to_owned()], 5));
    }

    #[test]
    fn each_filter_narrows() {
        let min = LogsRequest { min_severity: Severity::Warning as i32, ..Default::default() };
        assert_eq!(messages(min).0, ["gave up", "request failed", "slow request"]);
        let window = LogsRequest { start_unix_nanos: Some(20), end_unix_nanos: Some(30), ..Default::default() };
        assert_eq!(messages(window).0, ["slow request", "request traced"]);
        let text = LogsRequest { includes: vec!["request".into()], excludes: vec!["slow".into()], ..Default::default() };
        assert_eq!(messages(text).0, ["request failed", "request traced"]);
        let traced = LogsRequest { trace_id: "t1".into(), ..Default::default() };
        assert_eq!(messages(traced).0, ["request traced"]);
        let replica = LogsRequest { attributes: vec![LogAttribute { key: "replica".into(), value: "p-1".into() }], ..Default::default() };
        assert_eq!(messages(replica).0, ["request failed", "slow request"]);
        let unknown = LogsRequest { attributes: vec![LogAttribute { key: "pod".into(), value: "x".into() }], ..Default::default() };
        assert_eq!(messages(unknown), (vec![], 0));
    }
}
