//! `nucleus-whoami`: the example workload. A tiny HTTP server in the spirit of traefik/whoami that
//! answers every request with its replica name and an echo of the request, plus health endpoints
//! and a few knobs to simulate misbehaving services (slow start, failing readiness, crashes, a
//! release that answers 500).
//!
//! It also speaks what real workloads speak, for the invoke proxy's tests: HTTP/2 without TLS
//! (h2c), a WebSocket echo (`/ws`), the gRPC health service (`grpc.health.v1.Health`), server-sent
//! events (`/events/{n}`), a streamed upload counter (`POST /bytes`) and slow answers
//! (`/sleep/{ms}`). For autoscaling tests it can burn a core (`--burn-cpu`) and exports a gauge in
//! Prometheus text (`/metrics`: `whoami_queue_depth`, set with `/queue-depth/{n}`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, Version};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use clap::Parser;
use futures::StreamExt;
use serde_json::json;

/// Command-line flags; each falls back to the environment the Nucleus process driver sets.
#[derive(Debug, Clone, Parser)]
#[command(name = "nucleus-whoami", about = "Echoes requests back with the replica's identity")]
pub struct Options {
    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on (the process driver sets HOST to where gateways reach the replica).
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
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
    /// Answer every echo request 500 (a broken release that still passes its probes).
    #[arg(long)]
    pub fail_requests: bool,
    /// Keep this percent of one core busy for as long as the process runs (spinning, then
    /// sleeping, in 100 ms periods).
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(1..=100))]
    pub burn_cpu: Option<u8>,
}

struct AppState {
    name: String,
    artifact_id: String,
    fail_readiness: bool,
    crash_after: Option<u64>,
    fail_requests: bool,
    served: AtomicU64,
    /// The gauge `/metrics` exports as `whoami_queue_depth`.
    queue_depth: AtomicU64,
}

/// Sleeps for `--slow-start`, binds `--host`:`--port` and serves until the process exits.
pub async fn run(options: Options) -> std::io::Result<()> {
    if options.slow_start > 0 {
        tokio::time::sleep(Duration::from_secs(options.slow_start)).await;
    }
    let name = options.name.clone().unwrap_or_else(host_name);
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(options.host, options.port)).await?;
    let local = listener.local_addr()?;
    println!("whoami listening on {local} as {name}");
    let state = Arc::new(AppState {
        name,
        artifact_id: options.artifact_id,
        fail_readiness: options.fail_readiness,
        crash_after: options.crash_after,
        fail_requests: options.fail_requests,
        served: AtomicU64::new(0),
        queue_depth: AtomicU64::new(0),
    });
    if let Some(percent) = options.burn_cpu {
        std::thread::spawn(move || {
            let busy = Duration::from_millis(u64::from(percent));
            let mut spins = 0u64;
            loop {
                let started = std::time::Instant::now();
                while started.elapsed() < busy {
                    spins = std::hint::black_box(spins.wrapping_add(1));
                }
                std::thread::sleep(Duration::from_millis(100 - u64::from(percent)));
            }
        });
    }
    axum::serve(listener, router(state)).await
}

fn router(state: Arc<AppState>) -> Router {
    let (health, health_service) = tonic_health::server::health_reporter();
    // The whole server is serving: `Check` with service "" answers SERVING.
    drop(health);
    Router::new()
        .route_service("/grpc.health.v1.Health/Check", health_service.clone())
        .route_service("/grpc.health.v1.Health/Watch", health_service)
        .route("/healthz", get(healthz))
        .route("/ready", get(ready))
        .route("/status/{code}", get(status))
        .route("/sleep/{ms}", get(sleep))
        .route("/events/{n}", get(events))
        .route("/bytes", post(count_bytes))
        .route("/ws", get(websocket))
        .route("/env", get(environment))
        .route("/metrics", get(metrics))
        .route("/queue-depth/{n}", get(set_queue_depth))
        .fallback(echo)
        .with_state(state)
}

/// Prometheus text: the queue-depth gauge and the echo counter.
async fn metrics(State(state): State<Arc<AppState>>) -> String {
    format!(
        "# HELP whoami_queue_depth A gauge set with /queue-depth/{{n}}.\n# TYPE whoami_queue_depth gauge\nwhoami_queue_depth {}\n\
         # TYPE whoami_served_total counter\nwhoami_served_total {}\n",
        state.queue_depth.load(Ordering::Relaxed),
        state.served.load(Ordering::Relaxed)
    )
}

async fn set_queue_depth(State(state): State<Arc<AppState>>, Path(n): Path<u64>) -> String {
    state.queue_depth.store(n, Ordering::Relaxed);
    format!("whoami_queue_depth {n}\n")
}

/// The process's environment and working directory: what a workload can see of its host.
async fn environment() -> axum::Json<serde_json::Value> {
    let env: BTreeMap<String, String> =
        std::env::vars_os().map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned())).collect();
    let cwd = std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default();
    axum::Json(json!({ "env": env, "cwd": cwd }))
}

/// Answers after `ms` milliseconds (a slow model, or one that hangs).
async fn sleep(Path(ms): Path<u64>) -> String {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("slept {ms} ms")
}

/// `n` server-sent events, one every 100 ms: a caller sees each as it comes, not all at the end.
async fn events(Path(n): Path<u32>) -> Sse<impl futures::Stream<Item = Result<Event, std::convert::Infallible>>> {
    let stream = futures::stream::unfold(0u32, move |i| async move {
        if i >= n {
            return None;
        }
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some((Ok(Event::default().data(format!("event {i}"))), i + 1))
    });
    Sse::new(stream)
}

/// Reads the body as it streams in and answers how many bytes and frames it had (without holding
/// it: a 200 MiB upload costs no memory here).
async fn count_bytes(body: Body) -> Response {
    let mut stream = body.into_data_stream();
    let (mut bytes, mut chunks) = (0u64, 0u64);
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                bytes += chunk.len() as u64;
                chunks += 1;
            }
            Err(err) => return (StatusCode::BAD_REQUEST, format!("body ended early: {err}")).into_response(),
        }
    }
    axum::Json(json!({ "bytes": bytes, "chunks": chunks })).into_response()
}

/// Echoes every text and binary message back, prefixed with nothing.
async fn websocket(upgrade: WebSocketUpgrade, State(state): State<Arc<AppState>>) -> Response {
    let name = state.name.clone();
    upgrade.on_upgrade(move |socket| echo_socket(socket, name))
}

async fn echo_socket(mut socket: WebSocket, name: String) {
    if socket.send(Message::Text(format!("hello from {name}").into())).await.is_err() {
        return;
    }
    while let Some(Ok(message)) = socket.recv().await {
        let reply = match message {
            Message::Text(text) => Message::Text(text),
            Message::Binary(data) => Message::Binary(data),
            Message::Close(_) => return,
            _ => continue,
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    }
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

async fn echo(State(state): State<Arc<AppState>>, method: Method, version: Version, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let headers: BTreeMap<&str, String> =
        headers.iter().map(|(name, value)| (name.as_str(), String::from_utf8_lossy(value.as_bytes()).into_owned())).collect();
    let answer = json!({
        "replica": state.name,
        "pid": std::process::id(),
        "version": format!("{version:?}"),
        "artifactId": state.artifact_id,
        "method": method.as_str(),
        "path": uri.path(),
        "query": uri.query().unwrap_or_default(),
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    if state.fail_requests {
        println!("{method} {uri} -> 500");
        return (StatusCode::INTERNAL_SERVER_ERROR, "failing as asked (--fail-requests)").into_response();
    }
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
