//! How a node reaches the network: where its gRPC server's connections come from and how it dials
//! other nodes. Production uses [`TokioTransport`] (real TCP); the deterministic simulation in
//! `nucleus-sim` passes one over turmoil's simulated network, so the same node code runs in both.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use futures::Stream;
use nucleus_tls::{Dialer, Role, TlsIdentity};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::{Connected, TcpIncoming};
use tonic::transport::{Channel, Endpoint, ServerTlsConfig};

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

    /// An endpoint for another meta node at `addr` (`host:port`, with or without a scheme).
    fn endpoint(&self, addr: &str) -> Result<Endpoint, nucleus_tls::Error> {
        Dialer::plaintext().endpoint(addr, Role::Meta)
    }

    /// The TLS the server speaks; None: plaintext.
    fn server_tls(&self) -> Option<ServerTlsConfig> {
        None
    }
}

/// Real TCP through tokio, with `TCP_NODELAY` on both sides; mutual TLS with the node's
/// certificate unless it was started without one (`--insecure`).
#[derive(Debug, Clone, Default)]
pub struct TokioTransport {
    tls: Option<Arc<TlsIdentity>>,
}

impl TokioTransport {
    pub fn new(tls: Option<Arc<TlsIdentity>>) -> TokioTransport {
        TokioTransport { tls }
    }
}

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

    fn endpoint(&self, addr: &str) -> Result<Endpoint, nucleus_tls::Error> {
        match &self.tls {
            Some(identity) => Dialer::tls(identity.clone()).endpoint(addr, Role::Meta),
            None => Dialer::plaintext().endpoint(addr, Role::Meta),
        }
    }

    fn server_tls(&self) -> Option<ServerTlsConfig> {
        self.tls.as_ref().map(|identity| identity.server_config())
    }
}
