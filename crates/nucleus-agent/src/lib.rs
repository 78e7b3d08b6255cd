//! The Nucleus node agent: launches protons (N replicas of one container) through a [`Driver`]
//! (host processes, or Deployments in a Kubernetes cluster), streams the status of their replicas
//! to the scheduler over the `nucleus.agent.v1.Agent` gRPC service and reports its capacity.

mod agent;
pub mod driver;
mod durable;
mod error;
mod fencing;
mod grpc;
pub mod logs;
mod metrics;
mod status;

use std::future::Future;

use tonic::transport::server::TcpIncoming;

pub use agent::{Agent, AgentConfig, AgentOptions, CustomDriver, DriverChoice, StatusSink};
pub use driver::Driver;
pub use driver::kubernetes::KubernetesConfig;
pub use error::Error;
pub use grpc::AgentService;

/// Serves the Agent gRPC service on an already-bound listener until `shutdown` resolves.
///
/// When `shutdown` resolves, open `WatchProtons` streams are ended so that the server can drain;
/// the processes themselves are left to [`Agent::shutdown`]. With `tls`, only clients with a
/// certificate of the same CA connect, and only schedulers launch and stop protons.
pub async fn serve(
    agent: Agent,
    listener: tokio::net::TcpListener,
    tls: Option<std::sync::Arc<nucleus_tls::LiveTls>>,
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
    let router = tonic::transport::Server::builder()
        .layer(nucleus_tls::RoleGuardLayer::new(nucleus_tls::policy::agent_server, tls.is_some()))
        .add_service(service);
    match tls {
        Some(tls) => router.serve_with_incoming_shutdown(tls.incoming(listener), shutdown).await?,
        None => router.serve_with_incoming_shutdown(TcpIncoming::from(listener).with_nodelay(Some(true)), shutdown).await?,
    }
    Ok(())
}
