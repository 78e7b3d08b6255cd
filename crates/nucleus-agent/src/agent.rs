use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nucleus_proto::agent::v1::agent_server::AgentServer;
use tokio::sync::watch;

use crate::driver::kubernetes::{KubernetesConfig, KubernetesDriver};
use crate::driver::process::{ProcessDriver, ProcessSettings};
use crate::driver::{Driver, NodeCapacity, ProtonSpec};
use crate::error::Error;
use crate::fencing::FencingTokens;
use crate::grpc::AgentService;
use crate::status::StatusHub;

/// Grace period of a Stop that names none.
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

pub struct AgentConfig {
    /// Reported by `Info`.
    pub name: String,
    /// Where the agent keeps what must survive a restart: the newest fencing token per shard and
    /// the process driver's state file and replica logs (under `process-driver/`).
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
    /// With the process driver: where replicas listen, and as whom.
    pub process: ProcessSettings,
}

impl Default for AgentOptions {
    fn default() -> AgentOptions {
        AgentOptions {
            cluster: "local".to_owned(),
            region: "local".to_owned(),
            driver: DriverChoice::Process,
            process: ProcessSettings::default(),
        }
    }
}

pub enum DriverChoice {
    /// Replicas are host processes of this machine.
    Process,
    /// Replicas are pods of Deployments in a Kubernetes cluster.
    Kubernetes(KubernetesConfig),
    /// A driver of the embedder's (the simulation's fake driver), built with the sink its
    /// replicas' status goes to.
    Custom(CustomDriver),
}

/// Builds a driver that publishes its protons' status to the given sink.
pub type CustomDriver = Box<dyn FnOnce(StatusSink) -> Box<dyn Driver> + Send>;

/// Where a driver publishes the status of its protons (what `WatchProtons` streams).
#[derive(Clone)]
pub struct StatusSink(StatusHub);

impl StatusSink {
    /// Records `report` as its proton's current status and tells watchers when it changed.
    pub fn publish(&self, report: nucleus_proto::agent::v1::ProtonReport) {
        self.0.publish(report);
    }
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
    /// Per metadata shard: the newest scheduler fencing token seen, kept in the data dir.
    fencing_tokens: FencingTokens,
    /// Flipped to true when the gRPC server stops, which ends the open watch streams.
    closing: watch::Sender<bool>,
}

impl Agent {
    /// An agent with the process driver, in cluster and region "local". See
    /// [`Agent::with_options`].
    pub fn new(config: AgentConfig) -> Result<Agent, Error> {
        Agent::with_options(config, AgentOptions::default())
    }

    /// An agent with the given driver and location, resuming what an earlier agent on the same
    /// data dir left: the newest fencing tokens, and with the process driver the replicas that
    /// are still running (adopted, not started again). Both drivers start tasks at once, so this
    /// must be called within a tokio runtime. Fails when the data dir cannot be read.
    pub fn with_options(config: AgentConfig, options: AgentOptions) -> Result<Agent, Error> {
        let hub = StatusHub::new();
        let fencing_tokens = FencingTokens::load(&config.data_dir)?;
        let driver: Box<dyn Driver> = match options.driver {
            DriverChoice::Process => Box::new(ProcessDriver::new(config.node_address, &config.data_dir, hub.clone(), options.process)?),
            DriverChoice::Kubernetes(kubernetes) => Box::new(KubernetesDriver::new(kubernetes, hub.clone())),
            DriverChoice::Custom(build) => build(StatusSink(hub.clone())),
        };
        let (closing, _) = watch::channel(false);
        let agent = Agent {
            inner: Arc::new(Inner {
                name: config.name,
                cluster: options.cluster,
                region: options.region,
                data_dir: config.data_dir,
                driver,
                hub,
                fencing_tokens,
                closing,
            }),
        };
        let weak = Arc::downgrade(&agent.inner);
        crate::metrics::watch_replicas(&agent.inner.name, move || weak.upgrade().map(|inner| inner.hub.snapshot()));
        Ok(agent)
    }

    pub fn grpc_service(&self) -> AgentServer<AgentService> {
        AgentServer::new(AgentService::new(self.clone()))
    }

    /// Shuts the driver down. The process driver stops every proton (SIGTERM, a short grace,
    /// SIGKILL), waits until all processes are gone and clears its state file, so the next agent
    /// starts empty; the Kubernetes driver stops watching and leaves the protons running for the
    /// next agent to adopt. An agent that dies without this (a crash, SIGKILL) leaves the process
    /// driver's replicas running too, and the next agent on the same data dir adopts them.
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
        let _turn = self.inner.fencing_tokens.admit(spec.meta_shard, fencing_token).await?;
        let started = tokio::time::Instant::now();
        let launched = self.inner.driver.launch(spec).await;
        crate::metrics::metrics().launch.with(&[&self.inner.name]).observe(started.elapsed().as_secs_f64());
        launched
    }

    pub(crate) async fn stop(
        &self,
        proton_id: String,
        grace_period_seconds: u32,
        meta_shard: u64,
        fencing_token: u64,
    ) -> Result<(), Error> {
        let _turn = self.inner.fencing_tokens.admit(meta_shard, fencing_token).await?;
        let grace = match grace_period_seconds {
            0 => DEFAULT_STOP_GRACE,
            secs => Duration::from_secs(secs.into()),
        };
        self.inner.driver.stop(proton_id, grace).await
    }

    /// The nodes the driver can run replicas on, with their allocatable resources.
    /// The autoscaling signals of the protons asked about.
    pub async fn usage(
        &self,
        queries: Vec<nucleus_proto::agent::v1::UsageQuery>,
    ) -> Result<Vec<nucleus_proto::agent::v1::ProtonUsage>, Error> {
        self.inner.driver.usage(queries).await
    }

    /// What the replicas of the protons asked about printed, newest first.
    pub async fn logs(&self, request: nucleus_proto::agent::v1::LogsRequest) -> Result<nucleus_proto::agent::v1::LogsResponse, Error> {
        self.inner.driver.logs(request).await
    }

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
}
