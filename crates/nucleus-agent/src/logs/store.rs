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
/// The most record bytes kept for all protons together: past it, the oldest records of the
/// proton whose oldest record is oldest go first.
pub const MAX_BYTES_TOTAL: usize = 512 * 1024 * 1024;
/// How often appends also drop what expired in every proton (protons that print nothing more,
/// stopped or deleted ones, would otherwise keep their records).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

#[derive(Clone, Default)]
pub struct LogStore {
    inner: Arc<Mutex<Inner>>,
    max_bytes: Option<usize>,
    max_total: Option<usize>,
}

#[derive(Default)]
struct Inner {
    protons: HashMap<String, ProtonLogs>,
    /// Unix nanoseconds of the last sweep over every proton.
    swept_at: i64,
}

struct ProtonLogs {
    retention: Duration,
    records: VecDeque<LogRecord>,
    bytes: usize,
    /// When it last appended or was (re)launched: an empty entry is forgotten a retention later.
    touched_at: i64,
}

impl ProtonLogs {
    fn new(now: i64) -> ProtonLogs {
        ProtonLogs { retention: DEFAULT_RETENTION, records: VecDeque::new(), bytes: 0, touched_at: now }
    }

    fn retention_nanos(&self) -> i64 {
        i64::try_from(self.retention.as_nanos()).unwrap_or(i64::MAX)
    }

    /// Drops what is older than the retention, then the oldest beyond `max_bytes`.
    fn trim(&mut self, now_nanos: i64, max_bytes: usize) {
        let oldest_kept = now_nanos.saturating_sub(self.retention_nanos());
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

    /// A store keeping at most `max_bytes` per proton and `max_total` in all (tests).
    pub fn with_limits(max_bytes: usize, max_total: usize) -> LogStore {
        LogStore { max_bytes: Some(max_bytes), max_total: Some(max_total), ..LogStore::default() }
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn max_bytes(&self) -> usize {
        self.max_bytes.unwrap_or(MAX_BYTES_PER_PROTON)
    }

    fn max_total(&self) -> usize {
        self.max_total.unwrap_or(MAX_BYTES_TOTAL)
    }

    pub fn set_retention(&self, proton_id: &str, retention: Duration) {
        let now = now_nanos();
        let mut inner = self.inner();
        let logs = inner.protons.entry(proton_id.to_owned()).or_insert_with(|| ProtonLogs::new(now));
        logs.retention = retention;
        logs.touched_at = now;
    }

    pub fn append(&self, proton_id: &str, records: Vec<LogRecord>) {
        if records.is_empty() {
            return;
        }
        let now = now_nanos();
        let (max_bytes, max_total) = (self.max_bytes(), self.max_total());
        let mut inner = self.inner();
        let logs = inner.protons.entry(proton_id.to_owned()).or_insert_with(|| ProtonLogs::new(now));
        logs.touched_at = now;
        for record in records {
            logs.bytes += size(&record);
            logs.records.push_back(record);
        }
        logs.trim(now, max_bytes);
        if now.saturating_sub(inner.swept_at) >= i64::try_from(SWEEP_EVERY.as_nanos()).unwrap_or(i64::MAX) {
            inner.swept_at = now;
            inner.sweep(now, max_bytes);
        }
        inner.cap_total(max_total);
    }

    /// The newest matching records of the protons `request` names.
    pub fn query(&self, request: &LogsRequest) -> LogsResponse {
        let now = now_nanos();
        let max_bytes = self.max_bytes();
        let mut inner = self.inner();
        for id in &request.proton_ids {
            if let Some(logs) = inner.protons.get_mut(id) {
                logs.trim(now, max_bytes);
            }
        }
        let records = request.proton_ids.iter().filter_map(|id| inner.protons.get(id)).flat_map(|logs| logs.records.iter());
        filter::answer(records, request)
    }

    /// The messages of the last `count` records `replica` printed, oldest first.
    pub fn tail(&self, proton_id: &str, replica: &str, count: usize) -> Vec<String> {
        let inner = self.inner();
        let Some(logs) = inner.protons.get(proton_id) else { return Vec::new() };
        let mut tail: Vec<String> =
            logs.records.iter().rev().filter(|record| record.replica == replica).take(count).map(|record| record.message.clone()).collect();
        tail.reverse();
        tail
    }

    /// Record bytes kept in all.
    pub fn bytes(&self) -> usize {
        self.inner().protons.values().map(|logs| logs.bytes).sum()
    }
}

impl Inner {
    fn sweep(&mut self, now: i64, max_bytes: usize) {
        self.protons.retain(|_, logs| {
            logs.trim(now, max_bytes);
            !logs.records.is_empty() || now.saturating_sub(logs.touched_at) < logs.retention_nanos()
        });
    }

    fn cap_total(&mut self, max_total: usize) {
        let mut total: usize = self.protons.values().map(|logs| logs.bytes).sum();
        while total > max_total {
            let Some(oldest) = self
                .protons
                .values_mut()
                .filter(|logs| !logs.records.is_empty())
                .min_by_key(|logs| logs.records.front().map_or(i64::MAX, |record| record.unix_nanos))
            else {
                return;
            };
            if let Some(record) = oldest.records.pop_front() {
                oldest.bytes -= size(&record);
                total -= size(&record);
            }
        }
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
        let store = LogStore::with_limits(1000, usize::MAX);
        for i in 0..100 {
            store.append("p", vec![record("p-0", &format!("line {i}"), Duration::ZERO)]);
        }
        let answer = store.query(&request());
        assert!(answer.matched > 5 && answer.matched < 20, "{}", answer.matched);
        assert_eq!(answer.records[0].message, "line 99");
    }

    #[test]
    fn all_protons_together_stay_under_the_total_bound_oldest_first() {
        let store = LogStore::with_limits(usize::MAX, 2000);
        store.append("old", vec![record("old-0", "ancient", Duration::from_secs(60))]);
        for i in 0..50 {
            store.append("new", vec![record("new-0", &format!("line {i}"), Duration::ZERO)]);
        }
        assert!(store.bytes() <= 2000, "{}", store.bytes());
        let old = store.query(&LogsRequest { proton_ids: vec!["old".into()], ..Default::default() });
        assert!(old.records.is_empty(), "the oldest record went first");
        let new = store.query(&LogsRequest { proton_ids: vec!["new".into()], ..Default::default() });
        assert_eq!(new.records[0].message, "line 49");
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
