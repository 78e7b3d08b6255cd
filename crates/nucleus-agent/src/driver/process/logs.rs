//! Capture of a replica's stdout and stderr, line by line, into a ring buffer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::task::JoinHandle;

/// Lines kept per replica.
const KEPT_LINES: usize = 200;
/// Lines reported in `log_tail`.
pub(crate) const REPORTED_LINES: usize = 50;

/// The last lines a replica wrote, shared between its log pumps and its status view.
#[derive(Clone, Default)]
pub(crate) struct LogRing {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl LogRing {
    pub(crate) fn push(&self, line: String) {
        let mut lines = self
            .lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if lines.len() == KEPT_LINES {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The last `count` lines, oldest first.
    pub(crate) fn tail(&self, count: usize) -> Vec<String> {
        let lines = self
            .lines
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        lines
            .iter()
            .skip(lines.len().saturating_sub(count))
            .cloned()
            .collect()
    }
}

/// Copies `stream` into `ring` line by line (lossily decoded) until it closes, and logs each line
/// at debug level.
pub(crate) fn pump(
    stream: impl AsyncRead + Unpin + Send + 'static,
    ring: LogRing,
    replica: String,
    stream_name: &'static str,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut reader = BufReader::new(stream);
        let mut buffer = Vec::new();
        loop {
            buffer.clear();
            match reader.read_until(b'\n', &mut buffer).await {
                Ok(0) => return,
                Ok(_) => {
                    let line = String::from_utf8_lossy(&buffer)
                        .trim_end_matches(['\n', '\r'])
                        .to_owned();
                    tracing::debug!(replica = %replica, stream = stream_name, "{line}");
                    ring.push(line);
                }
                Err(err) => {
                    tracing::debug!(replica = %replica, stream = stream_name, error = %err, "log capture ended");
                    return;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_newest_lines() {
        let ring = LogRing::default();
        for i in 0..KEPT_LINES + 10 {
            ring.push(format!("line {i}"));
        }
        let tail = ring.tail(3);
        assert_eq!(
            tail,
            vec![
                format!("line {}", KEPT_LINES + 7),
                format!("line {}", KEPT_LINES + 8),
                format!("line {}", KEPT_LINES + 9)
            ]
        );
        assert_eq!(ring.tail(usize::MAX).len(), KEPT_LINES);
    }

    #[tokio::test]
    async fn pump_splits_lines() {
        let ring = LogRing::default();
        let input: &[u8] = b"first\r\nsecond\nno newline";
        pump(input, ring.clone(), "r-0".into(), "stdout")
            .await
            .expect("pump task");
        assert_eq!(ring.tail(10), vec!["first", "second", "no newline"]);
    }
}
