//! Counting invocations: the invoke proxy reports each one here; every few seconds the counts of
//! the current minutes are written to meta (`stats/<workload>/<proton>/<minute>/<gateway>`, each
//! gateway its own key, so gateways never overwrite each other).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nucleus_api::stats::MinuteStats;
use nucleus_client::{keys, MetaClient, Txn};

const FLUSH_EVERY: Duration = Duration::from_secs(2);

type MinuteKey = (String, String, i64);
/// Requests in flight per (workload, proton).
type InFlightCounters = HashMap<(String, String), Arc<AtomicU32>>;

#[derive(Clone)]
pub struct Recorder {
    gateway: String,
    minutes: Arc<Mutex<HashMap<MinuteKey, MinuteStats>>>,
    in_flight: Arc<Mutex<InFlightCounters>>,
}

/// One invocation under way; [`Recorder::finish`] records it.
pub struct InFlight {
    workload: String,
    proton: String,
    started: std::time::Instant,
    counter: Arc<AtomicU32>,
    concurrency: u32,
}

pub fn minute_of(at: nucleus_api::Timestamp) -> i64 {
    at.timestamp().div_euclid(60)
}

impl Recorder {
    /// A recorder whose counts are flushed to meta by a background task.
    pub fn start(meta: MetaClient) -> Recorder {
        let gateway = format!("{:016x}", uuid::Uuid::new_v4().as_u128() as u64);
        let recorder = Recorder { gateway, minutes: Arc::default(), in_flight: Arc::default() };
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

    pub fn begin(&self, workload: &str, proton: &str) -> InFlight {
        let counter = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            in_flight.entry((workload.to_owned(), proton.to_owned())).or_default().clone()
        };
        let concurrency = counter.fetch_add(1, Ordering::Relaxed) + 1;
        InFlight { workload: workload.to_owned(), proton: proton.to_owned(), started: std::time::Instant::now(), counter, concurrency }
    }

    pub fn finish(&self, call: InFlight, status: u16) {
        call.counter.fetch_sub(1, Ordering::Relaxed);
        let now = chrono::Utc::now();
        let latency_ms = call.started.elapsed().as_secs_f64() * 1000.0;
        let mut minutes = self.minutes.lock().unwrap_or_else(|p| p.into_inner());
        minutes.entry((call.workload, call.proton, minute_of(now))).or_default().record(status, latency_ms, call.concurrency, now);
    }

    /// Writes every minute counted so far, then forgets the minutes that are over.
    async fn flush(&self, meta: &MetaClient) {
        let current = minute_of(chrono::Utc::now());
        let pending: Vec<(MinuteKey, MinuteStats)> = {
            let minutes = self.minutes.lock().unwrap_or_else(|p| p.into_inner());
            minutes.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        for ((workload, proton, minute), counts) in pending {
            let key = keys::stats(&workload, &proton, minute, &self.gateway);
            let written = match Txn::new().put_json(&key, &counts) {
                Ok(txn) => meta.write(txn).await.map(|_| ()),
                Err(err) => Err(err),
            };
            match written {
                Ok(()) if minute < current => {
                    // Over and written: later requests land in later minutes.
                    let mut minutes = self.minutes.lock().unwrap_or_else(|p| p.into_inner());
                    if minutes.get(&(workload.clone(), proton.clone(), minute)) == Some(&counts) {
                        minutes.remove(&(workload, proton, minute));
                    }
                }
                Ok(()) => {}
                Err(err) => tracing::warn!(key, error = %err, "cannot write request statistics; will retry"),
            }
        }
    }

    /// Forgets what is counted in memory for `workload` (its statistics were reset).
    pub fn forget(&self, workload: &str) {
        let mut minutes = self.minutes.lock().unwrap_or_else(|p| p.into_inner());
        minutes.retain(|(w, _, _), _| w != workload);
    }
}
