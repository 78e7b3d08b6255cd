//! The load generator: C concurrent clients issuing unconditional single-key puts to distinct keys
//! for a fixed time after a warm-up, each latency recorded in an HDR histogram.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// A system under test, as the load generator sees it: one committed put.
pub trait Putter: Send + Sync + 'static {
    /// Writes `value` at `key` and returns once the write is committed (acknowledged by the
    /// leader after replication to a quorum).
    fn put(&self, key: String, value: Vec<u8>) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// How one run is shaped.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub clients: usize,
    pub warmup: Duration,
    pub measure: Duration,
    /// Prefix of every key, so that runs never write the same key twice.
    pub key_prefix: String,
    /// The bytes written at every key.
    pub value: Vec<u8>,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Summary {
    pub clients: usize,
    /// Completed puts whose start fell inside the measured window.
    pub writes: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Latencies in microseconds.
    pub latency_us: Histogram<u64>,
}

/// Highest latency the histogram can hold: one minute, in microseconds.
const MAX_LATENCY_US: u64 = 60_000_000;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

impl Summary {
    pub fn writes_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs == 0.0 { 0.0 } else { self.writes as f64 / secs }
    }

    /// The latency at `quantile` (0..=1) in milliseconds; 0 when nothing was recorded.
    pub fn latency_ms(&self, quantile: f64) -> f64 {
        if self.latency_us.is_empty() {
            return 0.0;
        }
        self.latency_us.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// Runs `spec.clients` clients against `target`: each issues puts back to back (one outstanding
/// put per client) for `warmup + measure`. Puts started during the warm-up are not counted; puts
/// started during the measured window are, and the window closes when the last of them is done.
pub async fn run<P: Putter>(target: Arc<P>, spec: &LoadSpec) -> Summary {
    let start = Instant::now();
    let measure_from = start + spec.warmup;
    let until = measure_from + spec.measure;
    let mut tasks = Vec::with_capacity(spec.clients);
    for client in 0..spec.clients {
        let target = Arc::clone(&target);
        let prefix = format!("{}/{client}", spec.key_prefix);
        let value = spec.value.clone();
        tasks.push(tokio::spawn(async move {
            let mut histogram = new_histogram();
            let (mut writes, mut errors, mut first_error) = (0u64, 0u64, None);
            let mut last_done = measure_from;
            let mut seq = 0u64;
            loop {
                let began = Instant::now();
                if began >= until {
                    break;
                }
                seq += 1;
                let result = target.put(format!("{prefix}/{seq}"), value.clone()).await;
                let done = Instant::now();
                if began < measure_from {
                    continue;
                }
                last_done = last_done.max(done);
                match result {
                    Ok(()) => {
                        writes += 1;
                        let micros = (done - began).as_micros().clamp(1, u128::from(MAX_LATENCY_US)) as u64;
                        histogram.record(micros).expect("latency within the histogram's bounds");
                    }
                    Err(err) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{err:#}"));
                    }
                }
            }
            (histogram, writes, errors, first_error, last_done)
        }));
    }
    let mut summary =
        Summary { clients: spec.clients, writes: 0, errors: 0, first_error: None, elapsed: spec.measure, latency_us: new_histogram() };
    let mut last_done = until;
    for task in tasks {
        let (histogram, writes, errors, first_error, done) = task.await.expect("load client panicked");
        summary.latency_us.add(&histogram).expect("histograms share bounds");
        summary.writes += writes;
        summary.errors += errors;
        if summary.first_error.is_none() {
            summary.first_error = first_error;
        }
        last_done = last_done.max(done);
    }
    summary.elapsed = last_done - measure_from;
    summary
}

/// A value of exactly `size` bytes that is also a JSON string (`"xxx…"`), so that Nucleus, whose
/// client writes JSON documents, and etcd store the very same bytes.
pub fn json_string_value(size: usize) -> (String, Vec<u8>) {
    let inner = "x".repeat(size.saturating_sub(2));
    let bytes = format!("\"{inner}\"").into_bytes();
    (inner, bytes)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    #[test]
    fn json_value_is_exactly_the_asked_size_and_valid_json() {
        let (inner, bytes) = json_string_value(256);
        assert_eq!(bytes.len(), 256);
        assert_eq!(bytes[0], b'"');
        assert_eq!(inner.len(), 254);
    }

    struct Counting(AtomicU64);

    impl Putter for Counting {
        async fn put(&self, _key: String, value: Vec<u8>) -> anyhow::Result<()> {
            assert_eq!(value.len(), 4);
            self.0.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok(())
        }
    }

    #[tokio::test]
    async fn counts_measured_puts_and_records_their_latency() {
        let target = Arc::new(Counting(AtomicU64::new(0)));
        let spec = LoadSpec {
            clients: 4,
            warmup: Duration::from_millis(50),
            measure: Duration::from_millis(200),
            key_prefix: "t".into(),
            value: b"abcd".to_vec(),
        };
        let summary = run(Arc::clone(&target), &spec).await;
        assert_eq!(summary.clients, 4);
        assert_eq!(summary.errors, 0);
        assert!(summary.writes > 0);
        assert!(summary.writes < target.0.load(Ordering::Relaxed), "warm-up puts are not counted");
        assert_eq!(summary.latency_us.len(), summary.writes);
        assert!(summary.latency_ms(0.5) >= 2.0);
        assert!(summary.elapsed >= spec.measure);
    }

    struct Failing;

    impl Putter for Failing {
        async fn put(&self, _key: String, _value: Vec<u8>) -> anyhow::Result<()> {
            tokio::time::sleep(Duration::from_millis(5)).await;
            anyhow::bail!("no leader")
        }
    }

    #[tokio::test]
    async fn counts_errors_and_keeps_the_first() {
        let spec =
            LoadSpec { clients: 2, warmup: Duration::ZERO, measure: Duration::from_millis(30), key_prefix: "t".into(), value: Vec::new() };
        let summary = run(Arc::new(Failing), &spec).await;
        assert_eq!(summary.writes, 0);
        assert!(summary.errors > 0);
        assert_eq!(summary.first_error.as_deref(), Some("no leader"));
        assert_eq!(summary.latency_ms(0.99), 0.0);
        assert_eq!(summary.writes_per_sec(), 0.0);
    }
}
