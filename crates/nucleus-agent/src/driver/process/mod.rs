//! The process driver: every replica of a proton is a host process running the container's
//! entrypoint (the image is recorded, not pulled).

mod capacity;
mod logs;
mod probe;
mod prober;
mod replica;
mod spawn;
mod view;

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use futures::future::{BoxFuture, join_all};
use nucleus_proto::agent::v1::ProtonReport;

use self::replica::{Publish, ReplicaHandle};
pub(super) use self::spawn::substitute_port;
use super::{Driver, Lifecycle, NodeCapacity, ProtonSpec};
use crate::error::Error;
use crate::status::StatusHub;

/// Grace of replicas stopped because a proton was scaled down or its spec replaced.
const RETIRE_GRACE: Duration = Duration::from_secs(10);
/// Grace of every replica when the agent shuts down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

#[derive(Clone)]
pub struct ProcessDriver {
    inner: Arc<Inner>,
}

struct Inner {
    node_address: String,
    hub: StatusHub,
    /// Shared by every probe, for its connection pool.
    client: reqwest::Client,
    state: Mutex<State>,
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
}

impl Proton {
    fn all_replicas(&self) -> impl Iterator<Item = &ReplicaHandle> {
        self.replicas.values().chain(&self.retiring)
    }

    fn retire(&mut self, index: u32) {
        if let Some(replica) = self.replicas.remove(&index) {
            replica.stop(RETIRE_GRACE);
            self.retiring.push(replica);
        }
    }
}

impl ProcessDriver {
    pub(crate) fn new(node_address: String, hub: StatusHub) -> ProcessDriver {
        let client = reqwest::Client::builder().no_proxy().build().unwrap_or_else(|err| {
            tracing::warn!(error = %err, "cannot build the probe HTTP client; using the default one");
            reqwest::Client::new()
        });
        ProcessDriver {
            inner: Arc::new(Inner {
                node_address,
                hub,
                client,
                state: Mutex::default(),
            }),
        }
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

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        let stopped: Vec<_> = {
            let mut state = self.inner.state();
            state.shutting_down = true;
            let ids: Vec<String> = state.protons.keys().cloned().collect();
            drop(state);
            ids.iter()
                .filter_map(|id| self.inner.begin_stop(id, SHUTDOWN_GRACE))
                .collect()
        };
        Box::pin(async move {
            join_all(stopped).await;
        })
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every update of the state is completed under the lock before anything can panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn launch(self: &Arc<Self>, spec: ProtonSpec) -> Result<(), Error> {
        let mut state = self.state();
        if state.shutting_down {
            return Err(Error::ShuttingDown);
        }
        let mut used_ports = used_ports(&state);
        let id = spec.proton_id.clone();
        let count = spec.replica_count;
        let proton = state.protons.entry(id.clone()).or_insert_with(|| Proton {
            spec: Arc::new(spec.clone()),
            lifecycle: Lifecycle::Running,
            epoch: 0,
            replicas: BTreeMap::new(),
            retiring: Vec::new(),
        });
        proton.retiring.retain(|replica| !replica.is_done());
        if proton.lifecycle != Lifecycle::Running || !proton.spec.same_except_replicas(&spec) {
            tracing::info!(proton = %id, "starting the proton afresh");
            let indexes: Vec<u32> = proton.replicas.keys().copied().collect();
            indexes.into_iter().for_each(|index| proton.retire(index));
            proton.lifecycle = Lifecycle::Running;
            proton.epoch += 1;
        }
        proton.spec = Arc::new(spec);
        let extra: Vec<u32> = proton
            .replicas
            .range(count..)
            .map(|(index, _)| *index)
            .collect();
        extra.into_iter().for_each(|index| proton.retire(index));
        for index in 0..count {
            if !proton.replicas.contains_key(&index) {
                let port = free_port(&mut used_ports);
                let publish = self.publisher(&id);
                let replica = ReplicaHandle::start(
                    proton.spec.clone(),
                    index,
                    port,
                    self.client.clone(),
                    publish,
                );
                proton.replicas.insert(index, replica);
            }
        }
        self.publish_locked(&state, &id);
        Ok(())
    }

    /// Signals every replica of the proton to stop and returns a future that resolves, marking
    /// the proton stopped, once all their processes are gone. None for an unknown proton.
    fn begin_stop(
        self: &Arc<Self>,
        id: &str,
        grace: Duration,
    ) -> Option<impl Future<Output = ()> + Send + use<>> {
        let mut state = self.state();
        let Some(proton) = state.protons.get_mut(id) else {
            tracing::debug!(proton = %id, "stop of an unknown proton: nothing to do");
            return None;
        };
        if proton.lifecycle != Lifecycle::Stopped {
            proton.lifecycle = Lifecycle::Stopping;
        }
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
        drop(state);

        let inner = self.clone();
        let id = id.to_owned();
        Some(async move {
            join_all(gone).await;
            let mut state = inner.state();
            if let Some(proton) = state
                .protons
                .get_mut(&id)
                .filter(|proton| proton.epoch == epoch)
            {
                proton.lifecycle = Lifecycle::Stopped;
                proton.replicas.clear();
                proton.retiring.clear();
                tracing::info!(proton = %id, "proton stopped");
                inner.publish_locked(&state, &id);
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
            lifecycle: proton.lifecycle.as_str().to_owned(),
            replicas: proton
                .replicas
                .values()
                .map(|replica| replica.view().to_status(&self.node_address))
                .collect(),
            observed_at: String::new(),
            removed: false,
        });
    }
}

fn used_ports(state: &State) -> HashSet<u16> {
    state
        .protons
        .values()
        .flat_map(Proton::all_replicas)
        .map(|replica| replica.view().port)
        .collect()
}

/// A free port that no replica of this agent uses (the OS may hand out a port again once its
/// probing listener is closed).
fn free_port(used: &mut HashSet<u16>) -> io::Result<u16> {
    for _ in 0..16 {
        let port = spawn::free_port()?;
        if used.insert(port) {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        "no free port that no other replica uses",
    ))
}
