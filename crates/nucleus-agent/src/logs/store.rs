//! The log records an agent keeps, per proton: appended as replicas print, dropped when older
//! than the proton's retention (longer for locked workloads than for drafts) or when the proton's
//! records exceed their size bound (oldest first).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use nucleus_proto::agent::v1::{LogRecord, LogsRequest, LogsResponse};

use super::filter;
use super::parse::unix_nanos;

/// How long records are kept when the launch named no retention.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// The most record bytes kept per proton.
pub const MAX_BYTES_PER_PROTON: usize = 16 * 1024 * 1024;

#[derive(Clone, Default)]
pub struct LogStore {
    protons: Arc<Mutex<HashMap<String, ProtonLogs>>>,
    max_bytes: Option<usize>,
}

struct ProtonLogs {
    retention: Duration,
    records: VecDeque<LogRecord>,
    bytes: usize,
}

impl ProtonLogs {
    fn new() -> ProtonLogs {
        ProtonLogs { retention: DEFAULT_RETENTION, records: VecDeque::new(), bytes: 0 }
    }

    /// Drops what is older than the retention, then the oldest beyond `max_bytes`.
    fn trim(&mut self, now_nanos: i64, max_bytes: usize) {
        let retention = i64::try_from(self.retention.as_nanos()).unwrap_or(i64::MAX);
        let oldest_kept = now_nanos.saturating_sub(retention);
        while let Some(front) = self.records.front() {
            if front.unix_nanos >= oldest_kept && self.bytes <= max_bytes {
                break;
            }
            self.bytes -= size(front);
            self.records.pop_front();
        }
    }
}

/// What a record costs to keep, roughly.
fn size(record: &LogRecord) -> usize {
    64 + record.message.len() + record.proton_id.len() + record.replica.len() + record.trace_id.len() + record.span_id.len()
}

fn now_nanos() -> i64 {
    unix_nanos(nucleus_api::clock::now())
}

impl LogStore {
    pub fn new() -> LogStore {
        LogStore::default()
    }

    /// A store keeping at most `max_bytes` per proton (tests).
    pub fn with_max_bytes(max_bytes: usize) -> LogStore {
        LogStore { max_bytes: Some(max_bytes), ..LogStore::default() }
    }

    fn protons(&self) -> MutexGuard<'_, HashMap<String, ProtonLogs>> {
        self.protons.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn max_bytes(&self) -> usize {
        self.max_bytes.unwrap_or(MAX_BYTES_PER_PROTON)
    }

    pub fn set_retention(&self, proton_id: &str, retention: Duration) {
        self.protons().entry(proton_id.to_owned()).or_insert_with(ProtonLogs::new).retention = retention;
    }

    pub fn append(&self, proton_id: &str, records: Vec<LogRecord>) {
        if records.is_empty() {
            return;
        }
        let max_bytes = self.max_bytes();
        let mut protons = self.protons();
        let logs = protons.entry(proton_id.to_owned()).or_insert_with(ProtonLogs::new);
        for record in records {
            logs.bytes += size(&record);
            logs.records.push_back(record);
        }
        logs.trim(now_nanos(), max_bytes);
    }

    /// The newest matching records of the protons `request` names.
    pub fn query(&self, request: &LogsRequest) -> LogsResponse {
        let now = now_nanos();
        let max_bytes = self.max_bytes();
        let mut protons = self.protons();
        for id in &request.proton_ids {
            if let Some(logs) = protons.get_mut(id) {
                logs.trim(now, max_bytes);
            }
        }
        let records = request.proton_ids.iter().filter_map(|id| protons.get(id)).flat_map(|logs| logs.records.iter());
        filter::answer(records, request)
    }

    /// The messages of the last `count` records `replica` printed, oldest first.
    pub fn tail(&self, proton_id: &str, replica: &str, count: usize) -> Vec<String> {
        let protons = self.protons();
        let Some(logs) = protons.get(proton_id) else { return Vec::new() };
        let mut tail: Vec<String> =
            logs.records.iter().rev().filter(|record| record.replica == replica).take(count).map(|record| record.message.clone()).collect();
        tail.reverse();
        tail
    }

    /// Forgets the protons whose every record has expired (run now and then).
    pub fn forget_expired(&self) {
        let now = now_nanos();
        let max_bytes = self.max_bytes();
        self.protons().retain(|_, logs| {
            logs.trim(now, max_bytes);
            !logs.records.is_empty() || logs.retention != DEFAULT_RETENTION
        });
    }
}

#[cfg(test)]
mod tests {
    use nucleus_proto::agent::v1::Severity;

    use super::*;

    fn record(replica: &str, message: &str, age: Duration) -> LogRecord {
        let at = now_nanos() - i64::try_from(age.as_nanos()).expect("age");
        LogRecord {
            unix_nanos: at,
            severity: Severity::Info as i32,
            message: message.into(),
            proton_id: "p".into(),
            replica: replica.into(),
            ..Default::default()
        }
    }

    fn request() -> LogsRequest {
        LogsRequest { proton_ids: vec!["p".into()], ..Default::default() }
    }

    #[test]
    fn records_older_than_the_retention_are_dropped() {
        let store = LogStore::new();
        store.set_retention("p", Duration::from_secs(3600));
        store.append("p", vec![record("p-0", "old", Duration::from_secs(7200)), record("p-0", "new", Duration::from_secs(60))]);
        let answer = store.query(&request());
        assert_eq!(answer.records.iter().map(|r| r.message.as_str()).collect::<Vec<_>>(), ["new"]);
        assert!(store.query(&LogsRequest { proton_ids: vec!["other".into()], ..Default::default() }).records.is_empty());
    }

    #[test]
    fn the_oldest_records_go_past_the_size_bound() {
        let store = LogStore::with_max_bytes(1000);
        for i in 0..100 {
            store.append("p", vec![record("p-0", &format!("line {i}"), Duration::ZERO)]);
        }
        let answer = store.query(&request());
        assert!(answer.matched > 5 && answer.matched < 20, "{}", answer.matched);
        assert_eq!(answer.records[0].message, "line 99");
    }

    #[test]
    fn the_tail_is_one_replicas_newest_lines_oldest_first() {
        let store = LogStore::new();
        let lines = ["a", "b", "c", "d"].map(|m| record(if m == "c" { "p-1" } else { "p-0" }, m, Duration::ZERO));
        store.append("p", lines.to_vec());
        assert_eq!(store.tail("p", "p-0", 2), ["b", "d"]);
        assert!(store.tail("q", "q-0", 2).is_empty());
    }
}
