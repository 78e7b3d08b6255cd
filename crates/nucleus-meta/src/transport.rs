//! How a node reaches the network: where its gRPC server's connections come from and how it dials
//! other nodes. Production uses [`TlsTransport`] (real TCP, mutual TLS; [`TokioTransport`] in
//! plaintext where allowed); the deterministic simulation in
//! `nucleus-sim` passes one over turmoil's simulated network, so the same node code runs in both.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use nucleus_tls::{Dialer, LiveTls, Role};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
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

    /// An endpoint for another meta node at `addr` (`host:port`, with or without a scheme).
    fn endpoint(&self, addr: &str) -> Result<Endpoint, nucleus_tls::Error> {
        Dialer::plaintext().endpoint(addr)
    }

    /// A channel to `endpoint` that connects on first use (and reconnects after failures).
    fn channel(&self, endpoint: Endpoint) -> Channel;

    /// Whether callers are authenticated (mutual TLS): the server then checks each RPC's caller role.
    fn authenticates(&self) -> bool {
        false
    }
}

/// Real TCP through tokio, in plaintext, with `TCP_NODELAY` on both sides: tests of one process,
/// and nodes started `--insecure`.
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

/// Real TCP with mutual TLS on both sides, with the node's certificate as loaded last (so a
/// reload takes effect for new connections).
#[derive(Debug, Clone)]
pub struct TlsTransport {
    tls: Arc<LiveTls>,
}

impl TlsTransport {
    pub fn new(tls: Arc<LiveTls>) -> TlsTransport {
        TlsTransport { tls }
    }
}

impl Transport for TlsTransport {
    type Io = TlsStream<TcpStream>;
    type Incoming = Pin<Box<dyn Stream<Item = io::Result<TlsStream<TcpStream>>> + Send>>;

    async fn bind(&self, addr: SocketAddr) -> io::Result<(Self::Incoming, SocketAddr)> {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        Ok((Box::pin(self.tls.incoming(listener)), bound))
    }

    fn channel(&self, endpoint: Endpoint) -> Channel {
        self.tls.connect_lazy(endpoint, Role::Meta)
    }

    fn authenticates(&self) -> bool {
        true
    }
}
