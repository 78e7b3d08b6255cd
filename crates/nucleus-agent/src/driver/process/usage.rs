//! The autoscaler's signals from this host: each replica's CPU use (its whole process group, read
//! from /proc, as a percent of its CPU allocation) and the Prometheus metrics it exports.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::join_all;
use tokio::time::Instant;

use crate::driver::{ReplicaUsage, UsageQuery};

/// A scrape slower than this counts as missing, so that one slow replica cannot hold up the poll.
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(800);

/// What a replica is, for measuring it.
pub(crate) struct Target {
    pub name: String,
    pub ready: bool,
    /// Its process group (the leader's pid), if a process runs.
    pub group: Option<u32>,
    pub port: u16,
    /// Its CPU allocation in cores (1 without one).
    pub cores: f64,
}

/// The last CPU reading of each replica, to measure use between two polls.
#[derive(Default)]
pub(crate) struct CpuMeter {
    last: Mutex<HashMap<String, (u32, u64, Instant)>>,
}

impl CpuMeter {
    /// Percent of its allocation each target used since the last reading of the same process
    /// group; `None` for the first reading.
    fn percent(&self, targets: &[Target], ticks_by_group: &HashMap<u32, u64>, now: Instant) -> Vec<Option<f64>> {
        let tick = clock_ticks_per_second();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        targets
            .iter()
            .map(|t| {
                let group = t.group?;
                let ticks = *ticks_by_group.get(&group)?;
                let before = last.insert(t.name.clone(), (group, ticks, now));
                let (was_group, was_ticks, at) = before.filter(|(g, _, _)| *g == group)?;
                let seconds = now.saturating_duration_since(at).as_secs_f64();
                (was_group == group && seconds > 0.0)
                    .then(|| (ticks.saturating_sub(was_ticks) as f64 / tick) / seconds / t.cores.max(0.001) * 100.0)
            })
            .collect()
    }

    /// Forgets replicas that are gone.
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.last.lock().unwrap_or_else(|p| p.into_inner()).retain(|name, _| keep(name));
    }
}

/// /proc reports CPU times in USER_HZ, which Linux fixes at 100 for every architecture it
/// exports /proc to user space on (whatever the kernel's own HZ).
fn clock_ticks_per_second() -> f64 {
    100.0
}

/// utime + stime of every process, summed by process group, from /proc.
fn ticks_by_process_group() -> HashMap<u32, u64> {
    let mut groups = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return groups };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        if let Some((group, ticks)) = parse_stat(&stat) {
            *groups.entry(group).or_insert(0) += ticks;
        }
    }
    groups
}

/// (process group, utime + stime) from a /proc/<pid>/stat line. The command name may hold spaces
/// and parentheses: fields are counted after its last ')'.
fn parse_stat(stat: &str) -> Option<(u32, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(3) ppid(4) pgrp(5) … utime(14) stime(15), counting from 1 with pid and name.
    let group = fields.get(2)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((group, utime + stime))
}

/// Every process group's CPU ticks, read off the runtime's threads.
pub(crate) async fn read_cpu_ticks() -> HashMap<u32, u64> {
    tokio::task::spawn_blocking(ticks_by_process_group).await.unwrap_or_default()
}

/// Measures `targets` for `query`; `groups`: [`read_cpu_ticks`] of now.
pub(crate) async fn measure(
    meter: &CpuMeter,
    client: &reqwest::Client,
    host: IpAddr,
    query: &UsageQuery,
    targets: Vec<Target>,
    groups: &HashMap<u32, u64>,
) -> Vec<ReplicaUsage> {
    let cpu = if query.cpu { meter.percent(&targets, groups, Instant::now()) } else { vec![None; targets.len()] };
    let scrapes = targets.iter().map(|target| async move {
        if target.group.is_none() {
            return HashMap::new();
        }
        let address = std::net::SocketAddr::new(host, target.port).to_string();
        crate::driver::prometheus::scrape(client, &address, &query.metrics, SCRAPE_TIMEOUT).await
    });
    let scraped = join_all(scrapes).await;
    targets
        .into_iter()
        .zip(cpu)
        .zip(scraped)
        .map(|((target, cpu_percent), metrics)| ReplicaUsage { replica: target.name, ready: target.ready, cpu_percent, metrics })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_give_group_and_cpu_ticks_even_with_odd_names() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 100 0 0";
        assert_eq!(parse_stat(stat), Some((4242, 300)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[tokio::test]
    async fn cpu_use_is_measured_between_two_readings_of_the_same_process_group() {
        let meter = CpuMeter::default();
        let target = |group| vec![Target { name: "r-0".into(), ready: true, group: Some(group), port: 1, cores: 0.5 }];
        let start = Instant::now();
        let tick = clock_ticks_per_second();
        assert_eq!(meter.percent(&target(10), &HashMap::from([(10, 0)]), start), vec![None], "no baseline yet");
        let one_second_of_one_core = tick as u64;
        let used = meter.percent(&target(10), &HashMap::from([(10, one_second_of_one_core)]), start + Duration::from_secs(2));
        assert_eq!(used, vec![Some(100.0)], "half a core used of a half-core allocation");
        let restarted = meter.percent(&target(11), &HashMap::from([(11, 5)]), start + Duration::from_secs(3));
        assert_eq!(restarted, vec![None], "a new process starts a new measurement");
    }
}
