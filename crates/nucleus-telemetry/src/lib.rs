//! Telemetry shared by every role: W3C trace context between them ([`trace`]), and the metrics
//! every role exports: families of counters, gauges and histograms (one series per
//! label set) in one registry per process, written as Prometheus text (format 0.0.4) by
//! [`encode`]. `nucleus dev` runs every role in one process, so its `/metrics` holds them all.
//!
//! Families are registered by name the first time they are asked for; asking again (another
//! meta node or scheduler in the same process) gives the same family. Values known only at
//! scrape time (a Raft group's term, replicas by state) come from [`Registry::collector`]s.

mod encode;
mod family;
pub mod trace;

use std::sync::{Arc, LazyLock, Mutex, MutexGuard};

pub use family::{Counter, CounterVec, Gauge, GaugeVec, Histogram, HistogramVec, Sample};

/// Seconds buckets for request and operation latencies: 1 ms to 60 s.
pub const LATENCY_BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Values read when scraped: each returns its samples, or `None` once what it reads is gone
/// (it is then dropped).
pub type Collector = Box<dyn Fn() -> Option<Vec<Sample>> + Send + Sync>;

#[derive(Default)]
pub struct Registry {
    families: Mutex<Vec<family::Family>>,
}

static GLOBAL: LazyLock<Registry> = LazyLock::new(Registry::default);

/// The process's registry.
pub fn global() -> &'static Registry {
    &GLOBAL
}

/// Everything the process's registry holds, as Prometheus text.
pub fn encode() -> String {
    GLOBAL.encode()
}

impl Registry {
    fn families(&self) -> MutexGuard<'_, Vec<family::Family>> {
        self.families.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn family(&self, name: &str, help: &str, kind: family::Kind, labels: &[&str]) -> Arc<family::Series> {
        let mut families = self.families();
        if let Some(existing) = families.iter().find(|f| f.name == name) {
            assert!(existing.kind == kind && existing.series.labels == labels, "metric {name} registered twice with different shapes");
            return existing.series.clone();
        }
        let series = Arc::new(family::Series::new(kind.clone(), labels));
        families.push(family::Family::new(name, help, kind, series.clone()));
        series
    }

    pub fn counter_vec(&self, name: &str, help: &str, labels: &[&str]) -> CounterVec {
        CounterVec::new(self.family(name, help, family::Kind::Counter, labels))
    }

    pub fn gauge_vec(&self, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
        GaugeVec::new(self.family(name, help, family::Kind::Gauge, labels))
    }

    pub fn histogram_vec(&self, name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
        HistogramVec::new(self.family(name, help, family::Kind::Histogram(buckets.to_vec()), labels))
    }

    /// A gauge family whose samples `collect` reads at each scrape (added to those of earlier
    /// collectors of the same name).
    pub fn collector(&self, name: &str, help: &str, labels: &[&str], collect: Collector) {
        self.family(name, help, family::Kind::Gauge, labels).add_collector(collect);
    }

    pub fn encode(&self) -> String {
        let families = self.families();
        let mut out = String::new();
        for family in families.iter() {
            encode::family(&mut out, family);
        }
        out
    }
}

#[cfg(test)]
mod tests;
