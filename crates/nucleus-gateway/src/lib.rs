//! The public REST gateway: the Workload API under `/api/v2`, token auth, and the invoke proxy
//! that forwards `/api/v2/endpoints/workloads/{id}/...` to a ready replica of the active proton.
//!
//! The gateway holds no state of its own: documents live in meta (through `nucleus-client`), and
//! the route table is a cache fed by a meta watch.

mod access;
mod artifacts;
mod auth;
mod deployments;
mod error;
mod groups;
mod ids;
mod invoke;
mod lifetime;
mod listing;
pub mod openapi;
mod protons;
mod replacements;
mod repositories;
mod request;
mod route_table;
mod router;
mod sharing;
mod stats;
mod users;
mod workloads;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;
use nucleus_client::MetaClient;

pub use error::ApiError;
pub use route_table::RouteTable;
pub use router::router;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The API token every request must carry.
    pub token: String,
    /// Externally visible base URL (`http://host:port`) for `endpoint` and pagination links;
    /// when unset, the request's `Host` header decides.
    pub public_url: Option<String>,
    /// How long a draft workload lives after it was created or last started (spec: 8 hours).
    pub draft_ttl: std::time::Duration,
}

/// The spec's lifetime of a draft workload.
pub const DEFAULT_DRAFT_TTL: std::time::Duration = std::time::Duration::from_secs(8 * 3600);

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub(crate) meta: MetaClient,
    pub(crate) config: Arc<GatewayConfig>,
    pub(crate) routes: RouteTable,
    pub(crate) upstream: invoke::Upstream,
    pub(crate) stats: stats::Recorder,
    pub(crate) tokens: auth::TokenCache,
}

impl AppState {
    /// Starts the route table's watch in the background.
    pub fn new(meta: MetaClient, config: GatewayConfig) -> AppState {
        let routes = RouteTable::start(meta.clone());
        let stats = stats::Recorder::start(meta.clone());
        AppState { meta, config: Arc::new(config), routes, upstream: invoke::Upstream::new(), stats, tokens: auth::TokenCache::default() }
    }
}

/// Serves the gateway on `listener` until `shutdown` resolves; in-flight requests finish first.
pub async fn serve(
    state: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    // Without TCP_NODELAY, small responses wait on delayed ACKs (~40 ms each).
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
