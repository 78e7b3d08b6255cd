use std::time::Duration;

use nucleus_proto::agent::v1 as pb;
use nucleus_proto::agent::v1::agent_client::AgentClient as Grpc;
use nucleus_tls::{Dialer, Role};
use tonic::transport::Channel;

use crate::Error;

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A node agent, as the scheduler (and a gateway reading logs) sees it.
#[derive(Debug, Clone)]
pub struct AgentClient {
    addr: String,
    grpc: Grpc<Channel>,
}

impl AgentClient {
    /// Connects lazily: the first call dials.
    pub fn new(addr: &str, dialer: &Dialer) -> Result<AgentClient, Error> {
        let endpoint = dialer
            .endpoint(addr)
            .map_err(|e| Error::Connect { service: "agent", addr: addr.to_owned(), message: e.to_string() })?
            .connect_timeout(Duration::from_secs(3));
        // Logs answers carry up to 32 MiB of messages.
        let grpc = Grpc::new(dialer.connect_lazy(endpoint, Role::Agent)).max_decoding_message_size(64 * 1024 * 1024);
        Ok(AgentClient { addr: addr.to_owned(), grpc })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    pub async fn launch(&self, request: pb::LaunchRequest) -> Result<(), Error> {
        let mut req = tonic::Request::new(request);
        req.set_timeout(CALL_TIMEOUT);
        nucleus_telemetry::trace::inject(&mut req);
        self.grpc.clone().launch(req).await.map_err(rpc)?;
        Ok(())
    }

    pub async fn stop(&self, request: pb::StopRequest) -> Result<(), Error> {
        let mut req = tonic::Request::new(request);
        req.set_timeout(CALL_TIMEOUT);
        self.grpc.clone().stop(req).await.map_err(rpc)?;
        Ok(())
    }

    /// CPU use and scraped metrics of the replicas of the protons asked about.
    pub async fn usage(&self, queries: Vec<pb::UsageQuery>) -> Result<Vec<pb::ProtonUsage>, Error> {
        let mut req = tonic::Request::new(pb::UsageRequest { queries });
        req.set_timeout(Duration::from_secs(3));
        Ok(self.grpc.clone().usage(req).await.map_err(rpc)?.into_inner().protons)
    }

    /// What the replicas of the protons asked about printed, newest first.
    pub async fn logs(&self, request: pb::LogsRequest) -> Result<pb::LogsResponse, Error> {
        let mut req = tonic::Request::new(request);
        req.set_timeout(CALL_TIMEOUT);
        Ok(self.grpc.clone().logs(req).await.map_err(rpc)?.into_inner())
    }

    /// Every proton the agent runs, then every change.
    pub async fn watch(&self) -> Result<tonic::Streaming<pb::ProtonReport>, Error> {
        let stream = self.grpc.clone().watch_protons(pb::WatchProtonsRequest {}).await.map_err(rpc)?;
        Ok(stream.into_inner())
    }
}

fn rpc(status: tonic::Status) -> Error {
    Error::Rpc { service: "agent", status }
}
