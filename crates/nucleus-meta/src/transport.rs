//! How a node reaches the network: where its gRPC server's connections come from and how it dials
//! other nodes. Production uses [`TokioTransport`] (real TCP); the deterministic simulation in
//! `nucleus-sim` passes one over turmoil's simulated network, so the same node code runs in both.

use std::future::Future;
use std::io;
use std::net::SocketAddr;

use futures::Stream;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::{Connected, TcpIncoming};
use tonic::transport::{Channel, Endpoint};

/// The network a [`MetaNode`](crate::MetaNode) listens on and dials through.
pub trait Transport: Clone + Send + Sync + 'static {
    /// One accepted connection.
    type Io: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static;
    /// The accepted connections of a bound listener.
    type Incoming: Stream<Item = io::Result<Self::Io>> + Send + 'static;

    /// Binds `addr` (port 0: any free port); returns the connections and the bound address.
    fn bind(&self, addr: SocketAddr) -> impl Future<Output = io::Result<(Self::Incoming, SocketAddr)>> + Send;

    /// A channel to `endpoint` that connects on first use (and reconnects after failures).
    fn channel(&self, endpoint: Endpoint) -> Channel;
}

/// Real TCP through tokio, with `TCP_NODELAY` on both sides.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTransport;

impl Transport for TokioTransport {
    type Io = TcpStream;
    type Incoming = TcpIncoming;

    async fn bind(&self, addr: SocketAddr) -> io::Result<(TcpIncoming, SocketAddr)> {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        Ok((TcpIncoming::from(listener).with_nodelay(Some(true)), bound))
    }

    fn channel(&self, endpoint: Endpoint) -> Channel {
        endpoint.tcp_nodelay(true).connect_lazy()
    }
}
