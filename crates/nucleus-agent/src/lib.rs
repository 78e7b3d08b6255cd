//! The Nucleus node agent: launches protons (N replicas of one container) through a [`Driver`]
//! (host processes, or Deployments in a Kubernetes cluster), streams the status of their replicas
//! to the scheduler over the `nucleus.agent.v1.Agent` gRPC service and reports its capacity.

mod agent;
pub mod driver;
mod durable;
mod error;
mod fencing;
mod grpc;
mod status;

use std::future::Future;

use tonic::transport::server::TcpIncoming;

pub use agent::{Agent, AgentConfig, AgentOptions, DriverChoice};
pub use driver::Driver;
pub use driver::kubernetes::KubernetesConfig;
pub use error::Error;
pub use grpc::AgentService;

/// Serves the Agent gRPC service on an already-bound listener until `shutdown` resolves.
///
/// When `shutdown` resolves, open `WatchProtons` streams are ended so that the server can drain;
/// the processes themselves are left to [`Agent::shutdown`].
pub async fn serve(
    agent: Agent,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let address = listener.local_addr().ok();
    tracing::info!(?address, agent = %agent.name(), "agent gRPC service listening");
    let service = agent.grpc_service();
    let closing = agent.clone();
    let shutdown = async move {
        shutdown.await;
        closing.close_watchers();
    };
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown)
        .await?;
    Ok(())
}
