//! [`Transport`] over turmoil's simulated network: the meta node's gRPC server accepts turmoil
//! connections, and its Raft and Join calls (and the simulated clients) dial turmoil hosts.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use hyper_util::rt::TokioIo;
use nucleus_meta::Transport;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint, Uri};

/// The simulated network of the current turmoil host.
#[derive(Debug, Clone, Copy, Default)]
pub struct TurmoilTransport;

/// An accepted simulated connection.
pub struct SimStream(turmoil::net::TcpStream);

impl Connected for SimStream {
    type ConnectInfo = Option<SocketAddr>;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.peer_addr().ok()
    }
}

impl AsyncRead for SimStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for SimStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

type Incoming = Pin<Box<dyn Stream<Item = io::Result<SimStream>> + Send>>;

impl Transport for TurmoilTransport {
    type Io = SimStream;
    type Incoming = Incoming;

    async fn bind(&self, addr: SocketAddr) -> io::Result<(Incoming, SocketAddr)> {
        let listener = turmoil::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let incoming = futures::stream::unfold(listener, |listener| async move {
            let accepted = listener.accept().await.map(|(stream, _)| SimStream(stream));
            Some((accepted, listener))
        });
        Ok((Box::pin(incoming), bound))
    }

    fn channel(&self, endpoint: Endpoint) -> Channel {
        endpoint.connect_with_connector_lazy(tower::service_fn(|uri: Uri| async move {
            let host = uri.host().ok_or_else(|| io::Error::other(format!("no host in {uri}")))?.to_owned();
            let port = uri.port_u16().ok_or_else(|| io::Error::other(format!("no port in {uri}")))?;
            let stream = turmoil::net::TcpStream::connect((host.as_str(), port)).await?;
            Ok::<_, io::Error>(TokioIo::new(stream))
        }))
    }
}
