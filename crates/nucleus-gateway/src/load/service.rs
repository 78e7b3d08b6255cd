//! The gateway's internal gRPC service: schedulers stream its load reports.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use nucleus_proto::gateway::v1::gateway_server::{Gateway, GatewayServer};
use nucleus_proto::gateway::v1::{LoadReport, WatchLoadRequest};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::LoadReporter;

type LoadStream = Pin<Box<dyn Stream<Item = Result<LoadReport, Status>> + Send>>;

struct Service {
    reporter: LoadReporter,
    /// Becomes true at shutdown: open streams end, so that the server can drain.
    closing: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl Gateway for Service {
    type WatchLoadStream = LoadStream;

    async fn watch_load(&self, _request: Request<WatchLoadRequest>) -> Result<Response<LoadStream>, Status> {
        let mut reports = self.reporter.subscribe();
        let mut closing = self.closing.clone();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    received = reports.recv() => received,
                    _ = closing.wait_for(|closing| *closing) => return,
                };
                let report: Arc<LoadReport> = match received {
                    Ok(report) => report,
                    // A slow scheduler misses some seconds; the next report is whole.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if tx.send(Ok((*report).clone())).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Serves the internal service on `listener` until `shutdown` resolves. With `tls`, only callers
/// with a scheduler's certificate of the cluster's CA get through.
pub async fn serve_internal(
    reporter: LoadReporter,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<nucleus_tls::LiveTls>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    tracing::info!(address = ?listener.local_addr().ok(), gateway = reporter.name(), "gateway internal gRPC service listening");
    let (close, closing) = watch::channel(false);
    let shutdown = async move {
        shutdown.await;
        let _ = close.send(true);
    };
    let router = tonic::transport::Server::builder()
        .layer(nucleus_tls::RoleGuardLayer::new(nucleus_tls::policy::gateway_server, tls.is_some()))
        .add_service(GatewayServer::new(Service { reporter, closing }));
    match tls {
        Some(tls) => router.serve_with_incoming_shutdown(tls.incoming(listener), shutdown).await,
        None => {
            let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            router.serve_with_incoming_shutdown(incoming, shutdown).await
        }
    }
}
