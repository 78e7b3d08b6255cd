use std::sync::Arc;

use tonic::transport::Endpoint;

use crate::{Error, Role, TlsIdentity};

/// How a process dials the cluster's gRPC servers: with its certificate, checking that the server
/// has the role expected of it, or (only where the operator said `--insecure`) in plaintext.
#[derive(Debug, Clone, Default)]
pub struct Dialer {
    tls: Option<Arc<TlsIdentity>>,
}

impl Dialer {
    /// Plaintext: tests of one process, and clusters started with `--insecure`.
    pub fn plaintext() -> Dialer {
        Dialer { tls: None }
    }

    pub fn tls(identity: Arc<TlsIdentity>) -> Dialer {
        Dialer { tls: Some(identity) }
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// An endpoint for `addr` (`host:port`, with or without a scheme) whose server must be `server`.
    pub fn endpoint(&self, addr: &str, server: Role) -> Result<Endpoint, Error> {
        let host_port = addr.split_once("://").map_or(addr, |(_, rest)| rest);
        let address = |source| Error::Address { addr: addr.to_owned(), source };
        match &self.tls {
            None => Endpoint::from_shared(format!("http://{host_port}")).map_err(address),
            Some(identity) => Endpoint::from_shared(format!("https://{host_port}"))
                .map_err(address)?
                .tls_config(identity.client_config(server))
                .map_err(Error::Config),
        }
    }
}
