//! The simulated agents' machines: what a fake driver runs, kept outside the agent so that it
//! outlives an agent crash (like the process driver's replicas, adopted by the next agent), and
//! checked at every launch.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use nucleus_agent::driver::{NodeCapacity, ProtonSpec};
use nucleus_agent::{Driver, Error, StatusSink};
use nucleus_proto::agent::v1::{Condition, ContainerStatus, Lifecycle, ProtonReport, ReplicaStatus};

/// GPUs of the one node each simulated agent has.
pub const GPUS_PER_MACHINE: u32 = 4;
pub const GPU_TYPE: &str = nucleus_api::bundle::GPU_TYPE_L4;

/// The fencing of one launch the driver carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Launch {
    pub shard: u64,
    pub token: u64,
}

/// A proton the machine runs.
#[derive(Debug, Clone)]
pub struct Running {
    pub spec: ProtonSpec,
}

impl Running {
    fn gpus(&self) -> u32 {
        self.spec.resources.gpus.as_ref().map_or(0, |g| g.count) * self.spec.replica_count
    }
}

#[derive(Debug, Default)]
pub struct MachineState {
    pub running: BTreeMap<String, Running>,
    pub launches: Vec<Launch>,
    /// Newest fencing token of a launch carried out, per shard.
    pub newest_token: BTreeMap<u64, u64>,
    /// Broken invariants seen at launch time (stale token, GPUs over-booked).
    pub violations: Vec<String>,
}

/// One simulated agent's machine. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct Machine {
    pub name: String,
    state: Arc<Mutex<MachineState>>,
}

impl Machine {
    pub fn new(name: impl Into<String>) -> Machine {
        Machine { name: name.into(), state: Arc::default() }
    }

    pub fn state(&self) -> MutexGuard<'_, MachineState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn capacity(&self) -> NodeCapacity {
        NodeCapacity {
            name: format!("{}-node", self.name),
            zone: String::new(),
            cpu_millis: 64_000,
            memory_bytes: 512 << 30,
            gpu_count: GPUS_PER_MACHINE,
            gpu_type: GPU_TYPE.to_owned(),
            gpu_memory_bytes: 24 << 30,
        }
    }

    /// The driver an agent on this machine runs protons with; it publishes the status of what
    /// already runs (an agent that restarted adopts it).
    pub fn driver(&self, sink: StatusSink) -> Box<dyn Driver> {
        let driver = FakeDriver { machine: self.clone(), sink };
        for running in self.state().running.values() {
            driver.sink.publish(report(&self.name, &running.spec, Lifecycle::Running));
        }
        Box::new(driver)
    }
}

struct FakeDriver {
    machine: Machine,
    sink: StatusSink,
}

impl Driver for FakeDriver {
    fn kind(&self) -> &'static str {
        "fake"
    }

    fn launch(&self, spec: ProtonSpec) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let at = turmoil::sim_elapsed().unwrap_or_default();
            let name = &self.machine.name;
            let mut state = self.machine.state();
            let newest = state.newest_token.get(&spec.meta_shard).copied().unwrap_or(0);
            if spec.fencing_token < newest {
                let violation = format!(
                    "{at:?} {name}: proton {} launched under fencing token {} of shard {} after a launch under token {newest}",
                    spec.proton_id, spec.fencing_token, spec.meta_shard
                );
                state.violations.push(violation);
            }
            state.newest_token.insert(spec.meta_shard, newest.max(spec.fencing_token));
            state.launches.push(Launch { shard: spec.meta_shard, token: spec.fencing_token });
            let candidate = Running { spec: spec.clone() };
            let others: u32 = state.running.iter().filter(|(id, _)| **id != spec.proton_id).map(|(_, r)| r.gpus()).sum();
            if others + candidate.gpus() > GPUS_PER_MACHINE {
                let violation = format!(
                    "{at:?} {name}: proton {} launched with {} GPUs while others hold {others} of {GPUS_PER_MACHINE}",
                    spec.proton_id,
                    candidate.gpus()
                );
                state.violations.push(violation);
            }
            state.running.insert(spec.proton_id.clone(), candidate);
            drop(state);
            self.sink.publish(report(name, &spec, Lifecycle::Running));
            Ok(())
        })
    }

    fn stop(&self, proton_id: String, _grace: Duration) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            let stopped = self.machine.state().running.remove(&proton_id);
            let report = match stopped {
                Some(running) => report(&self.machine.name, &running.spec, Lifecycle::Stopped),
                // Never ran here: nothing runs, which is what a stop asks for.
                None => ProtonReport { proton_id, lifecycle: Lifecycle::Stopped as i32, ..ProtonReport::default() },
            };
            self.sink.publish(report);
            Ok(())
        })
    }

    fn capacity(&self) -> BoxFuture<'_, Result<Vec<NodeCapacity>, Error>> {
        Box::pin(async move { Ok(vec![self.machine.capacity()]) })
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// What the agent reports of a proton: every replica running and ready at once.
fn report(machine: &str, spec: &ProtonSpec, lifecycle: Lifecycle) -> ProtonReport {
    let replicas = match lifecycle {
        Lifecycle::Running => (0..spec.replica_count)
            .map(|i| ReplicaStatus {
                name: format!("{}-{i}", spec.proton_id),
                address: format!("{machine}:{}", 20_000 + i),
                node_address: machine.to_owned(),
                started_at: String::new(),
                phase: "running".to_owned(),
                conditions: vec![Condition { r#type: "Ready".to_owned(), met: true, since: String::new() }],
                containers: vec![ContainerStatus {
                    name: spec.container.name.clone(),
                    image: spec.container.image_uri.clone(),
                    ready: true,
                    status: "running".to_owned(),
                    ..ContainerStatus::default()
                }],
                ..ReplicaStatus::default()
            })
            .collect(),
        _ => Vec::new(),
    };
    ProtonReport {
        proton_id: spec.proton_id.clone(),
        workload_id: spec.workload_id.clone(),
        lifecycle: lifecycle as i32,
        replicas,
        observed_at: String::new(),
        removed: false,
    }
}
