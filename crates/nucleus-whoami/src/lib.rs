//! `nucleus-whoami`: the example workload. A tiny HTTP server in the spirit of traefik/whoami that
//! answers every request with its replica name and an echo of the request, plus health endpoints
//! and a few knobs to simulate misbehaving services (slow start, failing readiness, crashes).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Parser;
use serde_json::json;

/// Command-line flags; each falls back to the environment the Nucleus process driver sets.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "nucleus-whoami",
    about = "Echoes requests back with the replica's identity"
)]
pub struct Options {
    /// Port to listen on (127.0.0.1).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Name reported in every answer; defaults to NUCLEUS_REPLICA, then the host name.
    #[arg(long, env = "NUCLEUS_REPLICA")]
    pub name: Option<String>,
    /// Artifact id reported in every answer.
    #[arg(long, env = "NUCLEUS_ARTIFACT_ID", default_value = "")]
    pub artifact_id: String,
    /// Seconds to sleep before listening.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub slow_start: u64,
    /// Make GET /ready always answer 503.
    #[arg(long)]
    pub fail_readiness: bool,
    /// Exit with status 1 after answering N echo requests (health endpoints do not count, so
    /// probes do not trigger the crash).
    #[arg(long, value_name = "N")]
    pub crash_after: Option<u64>,
}

struct AppState {
    name: String,
    artifact_id: String,
    fail_readiness: bool,
    crash_after: Option<u64>,
    served: AtomicU64,
}

/// Sleeps for `--slow-start`, binds 127.0.0.1:`--port` and serves until the process exits.
pub async fn run(options: Options) -> std::io::Result<()> {
    if options.slow_start > 0 {
        tokio::time::sleep(Duration::from_secs(options.slow_start)).await;
    }
    let name = options.name.clone().unwrap_or_else(host_name);
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], options.port))).await?;
    let local = listener.local_addr()?;
    println!("whoami listening on {local} as {name}");
    let state = Arc::new(AppState {
        name,
        artifact_id: options.artifact_id,
        fail_readiness: options.fail_readiness,
        crash_after: options.crash_after,
        served: AtomicU64::new(0),
    });
    axum::serve(listener, router(state)).await
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/ready", get(ready))
        .route("/status/{code}", get(status))
        .fallback(echo)
        .with_state(state)
}

async fn healthz(uri: Uri) -> &'static str {
    println!("GET {uri} -> 200");
    "ok"
}

async fn ready(State(state): State<Arc<AppState>>, uri: Uri) -> Response {
    if state.fail_readiness {
        println!("GET {uri} -> 503");
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    } else {
        println!("GET {uri} -> 200");
        "ok".into_response()
    }
}

/// Answers with the status code in the path (`/status/404`), to exercise callers' error handling.
async fn status(axum::extract::Path(code): axum::extract::Path<u16>, uri: Uri) -> Response {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    println!("GET {uri} -> {}", code.as_u16());
    (code, format!("status {}", code.as_u16())).into_response()
}

async fn echo(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let headers: BTreeMap<&str, String> = headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let answer = json!({
        "replica": state.name,
        "artifactId": state.artifact_id,
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query().unwrap_or_default(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    println!("{method} {uri} -> 200");

    let served = state.served.fetch_add(1, Ordering::SeqCst) + 1;
    if state.crash_after.is_some_and(|limit| served >= limit) {
        println!("served {served} requests, crashing as asked (--crash-after)");
        // Give hyper a moment to write this answer before the process goes away.
        tokio::spawn(async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            std::process::exit(1);
        });
    }
    axum::Json(answer).into_response()
}

fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "whoami".to_owned())
}
