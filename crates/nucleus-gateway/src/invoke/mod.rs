//! The invoke proxy: `/api/v2/endpoints/workloads/{id}/{path}` → a ready replica of the workload's
//! active proton, method, path, query, headers and body streamed both ways.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Extension, Request, State};
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use nucleus_api::ProtonStatus;

use crate::access::{allow, role_of, Need};
use crate::route_table::Route;
use crate::auth::Caller;
use crate::{ApiError, AppState};

pub const PREFIX: &str = "/api/v2/endpoints/workloads/";

/// Pooled HTTP/1 client to replicas.
#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpConnector, Body>,
}

impl Upstream {
    pub fn new() -> Upstream {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Upstream { client }
    }
}

/// Headers that describe one hop, not the request, and the caller's Nucleus token, which is
/// ours and not the workload's business.
const NOT_FORWARDED: [HeaderName; 9] = [
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::AUTHORIZATION,
    header::HOST,
];

pub async fn invoke(State(state): State<AppState>, Extension(caller): Extension<Caller>, request: Request) -> Response {
    match forward(&state, &caller, request).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn forward(state: &AppState, caller: &Caller, request: Request) -> Result<Response, ApiError> {
    let (workload_id, app_path) = split_path(request.uri().path())
        .ok_or_else(|| ApiError::NotFound("Invoke URLs look like /api/v2/endpoints/workloads/{id}/...".to_owned()))?;
    let route = servable_route(state, &workload_id).await?;
    allow(role_of(caller, route.creator.as_ref(), &route.shared), Need::Invoke, || ApiError::workload_not_found(&workload_id))?;
    if route.status != ProtonStatus::Running {
        return Err(not_servable(&workload_id, route.status));
    }
    let Some(address) = state.routes.pick(&route.addresses) else {
        return Err(not_servable(&workload_id, route.status));
    };
    let (mut parts, body) = request.into_parts();
    let uri = match parts.uri.query() {
        Some(q) => format!("http://{address}{app_path}?{q}"),
        None => format!("http://{address}{app_path}"),
    };
    let original_host = parts.headers.get(header::HOST).cloned();
    parts.uri = uri.parse::<Uri>().map_err(|e| ApiError::BadRequest(format!("cannot forward this path: {e}")))?;
    strip(&mut parts.headers);
    if let Some(host) = original_host {
        parts.headers.insert("x-forwarded-host", host);
    }
    if let Ok(prefix) = HeaderValue::from_str(&format!("{PREFIX}{workload_id}")) {
        parts.headers.insert("x-forwarded-prefix", prefix);
    }
    let upstream_request = Request::from_parts(parts, body);
    let call = route.proton.as_deref().map(|proton| state.stats.begin(&workload_id, proton));
    let answered = state.upstream.client.request(upstream_request).await;
    if let Some(call) = call {
        state.stats.finish(call, answered.as_ref().map_or(502, |r| r.status().as_u16()));
    }
    let response = match answered {
        Ok(response) => response,
        Err(err) => {
            tracing::warn!(workload_id, address, error = %err, "replica did not answer");
            // The cache may not have caught up with a replica going away: if meta says the
            // workload is no longer servable, say that rather than blaming the replica.
            if err.is_connect()
                && let Ok(Some(route)) = state.routes.route_from_meta(&workload_id).await
                && route.status != ProtonStatus::Running
            {
                return Err(not_servable(&workload_id, route.status));
            }
            return Err(ApiError::BadGateway(format!(
                "replica {address} of workload {workload_id} did not answer: {err}; retry"
            )));
        }
    };
    let (mut parts, body) = response.into_parts();
    strip(&mut parts.headers);
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// The route if it has ready replicas; the cache is trusted when it says yes, and confirmed
/// against meta when it says no.
async fn servable_route(state: &AppState, workload_id: &str) -> Result<Route, ApiError> {
    if let Some(route) = state.routes.route(workload_id)
        && route.status == ProtonStatus::Running
        && !route.addresses.is_empty()
    {
        return Ok(route);
    }
    state
        .routes
        .route_from_meta(workload_id)
        .await?
        .ok_or_else(|| ApiError::workload_not_found(workload_id))
}

fn not_servable(workload_id: &str, status: ProtonStatus) -> ApiError {
    let hint = match status {
        ProtonStatus::Stopped | ProtonStatus::Stopping => "start it with POST /api/v2/workloads/{id}/start",
        ProtonStatus::Errored | ProtonStatus::Terminated => "see GET /api/v2/workloads/{id} for why, then start it again",
        _ => "retry once its status is running",
    };
    ApiError::Unavailable(format!(
        "Workload {workload_id} is {status}, not running: {}",
        hint.replace("{id}", workload_id)
    ))
}

fn strip(headers: &mut HeaderMap) {
    for name in NOT_FORWARDED {
        headers.remove(name);
    }
    headers.remove("keep-alive");
}

/// `/api/v2/endpoints/workloads/{id}[/rest]` → (id, "/rest"), the app path always starting with `/`.
fn split_path(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix(PREFIX).or_else(|| path.strip_prefix(PREFIX.trim_end_matches('/')))?;
    let rest = rest.trim_start_matches('/');
    let (id, app) = match rest.split_once('/') {
        Some((id, app)) => (id, format!("/{app}")),
        None => (rest, "/".to_owned()),
    };
    (!id.is_empty()).then(|| (id.to_owned(), app))
}

#[cfg(test)]
mod tests {
    use super::split_path;

    #[test]
    fn app_paths() {
        let s = |p: &str| split_path(p).map(|(a, b)| format!("{a} {b}"));
        assert_eq!(s("/api/v2/endpoints/workloads/w1"), Some("w1 /".into()));
        assert_eq!(s("/api/v2/endpoints/workloads/w1/"), Some("w1 /".into()));
        assert_eq!(s("/api/v2/endpoints/workloads/w1/a/b/"), Some("w1 /a/b/".into()));
        assert_eq!(s("/api/v2/endpoints/workloads/"), None);
    }
}
