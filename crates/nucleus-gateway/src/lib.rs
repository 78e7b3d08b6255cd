//! The public REST gateway: the Workload API under `/api/v2`, token auth, and the invoke proxy
//! that forwards `/api/v2/endpoints/workloads/{id}/...` to a ready replica of the active proton.
//! [`serve`] runs both on worker threads of their own, HTTP/1.1 and HTTP/2 (h2c), with the limits
//! a public endpoint needs ([`Limits`]).
//!
//! The gateway holds no state of its own: documents live in meta (through `nucleus-client`), and
//! the route table is a cache fed by a meta watch.

mod access;
mod artifacts;
mod auth;
mod autoscaling_settings;
mod deployments;
pub(crate) mod error;
mod exec_rules;
mod groups;
mod http1;
mod ids;
mod invoke;
mod lifetime;
mod listing;
pub mod load;
pub mod metrics;
pub mod openapi;
pub mod otel;
mod protons;
mod replacements;
mod repositories;
mod request;
mod route_table;
mod router;
mod server;
mod sharing;
mod stats;
mod tokens;
mod users;
mod workloads;

use std::sync::Arc;
use std::time::Duration;

use nucleus_client::MetaClient;

/// The REST API's router type (what [`router`] returns), for in-process callers such as tests.
pub use axum::Router;
pub use error::ApiError;
pub use route_table::RouteTable;
pub use router::router;
pub use server::serve;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The API token every request must carry.
    pub token: String,
    /// Externally visible base URL (`https://api.example.com`) for `endpoint`, pagination and
    /// `trackVia` links; the `Host` header is never trusted for them.
    pub public_url: String,
    /// How long a draft workload lives after it was created or last started (spec: 8 hours).
    pub draft_ttl: Duration,
    pub limits: Limits,
    /// Threads serving connections (each with its own event loop, like nginx workers).
    pub workers: usize,
}

impl GatewayConfig {
    /// The scheme callers reach the gateway with, as the public URL says.
    pub fn scheme(&self) -> &'static str {
        if self.public_url.starts_with("https://") { "https" } else { "http" }
    }
}

/// What a public endpoint must bound.
#[derive(Debug, Clone)]
pub struct Limits {
    /// From the moment a connection waits for a request until that request's headers are in
    /// (slowloris). For HTTP/1.1 this also bounds how long a kept-alive connection may wait for its
    /// next request.
    pub header_read_timeout: Duration,
    /// A connection with no request in progress for this long is closed (HTTP/1.1 and HTTP/2).
    pub idle_timeout: Duration,
    /// Connections open at once; past it a new connection gets 503 and is closed.
    pub max_connections: usize,
    /// Requests in flight per workload at this gateway; past it, 503 with `Retry-After`.
    pub max_in_flight_per_workload: u32,
    /// How long a replica may take to send response headers (per workload:
    /// `runtime.invokeTimeoutSeconds`); past it, 504.
    pub upstream_timeout: Duration,
    /// Largest REST request body; past it, 413. Invoke bodies are streamed and not limited.
    pub max_body_bytes: usize,
    /// Requests the activator holds per workload at this gateway while it starts from zero
    /// replicas; past it, 503 with `Retry-After`.
    pub max_held_per_workload: u32,
    /// How long the activator holds a request for a replica to become ready; past it, 503.
    pub activator_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 10_000,
            max_in_flight_per_workload: 1_000,
            upstream_timeout: invoke::DEFAULT_UPSTREAM_TIMEOUT,
            max_body_bytes: 2 * 1024 * 1024,
            max_held_per_workload: 10_000,
            activator_timeout: Duration::from_secs(120),
        }
    }
}

/// The spec's lifetime of a draft workload.
pub const DEFAULT_DRAFT_TTL: Duration = Duration::from_secs(8 * 3600);

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub(crate) meta: MetaClient,
    pub(crate) config: Arc<GatewayConfig>,
    pub(crate) routes: RouteTable,
    pub(crate) stats: stats::Recorder,
    pub(crate) tokens: auth::TokenCache,
    pub(crate) load: load::LoadReporter,
    /// Links to the agents, for the logs their replicas printed.
    pub(crate) agents: otel::AgentLinks,
    /// The recent invoke spans, per workload (while traces are exported).
    pub(crate) recent_spans: otel::traces::RecentSpans,
}

impl AppState {
    /// Starts the route table's watch and the statistics flusher in the background.
    pub fn new(meta: MetaClient, config: GatewayConfig) -> AppState {
        let stats = stats::Recorder::start(meta.clone());
        let routes = RouteTable::start(meta.clone(), stats.clone());
        let load = load::LoadReporter::start(routes.clone());
        let agents = otel::AgentLinks::new(nucleus_tls::Dialer::plaintext());
        AppState {
            meta,
            config: Arc::new(config),
            routes,
            stats,
            tokens: auth::TokenCache::default(),
            load,
            agents,
            recent_spans: Default::default(),
        }
    }

    /// Reads replica logs from the agents with `dialer` (the gateway's certificate). Without it
    /// agents are dialled in plaintext, which agents serving TLS refuse.
    pub fn with_agent_dialer(mut self, dialer: nucleus_tls::Dialer) -> AppState {
        self.agents = otel::AgentLinks::new(dialer);
        self
    }

    /// The reporter of this gateway's load, for its internal service ([`load::serve_internal`]).
    pub fn load_reporter(&self) -> load::LoadReporter {
        self.load.clone()
    }

    pub fn meta(&self) -> &MetaClient {
        &self.meta
    }
}
