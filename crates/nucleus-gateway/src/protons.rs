//! Read-only views below a workload: protons, their replica status snapshots, events and related
//! entities.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use nucleus_api::workload::{RelatedObject, RelatedObjects};
use nucleus_api::{Proton, ReplicaStatusesSnapshot, WorkloadEvent};
use nucleus_client::keys;

use crate::access::Need;
use crate::auth::Caller;
use crate::listing::{Window, check, paginate};
use crate::request::Query;
use crate::workloads::load;
use crate::{ApiError, AppState};

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let query = Query::parse(uri.query());
    let mut errors = Vec::new();
    let window = Window::from_query(&query, &mut errors);
    check(errors)?;
    load(&state, &caller, &id, Need::Read).await?;
    let mut protons: Vec<Proton> = state.meta.list_json::<Proton>(&keys::protons_of(&id)).await?.into_iter().map(|p| p.value).collect();
    protons.sort_by_key(|p| std::cmp::Reverse(p.created_at));
    Ok(Json(paginate(protons, &window, &query, &state, &uri)).into_response())
}

pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, proton_id)): Path<(String, String)>,
) -> Result<Json<Proton>, ApiError> {
    load(&state, &caller, &id, Need::Read).await?;
    let proton = state
        .meta
        .get_json::<Proton>(&keys::proton(&id, &proton_id))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("Proton {proton_id} of workload {id} not found")))?;
    Ok(Json(proton.value))
}

/// 204 until the agent's first report about the proton has been recorded.
pub async fn status_details(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, proton_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let _proton = get(State(state.clone()), Extension(caller), Path((id.clone(), proton_id.clone()))).await?;
    match state.meta.get_json::<ReplicaStatusesSnapshot>(&keys::snapshot(&id, &proton_id)).await? {
        Some(snapshot) => Ok(Json(snapshot.value).into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

pub async fn events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let query = Query::parse(uri.query());
    let mut errors = Vec::new();
    let window = Window::from_query(&query, &mut errors);
    check(errors)?;
    load(&state, &caller, &id, Need::Read).await?;
    // Keys sort by time; newest first reads best.
    let mut events: Vec<WorkloadEvent> =
        state.meta.list_json::<WorkloadEvent>(&keys::events_of(&id)).await?.into_iter().map(|e| e.value).collect();
    events.reverse();
    Ok(Json(paginate(events, &window, &query, &state, &uri)).into_response())
}

/// `GET /workloads/{id}/related`: the workload's artifact, its repository and its protons.
pub async fn related(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<RelatedObjects>, ApiError> {
    let workload = load(&state, &caller, &id, Need::Read).await?.value;
    let mut data = Vec::new();
    let item = |id: &str, name: &str, kind: &str, created: nucleus_api::Timestamp, updated: nucleus_api::Timestamp| RelatedObject {
        id: id.to_owned(),
        object_type: kind.to_owned(),
        name: Some(name.to_owned()),
        created_at: Some(created),
        updated_at: Some(updated),
        permissions: Some(vec!["*".to_owned()]),
    };
    if let Some(artifact_id) = &workload.artifact_id
        && let Some(artifact) = state.meta.get_json::<nucleus_api::Artifact>(&keys::artifact(artifact_id)).await?
    {
        let a = artifact.value;
        data.push(item(&a.id, &a.name, "artifact", a.created_at, a.updated_at));
        if let Some(repository) = &a.artifact_repository_id {
            data.push(RelatedObject {
                id: repository.clone(),
                object_type: "artifact_repository".to_owned(),
                name: None,
                created_at: None,
                updated_at: None,
                permissions: None,
            });
        }
    }
    let mut protons: Vec<Proton> = state.meta.list_json::<Proton>(&keys::protons_of(&id)).await?.into_iter().map(|p| p.value).collect();
    protons.sort_by_key(|p| p.created_at);
    for p in &protons {
        data.push(item(&p.id, &p.name, "proton", p.created_at, p.updated_at));
    }
    Ok(Json(RelatedObjects { count: data.len(), data }))
}
