//! Sampling each workload's load and broadcasting the reports.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use nucleus_proto::gateway::v1::{LoadReport, WorkloadLoad};
use tokio::sync::broadcast;
use tokio::time::{Instant, MissedTickBehavior};

use crate::route_table::RouteTable;

const SAMPLE_EVERY: Duration = Duration::from_millis(100);
const SAMPLES_PER_REPORT: u32 = 10;
/// Reports a slow subscriber may fall behind by before it misses some.
const BACKLOG: usize = 64;

#[derive(Clone)]
pub struct LoadReporter {
    name: Arc<str>,
    reports: broadcast::Sender<Arc<LoadReport>>,
}

/// One workload's samples since the last report.
#[derive(Default)]
struct Window {
    in_flight_sum: u64,
    samples: u32,
    arrived_before: u64,
}

impl LoadReporter {
    /// Starts sampling `routes`' loads in the background.
    pub fn start(routes: RouteTable) -> LoadReporter {
        let name: Arc<str> = format!("gw-{:012x}", uuid::Uuid::new_v4().as_u128() as u64 & 0xffff_ffff_ffff).into();
        let (reports, _) = broadcast::channel(BACKLOG);
        let reporter = LoadReporter { name, reports };
        tokio::spawn(reporter.clone().sample(routes));
        reporter
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LoadReport>> {
        self.reports.subscribe()
    }

    /// Tells the schedulers now that `workload` has requests held for want of a ready replica.
    pub fn wake(&self, workload: &str, proton: &str, queued: u32) {
        let load = WorkloadLoad {
            workload_id: workload.to_owned(),
            proton_id: proton.to_owned(),
            queued,
            interval_seconds: 0.0,
            ..WorkloadLoad::default()
        };
        let _ = self.reports.send(Arc::new(LoadReport { gateway: self.name.to_string(), workloads: vec![load], wake: true }));
    }

    async fn sample(self, routes: RouteTable) {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut windows: HashMap<(String, String), Window> = HashMap::new();
        let mut samples = 0;
        let mut since = Instant::now();
        loop {
            tick.tick().await;
            let loads = routes.loads();
            for (workload, proton, load) in &loads {
                let window = windows
                    .entry((workload.clone(), proton.clone()))
                    .or_insert_with(|| Window { arrived_before: load.arrived(), ..Window::default() });
                window.in_flight_sum += u64::from(load.in_flight());
                window.samples += 1;
            }
            samples += 1;
            if samples < SAMPLES_PER_REPORT {
                continue;
            }
            samples = 0;
            let interval = since.elapsed().as_secs_f64();
            since = Instant::now();
            let mut report = LoadReport { gateway: self.name.to_string(), workloads: Vec::with_capacity(loads.len()), wake: false };
            for (workload, proton, load) in &loads {
                let Some(window) = windows.get_mut(&(workload.clone(), proton.clone())) else { continue };
                let arrived = load.arrived();
                report.workloads.push(WorkloadLoad {
                    workload_id: workload.clone(),
                    proton_id: proton.clone(),
                    concurrency: window.in_flight_sum as f64 / f64::from(window.samples.max(1)),
                    in_flight: load.in_flight(),
                    requests: arrived.saturating_sub(window.arrived_before),
                    queued: load.queued(),
                    interval_seconds: interval,
                });
                *window = Window { arrived_before: arrived, ..Window::default() };
            }
            windows.retain(|(w, p), _| loads.iter().any(|(lw, lp, _)| lw == w && lp == p));
            let _ = self.reports.send(Arc::new(report));
        }
    }
}
