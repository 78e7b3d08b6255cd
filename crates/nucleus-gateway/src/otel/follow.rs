//! `GET /otel/workload/{id}/logs/stream/`: a live follow of what the workload's replicas print,
//! as server-sent events (what `nucleus workload logs -f` reads). It takes the filters of the
//! logs list; it first sends the newest `limit` records that match (oldest first), then each new
//! one as the agents report it, polling them every [`POLL_EVERY`].
//!
//! Events: `log` (data: one record as the list has it; id: its time in Unix nanoseconds, which a
//! reconnecting client sends back as `Last-Event-ID` to go on where it stopped), `warning` (some
//! agents could not be read, or records were skipped) and `end` (the workload is gone, or
//! `endTime` has passed), after which the server closes the stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use nucleus_api::FieldError;
use nucleus_api::validation::Loc;
use nucleus_proto::agent::v1::LogRecord;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::logs::{LogsQuery, MAX_LIMIT, entry, gather};
use crate::access::Need;
use crate::auth::Caller;
use crate::listing::check;
use crate::request::Query;
use crate::workloads::load;
use crate::{ApiError, AppState};

/// How often the agents are asked for what is new: a line shows within a second or so.
pub const POLL_EVERY: Duration = Duration::from_millis(500);
const KEEP_ALIVE: Duration = Duration::from_secs(15);

type Events = Sse<axum::response::sse::KeepAliveStream<ReceiverStream<Result<Event, Infallible>>>>;

pub async fn stream(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Events, ApiError> {
    let query = Query::parse(uri.query());
    let logs = LogsQuery::parse(&query)?;
    if logs.offset != 0 {
        check(vec![FieldError::new(
            &Loc::query().key("offset"),
            "A follow starts at the newest records; page back with GET /otel/workload/{id}/logs/ instead",
            "value_error",
        )])?;
    }
    load(&state, &caller, &id, Need::Read).await?;
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<i64>().ok());
    let (events, receiver) = mpsc::channel(256);
    tokio::spawn(Follow { state, caller, id, logs, events, cursor: Cursor::default() }.run(resume));
    Ok(Sse::new(ReceiverStream::new(receiver)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// Where the follow is: the newest time sent, and the records at exactly that time that were
/// sent (the next poll asks from that time on, inclusive, and must not send them twice).
#[derive(Default)]
struct Cursor {
    newest: Option<i64>,
    at_newest: Vec<RecordKey>,
}

type RecordKey = (String, String, String, String);

fn key(record: &LogRecord) -> RecordKey {
    (record.proton_id.clone(), record.replica.clone(), record.stream.clone(), record.message.clone())
}

impl Cursor {
    /// Of `records` (newest first, as the agents answer), those not sent yet, oldest first; the
    /// cursor moves past them.
    fn take_new(&mut self, mut records: Vec<LogRecord>) -> Vec<LogRecord> {
        records.reverse();
        let mut seen_again = self.at_newest.clone();
        records.retain(|record| {
            if Some(record.unix_nanos) != self.newest {
                return self.newest.is_none_or(|newest| record.unix_nanos > newest);
            }
            match seen_again.iter().position(|seen| *seen == key(record)) {
                Some(at) => {
                    seen_again.swap_remove(at);
                    false
                }
                None => true,
            }
        });
        if let Some(newest) = records.last().map(|r| r.unix_nanos) {
            if self.newest != Some(newest) {
                self.at_newest.clear();
                self.newest = Some(newest);
            }
            self.at_newest.extend(records.iter().filter(|r| r.unix_nanos == newest).map(key));
        }
        records
    }
}

struct Follow {
    state: AppState,
    caller: Caller,
    id: String,
    logs: LogsQuery,
    events: mpsc::Sender<Result<Event, Infallible>>,
    cursor: Cursor,
}

impl Follow {
    async fn run(mut self, resume: Option<i64>) {
        let end = self.logs.request.end_unix_nanos;
        let mut first = match resume {
            // A reconnect: everything from the last record it had (that one may come again).
            Some(nanos) => {
                self.logs.request.start_unix_nanos = Some(self.logs.request.start_unix_nanos.map_or(nanos, |s| s.max(nanos)));
                false
            }
            None => true,
        };
        loop {
            if let Err(done) = self.poll(first).await {
                let _ = self.events.send(Ok(Event::default().event("end").data(done))).await;
                return;
            }
            first = false;
            if end.is_some_and(|end| nucleus_api::clock::now().timestamp_nanos_opt().is_none_or(|now| now > end)) {
                let _ = self.events.send(Ok(Event::default().event("end").data("endTime has passed"))).await;
                return;
            }
            tokio::select! {
                () = tokio::time::sleep(POLL_EVERY) => {}
                () = self.events.closed() => return,
            }
        }
    }

    /// One round: sends what is new. `Err` says why the follow is over.
    async fn poll(&mut self, first: bool) -> Result<(), String> {
        match load(&self.state, &self.caller, &self.id, Need::Read).await {
            Ok(_) => {}
            Err(ApiError::NotFound(_)) => return Err(format!("workload {} was deleted", self.id)),
            Err(ApiError::Forbidden(_)) => return Err(format!("this token may no longer read workload {}", self.id)),
            Err(err) => return self.warn(format!("cannot check workload {}: {err}; still following", self.id)).await,
        }
        let mut logs = self.logs.request.clone();
        if let Some(newest) = self.cursor.newest {
            logs.start_unix_nanos = Some(logs.start_unix_nanos.map_or(newest, |start| start.max(newest)));
        }
        // The first round sends the newest `limit`; later rounds all that is new (at most a page).
        logs.limit =
            if first { u32::try_from(self.logs.limit).unwrap_or(u32::MAX) } else { (MAX_LIMIT + self.cursor.at_newest.len()) as u32 };
        let query = LogsQuery { request: logs, ..self.logs.clone() };
        let gathered = match gather(&self.state, &self.id, &query).await {
            Ok(gathered) => gathered,
            Err(err) => return self.warn(format!("{err}; still following")).await,
        };
        if let Some(warning) = gathered.warning() {
            self.warn(warning).await?;
        }
        let skipped = gathered.matched.saturating_sub(gathered.records.len());
        if !first && skipped > 0 {
            self.warn(format!(
                "{skipped} records came faster than a follow sends them and were skipped; read them with GET /otel/workload/{}/logs/",
                self.id
            ))
            .await?;
        }
        for record in self.cursor.take_new(gathered.records) {
            let nanos = record.unix_nanos;
            let event = Event::default().event("log").id(nanos.to_string()).json_data(entry(record)).map_err(|e| e.to_string())?;
            self.events.send(Ok(event)).await.map_err(|_| "the client went away".to_owned())?;
        }
        Ok(())
    }

    async fn warn(&self, message: String) -> Result<(), String> {
        self.events.send(Ok(Event::default().event("warning").data(message))).await.map_err(|_| "the client went away".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(nanos: i64, message: &str) -> LogRecord {
        LogRecord { unix_nanos: nanos, message: message.to_owned(), proton_id: "p".into(), replica: "r".into(), ..LogRecord::default() }
    }

    fn messages(records: &[LogRecord]) -> Vec<&str> {
        records.iter().map(|r| r.message.as_str()).collect()
    }

    #[test]
    fn the_cursor_sends_each_record_once_even_when_several_share_a_time() {
        let mut cursor = Cursor::default();
        // Newest first, as the agents answer.
        let sent = cursor.take_new(vec![record(20, "c"), record(20, "b"), record(10, "a")]);
        assert_eq!(messages(&sent), ["a", "b", "c"], "oldest first");
        // The next poll starts at 20 inclusive: b and c come again, with a new line at 20 and one later.
        let sent = cursor.take_new(vec![record(30, "e"), record(20, "d"), record(20, "c"), record(20, "b")]);
        assert_eq!(messages(&sent), ["d", "e"]);
        assert_eq!(cursor.newest, Some(30));
        assert!(cursor.take_new(vec![record(30, "e")]).is_empty(), "nothing new");
        // The same line printed twice at the same time is two records.
        let sent = cursor.take_new(vec![record(30, "e"), record(30, "e")]);
        assert_eq!(messages(&sent), ["e"]);
    }
}
