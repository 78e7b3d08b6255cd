//! A replica's stdout and stderr: two files per replica in the data dir, appended to by every
//! process incarnation, so that the output outlives the agent and an agent that adopts the
//! replica can still read it. The agent reads what is new in them as log records into its
//! [`LogStore`] (every [`COLLECT_EVERY`] while the replica runs, and when it reports or goes).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nucleus_proto::agent::v1::LogRecord;

use crate::logs::{LogStore, Stream, parse_line};

/// Lines reported in `log_tail`.
pub(crate) const REPORTED_LINES: usize = 50;
/// How much of the end of the file is read for the tail (without a store).
const TAIL_BYTES: u64 = 16 * 1024;
/// How often a running replica's new output is read.
pub(crate) const COLLECT_EVERY: Duration = Duration::from_millis(250);
/// The most read from one file at a time (a replica printing faster is read over several ticks).
const READ_AT_ONCE: u64 = 4 * 1024 * 1024;
/// The most read from a file just rotated: what the reader had not reached yet.
const MAX_READ_AT_ROTATION: u64 = 64 * 1024 * 1024;

#[derive(Debug, Clone)]
pub(crate) struct LogFile {
    /// stdout; stderr is beside it ([`LogFile::stderr_path`]).
    path: PathBuf,
    sink: Option<Arc<Sink>>,
}

/// Where the records read from a replica's files go.
struct Sink {
    store: LogStore,
    proton_id: String,
    replica: String,
    /// How far stdout and stderr were read.
    readers: Mutex<[Reader; 2]>,
}

impl fmt::Debug for Sink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sink").field("proton_id", &self.proton_id).field("replica", &self.replica).finish_non_exhaustive()
    }
}

impl Sink {
    fn lock(&self) -> std::sync::MutexGuard<'_, [Reader; 2]> {
        self.readers.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads up to `at_most` new bytes of `path` as records (complete lines; with `flush` the
    /// unfinished one too).
    fn read(&self, path: &Path, stream: Stream, reader: &mut Reader, at_most: u64, flush: bool, records: &mut Vec<LogRecord>) {
        let observed = nucleus_api::clock::now();
        let mut parse = |line: &[u8]| {
            records.push(parse_line(&String::from_utf8_lossy(line), stream, observed, &self.proton_id, &self.replica));
        };
        match read_new(path, reader, at_most) {
            Ok(bytes) => {
                let mut rest = bytes.as_slice();
                while let Some(end) = rest.iter().position(|byte| *byte == b'\n') {
                    let mut line = std::mem::take(&mut reader.partial);
                    line.extend_from_slice(&rest[..end]);
                    parse(&line);
                    rest = &rest[end + 1..];
                }
                reader.partial.extend_from_slice(rest);
                if reader.partial.len() > crate::logs::parse::MAX_MESSAGE_BYTES {
                    parse(&std::mem::take(&mut reader.partial));
                }
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => tracing::debug!(path = %path.display(), error = %err, "cannot read the replica's log"),
        }
        if flush && !reader.partial.is_empty() {
            parse(&std::mem::take(&mut reader.partial));
        }
    }
}

#[derive(Default)]
struct Reader {
    offset: u64,
    /// The start of a line whose end was not written yet.
    partial: Vec<u8>,
}

impl LogFile {
    /// A new file for replica `index` of `proton_id` under `dir`, named apart from the files of
    /// earlier replicas of the same index (which may still be stopping).
    pub(crate) fn new(dir: &Path, proton_id: &str, index: u32) -> LogFile {
        let created = nucleus_api::clock::now().timestamp_millis();
        LogFile { path: dir.join(path_segment(proton_id)).join(format!("{index}-{created}.log")), sink: None }
    }

    pub(crate) fn at(path: PathBuf) -> LogFile {
        LogFile { path, sink: None }
    }

    /// The same files, read into `store` as what `replica` of `proton_id` printed.
    pub(crate) fn with_sink(self, store: &LogStore, proton_id: &str, replica: &str) -> LogFile {
        let sink = Sink { store: store.clone(), proton_id: proton_id.to_owned(), replica: replica.to_owned(), readers: Mutex::default() };
        LogFile { sink: Some(Arc::new(sink)), ..self }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    fn stderr_path(&self) -> PathBuf {
        suffixed(&self.path, ".stderr")
    }

    fn files(&self) -> [(PathBuf, Stream); 2] {
        [(self.path.clone(), Stream::Stdout), (self.stderr_path(), Stream::Stderr)]
    }

    /// The files opened for appending: a process's stdout and stderr.
    pub(crate) fn open_for_append(&self) -> io::Result<(File, File)> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        let open = |path: &Path| OpenOptions::new().create(true).append(true).open(path);
        Ok((open(&self.path)?, open(&self.stderr_path())?))
    }

    /// Reads what was written since the last call into the store; with `flush`, also a last line
    /// that has no newline yet (the process is gone).
    pub(crate) fn collect(&self, flush: bool) {
        let Some(sink) = &self.sink else { return };
        let mut readers = sink.lock();
        let mut records = Vec::new();
        for ((path, kind), reader) in self.files().into_iter().zip(readers.iter_mut()) {
            sink.read(&path, kind, reader, READ_AT_ONCE, flush, &mut records);
        }
        sink.store.append(&sink.proton_id, records);
    }

    /// When a file is larger than `max`: copies it to `<file>.1` and empties it (copy-truncate: the
    /// process keeps writing to the same file, now from its start). The reader is held throughout,
    /// and what was written between its last read and the truncation is read from the copy; only
    /// what is written between the copy and the truncation is lost.
    pub(crate) fn rotate_if_over(&self, max: u64) {
        let mut readers = self.sink.as_ref().map(|sink| sink.lock());
        let mut records = Vec::new();
        for (stream, (path, kind)) in self.files().into_iter().enumerate() {
            let Ok(meta) = fs::metadata(&path) else { continue };
            if meta.len() <= max {
                continue;
            }
            let rotated = suffixed(&path, ".1");
            let result = fs::copy(&path, &rotated).and_then(|_| OpenOptions::new().write(true).open(&path)?.set_len(0));
            match result {
                Ok(_) => tracing::info!(path = %path.display(), bytes = meta.len(), "rotated a replica's log"),
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "cannot rotate a replica's log");
                    continue;
                }
            }
            if let (Some(sink), Some(readers)) = (&self.sink, readers.as_mut()) {
                let reader = &mut readers[stream];
                sink.read(&rotated, kind, reader, MAX_READ_AT_ROTATION, true, &mut records);
                *reader = Reader::default();
            }
        }
        if let Some(sink) = &self.sink {
            drop(readers);
            sink.store.append(&sink.proton_id, records);
        }
    }

    /// The last `count` lines the replica printed, oldest first; none when nothing was written.
    /// From the store where there is one (both streams, and a last line without its newline yet),
    /// else from the end of stdout.
    pub(crate) fn tail(&self, count: usize) -> Vec<String> {
        if let Some(sink) = &self.sink {
            self.collect(false);
            let mut tail = sink.store.tail(&sink.proton_id, &sink.replica, count);
            for reader in sink.lock().iter().filter(|reader| !reader.partial.is_empty()) {
                tail.push(String::from_utf8_lossy(&reader.partial).trim_end_matches('\r').to_owned());
            }
            let extra = tail.len().saturating_sub(count);
            tail.drain(..extra);
            return tail;
        }
        match self.read_tail() {
            Ok(lines) => lines.iter().skip(lines.len().saturating_sub(count)).cloned().collect(),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(err) => {
                tracing::debug!(path = %self.path.display(), error = %err, "cannot read the replica's log");
                Vec::new()
            }
        }
    }

    fn read_tail(&self) -> io::Result<Vec<String>> {
        let mut file = File::open(&self.path)?;
        let length = file.metadata()?.len();
        let from = length.saturating_sub(TAIL_BYTES);
        file.seek(SeekFrom::Start(from))?;
        let mut bytes = Vec::new();
        file.take(TAIL_BYTES).read_to_end(&mut bytes)?;
        let text = String::from_utf8_lossy(&bytes);
        let mut lines: Vec<String> = text.split('\n').map(|line| line.trim_end_matches('\r').to_owned()).collect();
        if from > 0 && !lines.is_empty() {
            lines.remove(0); // cut in the middle
        }
        if lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        Ok(lines)
    }

    /// Deletes the files (and the proton's directory once it is empty), after reading what is
    /// left in them into the store (which keeps the records for the proton's retention).
    pub(crate) fn remove(&self) {
        self.collect(true);
        for (path, _) in self.files() {
            for path in [suffixed(&path, ".1"), path] {
                if let Err(err) = fs::remove_file(&path)
                    && err.kind() != io::ErrorKind::NotFound
                {
                    tracing::warn!(path = %path.display(), error = %err, "cannot remove a replica's log");
                }
            }
        }
        if let Some(dir) = self.path.parent() {
            let _ = fs::remove_dir(dir); // fails while other replicas' logs are there
        }
    }
}

/// The bytes of `path` written since `reader.offset` (from the start again once the file was
/// truncated by a rotation), at most `at_most`.
fn read_new(path: &Path, reader: &mut Reader, at_most: u64) -> io::Result<Vec<u8>> {
    let mut file = File::open(path)?;
    let length = file.metadata()?.len();
    if length < reader.offset {
        reader.offset = 0;
        reader.partial.clear();
    }
    if length == reader.offset {
        return Ok(Vec::new());
    }
    file.seek(SeekFrom::Start(reader.offset))?;
    let mut bytes = Vec::new();
    file.take(at_most).read_to_end(&mut bytes)?;
    reader.offset += bytes.len() as u64;
    Ok(bytes)
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.to_owned().into_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// `id` as one path component: bytes other than ASCII letters, digits, '-' and '_' (and '.' but
/// at the start) are written %XX, so no id can name a parent or another directory.
pub(super) fn path_segment(id: &str) -> String {
    let mut segment = String::with_capacity(id.len());
    for (at, byte) in id.bytes().enumerate() {
        let plain = byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' || (byte == b'.' && at > 0);
        if plain {
            segment.push(char::from(byte));
        } else {
            segment.push_str(&format!("%{byte:02X}"));
        }
    }
    if segment.is_empty() {
        segment.push('%');
    }
    segment
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn a_log_over_its_cap_is_copied_aside_and_emptied() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogFile::new(dir.path(), "p", 0);
        std::io::Write::write_all(&mut log.open_for_append().expect("open").0, &vec![b'x'; 2048]).expect("write");
        log.rotate_if_over(4096);
        assert_eq!(fs::metadata(log.path()).expect("log").len(), 2048, "under the cap: untouched");
        log.rotate_if_over(1024);
        let rotated = suffixed(log.path(), ".1");
        assert_eq!(fs::metadata(log.path()).expect("log").len(), 0);
        assert_eq!(fs::metadata(&rotated).expect("rotated").len(), 2048);
        assert!(log.stderr_path().exists(), "stderr has its own file");
        log.remove();
        assert!(!log.path().exists() && !rotated.exists() && !log.stderr_path().exists());
    }

    #[test]
    fn the_tail_is_the_newest_lines_of_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogFile::new(dir.path(), "p", 0);
        assert!(log.tail(10).is_empty(), "no file yet");
        let mut file = log.open_for_append().expect("open").0;
        write!(file, "first\r\nsecond\n").expect("write");
        let mut again = log.open_for_append().expect("a later incarnation appends").0;
        write!(again, "third\nno newline").expect("write");
        assert_eq!(log.tail(10), ["first", "second", "third", "no newline"]);
        assert_eq!(log.tail(2), ["third", "no newline"]);
    }

    #[test]
    fn a_long_file_is_read_from_its_end_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogFile::new(dir.path(), "p", 0);
        let mut file = log.open_for_append().expect("open").0;
        for i in 0..20_000 {
            writeln!(file, "line {i}").expect("write");
        }
        assert_eq!(log.tail(2), ["line 19998", "line 19999"]);
        let all = log.tail(usize::MAX);
        assert!(all.len() < 20_000 && all.len() > REPORTED_LINES, "{}", all.len());
        assert!(all[0].starts_with("line "), "no partial first line: {}", all[0]);
    }

    #[test]
    fn both_streams_are_read_into_the_store_as_they_grow() {
        use nucleus_proto::agent::v1::{LogsRequest, Severity};

        let dir = tempfile::tempdir().expect("temp dir");
        let store = LogStore::new();
        let log = LogFile::new(dir.path(), "p", 0).with_sink(&store, "p", "p-0");
        let (mut out, mut err) = log.open_for_append().expect("open");
        write!(out, "starting\npart").expect("write");
        writeln!(err, "Traceback: boom").expect("write");
        log.collect(false);
        let messages = |store: &LogStore| -> Vec<(String, Severity, String)> {
            let answer = store.query(&LogsRequest { proton_ids: vec!["p".into()], ..Default::default() });
            answer.records.into_iter().map(|r| (r.message.clone(), r.severity(), r.stream)).collect()
        };
        let seen = messages(&store);
        assert_eq!(seen.len(), 2, "the unfinished line waits: {seen:?}");
        assert!(seen.contains(&("Traceback: boom".into(), Severity::Error, "stderr".into())), "{seen:?}");
        assert!(seen.contains(&("starting".into(), Severity::Info, "stdout".into())), "{seen:?}");
        writeln!(out, "ial line").expect("write");
        log.collect(false);
        assert!(messages(&store).iter().any(|(m, _, _)| m == "partial line"));
        // Rotation empties the file: reading starts again from its start.
        log.rotate_if_over(1);
        writeln!(out, "after rotation").expect("write");
        write!(out, "no newline").expect("write");
        assert_eq!(log.tail(2), ["after rotation", "no newline"], "the tail flushes the unfinished line");
        log.remove();
        assert_eq!(messages(&store).len(), 5, "records outlive the files");
    }

    #[test]
    fn proton_ids_cannot_leave_the_log_directory() {
        assert_eq!(path_segment("web-1_a.b"), "web-1_a.b");
        assert_eq!(path_segment(".."), "%2E.");
        assert_eq!(path_segment("a/../b"), "a%2F..%2Fb");
        assert_eq!(path_segment(""), "%");
        let dir = Path::new("/data/logs");
        let log = LogFile::new(dir, "../../etc", 3);
        assert_eq!(log.path().parent(), Some(dir.join("%2E.%2F..%2Fetc").as_path()));
    }
}
