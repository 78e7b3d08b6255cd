//! A metric family: its series by label values, and the handles that update them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::Collector;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    /// Upper bounds of the buckets, ascending (`+Inf` is implied).
    Histogram(Vec<f64>),
}

pub(crate) struct Family {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub series: Arc<Series>,
}

impl Family {
    pub fn new(name: &str, help: &str, kind: Kind, series: Arc<Series>) -> Family {
        Family { name: name.to_owned(), help: help.to_owned(), kind, series }
    }
}

/// One sample a collector reads: label values (in the family's label order) and the value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Vec<String>,
    pub value: f64,
}

impl Sample {
    pub fn new(labels: &[&str], value: f64) -> Sample {
        Sample { labels: labels.iter().map(|l| (*l).to_owned()).collect(), value }
    }
}

pub(crate) struct Series {
    pub kind: Kind,
    pub labels: Vec<String>,
    /// Counter and gauge values (f64 bits), by label values.
    pub values: Mutex<BTreeMap<Vec<String>, Arc<AtomicU64>>>,
    pub histograms: Mutex<BTreeMap<Vec<String>, Arc<Mutex<Buckets>>>>,
    pub collectors: Mutex<Vec<Collector>>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Buckets {
    /// Observations at or below each bound (not cumulative; summed when written).
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Series {
    pub fn new(kind: Kind, labels: &[&str]) -> Series {
        Series {
            kind,
            labels: labels.iter().map(|l| (*l).to_owned()).collect(),
            values: Mutex::default(),
            histograms: Mutex::default(),
            collectors: Mutex::default(),
        }
    }

    pub fn add_collector(&self, collect: Collector) {
        lock(&self.collectors).push(collect);
    }

    fn key(&self, values: &[&str]) -> Vec<String> {
        assert_eq!(values.len(), self.labels.len(), "label values {values:?} do not match labels {:?}", self.labels);
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    fn value(&self, values: &[&str]) -> Arc<AtomicU64> {
        lock(&self.values).entry(self.key(values)).or_insert_with(|| Arc::new(AtomicU64::new(0f64.to_bits()))).clone()
    }

    fn histogram(&self, values: &[&str]) -> Arc<Mutex<Buckets>> {
        let bounds = match &self.kind {
            Kind::Histogram(bounds) => bounds.len(),
            _ => 0,
        };
        lock(&self.histograms)
            .entry(self.key(values))
            .or_insert_with(|| Arc::new(Mutex::new(Buckets { counts: vec![0; bounds], ..Buckets::default() })))
            .clone()
    }

    /// Forgets the series of these label values (what they counted goes with them).
    fn remove(&self, values: &[&str]) {
        let key = self.key(values);
        lock(&self.values).remove(&key);
        lock(&self.histograms).remove(&key);
    }

    /// Every sample: stored values, then what the collectors read (dropping finished ones).
    pub fn samples(&self) -> Vec<Sample> {
        let mut samples: Vec<Sample> = lock(&self.values)
            .iter()
            .map(|(labels, value)| Sample { labels: labels.clone(), value: f64::from_bits(value.load(Ordering::Relaxed)) })
            .collect();
        lock(&self.collectors).retain(|collect| match collect() {
            Some(read) => {
                samples.extend(read);
                true
            }
            None => false,
        });
        samples
    }

    pub fn histogram_samples(&self) -> Vec<(Vec<String>, Buckets)> {
        lock(&self.histograms).iter().map(|(labels, buckets)| (labels.clone(), lock(buckets).clone())).collect()
    }
}

fn add(value: &AtomicU64, delta: f64) {
    let _ = value.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| Some((f64::from_bits(bits) + delta).to_bits()));
}

/// A family of counters: only ever go up.
#[derive(Clone)]
pub struct CounterVec(Arc<Series>);

#[derive(Clone)]
pub struct Counter(Arc<AtomicU64>);

impl CounterVec {
    pub(crate) fn new(series: Arc<Series>) -> CounterVec {
        CounterVec(series)
    }

    /// Forgets one series (e.g. of a workload that is gone), so that it is no longer exported.
    pub fn remove(&self, labels: &[&str]) {
        self.0.remove(labels);
    }

    pub fn with(&self, labels: &[&str]) -> Counter {
        Counter(self.0.value(labels))
    }
}

impl Counter {
    pub fn inc(&self) {
        self.inc_by(1.0);
    }

    pub fn inc_by(&self, delta: f64) {
        if delta > 0.0 {
            add(&self.0, delta);
        }
    }
}

/// A family of gauges: set to what is true now.
#[derive(Clone)]
pub struct GaugeVec(Arc<Series>);

#[derive(Clone)]
pub struct Gauge(Arc<AtomicU64>);

impl GaugeVec {
    pub(crate) fn new(series: Arc<Series>) -> GaugeVec {
        GaugeVec(series)
    }

    /// Forgets one series (e.g. of a workload that is gone), so that it is no longer exported.
    pub fn remove(&self, labels: &[&str]) {
        self.0.remove(labels);
    }

    pub fn with(&self, labels: &[&str]) -> Gauge {
        Gauge(self.0.value(labels))
    }
}

impl Gauge {
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    pub fn add(&self, delta: f64) {
        add(&self.0, delta);
    }
}

/// A family of histograms: how observations (latencies, sizes) spread over buckets.
#[derive(Clone)]
pub struct HistogramVec(Arc<Series>);

#[derive(Clone)]
pub struct Histogram {
    bounds: Arc<Series>,
    buckets: Arc<Mutex<Buckets>>,
}

impl HistogramVec {
    pub(crate) fn new(series: Arc<Series>) -> HistogramVec {
        HistogramVec(series)
    }

    /// Forgets one series (e.g. of a workload that is gone), so that it is no longer exported.
    pub fn remove(&self, labels: &[&str]) {
        self.0.remove(labels);
    }

    pub fn with(&self, labels: &[&str]) -> Histogram {
        Histogram { bounds: self.0.clone(), buckets: self.0.histogram(labels) }
    }
}

impl Histogram {
    pub fn observe(&self, value: f64) {
        let Kind::Histogram(bounds) = &self.bounds.kind else { return };
        let mut buckets = lock(&self.buckets);
        if let Some(at) = bounds.iter().position(|bound| value <= *bound) {
            buckets.counts[at] += 1;
        }
        buckets.sum += value;
        buckets.count += 1;
    }
}
