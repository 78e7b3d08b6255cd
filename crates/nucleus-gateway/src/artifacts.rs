//! `/artifacts`: drafts are mutable, locked artifacts are not.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use nucleus_api::identity::Role;
use nucleus_api::validation::{self, Loc};
use nucleus_api::{Artifact, ArtifactStatus, InputArtifact, UpdateArtifactRequest, Workload};
use nucleus_client::{Txn, keys};

use crate::access::{Need, allow, permissions, role_of};
use crate::auth::Caller;
use crate::listing::{CommonFilters, Window, check, order, paginate};
use crate::request::{Query, json_body};
use crate::{ApiError, AppState, ids};

pub async fn create(State(state): State<AppState>, Extension(caller): Extension<Caller>, body: Bytes) -> Result<Response, ApiError> {
    let input: InputArtifact = json_body(&body)?;
    check(validation::input_artifact(&input, &Loc::body()))?;
    let artifact = new_artifact(&state, input, &caller).await?;
    let txn = Txn::new().require(&keys::artifact(&artifact.id), 0).put_json(&keys::artifact(&artifact.id), &artifact)?;
    state.meta.write(txn).await?;
    Ok((StatusCode::CREATED, Json(formatted(artifact, &caller))).into_response())
}

/// An artifact as `caller` sees it: its permissions, without the sharing list.
pub fn formatted(mut artifact: Artifact, caller: &Caller) -> Artifact {
    let role = role_of(caller, artifact.creator.as_ref(), &artifact.shared_roles);
    artifact.permissions = role.map(|r| permissions(caller, r)).unwrap_or_default();
    artifact.shared_roles.clear();
    artifact
}

/// Whether `caller` may read the artifact (users and owners).
pub fn readable(caller: &Caller, artifact: &Artifact) -> bool {
    role_of(caller, artifact.creator.as_ref(), &artifact.shared_roles).is_some_and(|r| r >= Role::User)
}

/// Adding an artifact to an existing repository takes the owner's role on it (its creator, the
/// administrator, or an OWNER share of one of its artifacts); one that the caller cannot see is
/// not found, as if it did not exist.
fn may_add_to(caller: &Caller, repository: &str, members: &[Artifact]) -> Result<(), ApiError> {
    if members.is_empty() {
        return Ok(());
    }
    match members.iter().filter_map(|a| role_of(caller, a.creator.as_ref(), &a.shared_roles)).max() {
        Some(Role::Owner) => Ok(()),
        Some(_) => Err(ApiError::Forbidden(format!(
            "You may read artifact repository {repository} but not add to it; ask its owner to share it with you as OWNER"
        ))),
        None => Err(ApiError::NotFound(format!("Artifact repository {repository} not found"))),
    }
}

/// A new artifact document (not yet written): its repository (new unless given) and, if it is
/// created locked, the next version in that repository.
pub async fn new_artifact(state: &AppState, input: InputArtifact, caller: &Caller) -> Result<Artifact, ApiError> {
    may_set_security(caller, &input.spec)?;
    let repository = input.artifact_repository_id.clone().unwrap_or_else(ids::new_id);
    let members = repository_members(state, &repository).await?;
    may_add_to(caller, &repository, &members)?;
    if let Some(first) = members.first().filter(|a| a.artifact_type != input.artifact_type) {
        return Err(ApiError::Validation(vec![nucleus_api::FieldError::new(
            &Loc::body().key("type"),
            format!(
                "Repository {repository} holds artifacts of type '{}'; an artifact of type '{}' cannot join it",
                json_name(&first.artifact_type),
                json_name(&input.artifact_type)
            ),
            "value_error",
        )]));
    }
    let version = match input.status {
        ArtifactStatus::Locked => Some(next_version(state, &repository).await?),
        ArtifactStatus::Draft => None,
    };
    Ok(Artifact::from_input(ids::new_id(), input, repository, version, nucleus_api::clock::now(), Some(caller.user_data())))
}

/// Only the administrator may loosen a container's security defaults (add capabilities, allow
/// privilege escalation, run unconfined); anyone may tighten them.
fn may_set_security(caller: &Caller, spec: &nucleus_api::ArtifactSpec) -> Result<(), ApiError> {
    let elevated = spec.elevated_security();
    match (caller, elevated.first()) {
        (Caller::User { .. }, Some((container, field))) => Err(ApiError::Forbidden(format!(
            "Setting securityContext.{field} of container '{container}' loosens the platform's security defaults and needs the \
             administrator; drop it, or ask the administrator to create the artifact"
        ))),
        _ => Ok(()),
    }
}

async fn next_version(state: &AppState, repository: &str) -> Result<u32, ApiError> {
    let last = repository_members(state, repository).await?.iter().filter_map(|a| a.version).max().unwrap_or(0);
    Ok(last + 1)
}

/// The artifacts of a repository, oldest first. Repositories are not documents of their own: a
/// repository is the set of artifacts that name it.
pub async fn repository_members(state: &AppState, repository: &str) -> Result<Vec<Artifact>, ApiError> {
    let mut members: Vec<Artifact> = state
        .meta
        .list_json::<Artifact>(keys::ARTIFACTS)
        .await?
        .into_iter()
        .map(|a| a.value)
        .filter(|a| a.artifact_repository_id.as_deref() == Some(repository))
        .collect();
    members.sort_by_key(|a| a.created_at);
    Ok(members)
}

/// `POST /artifacts/{id}/clone`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloneRequest {
    name: String,
}

/// `POST /artifacts/{id}/clone`: a new draft with the same spec, in the same repository,
/// whatever the source's status (the way to "unlock" a locked artifact).
pub async fn clone(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Artifact>, ApiError> {
    let request: CloneRequest = json_body(&body)?;
    let mut errors = Vec::new();
    validation::name(&request.name, &Loc::body().key("name"), &mut errors);
    check(errors)?;
    let source = load(&state, &caller, &id, Need::Read).await?.value;
    let now = nucleus_api::clock::now();
    let copy = Artifact {
        id: ids::new_id(),
        name: request.name,
        status: ArtifactStatus::Draft,
        version: None,
        created_at: now,
        updated_at: now,
        creator: Some(caller.user_data()),
        shared_roles: Vec::new(),
        ..source
    };
    let key = keys::artifact(&copy.id);
    state.meta.write(Txn::new().require(&key, 0).put_json(&key, &copy)?).await?;
    Ok(Json(formatted(copy, &caller)))
}

pub async fn list(State(state): State<AppState>, Extension(caller): Extension<Caller>, uri: Uri) -> Result<Response, ApiError> {
    let query = Query::parse(uri.query());
    let mut errors = Vec::new();
    let window = Window::from_query(&query, &mut errors);
    let search = query.one("search").map(str::to_lowercase);
    let statuses = query.all("status");
    let types = query.all("type");
    let repository = query.one("repositoryId");
    let common = CommonFilters::from_query(&query);
    let mut items: Vec<Artifact> = state
        .meta
        .list_json::<Artifact>(keys::ARTIFACTS)
        .await?
        .into_iter()
        .map(|a| a.value)
        .filter(|a| readable(&caller, a))
        .filter(|a| search.as_ref().is_none_or(|s| a.name.to_lowercase().contains(s)))
        .filter(|a| statuses.is_empty() || statuses.iter().any(|s| status_matches(a.status, s)))
        .filter(|a| types.is_empty() || types.iter().any(|t| json_name(&a.artifact_type) == *t))
        .filter(|a| repository.is_none_or(|r| a.artifact_repository_id.as_deref() == Some(r)))
        .filter(|a| common.keep(a))
        .collect();
    order(
        &mut items,
        &query,
        &["status"],
        |field, a, b| match field {
            "status" => Some(json_name(&a.status).cmp(&json_name(&b.status))),
            _ => None,
        },
        &mut errors,
    );
    check(errors)?;
    let items: Vec<Artifact> = items.into_iter().map(|a| formatted(a, &caller)).collect();
    Ok(Json(paginate(items, &window, &query, &state, &uri)).into_response())
}

fn status_matches(status: ArtifactStatus, wanted: &str) -> bool {
    match wanted {
        "registered" => status == ArtifactStatus::Locked,
        other => json_name(&status) == other,
    }
}

/// The JSON spelling of a unit enum value.
pub fn json_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Artifact>, ApiError> {
    let artifact = load(&state, &caller, &id, Need::Read).await?;
    Ok(Json(formatted(artifact.value, &caller)))
}

/// The artifact, if `caller` may do `need` with it (404 if it cannot see it, 403 if it may not).
async fn load(state: &AppState, caller: &Caller, id: &str, need: Need) -> Result<nucleus_client::Versioned<Artifact>, ApiError> {
    let artifact = state.meta.get_json::<Artifact>(&keys::artifact(id)).await?.ok_or_else(|| ApiError::artifact_not_found(id))?;
    allow(role_of(caller, artifact.value.creator.as_ref(), &artifact.value.shared_roles), need, || ApiError::artifact_not_found(id))?;
    Ok(artifact)
}

fn locked_error(id: &str) -> ApiError {
    ApiError::Conflict(format!("Artifact {id} is locked and cannot change; clone it (POST /artifacts/{id}/clone) to get an editable draft"))
}

/// Full replace of a draft.
pub async fn replace(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Artifact>, ApiError> {
    let input: InputArtifact = json_body(&body)?;
    check(validation::input_artifact(&input, &Loc::body()))?;
    let current = load(&state, &caller, &id, Need::Change).await?;
    if current.value.status == ArtifactStatus::Locked {
        return Err(locked_error(&id));
    }
    let repository = input.artifact_repository_id.clone().or(current.value.artifact_repository_id.clone()).unwrap_or_else(ids::new_id);
    let version = match input.status {
        ArtifactStatus::Locked => Some(next_version(&state, &repository).await?),
        ArtifactStatus::Draft => None,
    };
    let mut artifact =
        Artifact::from_input(id.clone(), input, repository, version, nucleus_api::clock::now(), current.value.creator.clone());
    artifact.created_at = current.value.created_at;
    artifact.shared_roles.clone_from(&current.value.shared_roles);
    write_if_unchanged(&state, &current, &artifact).await?;
    Ok(Json(formatted(artifact, &caller)))
}

pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Artifact>, ApiError> {
    let patch: UpdateArtifactRequest = json_body(&body)?;
    let mut errors = Vec::new();
    if let Some(name) = &patch.name {
        validation::name(name, &Loc::body().key("name"), &mut errors);
    }
    if let Some(spec) = &patch.spec {
        if spec.spec_type.is_some() {
            errors.push(nucleus_api::FieldError::new(
                &Loc::body().key("spec").key("type"),
                "spec.type cannot be changed; the artifact's type is fixed at creation",
                "extra_forbidden",
            ));
        }
        validation::spec(spec, &Loc::body().key("spec"), &mut errors);
    }
    check(errors)?;
    let current = load(&state, &caller, &id, Need::Change).await?;
    if current.value.status == ArtifactStatus::Locked {
        if patch.status == Some(ArtifactStatus::Locked) && patch.name.is_none() && patch.spec.is_none() && patch.description.is_none() {
            return Err(ApiError::Conflict(format!("Artifact {id} is already locked")));
        }
        return Err(locked_error(&id));
    }
    let mut artifact = current.value.clone();
    if let Some(name) = patch.name {
        artifact.name = name;
    }
    if let Some(description) = patch.description {
        artifact.description = description;
    }
    if let Some(mut spec) = patch.spec {
        may_set_security(&caller, &spec)?;
        spec.spec_type = Some(artifact.artifact_type);
        spec.clear_server_fields();
        artifact.spec = spec;
    }
    if patch.status == Some(ArtifactStatus::Locked) {
        lock(&state, &mut artifact).await?;
    }
    artifact.updated_at = nucleus_api::clock::now();
    write_if_unchanged(&state, &current, &artifact).await?;
    Ok(Json(formatted(artifact, &caller)))
}

/// Locks a draft: the next version of its repository, and immutable from now on.
pub(crate) async fn lock(state: &AppState, artifact: &mut Artifact) -> Result<(), ApiError> {
    let repository = artifact.artifact_repository_id.clone().unwrap_or_default();
    artifact.version = Some(next_version(state, &repository).await?);
    artifact.status = ArtifactStatus::Locked;
    artifact.updated_at = nucleus_api::clock::now();
    Ok(())
}

pub(crate) async fn write_if_unchanged(
    state: &AppState,
    current: &nucleus_client::Versioned<Artifact>,
    artifact: &Artifact,
) -> Result<(), ApiError> {
    let key = keys::artifact(&artifact.id);
    let txn = Txn::new().require(&key, current.mod_revision).put_json(&key, artifact)?;
    if state.meta.write(txn).await?.applied() {
        Ok(())
    } else {
        Err(ApiError::Conflict(format!("Artifact {} was changed by another request meanwhile; read it again and retry", artifact.id)))
    }
}

pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let current = load(&state, &caller, &id, Need::Change).await?;
    if current.value.status == ArtifactStatus::Locked {
        return Err(ApiError::Conflict(format!("Artifact {id} is locked; locked artifacts cannot be deleted")));
    }
    let users: Vec<Workload> = state
        .meta
        .list_json::<Workload>(keys::WORKLOADS)
        .await?
        .into_iter()
        .map(|w| w.value)
        .filter(|w| w.artifact_id.as_deref() == Some(id.as_str()))
        .collect();
    if !users.is_empty() {
        let named = crate::access::visible_workloads(&caller, &users);
        return Err(ApiError::Conflict(format!("Artifact {id} is used by workload(s) {named}; delete those first")));
    }
    let key = keys::artifact(&id);
    let txn = Txn::new().require(&key, current.mod_revision).delete(&key);
    if !state.meta.write(txn).await?.applied() {
        return Err(ApiError::Conflict(format!("Artifact {id} changed meanwhile; retry")));
    }
    Ok(StatusCode::NO_CONTENT)
}
