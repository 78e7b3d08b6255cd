//! A gateway's internal service, as schedulers see it: the request load it routes.

use std::time::Duration;

use nucleus_proto::gateway::v1 as pb;
use nucleus_proto::gateway::v1::gateway_client::GatewayClient as Grpc;
use nucleus_tls::{Dialer, Role};
use tonic::transport::Channel;

use crate::Error;

/// Registration of a gateway in meta (`gateways/<name>`), rewritten by its heartbeat; schedulers
/// ignore one whose heartbeat is older than [`GatewayRecord::STALE_AFTER`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRecord {
    pub name: String,
    /// Where its internal gRPC service listens (`host:port`).
    pub address: String,
    /// RFC 3339 time of the last heartbeat.
    pub heartbeat_at: String,
}

impl GatewayRecord {
    pub const HEARTBEAT: Duration = Duration::from_secs(10);
    pub const STALE_AFTER: Duration = Duration::from_secs(35);
}

#[derive(Debug, Clone)]
pub struct GatewayClient {
    addr: String,
    grpc: Grpc<Channel>,
}

impl GatewayClient {
    /// Connects lazily: the first call dials, and the server must prove it is a gateway.
    pub fn new(addr: &str, dialer: &Dialer) -> Result<GatewayClient, Error> {
        let endpoint = dialer
            .endpoint(addr)
            .map_err(|e| Error::Connect { service: "gateway", addr: addr.to_owned(), message: e.to_string() })?
            .connect_timeout(Duration::from_secs(3));
        Ok(GatewayClient { addr: addr.to_owned(), grpc: Grpc::new(dialer.connect_lazy(endpoint, Role::Gateway)) })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The gateway's load every second, and wake-ups as they happen.
    pub async fn watch_load(&self) -> Result<tonic::Streaming<pb::LoadReport>, Error> {
        let stream =
            self.grpc.clone().watch_load(pb::WatchLoadRequest {}).await.map_err(|status| Error::Rpc { service: "gateway", status })?;
        Ok(stream.into_inner())
    }
}
