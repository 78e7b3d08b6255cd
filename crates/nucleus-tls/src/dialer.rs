use std::sync::Arc;

use tonic::transport::{Channel, Endpoint};

use crate::{Error, LiveTls, Role};

/// How a process dials the cluster's gRPC servers: with its certificate, checking that the server
/// has the role expected of it, or (only where the operator said `--insecure`) in plaintext.
#[derive(Debug, Clone, Default)]
pub struct Dialer {
    tls: Option<Arc<LiveTls>>,
}

impl Dialer {
    /// Plaintext: tests of one process, and clusters started with `--insecure`.
    pub fn plaintext() -> Dialer {
        Dialer { tls: None }
    }

    pub fn tls(tls: Arc<LiveTls>) -> Dialer {
        Dialer { tls: Some(tls) }
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// An endpoint for `addr` (`host:port`, with or without a scheme), to configure (timeouts)
    /// and then open with [`Dialer::connect_lazy`].
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, Error> {
        let host_port = addr.split_once("://").map_or(addr, |(_, rest)| rest);
        // With TLS the scheme stays http: the TLS is done by our connector, not tonic's.
        Endpoint::from_shared(format!("http://{host_port}")).map_err(|source| Error::Address { addr: addr.to_owned(), source })
    }

    /// A channel that connects on first use to a server that must prove `server`'s role.
    pub fn connect_lazy(&self, endpoint: Endpoint, server: Role) -> Channel {
        match &self.tls {
            Some(tls) => tls.connect_lazy(endpoint, server),
            None => endpoint.connect_lazy(),
        }
    }
}
