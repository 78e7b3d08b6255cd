//! One line a replica printed, read as a log record: its own timestamp, severity, trace and span
//! where the line carries them (JSON logs, `LEVEL:`/`[LEVEL]` prefixes, logfmt `level=`), else the
//! time it was read and a severity from its stream.

use chrono::{DateTime, Utc};
use nucleus_proto::agent::v1::{LogRecord, Severity};
use serde_json::{Map, Value};

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    /// The driver cannot tell (Kubernetes pod logs interleave both).
    Unknown,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
            Stream::Unknown => "",
        }
    }

    /// What a line that names no severity is taken for: what a program writes to stderr is
    /// usually its errors and tracebacks (as Cloud Logging and DataRobot's tooling read it).
    fn default_severity(self) -> Severity {
        match self {
            Stream::Stderr => Severity::Error,
            Stream::Stdout | Stream::Unknown => Severity::Info,
        }
    }
}

/// Lines longer than this are cut (a replica printing megabytes without a newline must not
/// take the agent's memory).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;

/// A record of `line`, printed by `replica` of `proton_id` on `stream`, read at `observed`.
pub fn parse_line(line: &str, stream: Stream, observed: DateTime<Utc>, proton_id: &str, replica: &str) -> LogRecord {
    let line = cut(line.trim_end_matches(['\r', '\n']));
    let mut record = LogRecord {
        unix_nanos: unix_nanos(observed),
        severity: stream.default_severity() as i32,
        message: line.to_owned(),
        proton_id: proton_id.to_owned(),
        replica: replica.to_owned(),
        stream: stream.name().to_owned(),
        trace_id: String::new(),
        span_id: String::new(),
    };
    if line.trim_start().starts_with('{')
        && let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(line)
    {
        read_json(&fields, &mut record);
    } else if let Some(severity) = text_severity(line) {
        record.severity = severity as i32;
    }
    record
}

/// Fields of a JSON log line, under the names the common loggers give them (structlog, pino,
/// zap, logrus, python-json-logger, OpenTelemetry's log bridge).
fn read_json(fields: &Map<String, Value>, record: &mut LogRecord) {
    let text = |names: &[&str]| names.iter().find_map(|name| fields.get(*name).and_then(Value::as_str)).map(str::to_owned);
    if let Some(severity) = ["level", "levelname", "severity", "lvl", "loglevel", "log.level"]
        .iter()
        .find_map(|name| fields.get(*name))
        .and_then(|value| match value {
            Value::String(name) => severity_named(name),
            Value::Number(number) => number.as_u64().map(pino_severity),
            _ => None,
        })
    {
        record.severity = severity as i32;
    }
    if let Some(message) = text(&["message", "msg", "event", "text"]) {
        record.message = cut(&message).to_owned();
    }
    // A time nanoseconds since the epoch cannot hold (year 2262 on) is not believed.
    if let Some(at) = ["timestamp", "time", "ts", "@timestamp"].iter().find_map(|name| fields.get(*name)).and_then(json_time)
        && let Some(nanos) = at.timestamp_nanos_opt()
    {
        record.unix_nanos = nanos;
    }
    if let Some(trace) = text(&["trace_id", "traceId", "otelTraceID", "trace.id", "traceid"]) {
        record.trace_id = trace;
    }
    if let Some(span) = text(&["span_id", "spanId", "otelSpanID", "span.id", "spanid"]) {
        record.span_id = span;
    }
}

fn json_time(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::String(text) => DateTime::parse_from_rfc3339(text).ok().map(|at| at.with_timezone(&Utc)),
        // Seconds (with a fraction), milliseconds, microseconds or nanoseconds since the epoch,
        // told apart by size.
        Value::Number(number) => {
            let value = number.as_f64()?;
            let seconds = match value {
                v if v > 1e17 => v / 1e9,
                v if v > 1e14 => v / 1e6,
                v if v > 1e11 => v / 1e3,
                v => v,
            };
            let nanos = (seconds.fract() * 1e9) as u32;
            DateTime::from_timestamp(seconds.trunc() as i64, nanos)
        }
        _ => None,
    }
}

/// pino's numeric levels.
fn pino_severity(level: u64) -> Severity {
    match level {
        0..=20 => Severity::Debug,
        21..=30 => Severity::Info,
        31..=40 => Severity::Warning,
        41..=50 => Severity::Error,
        _ => Severity::Critical,
    }
}

/// A severity named at the start of a text line (after an optional timestamp): `INFO:root:…`,
/// `[WARN] …`, `ERROR …`, `2026-12-07 10:00:00,123 DEBUG …`, or anywhere as logfmt `level=…`.
fn text_severity(line: &str) -> Option<Severity> {
    if let Some(at) = line.find("level=") {
        let value = line[at + "level=".len()..].trim_start_matches('"');
        let word: String = value.chars().take_while(char::is_ascii_alphabetic).collect();
        if let Some(severity) = severity_named(&word) {
            return Some(severity);
        }
    }
    line.split(|c: char| c.is_whitespace() || matches!(c, ':' | '[' | ']' | '|' | '(' | ')'))
        // Timestamps and numbers before the level are skipped; only the first words can be it.
        .filter(|token| !token.is_empty() && !token.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+'))
        .take(3)
        .find_map(severity_named)
}

/// The severity a level name means; `None` for words that are not level names.
pub fn severity_named(name: &str) -> Option<Severity> {
    let severity = match name.to_ascii_lowercase().as_str() {
        "trace" | "debug" | "dbg" => Severity::Debug,
        "info" | "information" | "notice" => Severity::Info,
        "warn" | "warning" | "wrn" => Severity::Warning,
        "error" | "err" | "eror" => Severity::Error,
        "critical" | "crit" | "fatal" | "panic" | "alert" | "emerg" | "emergency" => Severity::Critical,
        _ => return None,
    };
    Some(severity)
}

pub fn unix_nanos(at: DateTime<Utc>) -> i64 {
    at.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

fn cut(line: &str) -> &str {
    if line.len() <= MAX_MESSAGE_BYTES {
        return line;
    }
    let mut end = MAX_MESSAGE_BYTES;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z").expect("time").with_timezone(&Utc)
    }

    fn parse(line: &str, stream: Stream) -> LogRecord {
        parse_line(line, stream, at(), "p", "p-0")
    }

    #[test]
    fn plain_lines_take_their_severity_from_the_stream() {
        let out = parse("listening on 8080\n", Stream::Stdout);
        assert_eq!((out.severity(), out.message.as_str(), out.stream.as_str()), (Severity::Info, "listening on 8080", "stdout"));
        assert_eq!(out.unix_nanos, unix_nanos(at()));
        let err = parse("Traceback (most recent call last):", Stream::Stderr);
        assert_eq!(err.severity(), Severity::Error);
        assert_eq!(parse("no level here", Stream::Unknown).severity(), Severity::Info);
    }

    #[test]
    fn text_prefixes_name_the_severity() {
        assert_eq!(parse("INFO:root:started", Stream::Stderr).severity(), Severity::Info);
        assert_eq!(parse("WARNING:  deprecated", Stream::Stdout).severity(), Severity::Warning);
        assert_eq!(parse("[error] boom", Stream::Stdout).severity(), Severity::Error);
        assert_eq!(parse("2026-12-07 10:00:00,123 DEBUG worker: tick", Stream::Stdout).severity(), Severity::Debug);
        assert_eq!(parse("ts=1 level=warn msg=\"slow\"", Stream::Stdout).severity(), Severity::Warning);
        assert_eq!(parse("FATAL out of memory", Stream::Stdout).severity(), Severity::Critical);
        // A level word deep in the message is not the line's level.
        assert_eq!(parse("user asked why the error page shows", Stream::Stdout).severity(), Severity::Info);
    }

    #[test]
    fn json_lines_give_their_fields() {
        let line = r#"{"level":"warning","message":"disk at 91%","timestamp":"2026-12-07T09:59:58.5Z","trace_id":"abc","span_id":"def"}"#;
        let record = parse(line, Stream::Stdout);
        assert_eq!(record.severity(), Severity::Warning);
        assert_eq!(record.message, "disk at 91%");
        assert_eq!((record.trace_id.as_str(), record.span_id.as_str()), ("abc", "def"));
        let expected = DateTime::parse_from_rfc3339("2026-12-07T09:59:58.5Z").expect("time").with_timezone(&Utc);
        assert_eq!(record.unix_nanos, unix_nanos(expected));

        let pino = parse(r#"{"level":50,"time":1796637600000,"msg":"failed"}"#, Stream::Stdout);
        assert_eq!((pino.severity(), pino.message.as_str()), (Severity::Error, "failed"));
        assert_eq!(pino.unix_nanos, 1_796_637_600_000_000_000);

        let micros = parse(r#"{"ts":1796637600000000,"msg":"x"}"#, Stream::Stdout);
        assert_eq!(micros.unix_nanos, 1_796_637_600_000_000_000);
        let far = parse(r#"{"time":"2300-01-01T00:00:00Z","msg":"x"}"#, Stream::Stdout);
        assert_eq!(far.unix_nanos, unix_nanos(at()), "a time out of range keeps the read time");

        let broken = parse("{not json", Stream::Stdout);
        assert_eq!((broken.severity(), broken.message.as_str()), (Severity::Info, "{not json"));
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        let line = "é".repeat(MAX_MESSAGE_BYTES);
        let record = parse(&line, Stream::Stdout);
        assert!(record.message.len() <= MAX_MESSAGE_BYTES && record.message.len() > MAX_MESSAGE_BYTES - 2);
    }
}
