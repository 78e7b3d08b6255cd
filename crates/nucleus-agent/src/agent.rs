use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nucleus_proto::agent::v1::agent_server::AgentServer;
use tokio::sync::watch;

use crate::driver::kubernetes::{KubernetesConfig, KubernetesDriver};
use crate::driver::process::ProcessDriver;
use crate::driver::{Driver, NodeCapacity, ProtonSpec};
use crate::error::Error;
use crate::grpc::AgentService;
use crate::status::StatusHub;

/// Grace period of a Stop that names none.
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

pub struct AgentConfig {
    /// Reported by `Info`.
    pub name: String,
    /// Reserved for drivers that keep state on disk; the process driver keeps none.
    pub data_dir: PathBuf,
    /// Reported as `node_address` of every replica.
    pub node_address: String,
}

/// Where the agent sits and which driver it runs protons with. `Agent::new` takes the
/// defaults: cluster and region "local", the process driver.
pub struct AgentOptions {
    /// Reported by `Info`.
    pub cluster: String,
    /// Reported by `Info`.
    pub region: String,
    pub driver: DriverChoice,
}

impl Default for AgentOptions {
    fn default() -> AgentOptions {
        AgentOptions {
            cluster: "local".to_owned(),
            region: "local".to_owned(),
            driver: DriverChoice::Process,
        }
    }
}

pub enum DriverChoice {
    /// Replicas are host processes of this machine.
    Process,
    /// Replicas are pods of Deployments in a Kubernetes cluster.
    Kubernetes(KubernetesConfig),
}

/// Cheap handle on the agent: its driver, the status hub and the fencing state.
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    cluster: String,
    region: String,
    data_dir: PathBuf,
    driver: Box<dyn Driver>,
    hub: StatusHub,
    /// Per metadata shard: the newest scheduler fencing token seen (tokens of different shards
    /// are revisions of different Raft groups, so they are only compared within a shard).
    newest_fencing_tokens: Mutex<HashMap<u64, u64>>,
    /// Flipped to true when the gRPC server stops, which ends the open watch streams.
    closing: watch::Sender<bool>,
}

impl Agent {
    /// An agent with the process driver, in cluster and region "local".
    pub fn new(config: AgentConfig) -> Agent {
        Agent::with_options(config, AgentOptions::default())
    }

    /// An agent with the given driver and location. The Kubernetes driver starts watching pods
    /// at once, so this must be called within a tokio runtime.
    pub fn with_options(config: AgentConfig, options: AgentOptions) -> Agent {
        let hub = StatusHub::new();
        let driver: Box<dyn Driver> = match options.driver {
            DriverChoice::Process => Box::new(ProcessDriver::new(config.node_address, hub.clone())),
            DriverChoice::Kubernetes(kubernetes) => {
                Box::new(KubernetesDriver::new(kubernetes, hub.clone()))
            }
        };
        let (closing, _) = watch::channel(false);
        Agent {
            inner: Arc::new(Inner {
                name: config.name,
                cluster: options.cluster,
                region: options.region,
                data_dir: config.data_dir,
                driver,
                hub,
                newest_fencing_tokens: Mutex::default(),
                closing,
            }),
        }
    }

    pub fn grpc_service(&self) -> AgentServer<AgentService> {
        AgentServer::new(AgentService::new(self.clone()))
    }

    /// Shuts the driver down. The process driver stops every proton (SIGTERM, a short grace,
    /// SIGKILL) and this waits until all processes are gone; the Kubernetes driver stops
    /// watching and leaves the protons running for the next agent to adopt.
    pub async fn shutdown(&self) {
        let driver = self.inner.driver.kind();
        tracing::info!(agent = %self.inner.name, driver, "agent shutting down");
        self.inner.driver.shutdown().await;
        tracing::info!(agent = %self.inner.name, driver, "agent shut down");
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn cluster(&self) -> &str {
        &self.inner.cluster
    }

    pub fn region(&self) -> &str {
        &self.inner.region
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.inner.data_dir
    }

    pub fn driver_kind(&self) -> &'static str {
        self.inner.driver.kind()
    }

    pub(crate) async fn launch(&self, spec: ProtonSpec, fencing_token: u64) -> Result<(), Error> {
        self.check_fencing_token(spec.meta_shard, fencing_token)?;
        self.inner.driver.launch(spec).await
    }

    pub(crate) async fn stop(
        &self,
        proton_id: String,
        grace_period_seconds: u32,
        meta_shard: u64,
        fencing_token: u64,
    ) -> Result<(), Error> {
        self.check_fencing_token(meta_shard, fencing_token)?;
        let grace = match grace_period_seconds {
            0 => DEFAULT_STOP_GRACE,
            secs => Duration::from_secs(secs.into()),
        };
        self.inner.driver.stop(proton_id, grace).await
    }

    /// The nodes the driver can run replicas on, with their allocatable resources.
    pub async fn capacity(&self) -> Result<Vec<NodeCapacity>, Error> {
        self.inner.driver.capacity().await
    }

    pub(crate) fn hub(&self) -> &StatusHub {
        &self.inner.hub
    }

    pub(crate) fn closing(&self) -> watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    pub(crate) fn close_watchers(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Records `token` as the newest seen for `shard` unless an even newer one was seen before.
    fn check_fencing_token(&self, shard: u64, token: u64) -> Result<(), Error> {
        let mut tokens = self.inner.newest_fencing_tokens.lock().unwrap_or_else(|p| p.into_inner());
        let newest = tokens.entry(shard).or_insert(0);
        if token < *newest {
            tracing::warn!(shard, token, newest = *newest, "refusing a request with a stale fencing token");
            return Err(Error::StaleFencingToken { shard, got: token, newest: *newest });
        }
        *newest = token;
        Ok(())
    }
}
