//! The process driver: every replica of a proton is a host process running the container's
//! entrypoint (the image is recorded, not pulled).
//!
//! Replicas are not tied to the agent: each leads its own process group, writes its output to a
//! log file under `<data dir>/process-driver/logs/`, and keeps running when the agent dies. The
//! driver keeps what it runs in `<data dir>/process-driver/state.json` (see `state_file.rs`),
//! rewritten atomically after every launch, stop, scale change and process (re)start, so that
//! an agent started after a crash or a SIGKILL adopts the replicas still running (matched by pid
//! and process start time) instead of starting duplicates, and handles the ones that ended
//! meanwhile as crashed. A graceful [`Driver::shutdown`] (SIGTERM, Ctrl-C) stops every replica
//! and removes the state file: the next agent starts empty.

mod adopt;
mod capacity;
mod cgroups;
mod incarnation;
mod logs;
mod pid;
mod probe;
mod prober;
mod replica;
mod sandbox;
mod spawn;
mod state_file;
mod usage;
mod view;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures::future::{BoxFuture, join_all};
use nucleus_proto::agent::v1::{LogsRequest, LogsResponse, ProtonReport, ProtonUsage, UsageQuery};

use self::logs::LogFile;
use self::replica::{Publish, ReplicaHandle};
pub use self::sandbox::RunAs;
use crate::logs::LogStore;
use nucleus_api::exec_policy::ExecPolicy;

/// How the process driver runs replicas on this host.
#[derive(Debug, Clone)]
pub struct ProcessSettings {
    /// The address replicas listen on (their `HOST`) and gateways reach them at: this host's
    /// address on the network the gateways are on. 127.0.0.1 when gateways run on this host only.
    pub replica_host: IpAddr,
    /// The user replicas run as; None: the agent's.
    pub run_as: Option<RunAs>,
    /// Which programs replicas may run (`--allow-exec`); the gateway enforces the rest of the policy.
    pub exec: ExecPolicy,
}

impl Default for ProcessSettings {
    fn default() -> ProcessSettings {
        ProcessSettings { replica_host: IpAddr::from([127, 0, 0, 1]), run_as: None, exec: ExecPolicy::Anyone }
    }
}
use self::sandbox::Sandbox;
pub(super) use self::spawn::substitute_port;
use self::state_file::{ProtonRecord, StateFile, StateRecord};
use super::{Driver, Lifecycle, NodeCapacity, ProtonSpec};
use crate::error::Error;
use crate::status::StatusHub;

/// Grace of replicas stopped because a proton was scaled down or its spec replaced.
const RETIRE_GRACE: Duration = Duration::from_secs(10);
/// How long a replica taken out of a proton (scale-down) keeps serving after it leaves the
/// proton's report: the report reaches the gateways through the scheduler and meta within this,
/// so that no request is routed to a replica that is going away.
const RETIRE_DRAIN: Duration = Duration::from_secs(2);
/// Grace of every replica when the agent shuts down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct ProcessDriver {
    inner: Arc<Inner>,
}

struct Inner {
    node_address: String,
    hub: StatusHub,
    /// Where replicas' log files go.
    logs_dir: PathBuf,
    /// Replicas' environment, working directories and limits.
    sandbox: Arc<Sandbox>,
    state_file: StateFile,
    /// Shared by every probe and scrape, for its connection pool.
    client: reqwest::Client,
    state: Mutex<State>,
    /// The last CPU reading of each replica (autoscaling signals).
    cpu: usage::CpuMeter,
    /// What the replicas printed, as log records.
    logs: LogStore,
}

#[derive(Default)]
struct State {
    protons: BTreeMap<String, Proton>,
    shutting_down: bool,
}

struct Proton {
    spec: Arc<ProtonSpec>,
    lifecycle: Lifecycle,
    /// Bumped by every launch that replaces the replicas and every stop, so that a stop that
    /// completes late does not clobber what came after it.
    epoch: u64,
    /// The replicas reported, by index.
    replicas: BTreeMap<u32, ReplicaHandle>,
    /// Replicas being stopped after a scale-down or a replacement; no longer reported.
    retiring: Vec<ReplicaHandle>,
    /// The grace of the stop under way, if any.
    stop_grace: Option<Duration>,
}

impl Proton {
    fn new(spec: Arc<ProtonSpec>) -> Proton {
        Proton { spec, lifecycle: Lifecycle::Running, epoch: 0, replicas: BTreeMap::new(), retiring: Vec::new(), stop_grace: None }
    }

    fn all_replicas(&self) -> impl Iterator<Item = &ReplicaHandle> {
        self.replicas.values().chain(&self.retiring)
    }

    /// Forgets the retiring replicas whose processes are gone, and their logs.
    fn prune_retired(&mut self) {
        self.retiring.retain(|replica| {
            let done = replica.is_done();
            if done {
                replica.view().logs.remove();
            }
            !done
        });
    }

    /// What the state file keeps of it; None once it is stopped.
    fn record(&self) -> Option<ProtonRecord> {
        if self.lifecycle == Lifecycle::Stopped {
            return None;
        }
        Some(ProtonRecord {
            spec: (*self.spec).clone(),
            stopping: self.stop_grace.filter(|_| self.lifecycle == Lifecycle::Stopping),
            replicas: self.replicas.iter().map(|(index, replica)| (*index, replica.view().record())).collect(),
            retiring: self.retiring.iter().filter(|replica| !replica.is_done()).map(|replica| replica.view().record()).collect(),
        })
    }

    fn retire(&mut self, index: u32) {
        if let Some(replica) = self.replicas.remove(&index) {
            replica.stop_after(RETIRE_DRAIN, RETIRE_GRACE);
            self.retiring.push(replica);
        }
    }
}

impl ProcessDriver {
    /// A driver keeping its state under `<data_dir>/process-driver/`, which adopts at once the
    /// replicas an earlier agent left there (so it must be called within a tokio runtime).
    pub(crate) fn new(node_address: String, data_dir: &Path, hub: StatusHub, settings: ProcessSettings) -> Result<ProcessDriver, Error> {
        let client = reqwest::Client::builder().no_proxy().build().unwrap_or_else(|err| {
            tracing::warn!(error = %err, "cannot build the probe HTTP client; using the default one");
            reqwest::Client::new()
        });
        let dir = data_dir.join("process-driver");
        let state_file = StateFile::in_dir(&dir);
        let left = state_file.load()?;
        if !left.protons.is_empty() {
            tracing::info!(
                path = %state_file.path().display(),
                protons = left.protons.len(),
                "an earlier agent left protons running: adopting them"
            );
        }
        let sandbox = Arc::new(
            Sandbox::new(settings.replica_host, dir.join("work"), settings.run_as, settings.exec).with_cgroups(cgroups::Cgroups::detect()),
        );
        let inner = Arc::new(Inner {
            node_address,
            hub,
            logs_dir: dir.join("logs"),
            sandbox,
            state_file,
            client,
            state: Mutex::default(),
            cpu: Default::default(),
            logs: LogStore::new(),
        });
        inner.adopt(left);
        Ok(ProcessDriver { inner })
    }
}

impl Driver for ProcessDriver {
    fn kind(&self) -> &'static str {
        "process"
    }

    fn launch(&self, spec: ProtonSpec) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(std::future::ready(self.inner.launch(spec)))
    }

    fn stop(&self, proton_id: String, grace: Duration) -> BoxFuture<'_, Result<(), Error>> {
        if let Some(stopped) = self.inner.begin_stop(&proton_id, grace) {
            tokio::spawn(stopped);
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn capacity(&self) -> BoxFuture<'_, Result<Vec<NodeCapacity>, Error>> {
        Box::pin(async { Ok(vec![capacity::this_host()]) })
    }

    fn logs(&self, request: LogsRequest) -> BoxFuture<'_, Result<LogsResponse, Error>> {
        Box::pin(async move { Ok(self.inner.logs.query(&request)) })
    }

    fn usage(&self, queries: Vec<UsageQuery>) -> BoxFuture<'_, Result<Vec<ProtonUsage>, Error>> {
        Box::pin(async move {
            let groups = if queries.iter().any(|q| q.cpu) { usage::read_cpu_ticks().await } else { Default::default() };
            let mut answers = Vec::with_capacity(queries.len());
            for query in &queries {
                let Some(targets) = self.inner.targets(&query.proton_id) else { continue };
                let inner = &self.inner;
                let replicas = usage::measure(&inner.cpu, &inner.client, inner.sandbox.host(), query, targets, &groups).await;
                answers.push(ProtonUsage { proton_id: query.proton_id.clone(), replicas });
            }
            let live: std::collections::HashSet<String> = {
                let state = self.inner.state();
                state.protons.values().flat_map(|p| p.replicas.values().map(|r| r.view().name.clone())).collect()
            };
            self.inner.cpu.retain(|name| live.contains(name));
            Ok(answers)
        })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        let stopped: Vec<_> = {
            let mut state = self.inner.state();
            state.shutting_down = true;
            let ids: Vec<String> = state.protons.keys().cloned().collect();
            drop(state);
            ids.iter().filter_map(|id| self.inner.begin_stop(id, SHUTDOWN_GRACE)).collect()
        };
        Box::pin(async move {
            join_all(stopped).await;
            let _state = self.inner.state();
            match self.inner.state_file.clear() {
                Ok(()) => tracing::info!("every replica stopped; state file removed"),
                Err(err) => tracing::error!(error = %err, "cannot remove the state file"),
            }
        })
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every update of the state is completed under the lock before anything can panic.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The replicas of `proton` as the usage poll measures them; `None` for an unknown proton.
    fn targets(&self, proton: &str) -> Option<Vec<usage::Target>> {
        let state = self.state();
        let proton = state.protons.get(proton)?;
        let cores = match proton.spec.resources.cpu_millis {
            0 => 1.0,
            millis => f64::from(millis) / 1000.0,
        };
        let targets = proton
            .replicas
            .values()
            .map(|replica| {
                let view = replica.view();
                usage::Target {
                    name: view.name.clone(),
                    ready: view.is_ready(),
                    group: view.process.map(|p| p.pid),
                    port: view.port,
                    cores,
                }
            })
            .collect();
        Some(targets)
    }

    fn launch(self: &Arc<Self>, spec: ProtonSpec) -> Result<(), Error> {
        let mut state = self.state();
        if state.shutting_down {
            return Err(Error::ShuttingDown);
        }
        let mut used_ports = used_ports(&state);
        let id = spec.proton_id.clone();
        let count = spec.replica_count;
        self.logs.set_retention(&id, spec.log_retention());
        let proton = state.protons.entry(id.clone()).or_insert_with(|| Proton::new(Arc::new(spec.clone())));
        proton.prune_retired();
        if proton.lifecycle != Lifecycle::Running || !proton.spec.same_except_replicas(&spec) {
            tracing::info!(proton = %id, "starting the proton afresh");
            let indexes: Vec<u32> = proton.replicas.keys().copied().collect();
            indexes.into_iter().for_each(|index| proton.retire(index));
            proton.lifecycle = Lifecycle::Running;
            proton.stop_grace = None;
            proton.epoch += 1;
        }
        proton.spec = Arc::new(spec);
        let extra: Vec<u32> = proton.replicas.range(count..).map(|(index, _)| *index).collect();
        extra.into_iter().for_each(|index| proton.retire(index));
        for index in 0..count {
            if !proton.replicas.contains_key(&index) {
                let port = free_port(self.sandbox.host(), &mut used_ports);
                let log = LogFile::new(&self.logs_dir, &id, index).with_sink(&self.logs, &id, &format!("{id}-{index}"));
                let publish = self.publisher(&id);
                let replica =
                    ReplicaHandle::start(proton.spec.clone(), index, port, log, self.client.clone(), self.sandbox.clone(), publish);
                proton.replicas.insert(index, replica);
            }
        }
        self.publish_locked(&state, &id);
        // When the state cannot be kept the replicas still start, but the scheduler hears of it:
        // a repeated launch is a no-op that writes the state file again.
        self.persist_locked(&state)
    }

    /// Signals every replica of the proton to stop and returns a future that resolves, marking
    /// the proton stopped, once all their processes are gone. None for an unknown proton.
    fn begin_stop(self: &Arc<Self>, id: &str, grace: Duration) -> Option<impl Future<Output = ()> + Send + use<>> {
        let mut state = self.state();
        let Some(proton) = state.protons.get_mut(id) else {
            tracing::debug!(proton = %id, "stop of an unknown proton: nothing to do");
            return None;
        };
        if proton.lifecycle != Lifecycle::Stopped {
            proton.lifecycle = Lifecycle::Stopping;
        }
        proton.stop_grace = Some(proton.stop_grace.map_or(grace, |earlier| earlier.min(grace)));
        proton.epoch += 1;
        let epoch = proton.epoch;
        let gone: Vec<_> = proton
            .all_replicas()
            .map(|replica| {
                replica.stop(grace);
                replica.done()
            })
            .collect();
        self.publish_locked(&state, id);
        self.persist_or_log(&state);
        drop(state);

        let inner = self.clone();
        let id = id.to_owned();
        Some(async move {
            join_all(gone).await;
            let mut state = inner.state();
            if let Some(proton) = state.protons.get_mut(&id).filter(|proton| proton.epoch == epoch) {
                proton.lifecycle = Lifecycle::Stopped;
                proton.stop_grace = None;
                for replica in proton.all_replicas() {
                    let view = replica.view();
                    view.logs.remove();
                    inner.sandbox.release(&view.name);
                }
                proton.replicas.clear();
                proton.retiring.clear();
                tracing::info!(proton = %id, "proton stopped");
                inner.publish_locked(&state, &id);
                inner.persist_or_log(&state);
            }
        })
    }

    fn publisher(self: &Arc<Self>, id: &str) -> Publish {
        let inner: Weak<Inner> = Arc::downgrade(self);
        let id = id.to_owned();
        Arc::new(move || {
            if let Some(inner) = inner.upgrade() {
                let state = inner.state();
                inner.publish_locked(&state, &id);
                inner.persist_or_log(&state);
            }
        })
    }

    /// Publishes the proton's report. Called with the state locked, so that reports reach the
    /// hub in the order the changes happened.
    fn publish_locked(&self, state: &State, id: &str) {
        let Some(proton) = state.protons.get(id) else {
            return;
        };
        self.hub.publish(ProtonReport {
            proton_id: id.to_owned(),
            workload_id: proton.spec.workload_id.clone(),
            lifecycle: proton.lifecycle.to_proto() as i32,
            replicas: proton.replicas.values().map(|replica| replica.view().to_status(&self.node_address, self.sandbox.host())).collect(),
            observed_at: String::new(),
            removed: false,
        });
    }
}

impl Inner {
    /// Writes the state file from `state` (called with it locked, so writes follow the changes
    /// in order). Once a graceful shutdown has removed the file, nothing writes it again.
    fn persist_locked(&self, state: &State) -> Result<(), Error> {
        if state.shutting_down && state.protons.values().all(|p| p.lifecycle == Lifecycle::Stopped) {
            return Ok(());
        }
        let record = StateRecord {
            protons: state.protons.iter().filter_map(|(id, proton)| Some((id.clone(), proton.record()?))).collect(),
            ..StateRecord::default()
        };
        self.state_file.save(&record)
    }

    /// For changes that nobody waits on: a failed write is logged, and the next change writes
    /// the whole state again.
    fn persist_or_log(&self, state: &State) {
        if let Err(err) = self.persist_locked(state) {
            tracing::error!(
                error = %err,
                "cannot update the state file: after a crash, the next agent would not know every replica"
            );
        }
    }
}

fn used_ports(state: &State) -> HashSet<u16> {
    state.protons.values().flat_map(Proton::all_replicas).map(|replica| replica.view().port).collect()
}

/// A free port that no replica of this agent uses (the OS may hand out a port again once its
/// probing listener is closed).
fn free_port(host: IpAddr, used: &mut HashSet<u16>) -> io::Result<u16> {
    for _ in 0..16 {
        let port = spawn::free_port(host)?;
        if used.insert(port) {
            return Ok(port);
        }
    }
    Err(io::Error::new(io::ErrorKind::AddrInUse, "no free port that no other replica uses"))
}
