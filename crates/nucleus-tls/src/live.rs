//! TLS settings a process can read again while it runs (on `SIGHUP`): servers accept new
//! connections, and clients open new ones, with what is on disk now; established connections keep
//! theirs. So certificates (and the CA) rotate without a restart.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::Stream;
use hyper_util::rt::TokioIo;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tonic::transport::{Channel, Endpoint};

use crate::{Error, Role, TlsIdentity, TlsPaths};

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const ALPN_H2: &[u8] = b"h2";

/// A process's certificate, key and CA, as loaded last, with the rustls settings made of them.
pub struct LiveTls {
    paths: TlsPaths,
    role: Option<Role>,
    loaded: RwLock<Loaded>,
}

struct Loaded {
    identity: Arc<TlsIdentity>,
    server: Arc<ServerConfig>,
    clients: HashMap<Role, Arc<ClientConfig>>,
}

impl std::fmt::Debug for LiveTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveTls").field("paths", &self.paths).field("role", &self.role).finish_non_exhaustive()
    }
}

impl LiveTls {
    /// Loads the files; the certificate must name `role` (any role when None).
    pub fn load(paths: TlsPaths, role: Option<Role>) -> Result<Arc<LiveTls>, Error> {
        let loaded = Loaded::read(&paths, role)?;
        Ok(Arc::new(LiveTls { paths, role, loaded: RwLock::new(loaded) }))
    }

    /// Reads the files again. On failure the settings in use stay, and the error says why.
    pub fn reload(&self) -> Result<(), Error> {
        let loaded = Loaded::read(&self.paths, self.role)?;
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = loaded;
        tracing::info!(cert = %self.paths.cert.display(), "reloaded the TLS certificate, key and CA");
        Ok(())
    }

    pub fn identity(&self) -> Arc<TlsIdentity> {
        self.loaded.read().unwrap_or_else(|p| p.into_inner()).identity.clone()
    }

    pub fn paths(&self) -> &TlsPaths {
        &self.paths
    }

    fn server_config(&self) -> Arc<ServerConfig> {
        self.loaded.read().unwrap_or_else(|p| p.into_inner()).server.clone()
    }

    fn client_config(&self, server: Role) -> Arc<ClientConfig> {
        self.loaded.read().unwrap_or_else(|p| p.into_inner()).clients[&server].clone()
    }

    /// The TLS connections accepted on `listener`, each handshaken with the settings current when
    /// it arrived; clients that fail the handshake (no certificate, another CA) never show up.
    /// The listener closes when the stream is dropped.
    pub fn incoming(self: &Arc<Self>, listener: TcpListener) -> impl Stream<Item = io::Result<TlsStream<TcpStream>>> + Send + 'static {
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let tls = self.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    () = tx.closed() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(err) => {
                            tracing::warn!(error = %err, "accepting a connection failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = TlsAcceptor::from(tls.server_config());
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send(stream).await;
                        }
                        Ok(Err(err)) => tracing::debug!(%peer, error = %err, "refused a TLS handshake"),
                        Err(_) => tracing::debug!(%peer, "a TLS handshake timed out"),
                    }
                });
            }
        });
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|stream| (Ok(stream), rx)) })
    }

    /// A channel over `endpoint` (an `http://` one: the TLS is ours) whose connections are made
    /// with the settings current when each is made, to a server that must prove `server`'s role.
    pub fn connect_lazy(self: &Arc<Self>, endpoint: Endpoint, server: Role) -> Channel {
        let tls = self.clone();
        let connector = tower::service_fn(move |uri: http::Uri| {
            let tls = tls.clone();
            async move {
                let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
                let port = uri.port_u16().unwrap_or(80);
                let tcp = TcpStream::connect((host.as_str(), port)).await?;
                tcp.set_nodelay(true)?;
                let name = ServerName::try_from(server.dns_name()).map_err(io::Error::other)?.to_owned();
                let stream = TlsConnector::from(tls.client_config(server)).connect(name, tcp).await?;
                Ok::<_, io::Error>(TokioIo::new(stream))
            }
        });
        endpoint.connect_with_connector_lazy(connector)
    }
}

impl Loaded {
    fn read(paths: &TlsPaths, role: Option<Role>) -> Result<Loaded, Error> {
        let identity = TlsIdentity::load(paths)?;
        if let Some(role) = role {
            identity.require(role, paths)?;
        }
        let settings = |e: &dyn std::fmt::Display| Error::Settings(e.to_string());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certs = || CertificateDer::pem_slice_iter(identity.cert_pem().as_bytes()).collect::<Result<Vec<_>, _>>();
        let key = || PrivateKeyDer::from_pem_slice(identity.key_pem().as_bytes());
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(identity.ca_pem().as_bytes()) {
            roots.add(ca.map_err(|e| settings(&e))?).map_err(|e| settings(&e))?;
        }
        let roots = Arc::new(roots);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone()).build().map_err(|e| settings(&e))?;
        let mut server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| settings(&e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs().map_err(|e| settings(&e))?, key().map_err(|e| settings(&e))?)
            .map_err(|e| settings(&e))?;
        server.alpn_protocols = vec![ALPN_H2.to_vec()];
        let mut clients = HashMap::new();
        for role in Role::ALL {
            let mut client = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| settings(&e))?
                .with_root_certificates(roots.clone())
                .with_client_auth_cert(certs().map_err(|e| settings(&e))?, key().map_err(|e| settings(&e))?)
                .map_err(|e| settings(&e))?;
            client.alpn_protocols = vec![ALPN_H2.to_vec()];
            clients.insert(role, Arc::new(client));
        }
        Ok(Loaded { identity: Arc::new(identity), server: Arc::new(server), clients })
    }
}
