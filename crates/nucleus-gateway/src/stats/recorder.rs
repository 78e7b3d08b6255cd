//! Counting invocations: the invoke proxy reports each one here; every few seconds the counts of
//! the current minutes are written to meta (`stats/<workload>/<proton>/<minute>/<gateway>`, each
//! gateway its own key, so gateways never overwrite each other).
//!
//! Each proton's counters live in one [`ProtonStats`] that the route table hands to the invoke
//! path, so counting a call takes no map look-up and no allocation.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nucleus_api::stats::MinuteStats;
use nucleus_client::{MetaClient, Txn, keys};

const FLUSH_EVERY: Duration = Duration::from_secs(2);

/// The counters of one proton at this gateway.
#[derive(Debug)]
pub struct ProtonStats {
    workload: String,
    proton: String,
    in_flight: AtomicU32,
    minutes: Mutex<BTreeMap<i64, MinuteStats>>,
    /// The same calls, as Prometheus series (`/metrics`).
    series: crate::metrics::InvokeSeries,
}

/// One invocation under way; [`Call::finish`] records it. Dropped unfinished (the caller went
/// away), it only leaves the in-flight count.
pub struct Call {
    stats: Arc<ProtonStats>,
    started: tokio::time::Instant,
    concurrency: u32,
}

pub fn minute_of(at: nucleus_api::Timestamp) -> i64 {
    at.timestamp().div_euclid(60)
}

impl ProtonStats {
    /// A call that started at `started` (the caller's clock reading, so that it is read once).
    pub fn begin(self: &Arc<Self>, started: tokio::time::Instant) -> Call {
        let concurrency = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        Call { stats: self.clone(), started, concurrency }
    }
}

impl Call {
    pub fn finish(self, status: u16) {
        let now = nucleus_api::clock::now();
        let seconds = self.started.elapsed().as_secs_f64();
        self.stats.series.record(status, seconds);
        let latency_ms = seconds * 1000.0;
        let mut minutes = self.stats.minutes.lock().unwrap_or_else(|p| p.into_inner());
        minutes.entry(minute_of(now)).or_default().record(status, latency_ms, self.concurrency, now);
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// (workload id, proton id) → its counters.
type Protons = HashMap<(String, String), Arc<ProtonStats>>;

#[derive(Clone)]
pub struct Recorder {
    gateway: String,
    protons: Arc<Mutex<Protons>>,
}

impl Recorder {
    /// A recorder whose counts are flushed to meta by a background task.
    pub fn start(meta: MetaClient) -> Recorder {
        let recorder = Recorder::unflushed();
        let flusher = recorder.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            loop {
                tick.tick().await;
                flusher.flush(&meta).await;
            }
        });
        recorder
    }

    fn unflushed() -> Recorder {
        let gateway = format!("{:016x}", uuid::Uuid::new_v4().as_u128() as u64);
        Recorder { gateway, protons: Arc::default() }
    }

    /// The counters of `proton` of `workload`, made on first use.
    pub fn proton(&self, workload: &str, proton: &str) -> Arc<ProtonStats> {
        let mut protons = self.protons.lock().unwrap_or_else(|p| p.into_inner());
        protons
            .entry((workload.to_owned(), proton.to_owned()))
            .or_insert_with(|| {
                Arc::new(ProtonStats {
                    workload: workload.to_owned(),
                    proton: proton.to_owned(),
                    in_flight: AtomicU32::new(0),
                    minutes: Mutex::default(),
                    series: crate::metrics::metrics().invoke(workload),
                })
            })
            .clone()
    }

    /// Writes every minute counted so far, then forgets the minutes that are over (and the
    /// counters nobody routes to and nothing is left in).
    async fn flush(&self, meta: &MetaClient) {
        let current = minute_of(nucleus_api::clock::now());
        let protons: Vec<Arc<ProtonStats>> = {
            let mut protons = self.protons.lock().unwrap_or_else(|p| p.into_inner());
            let mut dropped = Vec::new();
            protons.retain(|(workload, _), stats| {
                let keep = Arc::strong_count(stats) > 1 || !stats.minutes.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
                if !keep {
                    dropped.push(workload.clone());
                }
                keep
            });
            // A workload nobody routes to (deleted) leaves no series behind in /metrics.
            for workload in dropped.iter().filter(|w| !protons.keys().any(|(other, _)| other == *w)) {
                crate::metrics::metrics().forget(workload);
            }
            protons.values().cloned().collect()
        };
        for stats in protons {
            let pending: Vec<(i64, MinuteStats)> = {
                let minutes = stats.minutes.lock().unwrap_or_else(|p| p.into_inner());
                minutes.iter().map(|(m, counts)| (*m, counts.clone())).collect()
            };
            for (minute, counts) in pending {
                let key = keys::stats(&stats.workload, &stats.proton, minute, &self.gateway);
                let written = match Txn::new().put_json(&key, &counts) {
                    Ok(txn) => meta.write(txn).await.map(|_| ()),
                    Err(err) => Err(err),
                };
                match written {
                    Ok(()) if minute < current => {
                        // Over and written: later requests land in later minutes.
                        let mut minutes = stats.minutes.lock().unwrap_or_else(|p| p.into_inner());
                        if minutes.get(&minute) == Some(&counts) {
                            minutes.remove(&minute);
                        }
                    }
                    Ok(()) => {}
                    Err(err) => tracing::warn!(key, error = %err, "cannot write request statistics; will retry"),
                }
            }
        }
    }

    /// Forgets what is counted in memory for `workload` (its statistics were reset).
    pub fn forget(&self, workload: &str) {
        let protons = self.protons.lock().unwrap_or_else(|p| p.into_inner());
        for stats in protons.values().filter(|s| s.workload == workload) {
            stats.minutes.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_count_once_finished_and_leave_the_in_flight_count_either_way() {
        let recorder = Recorder::unflushed();
        let stats = recorder.proton("w", "p");
        let first = stats.begin(tokio::time::Instant::now());
        let second = stats.begin(tokio::time::Instant::now());
        assert_eq!(second.concurrency, 2);
        first.finish(200);
        drop(second); // the caller went away before an answer
        assert_eq!(stats.in_flight.load(Ordering::Relaxed), 0);
        let minutes = stats.minutes.lock().unwrap();
        let counted: u64 = minutes.values().map(|m| m.total).sum();
        assert_eq!(counted, 1);
        assert_eq!(minutes.values().map(|m| m.max_concurrency).max(), Some(1));
        drop(minutes);
        assert!(Arc::ptr_eq(&stats, &recorder.proton("w", "p")), "one set of counters per proton");
        recorder.forget("w");
        assert!(stats.minutes.lock().unwrap().is_empty());
    }
}
