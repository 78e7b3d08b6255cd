use std::sync::Arc;
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::{Error, LiveTls, Role};

/// How often an open connection is pinged, and how long an answer may take before it is dropped.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// How a process dials the cluster's gRPC servers: with its certificate, checking that the server
/// has the role expected of it, or (only where the operator said `--insecure`) in plaintext.
#[derive(Clone, Default)]
pub struct Dialer {
    tls: Option<Arc<LiveTls>>,
    /// Channels over another network than the host's (the simulation's).
    network: Option<Arc<dyn Network>>,
}

/// A network of the embedder's: makes a channel for an endpoint (the deterministic simulation
/// dials its simulated hosts through one).
pub trait Network: Send + Sync + 'static {
    fn channel(&self, endpoint: Endpoint) -> Channel;
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer").field("tls", &self.tls.is_some()).field("network", &self.network.is_some()).finish()
    }
}

impl Dialer {
    /// Plaintext: tests of one process, and clusters started with `--insecure`.
    pub fn plaintext() -> Dialer {
        Dialer { tls: None, network: None }
    }

    pub fn tls(tls: Arc<LiveTls>) -> Dialer {
        Dialer { tls: Some(tls), network: None }
    }

    /// Plaintext over `network` instead of the host's sockets: the simulation's hosts only.
    pub fn over(network: Arc<dyn Network>) -> Dialer {
        Dialer { tls: None, network: Some(network) }
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// An endpoint for `addr` (`host:port`, with or without a scheme), to configure (timeouts)
    /// and then open with [`Dialer::connect_lazy`]. HTTP/2 pings find a connection whose peer
    /// vanished (a host lost, a partition that ate the stream) within seconds, so that the next
    /// call dials again instead of waiting on it until TCP gives up, many minutes later.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, Error> {
        let host_port = addr.split_once("://").map_or(addr, |(_, rest)| rest);
        // With TLS the scheme stays http: the TLS is done by our connector, not tonic's.
        let endpoint =
            Endpoint::from_shared(format!("http://{host_port}")).map_err(|source| Error::Address { addr: addr.to_owned(), source })?;
        Ok(endpoint.http2_keep_alive_interval(KEEPALIVE_INTERVAL).keep_alive_timeout(KEEPALIVE_TIMEOUT).keep_alive_while_idle(true))
    }

    /// A channel that connects on first use to a server that must prove `server`'s role.
    pub fn connect_lazy(&self, endpoint: Endpoint, server: Role) -> Channel {
        match (&self.tls, &self.network) {
            (_, Some(network)) => network.channel(endpoint),
            (Some(tls), None) => tls.connect_lazy(endpoint, server),
            (None, None) => endpoint.connect_lazy(),
        }
    }
}
