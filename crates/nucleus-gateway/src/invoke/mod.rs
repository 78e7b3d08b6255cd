//! The invoke proxy: `/api/v2/endpoints/workloads/{id}/{path}` (and the legacy
//! `/api/v2/endpoints/deployments/{id}/{path}`) → a ready replica of the workload's active proton,
//! method, path, query, headers and body streamed both ways; WebSocket upgrades become a tunnel,
//! and gRPC (HTTP/2) goes to the replica over HTTP/2.
//!
//! A request fails only when no ready replica exists or none answers: one whose connection is
//! refused or reset before any byte was sent is retried on another replica (at most twice, within
//! the workload's retry budget), and so is an idempotent request without a body whose connection
//! closed before an answer. The failing replica is ejected from the pick for a while.

mod activator;
mod attempts;
pub mod backends;
mod body;
pub mod budget;
mod forwarding;
mod h1;
pub(crate) mod raw;
pub mod upstream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::response::IntoResponse;
use futures::future;
use http::uri::{PathAndQuery, Scheme};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body::Body as _;
use http_body_util::Either;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use nucleus_api::{DesiredState, ProtonStatus};
use tokio::time::Instant;

use self::attempts::Attempts;
use self::backends::Backend;
use self::body::{Hold, Proxied, Source};
use self::forwarding::{BodyHeader, Hop};
use self::h1::Sending;
use self::upstream::{Failure, Outbound};
use crate::access::{Need, allow, role_of};
use crate::auth::{Caller, caller_of, known_caller};
use crate::route_table::{Admitted, Route};
use crate::{ApiError, AppState};

pub const PREFIX: &str = "/api/v2/endpoints/workloads/";
const DEPLOYMENTS: &str = crate::deployments::PREFIX;
const ENDPOINTS: &str = "/api/v2/endpoints/";

/// What the gateway answers with: a REST answer or an error, or a replica's answer streaming through.
pub type GatewayBody = Either<axum::body::Body, Proxied>;

/// Whether a path is an invoke URL (served here, not by the REST router).
pub fn is_invoke(path: &str) -> bool {
    path.starts_with(ENDPOINTS)
}

/// Answers an invoke request. The common case (the administrator's or a cached token, the
/// workload in the route cache with a ready replica) is decided at once and goes straight to the
/// proxy; the rest asks meta first, in a boxed future, so that every request's future stays small
/// (futures are moved by value, and a big one costs a copy at every step).
pub fn handle(state: &AppState, peer: SocketAddr, request: Request<Incoming>) -> impl Future<Output = Response<GatewayBody>> + Send + '_ {
    match at_once(state, &request) {
        Ok(Some(admission)) => future::Either::Left(forward(state, admission, peer, request)),
        Ok(None) => future::Either::Right(future::Either::Left(Box::pin(async move {
            match look_up(state, request.headers(), request.uri()).await {
                Ok(admission) => forward(state, admission, peer, request).await,
                Err(err) => error_response(err),
            }
        }))),
        Err(err) => future::Either::Right(future::Either::Right(future::ready(error_response(err)))),
    }
}

fn error_response(err: ApiError) -> Response<GatewayBody> {
    err.into_response().map(Either::Left)
}

/// A request cleared to go to a replica.
pub(crate) struct Admission {
    route: Arc<Route>,
    target: Target,
    admitted: Admitted,
}

/// Decides from what the gateway holds: `None` when meta must be asked (a token or workload not
/// cached, a workload with no ready replica in the cache, a legacy deployment URL).
fn at_once(state: &AppState, request: &Request<Incoming>) -> Result<Option<Admission>, ApiError> {
    let caller = match known_caller(state, request.headers())? {
        Some(caller) => caller,
        None => return Ok(None),
    };
    let Some(target) = Target::of_workload(request.uri().path())? else { return Ok(None) };
    match state.routes.route(&target.workload_id).filter(|r| !r.backends.is_empty()) {
        Some(route) => admit(state, &caller, target, route).map(Some),
        None => Ok(None),
    }
}

/// The fast path's version of [`at_once`], from a request head's path and `Authorization` value:
/// `None` whenever the answer is not "go": the general path then decides (and explains).
pub(crate) fn admit_plain(state: &AppState, path: &str, authorization: Option<&str>) -> Option<Admission> {
    let caller = crate::auth::known_caller_of(state, authorization.and_then(crate::auth::token_of)).ok()??;
    let target = Target::of_workload(path).ok()??;
    let route = state.routes.route(&target.workload_id).filter(|r| !r.backends.is_empty())?;
    admit(state, &caller, target, route).ok()
}

/// Decides with meta's help: the caller's token, the deployment's workload, the route.
async fn look_up(state: &AppState, headers: &HeaderMap, uri: &Uri) -> Result<Admission, ApiError> {
    let caller = caller_of(state, headers).await?;
    let target = Target::of(state, &caller, uri).await?;
    let id = target.workload_id.as_str();
    let mut route = state.routes.serving(id).await?.ok_or_else(|| ApiError::workload_not_found(id))?;
    if route.wakes && route.backends.is_empty() && route.desired == DesiredState::Running {
        allow(role_of(&caller, route.creator.as_ref(), &route.shared), Need::Invoke, || ApiError::workload_not_found(id))?;
        route = activator::hold(state, id, route).await?;
    }
    admit(state, &caller, target, route)
}

/// Checks the caller's role, the workload's readiness and its in-flight limit.
fn admit(state: &AppState, caller: &Caller, target: Target, route: Arc<Route>) -> Result<Admission, ApiError> {
    let id = target.workload_id.as_str();
    allow(role_of(caller, route.creator.as_ref(), &route.shared), Need::Invoke, || ApiError::workload_not_found(id))?;
    if route.desired == DesiredState::Stopped || route.backends.is_empty() {
        return Err(no_ready_replica(id, &route));
    }
    let limit = state.config.limits.max_in_flight_per_workload;
    let Some(admitted) = route.load.admit(limit) else {
        return Err(ApiError::Unavailable(format!(
            "Workload {id} has {limit} requests in flight at this gateway, its limit (--max-in-flight-per-workload); retry shortly, or add replicas"
        )));
    };
    // A gated replacement's canary takes its share here, for both the fast and the general path;
    // retries stay in the lane chosen.
    Ok(Admission { route: route.lane(), target, admitted })
}

/// Where an invoke URL points.
struct Target {
    workload_id: String,
    /// The invoke URL's prefix, for `X-Forwarded-Prefix`, when it is not the workload's own (a
    /// deployment's URL).
    prefix: Option<HeaderValue>,
    /// Where the path to ask the replica for starts in the URL's path; `None`: the root.
    app_from: Option<usize>,
}

impl Target {
    /// A workload's invoke URL (its path); `None` for a legacy deployment URL (its workload is in
    /// meta).
    fn of_workload(path: &str) -> Result<Option<Target>, ApiError> {
        match strip(path, PREFIX) {
            Some(rest) => Target::new(PREFIX, rest, None, path).map(Some),
            None => Ok(None),
        }
    }

    async fn of(state: &AppState, caller: &Caller, uri: &Uri) -> Result<Target, ApiError> {
        if let Some(target) = Target::of_workload(uri.path())? {
            return Ok(target);
        }
        let Some(rest) = strip(uri.path(), DEPLOYMENTS) else {
            return Err(not_an_invoke_url());
        };
        let id = rest.split('/').next().unwrap_or_default();
        if id.is_empty() {
            return Err(not_an_invoke_url());
        }
        // Boxed: a rare path whose meta calls would otherwise size the lookup's future.
        let deployment = Box::pin(crate::deployments::load(state, caller, id, Need::Invoke)).await?;
        Target::new(DEPLOYMENTS, rest, Some(deployment.value.workload_id), uri.path())
    }

    /// `rest`: what follows `base` in the URL's path (`{id}/app/path`); `deployment_of`: the
    /// workload when the id is a deployment's.
    fn new(base: &str, rest: &str, deployment_of: Option<String>, path: &str) -> Result<Target, ApiError> {
        let (id, app_from) = match rest.find('/') {
            Some(at) => (&rest[..at], Some(path.len() - rest.len() + at)),
            None => (rest, None),
        };
        if id.is_empty() {
            return Err(not_an_invoke_url());
        }
        let (workload_id, prefix) = match deployment_of {
            Some(workload) => {
                let prefix = HeaderValue::try_from(format!("{base}{id}"))
                    .map_err(|_| ApiError::BadRequest("the invoke URL's id is not plain text".to_owned()))?;
                (workload, Some(prefix))
            }
            None => (id.to_owned(), None),
        };
        Ok(Target { prefix, workload_id, app_from })
    }

    /// The replica's path (always starting with `/`) in `path`, the invoke URL's.
    fn app_path<'p>(&self, path: &'p str) -> &'p str {
        self.app_from.map_or("/", |from| &path[from..])
    }
}

fn not_an_invoke_url() -> ApiError {
    ApiError::NotFound("Invoke URLs look like /api/v2/endpoints/workloads/{id}/...".to_owned())
}

/// `/api/v2/endpoints/workloads/{rest}` → `{rest}` (also without the trailing slash).
fn strip<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix).or_else(|| path.strip_prefix(prefix.trim_end_matches('/')).filter(|r| r.is_empty()))
}

/// Sends the request to a ready replica (another one if the first cannot take it) and streams
/// the answer back; counts the invocation in the proton's statistics.
async fn forward(state: &AppState, admission: Admission, peer: SocketAddr, request: Request<Incoming>) -> Response<GatewayBody> {
    if !nucleus_telemetry::trace::enabled() {
        return forward_untraced(state, admission, peer, request).await;
    }
    // A span per invoke, continuing the caller's trace; the replica gets it as its parent.
    let span = tracing::info_span!(
        "invoke",
        otel.kind = "server",
        workload = %admission.target.workload_id,
        http.request.method = %request.method(),
        http.response.status_code = tracing::field::Empty,
    );
    nucleus_telemetry::trace::continue_http(&span, request.headers());
    let caller_traceparent = request.headers().get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (workload, method, path) = (admission.target.workload_id.clone(), request.method().to_string(), request.uri().path().to_owned());
    let (started_at, started) = (nucleus_api::clock::now(), Instant::now());
    let response = tracing::Instrument::instrument(forward_untraced(state, admission, peer, request), span.clone()).await;
    let status = response.status().as_u16();
    span.record("http.response.status_code", status);
    if let Some(traceparent) = nucleus_telemetry::trace::traceparent_of(&span) {
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        state.recent_spans.record_invoke(&workload, &traceparent, caller_traceparent.as_deref(), &method, &path, status, started_at, nanos);
    }
    response
}

async fn forward_untraced(
    state: &AppState,
    admission: Admission,
    peer: SocketAddr,
    mut request: Request<Incoming>,
) -> Response<GatewayBody> {
    let Admission { route, target, admitted } = admission;
    let started = Instant::now();
    route.load.budget.deposit();
    let call = route.stats.as_ref().map(|s| s.begin(started));
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
    let (parts, body) = request.into_parts();
    let prefix = target.prefix.as_ref().unwrap_or(&route.prefix);
    let mut added = forwarding::Added::of(&parts.headers, &forwarding::Caller { ip: peer.ip(), proto: state.config.scheme(), prefix }, hop);
    added.set_traceparent(nucleus_telemetry::trace::current_traceparent());
    let (sending, body_header) = if body.is_end_stream() {
        (Sending::Nothing, BodyHeader::Caller)
    } else if parts.headers.contains_key(header::CONTENT_LENGTH) && !parts.headers.contains_key(header::TRANSFER_ENCODING) {
        (Sending::AsIs, BodyHeader::Caller)
    } else {
        (Sending::Chunked, BodyHeader::Chunked)
    };
    // Sent again if its connection closes after it went out: only a request that may be
    // repeated and has no body to lose.
    let replayable = is_idempotent(&parts.method) && body.is_end_stream();
    let mut body = Some(Outbound::Caller(body));
    let timeout = route.timeout.unwrap_or(state.config.limits.upstream_timeout);

    let mut attempts = Attempts::new(&route, id);
    let outcome = loop {
        let now = if attempts.is_first() { started } else { Instant::now() };
        let backend = match attempts.next(now) {
            Ok(backend) => backend,
            Err(err) => break Err(err),
        };
        let outstanding = backend.start();
        let outbound = body.take().unwrap_or(Outbound::Empty);
        let sent = match protocol {
            Protocol::Http1 => {
                let write_head = |buf: &mut Vec<u8>| {
                    let (path, query) = (target.app_path(parts.uri.path()), parts.uri.query());
                    forwarding::write_request_head(buf, &parts.method, path, query, &parts.headers, &added, &backend.host, body_header)
                };
                let sending = upstream::send_http1(&backend, &write_head, outbound, sending, parts.method == Method::HEAD);
                tokio::time::timeout_at(now + timeout, sending).await.map(|r| r.map(|answer| (answer.map(Source::Http1), None)))
            }
            Protocol::Http2 | Protocol::Upgrade => {
                let request = hyper_request(&parts, target.app_path(parts.uri.path()), &added, &backend, protocol, outbound);
                let sending = async {
                    let mut answer = match protocol {
                        Protocol::Http2 => upstream::send_http2(&backend, request).await?,
                        _ => upstream::send_upgrade(&backend, request).await?,
                    };
                    let switched = (answer.status() == StatusCode::SWITCHING_PROTOCOLS).then(|| hyper::upgrade::on(&mut answer));
                    Ok((answer.map(Source::Hyper), switched))
                };
                tokio::time::timeout_at(now + timeout, Box::pin(sending)).await
            }
        };
        match sent {
            Ok(Ok((answer, switched))) => {
                backend.succeeded();
                let hold = Hold { outstanding, _in_flight: admitted };
                break Ok(respond(answer, hold, caller_upgrade.zip(switched), caller_version));
            }
            Err(_elapsed) => break Err(attempts.timed_out(&backend, timeout)),
            Ok(Err(Failure::NotSent(unsent, reason))) => {
                body = Some(unsent);
                attempts.failed(backend, &reason);
            }
            Ok(Err(Failure::Lost(reason))) => {
                if !replayable {
                    let err = attempts.lost(&backend, &reason);
                    attempts.failed(backend, &reason);
                    break Err(err);
                }
                attempts.failed(backend, &reason);
            }
        }
    };
    let response = outcome.unwrap_or_else(error_response);
    if let Some(call) = call {
        call.finish(response.status().as_u16());
    }
    response
}

/// The request for hyper's client: HTTP/2 with the full URI, or an HTTP/1.1 upgrade with `Host`.
fn hyper_request(
    parts: &http::request::Parts,
    path: &str,
    added: &forwarding::Added,
    backend: &Backend,
    protocol: Protocol,
    body: Outbound,
) -> Request<Outbound> {
    // The caller's URI was valid, so its path and query are.
    let path_and_query = match parts.uri.query() {
        Some(query) => PathAndQuery::try_from(format!("{path}?{query}")),
        None => PathAndQuery::try_from(path),
    }
    .unwrap_or_else(|_| PathAndQuery::from_static("/"));
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    let mut headers = parts.headers.clone();
    forwarding::request_headers(&mut headers, added);
    if protocol == Protocol::Http2 {
        *request.version_mut() = Version::HTTP_2;
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(Scheme::HTTP);
        uri.authority = Some(backend.authority.clone());
        uri.path_and_query = Some(path_and_query);
        if let Ok(uri) = Uri::from_parts(uri) {
            *request.uri_mut() = uri;
        }
    } else {
        *request.uri_mut() = Uri::from(path_and_query);
        headers.insert(header::HOST, backend.host.clone());
    }
    *request.headers_mut() = headers;
    request
}

/// The replica's answer as the caller gets it; after a `101`, a tunnel between the two.
fn respond(
    answer: Response<Source>,
    hold: Hold,
    upgrades: Option<(hyper::upgrade::OnUpgrade, hyper::upgrade::OnUpgrade)>,
    caller_version: Version,
) -> Response<GatewayBody> {
    let (mut parts, source) = answer.into_parts();
    if let Some((caller, replica)) = upgrades {
        tokio::spawn(tunnel(caller, replica, hold));
        forwarding::response_headers(&mut parts.headers, parts.version, true);
        return Response::from_parts(parts, Either::Left(axum::body::Body::empty()));
    }
    if let Source::Hyper(_) = source {
        // The proxy's own client cleaned its answers' headers as it read them.
        forwarding::response_headers(&mut parts.headers, parts.version, false);
    }
    parts.version = caller_version;
    Response::from_parts(parts, Either::Right(Proxied::new(source, hold)))
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

pub(crate) fn no_ready_replica(workload_id: &str, route: &Route) -> ApiError {
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

/// How a request travels to the replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// HTTP/1.1, with the proxy's own client.
    Http1,
    /// An HTTP/1.1 upgrade (WebSocket): a fresh connection that becomes the tunnel.
    Upgrade,
    /// HTTP/2 with prior knowledge (gRPC).
    Http2,
}

/// Upstream timeout in seconds for messages and docs.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invoke_urls_name_a_workload_and_the_replica_path() {
        let target = |url: &str| {
            let uri: Uri = url.parse().unwrap();
            Target::of_workload(uri.path())
                .map(|t| t.map(|t| (t.workload_id.clone(), t.app_path(uri.path()).to_owned(), uri.query().map(str::to_owned))))
        };
        assert_eq!(target("/api/v2/endpoints/workloads/w1").unwrap(), Some(("w1".into(), "/".into(), None)));
        assert_eq!(target("/api/v2/endpoints/workloads/w1/").unwrap(), Some(("w1".into(), "/".into(), None)));
        assert_eq!(target("/api/v2/endpoints/workloads/w1/a/b/?x=1&y").unwrap(), Some(("w1".into(), "/a/b/".into(), Some("x=1&y".into()))));
        assert!(target("/api/v2/endpoints/workloads/").is_err(), "no id");
        assert!(target("/api/v2/endpoints/workloads").is_err(), "no id");
        assert_eq!(target("/api/v2/endpoints/deployments/d1/x").unwrap(), None, "a deployment's workload is looked up");
        assert!(is_invoke("/api/v2/endpoints/deployments/d1/x"));
        assert!(!is_invoke("/api/v2/workloads"));
    }
}
