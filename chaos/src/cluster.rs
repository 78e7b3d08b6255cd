//! The drills' cluster: 3 meta nodes (2 shards), 2 schedulers, 2 agents in 2 regions and 2
//! gateways, each its own `nucleus` process on loopback speaking mutual TLS with certificates of
//! a CA made for the run. Processes can be killed, stopped, resumed and restarted with the same
//! arguments; everything (replicas included) is killed when the cluster is dropped.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nucleus_tls::{Dialer, LiveTls, Role, TlsPaths};

/// The agents, as (cluster, region): one per region; each is named `<cluster>-<region>`.
const AGENTS: [(&str, &str); 2] = [("east-1", "us-east"), ("west-1", "us-west")];
pub const META_NODES: usize = 3;
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const SHARDS: &str = "2";

/// One role's process and how to start it again.
struct Member {
    args: Vec<String>,
    /// What its log says once it serves.
    ready: &'static str,
    child: Option<Child>,
    /// Its address (meta, agent, gateway), for the drills and the load.
    addr: Option<String>,
    /// Its wall clock's offset (libfaketime's `FAKETIME`, e.g. `+90s`), from its next start on.
    clock_offset: Option<String>,
}

pub struct Cluster {
    nucleus: PathBuf,
    dir: tempfile::TempDir,
    /// Keep the run directory (logs, data) when the cluster goes: a drill failed.
    keep: bool,
    /// tmpfs mounts of data directories, unmounted on drop.
    mounts: Vec<PathBuf>,
    /// Each member's network namespace and address.
    network: crate::network::Network,
    members: BTreeMap<String, Member>,
    pub token: String,
    dialer: Dialer,
}

impl Cluster {
    /// Starts every role, each in a network namespace of its own with its own address on a
    /// bridge, and waits until each says it serves. With `small_meta_disks`, each meta node's
    /// data directory is a tmpfs of that size (for the full-disk drill). Needs root.
    pub fn start(nucleus: &Path, small_meta_disks: Option<&str>) -> anyhow::Result<Cluster> {
        let dir = tempfile::Builder::new().prefix("nucleus-chaos-").tempdir().context("creating the run directory")?;
        let names: Vec<String> = (1..=META_NODES)
            .map(|id| format!("meta-{id}"))
            .chain(["scheduler-s1", "scheduler-s2", "agent-us-east", "agent-us-west", "gateway-1", "gateway-2"].map(String::from))
            .collect();
        let network = crate::network::Network::create(&names)?;
        let tls_dir = dir.path().join("tls");
        let hosts = ["localhost".to_owned(), "127.0.0.1".to_owned()].into_iter().chain(network.addresses()).collect::<Vec<_>>();
        let certs = certificates(&tls_dir, &hosts, &AGENTS.map(|(cluster, region)| format!("{cluster}-{region}")))?;
        let dialer = Dialer::tls(LiveTls::load(TlsPaths::in_dir(&tls_dir, "scheduler"), Some(Role::Scheduler))?);
        let token = format!("chaos-admin-token-{:016x}", std::process::id() as u64 * 0x9e37_79b9);
        let mut cluster =
            Cluster { nucleus: nucleus.to_owned(), dir, keep: false, mounts: Vec::new(), network, members: BTreeMap::new(), token, dialer };
        if let Some(size) = small_meta_disks {
            for id in 1..=META_NODES {
                let path = cluster.dir.path().join(format!("meta-{id}"));
                fs::create_dir_all(&path)?;
                let status = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(&path).status()?;
                anyhow::ensure!(status.success(), "cannot mount a tmpfs at {} (the full-disk drill needs root)", path.display());
                cluster.mounts.push(path);
            }
        }
        // Every process has an address of its own: the same port everywhere is fine.
        const PORT: u16 = 7000;
        let addr = |name: &str| cluster.network.address(name).map(|ip| format!("{ip}:{PORT}"));
        let meta_addrs: Vec<String> = (1..=META_NODES).filter_map(|id| addr(&format!("meta-{id}"))).collect();
        let meta = meta_addrs.join(",");
        let path = |name: &str| cluster.dir.path().join(name).to_string_lossy().into_owned();
        let mut plan: Vec<(String, Vec<String>, &'static str, Option<String>)> = Vec::new();
        for (i, listen) in meta_addrs.iter().enumerate() {
            let id = (i + 1).to_string();
            let mut args =
                strings(&["meta", "--id", &id, "--listen", listen, "--data-dir", &path(&format!("meta-{id}")), "--shards", SHARDS]);
            if i > 0 {
                args.extend(strings(&["--join", &meta_addrs[0]]));
            }
            plan.push((format!("meta-{id}"), args, "serving on", Some(listen.clone())));
        }
        for name in ["s1", "s2"] {
            plan.push((format!("scheduler-{name}"), strings(&["scheduler", "--meta", &meta, "--name", name]), "started (meta", None));
        }
        for (cluster_name, region) in AGENTS {
            let name = format!("agent-{region}");
            let listen = addr(&name).context("agent address")?;
            let data = path(&name);
            let args = strings(&[
                "agent",
                "--meta",
                &meta,
                "--listen",
                &listen,
                "--cluster",
                cluster_name,
                "--region",
                region,
                "--data-dir",
                &data,
            ]);
            plan.push((name, args, "serving on", Some(listen)));
        }
        for i in 1..=2 {
            let name = format!("gateway-{i}");
            let listen = addr(&name).context("gateway address")?;
            let args = strings(&["gateway", "--meta", &meta, "--listen", &listen, "--token", &cluster.token]);
            plan.push((name, args, "listening on", Some(listen)));
        }
        for (name, mut args, ready, addr) in plan {
            // An agent's certificate is issued for the agent (`<cluster>-<region>`), the others' per role.
            let cert = match args.iter().position(|a| a == "--cluster") {
                Some(at) if args[0] == "agent" => format!("{}-{}", args[at + 1], args[at + 3]),
                _ => args[0].clone(),
            };
            args.extend(certs.get(&cert).cloned().unwrap_or_default());
            cluster.members.insert(name.clone(), Member { args, ready, child: None, addr, clock_offset: None });
            cluster.start_member(&name)?;
            crate::progress(&format!("{name} up"));
        }
        Ok(cluster)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Keeps the run directory after the cluster is gone, for its logs.
    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// Names of the members whose name starts with `prefix` (`meta-`, `agent-`, ...).
    pub fn names(&self, prefix: &str) -> Vec<String> {
        self.members.keys().filter(|n| n.starts_with(prefix)).cloned().collect()
    }

    pub fn addr(&self, name: &str) -> Option<&str> {
        self.members.get(name)?.addr.as_deref()
    }

    pub fn gateways(&self) -> Vec<String> {
        self.names("gateway-").iter().filter_map(|n| self.addr(n)).map(|a| format!("http://{a}/api/v2")).collect()
    }

    pub fn meta_addrs(&self) -> Vec<String> {
        self.names("meta-").iter().filter_map(|n| self.addr(n).map(str::to_owned)).collect()
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// [`Self::start_member`] from async code: the wait for its log runs off the async workers,
    /// so that the load keeps going meanwhile.
    pub fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        tokio::task::block_in_place(|| self.start_member(name))
    }

    /// Starts `name` (again) with its arguments; its log is appended to.
    pub fn start_member(&mut self, name: &str) -> anyhow::Result<()> {
        let log_path = self.log_path(name);
        let member = self.members.get_mut(name).with_context(|| format!("no member {name}"))?;
        let before = fs::read_to_string(&log_path).map(|t| t.len()).unwrap_or(0);
        let log = fs::OpenOptions::new().create(true).append(true).open(&log_path)?;
        let namespace = self.network.namespace(name).map(str::to_owned);
        let mut command = match &namespace {
            Some(namespace) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", namespace]).arg(&self.nucleus);
                command
            }
            None => Command::new(&self.nucleus),
        };
        if let Some(offset) = &member.clock_offset {
            // The library itself, not the `faketime` program (which forks: its child would
            // outlive a kill of the pid we hold). Only the wall clock moves, as with a bad NTP.
            command.env("LD_PRELOAD", LIBFAKETIME).env("FAKETIME", offset).env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        let child = command
            .args(&member.args)
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        member.child = Some(child);
        let ready = member.ready;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let text = fs::read_to_string(&log_path).unwrap_or_default();
            if text.get(before..).is_some_and(|new| new.contains(ready)) {
                return Ok(());
            }
            let member = self.members.get_mut(name).context("member")?;
            if let Some(status) = member.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("{name} exited ({status}) before it served; its log: {}", log_path.display());
            }
            if Instant::now() > deadline {
                bail!("{name} did not serve within 90 s; its log: {}", log_path.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// From its next start on, `name`'s wall clock is off by `offset` (`+90s`), or right (`None`).
    pub fn skew_clock(&mut self, name: &str, offset: Option<&str>) -> anyhow::Result<()> {
        anyhow::ensure!(offset.is_none() || Path::new(LIBFAKETIME).exists(), "{LIBFAKETIME} is missing: apt-get install -y libfaketime");
        let member = self.members.get_mut(name).with_context(|| format!("no member {name}"))?;
        member.clock_offset = offset.map(str::to_owned);
        Ok(())
    }

    /// Cuts `minority` off from every other member (clients on the bridge still reach both
    /// sides, as a region's users still reach its gateway).
    pub fn split(&self, minority: &[String]) -> anyhow::Result<()> {
        let majority: Vec<String> = self.members.keys().filter(|m| !minority.contains(m)).cloned().collect();
        self.network.split(minority, &majority)
    }

    /// Undoes [`Self::split`].
    pub fn heal(&self, minority: &[String]) -> anyhow::Result<()> {
        self.network.heal(minority)
    }

    /// The data directory of meta node `name`.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Whether `name`'s process has exited (it is reaped if so).
    pub fn exited(&mut self, name: &str) -> bool {
        let Some(member) = self.members.get_mut(name) else { return false };
        let gone = member.child.as_mut().is_none_or(|c| c.try_wait().ok().flatten().is_some());
        if gone {
            member.child = None;
        }
        gone
    }

    /// Sends `signal` (`KILL`, `STOP`, `CONT`, `TERM`) to `name`; after KILL or TERM the process is
    /// reaped and can be started again.
    pub fn signal(&mut self, name: &str, signal: &str) -> anyhow::Result<()> {
        let member = self.members.get_mut(name).with_context(|| format!("no member {name}"))?;
        let child = member.child.as_mut().with_context(|| format!("{name} is not running"))?;
        let status = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill -{signal} {name} failed");
        if matches!(signal, "KILL" | "TERM") {
            child.wait()?;
            member.child = None;
        }
        Ok(())
    }

    /// The meta node (`meta-N`) that leads `group` (0: the root group), as the nodes report it.
    pub async fn leader_of(&self, group: u64) -> anyhow::Result<String> {
        for addr in self.meta_addrs() {
            let Ok(status) = nucleus_client::node_status(&addr, &self.dialer).await else { continue };
            if let Some(leader) = status.groups.iter().find(|g| g.group_id == group).and_then(|g| g.leader_id) {
                return Ok(format!("meta-{leader}"));
            }
        }
        bail!("no meta node knows a leader of group {group}")
    }

    /// Every replica process of the run, by its replica name (`NUCLEUS_REPLICA`): a name twice
    /// is a replica placed twice.
    pub fn replica_processes(&self) -> BTreeMap<String, Vec<u32>> {
        let mut replicas: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for pid in self.run_processes() {
            let environ = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let replica = environ.split(|b| *b == 0).find_map(|var| var.strip_prefix(b"NUCLEUS_REPLICA="));
            if let Some(name) = replica {
                replicas.entry(String::from_utf8_lossy(name).into_owned()).or_default().push(pid);
            }
        }
        replicas
    }

    /// Kills every replica process that `agent` started (they work under its data directory);
    /// answers how many.
    pub fn kill_replicas_of(&self, agent: &str) -> usize {
        let root = self.dir.path().join(agent);
        let pids: Vec<u32> = self
            .run_processes()
            .into_iter()
            .filter(|pid| fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&root)))
            .collect();
        for pid in &pids {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        pids.len()
    }

    /// Processes working under the run directory (replicas run in their agent's data directory).
    fn run_processes(&self) -> Vec<u32> {
        let root = self.dir.path();
        let mut pids = Vec::new();
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            if fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(root)) {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for member in self.members.values_mut() {
            if let Some(child) = member.child.as_mut() {
                let _ = Command::new("kill").args(["-KILL", &child.id().to_string()]).status();
                let _ = child.wait();
            }
        }
        // Replicas outlive their agent by design: sweep them too.
        for pid in self.run_processes() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        for mount in &self.mounts {
            let _ = Command::new("umount").arg("-l").arg(mount).status();
        }
        if self.keep {
            let dir = std::mem::replace(&mut self.dir, tempfile::TempDir::new().unwrap_or_else(|_| std::process::abort()));
            eprintln!("[chaos] logs kept in {}", dir.keep().display());
        }
    }
}

/// A CA for the run and a certificate per role (per agent for agents, issued for its name) valid
/// for `hosts`; returns the `--tls-*` flags of each role, and of each agent by name.
fn certificates(dir: &Path, hosts: &[String], agents: &[String]) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let now = std::time::SystemTime::from(nucleus_api::clock::now());
    nucleus_tls::authority::init(dir, now)?;
    let mut flags = BTreeMap::new();
    let others = [Role::Meta, Role::Scheduler, Role::Gateway].map(|role| (role.to_string(), role));
    for (name, role) in others.into_iter().chain(agents.iter().map(|agent| (agent.clone(), Role::Agent))) {
        let paths = nucleus_tls::authority::issue(dir, &name, &[role], hosts, None, dir, now)?;
        let flag = |flag: &str, path: &Path| [flag.to_owned(), path.to_string_lossy().into_owned()];
        let role_flags = [flag("--tls-ca", &paths.ca), flag("--tls-cert", &paths.cert), flag("--tls-key", &paths.key)].concat();
        flags.insert(name, role_flags);
    }
    Ok(flags)
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}
