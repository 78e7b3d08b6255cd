//! The route table of the REST API. Every route answers with and without a trailing slash
//! (clients disagree, and some fail on redirects), so each path is registered twice.

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::middleware;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get, patch, post};
use axum::{Json, Router};
use serde_json::json;

use crate::{
    ApiError, AppState, artifacts, auth, deployments, groups, lifetime, openapi, protons, replacements, repositories, sharing, stats,
    tokens, users, workloads,
};

const API: &str = "/api/v2";

pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    let mut route = |path: &str, methods: MethodRouter<AppState>| {
        let full = format!("{API}{path}");
        router = std::mem::take(&mut router).route(&full, methods.clone()).route(&format!("{full}/"), methods);
    };
    route("/version", get(version));
    route("/mlops/compute/bundles", get(bundles));
    for base in ["/artifacts", "/registry/artifacts"] {
        route(base, post(artifacts::create).get(artifacts::list));
        route(
            &format!("{base}/{{artifact_id}}"),
            get(artifacts::get).put(artifacts::replace).patch(artifacts::update).delete(artifacts::delete),
        );
        route(&format!("{base}/{{artifact_id}}/clone"), post(artifacts::clone));
        route(&format!("{base}/{{artifact_id}}/sharedRoles"), get(sharing::artifact_get).patch(sharing::artifact_patch));
    }
    route("/console/deployments", post(deployments::create).get(deployments::list));
    route("/console/deployments/{deployment_id}", get(deployments::get).patch(deployments::update).delete(deployments::delete));
    route("/console/deployments/{deployment_id}/stats", get(deployments::stats));
    route("/artifactRepositories", get(repositories::list));
    route("/artifactRepositories/{artifact_repository_id}", get(repositories::get).delete(repositories::delete));
    route("/artifactRepositories/{artifact_repository_id}/sharedRoles", get(sharing::repository_get).patch(sharing::repository_patch));
    route("/users", post(users::create).get(users::list));
    route("/users/{user_id}", patch(users::update).delete(users::delete));
    route("/users/{user_id}/tokens", post(tokens::create).get(tokens::list));
    route("/users/{user_id}/tokens/{token_id}", delete(tokens::delete));
    route("/groups", post(groups::create).get(groups::list));
    route("/groups/{group_id}/users", post(groups::add_members));
    route("/groups/{group_id}/users/{user_id}", delete(groups::remove_member));
    for base in ["/workloads", "/console/workloads"] {
        route(base, post(workloads::create).get(workloads::list));
        route(&format!("{base}/stats"), get(stats::endpoints::overview));
        route(&format!("{base}/{{workload_id}}/stats"), get(stats::endpoints::get).delete(stats::endpoints::delete));
        route(&format!("{base}/{{workload_id}}/stats/{{metric_name}}"), get(stats::endpoints::metric));
        route(&format!("{base}/{{workload_id}}"), get(workloads::get).patch(workloads::update).delete(workloads::delete));
        route(&format!("{base}/{{workload_id}}/start"), post(workloads::start));
        route(&format!("{base}/{{workload_id}}/stop"), post(workloads::stop));
        route(&format!("{base}/{{workload_id}}/settings"), get(workloads::settings).patch(replacements::update_settings));
        route(
            &format!("{base}/{{workload_id}}/replacement"),
            post(replacements::start).get(replacements::get).delete(replacements::cancel),
        );
        route(&format!("{base}/{{workload_id}}/promote"), post(lifetime::promote));
        route(&format!("{base}/{{workload_id}}/history"), get(lifetime::history));
        route(&format!("{base}/{{workload_id}}/protons"), get(protons::list));
        route(&format!("{base}/{{workload_id}}/protons/{{proton_id}}"), get(protons::get));
        route(&format!("{base}/{{workload_id}}/protons/{{proton_id}}/statusDetails"), get(protons::status_details));
        route(&format!("{base}/{{workload_id}}/events"), get(protons::events));
        route(&format!("{base}/{{workload_id}}/related"), get(protons::related));
        route(&format!("{base}/{{workload_id}}/sharedRoles"), get(sharing::workload_get).patch(sharing::workload_patch));
    }
    route("/otel/workload/{workload_id}/logs", get(crate::otel::logs::list));
    route("/otel/workload/{workload_id}/logs/stream", get(crate::otel::follow::stream));
    route("/otel/workload/{workload_id}/traces", get(crate::otel::traces::list));
    route("/otel/workload/{workload_id}/metrics", get(crate::otel::metrics::list));
    route("/otel/workload/{workload_id}/metrics/summary", get(crate::otel::metrics::list));
    route("/otel/workload/{workload_id}/metrics/autocollectedValues", get(crate::otel::metrics::autocollected_values));
    route("/otel/workload/{workload_id}/traces/{trace_id}", get(crate::otel::traces::get));
    let router = router.route("/metrics", get(crate::metrics::serve));
    // Invoke URLs (`/api/v2/endpoints/...`) never reach this router: the server hands them to
    // the invoke proxy first (see `server`).
    let router = router.fallback(not_found).method_not_allowed_fallback(method_not_allowed);
    // The document describes the API, not anyone's data: tooling reads it without a token.
    let public = Router::new().route("/api/v2/openapi.json", get(openapi::json)).route("/api/v2/openapi.yaml", get(openapi::yaml));
    router
        .layer(middleware::from_fn_with_state(state.clone(), auth::require_token))
        .merge(public)
        .layer(middleware::from_fn(crate::metrics::record_api))
        .layer(middleware::from_fn(traced))
        .layer(middleware::map_response_with_state(state.clone(), too_large_as_json))
        .layer(DefaultBodyLimit::max(state.config.limits.max_body_bytes))
        .with_state(state)
}

/// A span per REST request, continuing the caller's trace (`traceparent`), when traces are
/// exported: a create's span is kept on the proton, so the launch joins its trace.
async fn traced(request: axum::extract::Request, next: middleware::Next) -> Response {
    if !nucleus_telemetry::trace::enabled() {
        return next.run(request).await;
    }
    let span = tracing::info_span!(
        "rest",
        otel.kind = "server",
        otel.name = %format!("{} {}", request.method(), request.uri().path()),
        http.response.status_code = tracing::field::Empty,
    );
    nucleus_telemetry::trace::continue_http(&span, request.headers());
    let response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

/// `GET /version`: DataRobot's Python client checks `versionString` (major 2) before it calls.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionInfo {
    major: u32,
    minor: u32,
    version_string: &'static str,
    /// This server's own version.
    nucleus: &'static str,
}

async fn version() -> Json<VersionInfo> {
    Json(VersionInfo { major: 2, minor: 41, version_string: "2.41.0", nucleus: env!("CARGO_PKG_VERSION") })
}

/// The resource bundle catalogue, as a page (it is short: one page holds it all).
async fn bundles() -> Json<nucleus_api::Page<nucleus_api::bundle::ResourceBundle>> {
    let data = nucleus_api::bundle::default_catalogue();
    Json(nucleus_api::Page { count: data.len(), total_count: data.len(), next: None, previous: None, data })
}

/// axum refuses a body over the limit with a plain-text 413; answer it as every error is answered.
async fn too_large_as_json(State(state): State<AppState>, response: Response) -> Response {
    let is_json = response.headers().get(axum::http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE || is_json {
        return response;
    }
    ApiError::PayloadTooLarge(format!(
        "Request body too large: the REST API takes at most {} bytes. Send smaller documents (invoke URLs have no such limit).",
        state.config.limits.max_body_bytes
    ))
    .into_response()
}

async fn not_found() -> ApiError {
    ApiError::NotFound("Not Found: no such route under /api/v2".to_owned())
}

async fn method_not_allowed() -> impl IntoResponse {
    (StatusCode::METHOD_NOT_ALLOWED, Json(json!({ "detail": "Method Not Allowed" })))
}
