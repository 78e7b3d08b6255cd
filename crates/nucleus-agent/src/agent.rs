use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nucleus_proto::agent::v1::agent_server::AgentServer;
use tokio::sync::watch;

use crate::driver::process::ProcessDriver;
use crate::driver::{Driver, ProtonSpec};
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

/// Cheap handle on the agent: its driver, the status hub and the fencing state.
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    data_dir: PathBuf,
    driver: Box<dyn Driver>,
    hub: StatusHub,
    newest_fencing_token: AtomicU64,
    /// Flipped to true when the gRPC server stops, which ends the open watch streams.
    closing: watch::Sender<bool>,
}

impl Agent {
    pub fn new(config: AgentConfig) -> Agent {
        let hub = StatusHub::new();
        let driver = ProcessDriver::new(config.node_address, hub.clone());
        let (closing, _) = watch::channel(false);
        Agent {
            inner: Arc::new(Inner {
                name: config.name,
                data_dir: config.data_dir,
                driver: Box::new(driver),
                hub,
                newest_fencing_token: AtomicU64::new(0),
                closing,
            }),
        }
    }

    pub fn grpc_service(&self) -> AgentServer<AgentService> {
        AgentServer::new(AgentService::new(self.clone()))
    }

    /// Stops every proton (SIGTERM, a short grace, SIGKILL) and waits until all processes are gone.
    pub async fn shutdown(&self) {
        tracing::info!(agent = %self.inner.name, "agent shutting down: stopping every proton");
        self.inner.driver.shutdown().await;
        tracing::info!(agent = %self.inner.name, "agent shut down: no process left");
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn data_dir(&self) -> &std::path::Path {
        &self.inner.data_dir
    }

    pub fn driver_kind(&self) -> &'static str {
        self.inner.driver.kind()
    }

    pub(crate) async fn launch(&self, spec: ProtonSpec, fencing_token: u64) -> Result<(), Error> {
        self.check_fencing_token(fencing_token)?;
        self.inner.driver.launch(spec).await
    }

    pub(crate) async fn stop(
        &self,
        proton_id: String,
        grace_period_seconds: u32,
        fencing_token: u64,
    ) -> Result<(), Error> {
        self.check_fencing_token(fencing_token)?;
        let grace = match grace_period_seconds {
            0 => DEFAULT_STOP_GRACE,
            secs => Duration::from_secs(secs.into()),
        };
        self.inner.driver.stop(proton_id, grace).await
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

    /// Records `token` as the newest seen unless an even newer one was seen before.
    fn check_fencing_token(&self, token: u64) -> Result<(), Error> {
        let newest = self
            .inner
            .newest_fencing_token
            .fetch_max(token, Ordering::SeqCst);
        if token < newest {
            tracing::warn!(
                token,
                newest,
                "refusing a request with a stale fencing token"
            );
            return Err(Error::StaleFencingToken { got: token, newest });
        }
        Ok(())
    }
}
