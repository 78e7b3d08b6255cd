//! Drivers run protons: the process driver runs each replica as a host process, the Kubernetes
//! driver as a pod of a Deployment. Both implement [`Driver`].

pub mod kubernetes;
pub mod process;
mod prometheus;
mod spec;

use std::time::Duration;

use futures::future::BoxFuture;

pub use spec::{ContainerSpec, Gpus, ProbeScheme, ProbeSpec, ProtonSpec, Resources, Security};

use crate::error::Error;

/// Where a proton is in its life, as `ProtonReport.lifecycle` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lifecycle {
    /// Its replicas are meant to run.
    Running,
    /// A stop is under way.
    Stopping,
    /// Every replica is gone.
    Stopped,
}

impl Lifecycle {
    pub(crate) fn to_proto(self) -> nucleus_proto::agent::v1::Lifecycle {
        use nucleus_proto::agent::v1::Lifecycle as Proto;
        match self {
            Lifecycle::Running => Proto::Running,
            Lifecycle::Stopping => Proto::Stopping,
            Lifecycle::Stopped => Proto::Stopped,
        }
    }
}

/// Runs protons and publishes their status (through the status hub it is built with).
pub trait Driver: Send + Sync + 'static {
    /// Reported by `Info`, e.g. "process".
    fn kind(&self) -> &'static str;
    /// Starts a proton, re-scales it when it runs with the same spec, or replaces its replicas
    /// when the spec differs. Returns once the replicas are under way, not when they are ready.
    fn launch(&self, spec: ProtonSpec) -> BoxFuture<'_, Result<(), Error>>;
    /// Begins stopping a proton: SIGTERM (or the driver's equivalent), forced after `grace`.
    fn stop(&self, proton_id: String, grace: Duration) -> BoxFuture<'_, Result<(), Error>>;
    /// CPU use and scraped metrics of the replicas of the protons asked about. Drivers that do not
    /// measure answer nothing (the autoscaler then holds such policies at the current count).
    fn usage(&self, queries: Vec<UsageQuery>) -> BoxFuture<'_, Result<Vec<ProtonUsage>, Error>> {
        let _ = queries;
        Box::pin(async { Ok(Vec::new()) })
    }
    /// The newest records of what the replicas of the protons asked about printed, filtered as
    /// asked. Drivers that keep no logs answer nothing.
    fn logs(&self, request: LogsRequest) -> BoxFuture<'_, Result<LogsResponse, Error>> {
        let _ = request;
        Box::pin(async { Ok(LogsResponse::default()) })
    }
    /// What the driver can place replicas on, node by node, as of now.
    fn capacity(&self) -> BoxFuture<'_, Result<Vec<NodeCapacity>, Error>>;
    /// Resolves once the driver no longer acts on its protons. The process driver stops every
    /// proton (short grace) and clears its state file (only a crash leaves its replicas for the
    /// next agent to adopt); the Kubernetes driver leaves them to the cluster, for the next agent
    /// to adopt.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}

/// What one node can give to replicas, in the shape `Info` sends it (one definition, in the proto:
/// zone empty when the node names none, GPU type and memory empty/0 without GPUs).
pub use nucleus_proto::agent::v1::NodeCapacity;
pub use nucleus_proto::agent::v1::{LogsRequest, LogsResponse, ProtonUsage, ReplicaUsage, UsageQuery};
