//! The invoke proxy: `/api/v2/endpoints/workloads/{id}/{path}` (and the legacy
//! `/api/v2/endpoints/deployments/{id}/{path}`) → a ready replica of the workload's active proton,
//! method, path, query, headers and body streamed both ways; WebSocket upgrades become a tunnel,
//! and gRPC (HTTP/2) goes to the replica over HTTP/2.
//!
//! A request fails only when no ready replica exists or none answers: one whose connection is
//! refused or reset before any byte was sent is retried on another replica (at most twice, within
//! the workload's retry budget), and so is an idempotent request without a body whose connection
//! closed before an answer. The failing replica is ejected from the pick for a while.

pub mod backends;
mod body;
pub mod budget;
mod forwarding;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::response::IntoResponse;
use http::uri::{PathAndQuery, Scheme};
use http::{header, HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::Either;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use nucleus_api::{DesiredState, ProtonStatus};
use tokio::time::Instant;

use self::backends::Backend;
use self::body::{Hold, Proxied};
use self::forwarding::Hop;
use self::upstream::{Failure, Outbound, Protocol};
use crate::access::{allow, role_of, Need};
use crate::auth::{caller_of, Caller};
use crate::route_table::{Admitted, Route};
use crate::{ApiError, AppState};

pub const PREFIX: &str = "/api/v2/endpoints/workloads/";
const DEPLOYMENTS: &str = crate::deployments::PREFIX;
const ENDPOINTS: &str = "/api/v2/endpoints/";
/// A request is tried on at most this many replicas.
const MAX_TRIES: usize = 3;

/// What the gateway answers with: a REST answer or an error, or a replica's answer streaming through.
pub type GatewayBody = Either<axum::body::Body, Proxied>;

/// Whether a path is an invoke URL (served here, not by the REST router).
pub fn is_invoke(path: &str) -> bool {
    path.starts_with(ENDPOINTS)
}

pub async fn handle(state: &AppState, peer: SocketAddr, request: Request<Incoming>) -> Response<GatewayBody> {
    match invoke(state, peer, request).await {
        Ok(response) => response,
        Err(err) => err.into_response().map(Either::Left),
    }
}

async fn invoke(state: &AppState, peer: SocketAddr, request: Request<Incoming>) -> Result<Response<GatewayBody>, ApiError> {
    let caller = caller_of(state, request.headers()).await?;
    let target = Target::of(state, &caller, request.uri()).await?;
    let id = target.workload_id.as_str();
    let route = state.routes.serving(id).await?.ok_or_else(|| ApiError::workload_not_found(id))?;
    allow(role_of(&caller, route.creator.as_ref(), &route.shared), Need::Invoke, || ApiError::workload_not_found(id))?;
    if route.desired == DesiredState::Stopped || route.backends.is_empty() {
        return Err(no_ready_replica(id, &route));
    }
    let limit = state.config.limits.max_in_flight_per_workload;
    let Some(admitted) = route.load.admit(limit) else {
        return Err(ApiError::Unavailable(format!(
            "Workload {id} has {limit} requests in flight at this gateway, its limit (--max-in-flight-per-workload); retry shortly, or add replicas"
        )));
    };
    route.load.budget.deposit();
    let call = route.stats.as_ref().map(|s| s.begin());
    let answer = proxy(state, &route, &target, peer, request, admitted).await;
    if let Some(call) = call {
        call.finish(answer.as_ref().map_or_else(|e| e.status().as_u16(), |r| r.status().as_u16()));
    }
    answer
}

/// Where an invoke URL points.
struct Target {
    workload_id: String,
    /// The invoke URL's prefix, for `X-Forwarded-Prefix`.
    prefix: String,
    /// The path and query to ask the replica for.
    path_and_query: PathAndQuery,
}

impl Target {
    async fn of(state: &AppState, caller: &Caller, uri: &Uri) -> Result<Target, ApiError> {
        let path = uri.path();
        let (base, rest) = if let Some(rest) = strip(path, PREFIX) {
            (PREFIX, rest)
        } else if let Some(rest) = strip(path, DEPLOYMENTS) {
            (DEPLOYMENTS, rest)
        } else {
            return Err(ApiError::NotFound("Invoke URLs look like /api/v2/endpoints/workloads/{id}/...".to_owned()));
        };
        let (id, app) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        if id.is_empty() {
            return Err(ApiError::NotFound("Invoke URLs look like /api/v2/endpoints/workloads/{id}/...".to_owned()));
        }
        let workload_id = if base == DEPLOYMENTS {
            crate::deployments::load(state, caller, id, Need::Invoke).await?.value.workload_id
        } else {
            id.to_owned()
        };
        let with_query = match uri.query() {
            Some(q) => format!("{app}?{q}"),
            None => app.to_owned(),
        };
        let path_and_query =
            PathAndQuery::try_from(with_query).map_err(|e| ApiError::BadRequest(format!("cannot forward this path: {e}")))?;
        Ok(Target { prefix: format!("{base}{id}"), workload_id, path_and_query })
    }
}

/// `/api/v2/endpoints/workloads/{rest}` → `{rest}` (also without the trailing slash).
fn strip<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix).or_else(|| path.strip_prefix(prefix.trim_end_matches('/')).filter(|r| r.is_empty()))
}

async fn proxy(
    state: &AppState,
    route: &Arc<Route>,
    target: &Target,
    peer: SocketAddr,
    mut request: Request<Incoming>,
    admitted: Admitted,
) -> Result<Response<GatewayBody>, ApiError> {
    let id = target.workload_id.as_str();
    let caller_version = request.version();
    let upgrading = caller_version == Version::HTTP_11 && forwarding::is_upgrade(request.headers());
    let grpc = caller_version == Version::HTTP_2 && is_grpc(request.headers());
    let (protocol, hop) = match (upgrading, grpc) {
        (true, _) => (Protocol::Upgrade, Hop::Upgrade),
        (_, true) => (Protocol::Http2, Hop::Grpc),
        _ => (Protocol::Http1, Hop::Plain),
    };
    let caller_upgrade = upgrading.then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    let forwarded = forwarding::Caller { ip: peer.ip(), proto: state.config.scheme(), prefix: &target.prefix };
    forwarding::request_headers(&mut parts.headers, &forwarded, hop);
    parts.version = if protocol == Protocol::Http2 { Version::HTTP_2 } else { Version::HTTP_11 };
    parts.uri = Uri::from(target.path_and_query.clone());
    // Kept to send again if the connection closes after the request went out: only requests
    // that may be repeated and have no body to lose.
    let replay = (is_idempotent(&parts.method) && body.is_end_stream()).then(|| (parts.method.clone(), parts.headers.clone()));
    let mut request = Request::from_parts(parts, Outbound::Caller(body));
    let timeout = route.timeout.unwrap_or(state.config.limits.upstream_timeout);

    let mut tried: Vec<Arc<Backend>> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    while tried.len() < MAX_TRIES {
        let now = Instant::now();
        if !tried.is_empty() && !route.load.budget.withdraw(now) {
            failures.push("no retry left in the workload's retry budget".to_owned());
            break;
        }
        let Some(backend) = backends::pick(&route.backends, &tried, now) else { break };
        aim(&mut request, &backend, protocol);
        let outstanding = backend.start();
        let sent = tokio::time::timeout(timeout, upstream::send(&backend, request, protocol)).await;
        match sent {
            Ok(Ok((response, reuse))) => {
                backend.succeeded();
                let hold = Hold { outstanding, _in_flight: admitted, reuse };
                return Ok(answer(response, hold, caller_upgrade, caller_version));
            }
            Err(_elapsed) => {
                return Err(ApiError::GatewayTimeout(format!(
                    "Replica {} of workload {id} sent no answer within {} s (runtime.invokeTimeoutSeconds, or the gateway's \
                     --upstream-timeout); it may still be working on the request. Raise the timeout for slow calls.",
                    backend.name,
                    timeout.as_secs()
                )));
            }
            Ok(Err(Failure::NotSent(unsent, reason))) => {
                note_failure(&backend, id, &reason, &mut failures);
                request = *unsent;
            }
            Ok(Err(Failure::Lost(reason))) => {
                note_failure(&backend, id, &reason, &mut failures);
                let Some((method, headers)) = &replay else {
                    return Err(ApiError::BadGateway(format!(
                        "Replica {} of workload {id} closed the connection before answering ({reason}); the request \
                         may have been processed, so it was not sent again. Retry if it is safe to repeat.",
                        backend.name
                    )));
                };
                request = again(method, headers, &target.path_and_query);
            }
        }
        tried.push(backend);
    }
    Err(ApiError::Unavailable(format!(
        "No ready replica of workload {id} answered ({}); they may be restarting. Retry in a moment, or see GET \
         /api/v2/workloads/{id}/protons for their state.",
        failures.join("; ")
    )))
}

fn note_failure(backend: &Backend, workload_id: &str, reason: &str, failures: &mut Vec<String>) {
    let ejected_for = backend.eject(Instant::now());
    tracing::warn!(workload_id, replica = backend.name, reason, ?ejected_for, "replica failed; ejected, retrying elsewhere");
    failures.push(format!("replica {}: {reason}", backend.name));
}

/// Points the request at `backend`: origin-form and `Host` for HTTP/1.1, the full URI for HTTP/2.
fn aim(request: &mut Request<Outbound>, backend: &Backend, protocol: Protocol) {
    if protocol == Protocol::Http2 {
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(Scheme::HTTP);
        uri.authority = Some(backend.authority.clone());
        uri.path_and_query = request.uri().path_and_query().cloned();
        if let Ok(uri) = Uri::from_parts(uri) {
            *request.uri_mut() = uri;
        }
    } else {
        request.headers_mut().insert(header::HOST, backend.host.clone());
    }
}

/// The request again, for a retry after its first copy was lost with its connection.
fn again(method: &Method, headers: &HeaderMap, path_and_query: &PathAndQuery) -> Request<Outbound> {
    let mut request = Request::new(Outbound::Empty);
    *request.method_mut() = method.clone();
    *request.headers_mut() = headers.clone();
    *request.uri_mut() = Uri::from(path_and_query.clone());
    request
}

fn answer(
    mut response: Response<Incoming>,
    hold: Hold,
    caller_upgrade: Option<hyper::upgrade::OnUpgrade>,
    caller_version: Version,
) -> Response<GatewayBody> {
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if let (true, Some(caller)) = (switching, caller_upgrade) {
        let replica = hyper::upgrade::on(&mut response);
        tokio::spawn(tunnel(caller, replica, hold));
        let (mut parts, _) = response.into_parts();
        forwarding::response_headers(&mut parts.headers, true);
        return Response::from_parts(parts, Either::Left(axum::body::Body::empty()));
    }
    let (mut parts, body) = response.into_parts();
    forwarding::response_headers(&mut parts.headers, false);
    parts.version = caller_version;
    Response::from_parts(parts, Either::Right(Proxied::new(body, hold)))
}

/// Copies bytes both ways between the caller and the replica once both switched protocols; the
/// request counts as in flight until either side closes.
async fn tunnel(caller: hyper::upgrade::OnUpgrade, replica: hyper::upgrade::OnUpgrade, hold: Hold) {
    let (caller, replica) = match tokio::try_join!(caller, replica) {
        Ok(both) => both,
        Err(err) => {
            tracing::debug!(error = %err, "upgrade did not complete");
            return;
        }
    };
    let (mut caller, mut replica) = (TokioIo::new(caller), TokioIo::new(replica));
    match tokio::io::copy_bidirectional(&mut caller, &mut replica).await {
        Ok((up, down)) => tracing::debug!(up, down, "tunnel closed"),
        Err(err) => tracing::debug!(error = %err, "tunnel ended"),
    }
    drop(hold);
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/grpc"))
}

fn is_idempotent(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE)
}

fn no_ready_replica(workload_id: &str, route: &Route) -> ApiError {
    let status = route.status;
    let hint = match (route.desired, status) {
        (DesiredState::Stopped, _) | (_, ProtonStatus::Stopped | ProtonStatus::Stopping) => {
            format!("start it with POST /api/v2/workloads/{workload_id}/start")
        }
        (_, ProtonStatus::Errored | ProtonStatus::Terminated) => {
            format!("see GET /api/v2/workloads/{workload_id} for why, then start it again")
        }
        _ => "retry in a moment: its replicas are starting or restarting".to_owned(),
    };
    ApiError::Unavailable(format!("Workload {workload_id} is {status} and has no ready replica: {hint}"))
}

/// Upstream timeout in seconds for messages and docs.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use super::strip;

    #[test]
    fn invoke_paths() {
        assert_eq!(strip("/api/v2/endpoints/workloads/w1", super::PREFIX), Some("w1"));
        assert_eq!(strip("/api/v2/endpoints/workloads/w1/a/b/", super::PREFIX), Some("w1/a/b/"));
        assert_eq!(strip("/api/v2/endpoints/workloads", super::PREFIX), Some(""));
        assert_eq!(strip("/api/v2/endpoints/workloadsX", super::PREFIX), None);
        assert!(super::is_invoke("/api/v2/endpoints/deployments/d1/x"));
        assert!(!super::is_invoke("/api/v2/workloads"));
    }
}
