//! The process driver's capacity: this host, as one node without GPUs.

use std::thread::available_parallelism;

use crate::driver::NodeCapacity;

/// Reads this host's name, core count and memory. What cannot be read counts as nothing (one
/// core, zero memory) rather than failing `Info`.
pub(crate) fn this_host() -> NodeCapacity {
    let cores = available_parallelism().map_or(1, |cores| cores.get());
    let memory_bytes = std::fs::read_to_string("/proc/meminfo").ok().and_then(|meminfo| mem_total(&meminfo)).unwrap_or_else(|| {
        tracing::warn!("cannot read MemTotal from /proc/meminfo; reporting no memory");
        0
    });
    NodeCapacity {
        name: hostname(),
        zone: String::new(),
        cpu_millis: u32::try_from(cores).unwrap_or(u32::MAX).saturating_mul(1000),
        memory_bytes,
        ..NodeCapacity::default()
    }
}

fn hostname() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .into_iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_owned())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// `MemTotal` of a /proc/meminfo text, in bytes (the file says kB and means KiB).
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let amount: u64 = words.next()?.parse().ok()?;
    match words.next() {
        Some("kB") => amount.checked_mul(1024),
        None => Some(amount),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_is_read_in_bytes() {
        let meminfo = "MemFree:         1024 kB\nMemTotal:       16303228 kB\nMemAvailable:   9000000 kB\n";
        assert_eq!(mem_total(meminfo), Some(16_303_228 * 1024));
        assert_eq!(mem_total("MemFree: 12 kB\n"), None);
        assert_eq!(mem_total("MemTotal: 12 MB\n"), None);
    }

    #[test]
    fn this_host_has_cores_memory_and_a_name() {
        let host = this_host();
        assert!(host.cpu_millis >= 1000, "{host:?}");
        assert_eq!(host.cpu_millis % 1000, 0, "{host:?}");
        assert!(host.memory_bytes > 0, "{host:?}");
        assert!(!host.name.is_empty());
        assert_eq!((host.gpu_count, host.gpu_type.as_str()), (0, ""));
    }
}
