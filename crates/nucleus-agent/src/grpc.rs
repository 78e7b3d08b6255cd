//! The `nucleus.agent.v1.Agent` gRPC service on top of [`Agent`].

use std::pin::Pin;

use futures::Stream;
use nucleus_proto::agent::v1::agent_server::Agent as AgentRpc;
use nucleus_proto::agent::v1::{
    InfoRequest, InfoResponse, LaunchRequest, LaunchResponse, LogsRequest, LogsResponse, ProtonReport, StopRequest, StopResponse,
    UsageRequest, UsageResponse, WatchProtonsRequest,
};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::agent::Agent;
use crate::driver::ProtonSpec;

/// Reports buffered per watcher before the forwarding task waits for the client.
const WATCH_BUFFER: usize = 64;

pub struct AgentService {
    agent: Agent,
}

impl AgentService {
    pub(crate) fn new(agent: Agent) -> AgentService {
        AgentService { agent }
    }
}

type ReportStream = Pin<Box<dyn Stream<Item = Result<ProtonReport, Status>> + Send>>;

#[tonic::async_trait]
impl AgentRpc for AgentService {
    async fn launch(&self, request: Request<LaunchRequest>) -> Result<Response<LaunchResponse>, Status> {
        let span = tracing::info_span!("agent launch", otel.kind = "server", proton = tracing::field::Empty, agent = %self.agent.name());
        nucleus_telemetry::trace::continue_grpc(&span, request.metadata());
        let request = request.into_inner();
        span.record("proton", request.proton_id.as_str());
        let fencing_token = request.fencing_token;
        let spec = ProtonSpec::try_from(request)?;
        let launched = async {
            tracing::info!(proton = %spec.proton_id, replicas = spec.replica_count, fencing_token, "launch");
            self.agent.launch(spec, fencing_token).await
        };
        tracing::Instrument::instrument(launched, span).await?;
        Ok(Response::new(LaunchResponse {}))
    }

    async fn stop(&self, request: Request<StopRequest>) -> Result<Response<StopResponse>, Status> {
        let StopRequest { proton_id, grace_period_seconds, fencing_token, meta_shard } = request.into_inner();
        tracing::info!(proton = %proton_id, grace_period_seconds, meta_shard, fencing_token, "stop");
        self.agent.stop(proton_id, grace_period_seconds, meta_shard, fencing_token).await?;
        Ok(Response::new(StopResponse {}))
    }

    type WatchProtonsStream = ReportStream;

    async fn watch_protons(&self, _request: Request<WatchProtonsRequest>) -> Result<Response<Self::WatchProtonsStream>, Status> {
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        tokio::spawn(forward_reports(self.agent.clone(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn usage(&self, request: Request<UsageRequest>) -> Result<Response<UsageResponse>, Status> {
        let protons = self.agent.usage(request.into_inner().queries).await?;
        Ok(Response::new(UsageResponse { protons }))
    }

    async fn logs(&self, request: Request<LogsRequest>) -> Result<Response<LogsResponse>, Status> {
        Ok(Response::new(self.agent.logs(request.into_inner()).await?))
    }

    async fn info(&self, _request: Request<InfoRequest>) -> Result<Response<InfoResponse>, Status> {
        let nodes = self.agent.capacity().await?;
        Ok(Response::new(InfoResponse {
            name: self.agent.name().to_owned(),
            driver: self.agent.driver_kind().to_owned(),
            cluster: self.agent.cluster().to_owned(),
            region: self.agent.region().to_owned(),
            nodes,
        }))
    }
}

/// Sends every known proton's report, then each change, until the client goes away or the server
/// shuts down. A watcher too slow for the broadcast channel gets the full current state again.
async fn forward_reports(agent: Agent, tx: mpsc::Sender<Result<ProtonReport, Status>>) {
    let mut closing = agent.closing();
    let (snapshot, mut changes) = agent.hub().subscribe();
    if !send_all(&tx, snapshot).await {
        return;
    }
    loop {
        let report = tokio::select! {
            _ = closing.wait_for(|closing| *closing) => return,
            () = tx.closed() => return,
            report = changes.recv() => report,
        };
        let delivered = match report {
            Ok(report) => tx.send(Ok(report)).await.is_ok(),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::debug!(missed, "slow WatchProtons client: resending the full state");
                send_all(&tx, agent.hub().snapshot()).await
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if !delivered {
            return;
        }
    }
}

async fn send_all(tx: &mpsc::Sender<Result<ProtonReport, Status>>, reports: Vec<ProtonReport>) -> bool {
    for report in reports {
        if tx.send(Ok(report)).await.is_err() {
            return false;
        }
    }
    true
}
