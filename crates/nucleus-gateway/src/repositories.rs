//! `/artifactRepositories`: the lineage of artifacts (versions v1, v2, ... of one thing). A
//! repository is derived from the artifacts that name it; it exists while it has any.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use nucleus_api::{Artifact, ArtifactStatus, Workload};
use nucleus_client::{Txn, keys};
use serde::Serialize;

use crate::access::{Need, allow, role_of};
use crate::artifacts::{json_name, readable, repository_members};
use crate::auth::Caller;
use crate::listing::{CommonFilters, Listed, Window, check, listed, order, paginate};
use crate::request::Query;
use crate::{ApiError, AppState};

/// `ArtifactRepositoryFormatted`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ArtifactRepository)]
pub struct Repository {
    id: String,
    name: String,
    #[serde(rename = "type")]
    repository_type: nucleus_api::ArtifactType,
    last_version_number: u32,
    num_artifacts: usize,
    creator: Option<nucleus_api::UserData>,
    permissions: Vec<String>,
    tags: Vec<nucleus_api::container_options::TagInfo>,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
}

listed!(Repository);

/// Summarises a non-empty list of one repository's artifacts, oldest first.
fn summarise(id: &str, members: &[Artifact]) -> Option<Repository> {
    let first = members.first()?;
    Some(Repository {
        id: id.to_owned(),
        name: first.name.clone(),
        repository_type: first.artifact_type,
        last_version_number: members.iter().filter_map(|a| a.version).max().unwrap_or(0),
        num_artifacts: members.len(),
        creator: first.creator.clone(),
        permissions: vec!["*".to_owned()],
        tags: Vec::new(),
        created_at: first.created_at,
        updated_at: members.iter().map(|a| a.updated_at).max().unwrap_or(first.updated_at),
    })
}

pub async fn list(State(state): State<AppState>, Extension(caller): Extension<Caller>, uri: Uri) -> Result<Response, ApiError> {
    let query = Query::parse(uri.query());
    let mut errors = Vec::new();
    let window = Window::from_query(&query, &mut errors);
    let search = query.one("search").map(str::to_lowercase);
    let types = query.all("type");
    let common = CommonFilters::from_query(&query);
    let mut groups: BTreeMap<String, Vec<Artifact>> = BTreeMap::new();
    for artifact in state.meta.list_json::<Artifact>(keys::ARTIFACTS).await?.into_iter().map(|a| a.value).filter(|a| readable(&caller, a)) {
        if let Some(repository) = artifact.artifact_repository_id.clone() {
            groups.entry(repository).or_default().push(artifact);
        }
    }
    let mut items: Vec<Repository> = groups
        .iter_mut()
        .filter_map(|(id, members)| {
            members.sort_by_key(|a| a.created_at);
            summarise(id, members)
        })
        .filter(|r| search.as_ref().is_none_or(|s| r.name.to_lowercase().contains(s)))
        .filter(|r| types.is_empty() || types.contains(&json_name(&r.repository_type)))
        .filter(|r| common.keep(r))
        .collect();
    order(&mut items, &query, &[], |_, _, _| None, &mut errors);
    check(errors)?;
    Ok(Json(paginate(items, &window, &query, &state, &uri)).into_response())
}

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("Artifact repository {id} not found"))
}

pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Repository>, ApiError> {
    let members: Vec<Artifact> = repository_members(&state, &id).await?.into_iter().filter(|a| readable(&caller, a)).collect();
    summarise(&id, &members).map(Json).ok_or_else(|| not_found(&id))
}

/// Deletes every artifact of the repository, unless one is locked or used by a workload (409
/// naming them); all or nothing.
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let members: Vec<_> = state
        .meta
        .list_json::<Artifact>(keys::ARTIFACTS)
        .await?
        .into_iter()
        .filter(|a| a.value.artifact_repository_id.as_deref() == Some(id.as_str()))
        .collect();
    if !members.iter().any(|a| readable(&caller, &a.value)) {
        return Err(not_found(&id));
    }
    for artifact in &members {
        allow(role_of(&caller, artifact.value.creator.as_ref(), &artifact.value.shared_roles), Need::Change, || not_found(&id))?;
    }
    let locked: Vec<&str> = members.iter().filter(|a| a.value.status == ArtifactStatus::Locked).map(|a| a.value.id.as_str()).collect();
    if !locked.is_empty() {
        return Err(ApiError::Conflict(format!(
            "Artifact repository {id} holds locked artifact(s) {}; locked artifacts cannot be deleted",
            locked.join(", ")
        )));
    }
    let workloads = state.meta.list_json::<Workload>(keys::WORKLOADS).await?;
    let in_use: Vec<Workload> = workloads
        .into_iter()
        .map(|w| w.value)
        .filter(|w| members.iter().any(|a| w.artifact_id.as_deref() == Some(a.value.id.as_str())))
        .collect();
    if !in_use.is_empty() {
        return Err(ApiError::Conflict(format!(
            "Artifact repository {id} has artifacts used by workload(s) {}; delete those first",
            crate::access::visible_workloads(&caller, &in_use)
        )));
    }
    let mut txn = Txn::new();
    for artifact in &members {
        txn = txn.require(&artifact.key, artifact.mod_revision).delete(&artifact.key);
    }
    if !state.meta.write(txn).await?.applied() {
        return Err(ApiError::Conflict(format!("Artifact repository {id} changed meanwhile; retry")));
    }
    Ok(StatusCode::NO_CONTENT)
}
