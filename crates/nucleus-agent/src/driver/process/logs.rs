//! A replica's stdout and stderr: one file per replica in the data dir, appended to by every
//! process incarnation, so that the output outlives the agent and an agent that adopts the
//! replica can still report its tail.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Lines reported in `log_tail`.
pub(crate) const REPORTED_LINES: usize = 50;
/// How much of the end of the file is read for the tail.
const TAIL_BYTES: u64 = 16 * 1024;

#[derive(Debug, Clone)]
pub(crate) struct LogFile {
    path: PathBuf,
}

impl LogFile {
    /// A new file for replica `index` of `proton_id` under `dir`, named apart from the files of
    /// earlier replicas of the same index (which may still be stopping).
    pub(crate) fn new(dir: &Path, proton_id: &str, index: u32) -> LogFile {
        let created = nucleus_api::clock::now().timestamp_millis();
        LogFile { path: dir.join(path_segment(proton_id)).join(format!("{index}-{created}.log")) }
    }

    pub(crate) fn at(path: PathBuf) -> LogFile {
        LogFile { path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file opened for appending, for a process's stdout and stderr.
    pub(crate) fn open_for_append(&self) -> io::Result<File> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir)?;
        }
        OpenOptions::new().create(true).append(true).open(&self.path)
    }

    /// When the file is larger than `max`: copies it to `<file>.1` and empties it (copy-truncate: the
    /// process keeps writing to the same file, now from its start). Lines written between the copy
    /// and the truncation are lost.
    pub(crate) fn rotate_if_over(&self, max: u64) {
        let Ok(meta) = fs::metadata(&self.path) else { return };
        if meta.len() <= max {
            return;
        }
        let rotated = self.rotated();
        let result = fs::copy(&self.path, &rotated).and_then(|_| OpenOptions::new().write(true).open(&self.path)?.set_len(0));
        match result {
            Ok(()) => tracing::info!(path = %self.path.display(), bytes = meta.len(), "rotated a replica's log"),
            Err(err) => tracing::warn!(path = %self.path.display(), error = %err, "cannot rotate a replica's log"),
        }
    }

    fn rotated(&self) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(".1");
        PathBuf::from(name)
    }

    /// The last `count` lines (lossily decoded), oldest first; none when nothing was written.
    pub(crate) fn tail(&self, count: usize) -> Vec<String> {
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

    /// Deletes the file (and the proton's directory once it is empty).
    pub(crate) fn remove(&self) {
        for path in [self.path.clone(), self.rotated()] {
            if let Err(err) = fs::remove_file(&path)
                && err.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %err, "cannot remove a replica's log");
            }
        }
        if let Some(dir) = self.path.parent() {
            let _ = fs::remove_dir(dir); // fails while other replicas' logs are there
        }
    }
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
        std::io::Write::write_all(&mut log.open_for_append().expect("open"), &vec![b'x'; 2048]).expect("write");
        log.rotate_if_over(4096);
        assert_eq!(fs::metadata(log.path()).expect("log").len(), 2048, "under the cap: untouched");
        log.rotate_if_over(1024);
        assert_eq!(fs::metadata(log.path()).expect("log").len(), 0);
        assert_eq!(fs::metadata(log.rotated()).expect("rotated").len(), 2048);
        log.remove();
        assert!(!log.path().exists() && !log.rotated().exists());
    }

    #[test]
    fn the_tail_is_the_newest_lines_of_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogFile::new(dir.path(), "p", 0);
        assert!(log.tail(10).is_empty(), "no file yet");
        let mut file = log.open_for_append().expect("open");
        write!(file, "first\r\nsecond\n").expect("write");
        let mut again = log.open_for_append().expect("a later incarnation appends");
        write!(again, "third\nno newline").expect("write");
        assert_eq!(log.tail(10), ["first", "second", "third", "no newline"]);
        assert_eq!(log.tail(2), ["third", "no newline"]);
    }

    #[test]
    fn a_long_file_is_read_from_its_end_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogFile::new(dir.path(), "p", 0);
        let mut file = log.open_for_append().expect("open");
        for i in 0..20_000 {
            writeln!(file, "line {i}").expect("write");
        }
        assert_eq!(log.tail(2), ["line 19998", "line 19999"]);
        let all = log.tail(usize::MAX);
        assert!(all.len() < 20_000 && all.len() > REPORTED_LINES, "{}", all.len());
        assert!(all[0].starts_with("line "), "no partial first line: {}", all[0]);
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
