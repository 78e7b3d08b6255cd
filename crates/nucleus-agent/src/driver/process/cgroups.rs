//! A cgroup per replica, where the host lets the agent make them, holding its processes to the CPU
//! and memory of its bundle. The groups are made under the agent's own (so a containerised agent
//! stays inside its limits): cgroup v1's `memory` and `cpu` hierarchies (`memory.limit_in_bytes`,
//! `cpu.cfs_quota_us`), or cgroup v2's unified hierarchy where the `cpu` and `memory` controllers
//! are delegated to the agent's group (systemd `Delegate=yes`: `memory.max`, `cpu.max`; the agent
//! moves itself into a leaf `agent/` first, since v2 hands controllers down only from groups
//! without processes). Elsewhere (no delegation, no permission) replicas run without them and
//! report the `ResourcesEnforced` condition unmet.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use tokio::process::Command;

const CPU_PERIOD_US: u64 = 100_000;

/// Where the agent may make replicas' cgroups, or why it may not.
#[derive(Debug, Clone)]
pub(crate) enum Cgroups {
    V1 {
        memory: PathBuf,
        cpu: PathBuf,
    },
    /// The group the replicas' groups are made in.
    V2 {
        replicas: PathBuf,
    },
    Unavailable(String),
}

/// One replica's cgroups, opened for its process to join before it runs anything.
pub(crate) struct ReplicaCgroup {
    procs: Vec<OwnedFd>,
}

impl Cgroups {
    /// Under `/sys/fs/cgroup`, beneath the agent's own groups (from `/proc/self/cgroup`).
    pub(crate) fn detect() -> Cgroups {
        Cgroups::detect_in(Path::new("/sys/fs/cgroup"), &fs::read_to_string("/proc/self/cgroup").unwrap_or_default())
    }

    fn detect_in(root: &Path, own: &str) -> Cgroups {
        let path_of = |controller: &str| {
            own.lines().find_map(|line| {
                let mut fields = line.splitn(3, ':');
                let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
                controllers.split(',').any(|c| c == controller).then(|| path.trim_start_matches('/').to_owned())
            })
        };
        let (Some(memory), Some(cpu)) = (path_of("memory"), path_of("cpu")) else {
            return match own.lines().find_map(|line| line.strip_prefix("0::")) {
                Some(path) => Cgroups::detect_v2(root, path.trim().trim_start_matches('/')),
                None => Cgroups::Unavailable("neither cgroup v1 memory and cpu hierarchies nor cgroup v2".to_owned()),
            };
        };
        let mount = |name: &str| ["", ",cpuacct"].iter().map(|suffix| root.join(format!("{name}{suffix}"))).find(|p| p.is_dir());
        let (Some(memory_mount), Some(cpu_mount)) = (mount("memory"), mount("cpu")) else {
            return Cgroups::Unavailable(format!("the cgroup v1 memory and cpu hierarchies are not mounted under {}", root.display()));
        };
        let memory = memory_mount.join(memory).join("nucleus-replicas");
        let cpu = cpu_mount.join(cpu).join("nucleus-replicas");
        match fs::create_dir_all(&memory).and_then(|()| fs::create_dir_all(&cpu)) {
            Ok(()) => Cgroups::V1 { memory, cpu },
            Err(err) => Cgroups::Unavailable(format!("cannot make cgroups under {}: {err}", memory.display())),
        }
    }

    /// cgroup v2, the agent in group `own` (relative to `root`): usable when `cpu` and `memory` are
    /// delegated to it.
    fn detect_v2(root: &Path, own: &str) -> Cgroups {
        let base = root.join(own);
        let controllers = fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
        if !["cpu", "memory"].iter().all(|wanted| controllers.split_whitespace().any(|c| c == *wanted)) {
            return Cgroups::Unavailable(format!(
                "cgroup v2: the cpu and memory controllers are not delegated to the agent's group {} (with systemd: Delegate=yes \
                 in the agent's unit)",
                base.display()
            ));
        }
        let replicas = base.join("nucleus-replicas");
        let made = (|| {
            // Only a group without processes hands controllers down (the root group excepted).
            if !own.is_empty() {
                let leaf = base.join("agent");
                fs::create_dir_all(&leaf)?;
                fs::write(leaf.join("cgroup.procs"), std::process::id().to_string())?;
            }
            fs::write(base.join("cgroup.subtree_control"), "+cpu +memory")?;
            fs::create_dir_all(&replicas)?;
            fs::write(replicas.join("cgroup.subtree_control"), "+cpu +memory")
        })();
        match made {
            Ok(()) => Cgroups::V2 { replicas },
            Err(err) => Cgroups::Unavailable(format!("cannot make cgroups under {}: {err}", base.display())),
        }
    }

    /// The replica's cgroups with its limits (0: none), made or updated; Err says why not.
    pub(crate) fn for_replica(&self, replica: &str, cpu_millis: u32, memory_bytes: u64) -> Result<ReplicaCgroup, String> {
        let (memory, cpu) = match self {
            Cgroups::V1 { memory, cpu } => (memory, cpu),
            Cgroups::V2 { replicas } => return Cgroups::for_replica_v2(&replicas.join(replica), cpu_millis, memory_bytes),
            Cgroups::Unavailable(why) => return Err(why.clone()),
        };
        let set = |dir: &Path, file: &str, value: String| -> io::Result<()> {
            fs::create_dir_all(dir)?;
            fs::write(dir.join(file), value)
        };
        let (memory, cpu) = (memory.join(replica), cpu.join(replica));
        let limits = (|| {
            let bytes = if memory_bytes == 0 { "-1".to_owned() } else { memory_bytes.to_string() };
            set(&memory, "memory.limit_in_bytes", bytes)?;
            let quota = if cpu_millis == 0 { "-1".to_owned() } else { (u64::from(cpu_millis) * CPU_PERIOD_US / 1000).to_string() };
            set(&cpu, "cpu.cfs_period_us", CPU_PERIOD_US.to_string())?;
            set(&cpu, "cpu.cfs_quota_us", quota)?;
            let open = |dir: &Path| OpenOptions::new().write(true).open(dir.join("cgroup.procs")).map(OwnedFd::from);
            Ok::<_, io::Error>(ReplicaCgroup { procs: vec![open(&memory)?, open(&cpu)?] })
        })();
        limits.map_err(|err| format!("cannot set the limits of {}: {err}", memory.display()))
    }

    fn for_replica_v2(group: &Path, cpu_millis: u32, memory_bytes: u64) -> Result<ReplicaCgroup, String> {
        let limits = (|| {
            fs::create_dir_all(group)?;
            fs::write(group.join("memory.max"), if memory_bytes == 0 { "max".to_owned() } else { memory_bytes.to_string() })?;
            let quota = if cpu_millis == 0 { "max".to_owned() } else { (u64::from(cpu_millis) * CPU_PERIOD_US / 1000).to_string() };
            fs::write(group.join("cpu.max"), format!("{quota} {CPU_PERIOD_US}"))?;
            let procs = OpenOptions::new().write(true).open(group.join("cgroup.procs")).map(OwnedFd::from)?;
            Ok::<_, io::Error>(ReplicaCgroup { procs: vec![procs] })
        })();
        limits.map_err(|err| format!("cannot set the limits of {}: {err}", group.display()))
    }

    /// Removes the replica's cgroups once its processes are gone (best effort).
    pub(crate) fn remove(&self, replica: &str) {
        match self {
            Cgroups::V1 { memory, cpu } => {
                let _ = fs::remove_dir(memory.join(replica));
                let _ = fs::remove_dir(cpu.join(replica));
            }
            Cgroups::V2 { replicas } => {
                let _ = fs::remove_dir(replicas.join(replica));
            }
            Cgroups::Unavailable(_) => {}
        }
    }

    #[cfg(test)]
    pub(crate) fn memory_dir(&self, replica: &str) -> Option<PathBuf> {
        match self {
            Cgroups::V1 { memory, .. } => Some(memory.join(replica)),
            Cgroups::V2 { replicas } => Some(replicas.join(replica)),
            Cgroups::Unavailable(_) => None,
        }
    }
}

/// Whether process `pid` is in a cgroup this driver made for `replica` (for a replica adopted from
/// an earlier agent).
pub(crate) fn holds(pid: u32, replica: &str) -> bool {
    let needle = format!("/nucleus-replicas/{replica}");
    fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|groups| groups.lines().any(|line| line.ends_with(&needle)))
}

impl ReplicaCgroup {
    /// Makes the spawned process join the cgroups before it runs the entrypoint, so that nothing
    /// it starts escapes them.
    #[allow(unsafe_code)]
    pub(crate) fn join_at_exec(self, command: &mut Command) {
        let fds: Vec<i32> = self.procs.iter().map(AsRawFd::as_raw_fd).collect();
        // The descriptors must stay open until the child has forked; the closure owns them and the
        // child closes its copies at exec (they are close-on-exec).
        let procs = self.procs;
        // SAFETY: between fork and exec the closure only calls write(2), which is
        // async-signal-safe, on descriptors opened before the fork; it allocates nothing.
        unsafe {
            command.pre_exec(move || {
                let _keep = &procs;
                for fd in &fds {
                    // "0" is the writing process itself: the child, before it execs.
                    if libc::write(*fd, b"0".as_ptr().cast(), 1) != 1 {
                        return Err(io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_v2_without_delegated_controllers_is_unavailable_and_says_why() {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path().join("system.slice/nucleus-agent.service");
        fs::create_dir_all(&base).expect("group");
        fs::write(base.join("cgroup.controllers"), "io pids\n").expect("controllers");
        let cgroups = Cgroups::detect_in(dir.path(), "0::/system.slice/nucleus-agent.service\n");
        let why = cgroups.for_replica("r-0", 1000, 1 << 30).err().expect("unavailable");
        assert!(why.contains("cgroup v2") && why.contains("Delegate=yes"), "{why}");
        let nothing = Cgroups::detect_in(dir.path(), "");
        assert!(nothing.for_replica("r-0", 1000, 1 << 30).is_err());
    }

    #[test]
    fn with_delegated_v2_controllers_the_agent_moves_to_a_leaf_and_limits_are_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path().join("system.slice/nucleus-agent.service");
        fs::create_dir_all(&base).expect("group");
        fs::write(base.join("cgroup.controllers"), "cpuset cpu io memory pids\n").expect("controllers");
        let cgroups = Cgroups::detect_in(dir.path(), "0::/system.slice/nucleus-agent.service\n");
        assert!(matches!(cgroups, Cgroups::V2 { .. }), "{cgroups:?}");
        assert_eq!(fs::read_to_string(base.join("agent/cgroup.procs")).expect("moved"), std::process::id().to_string());
        assert_eq!(fs::read_to_string(base.join("cgroup.subtree_control")).expect("handed down"), "+cpu +memory");
        let replica = base.join("nucleus-replicas/r-0");
        fs::create_dir_all(&replica).expect("dir");
        fs::write(replica.join("cgroup.procs"), "").expect("procs, as the kernel makes it");
        cgroups.for_replica("r-0", 1500, 512 << 20).map(|_| ()).expect("limits set");
        assert_eq!(fs::read_to_string(replica.join("memory.max")).expect("memory"), (512u64 << 20).to_string());
        assert_eq!(fs::read_to_string(replica.join("cpu.max")).expect("cpu"), "150000 100000");
        cgroups.for_replica("r-0", 0, 0).map(|_| ()).expect("no limits");
        assert_eq!(fs::read_to_string(replica.join("cpu.max")).expect("cpu"), "max 100000");
        assert_eq!(cgroups.memory_dir("r-0"), Some(replica));
    }

    #[test]
    fn limits_are_written_under_the_agents_own_groups() {
        let dir = tempfile::tempdir().expect("temp dir");
        for name in ["memory", "cpu,cpuacct"] {
            fs::create_dir_all(dir.path().join(name)).expect("mount");
        }
        let own = "4:memory:/agent/a1\n3:cpu,cpuacct:/agent/a1\n";
        let cgroups = Cgroups::detect_in(dir.path(), own);
        // A plain directory has no cgroup.procs to open: make them, as the kernel would.
        for name in ["memory", "cpu,cpuacct"] {
            let replica = dir.path().join(name).join("agent/a1/nucleus-replicas/r-0");
            fs::create_dir_all(&replica).expect("dir");
            fs::write(replica.join("cgroup.procs"), "").expect("procs");
        }
        cgroups.for_replica("r-0", 1500, 512 << 20).map(|_| ()).expect("limits set");
        let memory = dir.path().join("memory/agent/a1/nucleus-replicas/r-0");
        assert_eq!(fs::read_to_string(memory.join("memory.limit_in_bytes")).expect("memory"), (512u64 << 20).to_string());
        let cpu = dir.path().join("cpu,cpuacct/agent/a1/nucleus-replicas/r-0");
        assert_eq!(fs::read_to_string(cpu.join("cpu.cfs_quota_us")).expect("quota"), "150000");
        assert_eq!(cgroups.memory_dir("r-0"), Some(memory));
    }
}
