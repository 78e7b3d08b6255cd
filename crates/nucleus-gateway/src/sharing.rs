//! `GET/PATCH .../sharedRoles` of workloads, artifacts and artifact repositories (spec §2.13).
//! PATCH replaces the list (1 to 100 roles, users by id or username; `NO_ROLE` leaves one out)
//! and answers 204. Only owners may share; readers may look.

use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use nucleus_api::identity::{Role, SharedRole, SharedRolesUpdateRequest, User};
use nucleus_api::validation::Loc;
use nucleus_api::{Artifact, FieldError, UserData, Workload};
use nucleus_client::{keys, Txn, Versioned};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::access::{allow, role_of, Need};
use crate::auth::Caller;
use crate::listing::{check, paginate, Window};
use crate::request::{json_body, Query};
use crate::{ApiError, AppState};

/// An object that can be shared.
pub trait Shared: Serialize + DeserializeOwned {
    fn creator(&self) -> Option<&UserData>;
    fn shared_roles(&self) -> &[SharedRole];
    fn shared_roles_mut(&mut self) -> &mut Vec<SharedRole>;
}

impl Shared for Workload {
    fn creator(&self) -> Option<&UserData> {
        self.creator.as_ref()
    }
    fn shared_roles(&self) -> &[SharedRole] {
        &self.shared_roles
    }
    fn shared_roles_mut(&mut self) -> &mut Vec<SharedRole> {
        &mut self.shared_roles
    }
}

impl Shared for Artifact {
    fn creator(&self) -> Option<&UserData> {
        self.creator.as_ref()
    }
    fn shared_roles(&self) -> &[SharedRole] {
        &self.shared_roles
    }
    fn shared_roles_mut(&mut self) -> &mut Vec<SharedRole> {
        &mut self.shared_roles
    }
}

/// The list as shown: the creator as owner, then the roles shared.
fn shown<T: Shared>(object: &T) -> Vec<SharedRole> {
    let creator = object.creator().map(|c| SharedRole {
        id: c.id.clone(),
        name: c.username.clone().unwrap_or_else(|| c.id.clone()),
        role: Role::Owner,
        share_recipient_type: "user".to_owned(),
    });
    creator.into_iter().chain(object.shared_roles().iter().cloned()).collect()
}

async fn read_list<T: Shared>(state: &AppState, caller: &Caller, key: &str, hidden: impl Fn() -> ApiError, headers: HeaderMap, uri: Uri) -> Result<Response, ApiError> {
    let query = Query::parse(uri.query());
    let mut errors = Vec::new();
    let window = Window::from_query(&query, &mut errors);
    check(errors)?;
    let object = state.meta.get_json::<T>(key).await?.ok_or_else(&hidden)?;
    allow(role_of(caller, object.value.creator(), object.value.shared_roles()), Need::Read, hidden)?;
    Ok(Json(paginate(shown(&object.value), &window, &query, state, &headers, &uri)).into_response())
}

/// Reads and checks a PATCH body: the new list, users resolved.
async fn new_list(state: &AppState, body: &Bytes) -> Result<Vec<SharedRole>, ApiError> {
    let req: SharedRolesUpdateRequest = json_body(body)?;
    let mut errors = Vec::new();
    if req.operation != "updateRoles" {
        errors.push(FieldError::new(&Loc::body().key("operation"), "Input should be 'updateRoles'", "literal_error"));
    }
    if req.roles.is_empty() || req.roles.len() > 100 {
        errors.push(FieldError::new(&Loc::body().key("roles"), "List should have 1 to 100 items", "too_short"));
    }
    let mut list: Vec<SharedRole> = Vec::new();
    for (i, input) in req.roles.iter().enumerate() {
        let loc = Loc::body().key("roles").index(i);
        if !input.share_recipient_type.eq_ignore_ascii_case("user") {
            errors.push(FieldError::new(&loc.key("shareRecipientType"), "Only 'user' recipients are supported", "enum"));
            continue;
        }
        let Some(role) = Role::parse(&input.role) else {
            errors.push(FieldError::new(&loc.key("role"), "Input should be owner, user, consumer (or a spec role name such as READ_ONLY, NO_ROLE)", "enum"));
            continue;
        };
        let user_id = match (&input.id, &input.username) {
            (Some(id), _) => Some(id.clone()),
            (None, Some(name)) => state.meta.get_json::<String>(&keys::username(name)).await?.map(|v| v.value),
            (None, None) => {
                errors.push(FieldError::new(&loc, "Give the user's id or username", "missing"));
                continue;
            }
        };
        let user = match user_id {
            Some(id) => state.meta.get_json::<User>(&keys::user(&id)).await?.map(|u| u.value),
            None => None,
        };
        let Some(user) = user else {
            let field = if input.id.is_some() { "id" } else { "username" };
            errors.push(FieldError::new(&loc.key(field), "No such user", "value_error"));
            continue;
        };
        list.retain(|s| s.id != user.id);
        if let Some(role) = role {
            list.push(SharedRole { id: user.id, name: user.username, role, share_recipient_type: "user".to_owned() });
        }
    }
    check(errors)?;
    Ok(list)
}

/// Rewrites the sharing lists of `objects` (owner required on each), all or nothing.
async fn replace<T: Shared>(state: &AppState, caller: &Caller, objects: Vec<Versioned<T>>, list: Vec<SharedRole>, hidden: impl Fn() -> ApiError) -> Result<StatusCode, ApiError> {
    if objects.is_empty() {
        return Err(hidden());
    }
    let mut txn = Txn::new();
    for mut object in objects {
        allow(role_of(caller, object.value.creator(), object.value.shared_roles()), Need::Change, &hidden)?;
        let creator = object.value.creator().map(|c| c.id.clone());
        *object.value.shared_roles_mut() = list.iter().filter(|s| Some(&s.id) != creator.as_ref()).cloned().collect();
        txn = txn.require(&object.key, object.mod_revision).put_json(&object.key, &object.value)?;
    }
    if !state.meta.write(txn).await?.applied() {
        return Err(ApiError::Conflict("The object changed meanwhile; retry".to_owned()));
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn workload_get(State(state): State<AppState>, Extension(caller): Extension<Caller>, Path(id): Path<String>, headers: HeaderMap, uri: Uri) -> Result<Response, ApiError> {
    read_list::<Workload>(&state, &caller, &keys::workload(&id), || ApiError::workload_not_found(&id), headers, uri).await
}

pub async fn workload_patch(State(state): State<AppState>, Extension(caller): Extension<Caller>, Path(id): Path<String>, body: Bytes) -> Result<StatusCode, ApiError> {
    let object = state.meta.get_json::<Workload>(&keys::workload(&id)).await?;
    allow(object.as_ref().and_then(|o| role_of(&caller, o.value.creator(), o.value.shared_roles())), Need::Change, || ApiError::workload_not_found(&id))?;
    let list = new_list(&state, &body).await?;
    replace(&state, &caller, object.into_iter().collect(), list, || ApiError::workload_not_found(&id)).await
}

pub async fn artifact_get(State(state): State<AppState>, Extension(caller): Extension<Caller>, Path(id): Path<String>, headers: HeaderMap, uri: Uri) -> Result<Response, ApiError> {
    read_list::<Artifact>(&state, &caller, &keys::artifact(&id), || ApiError::artifact_not_found(&id), headers, uri).await
}

pub async fn artifact_patch(State(state): State<AppState>, Extension(caller): Extension<Caller>, Path(id): Path<String>, body: Bytes) -> Result<StatusCode, ApiError> {
    let object = state.meta.get_json::<Artifact>(&keys::artifact(&id)).await?;
    allow(object.as_ref().and_then(|o| role_of(&caller, o.value.creator(), o.value.shared_roles())), Need::Change, || ApiError::artifact_not_found(&id))?;
    let list = new_list(&state, &body).await?;
    replace(&state, &caller, object.into_iter().collect(), list, || ApiError::artifact_not_found(&id)).await
}

async fn repository_members(state: &AppState, id: &str) -> Result<Vec<Versioned<Artifact>>, ApiError> {
    let mut members: Vec<Versioned<Artifact>> = state
        .meta
        .list_json::<Artifact>(keys::ARTIFACTS)
        .await?
        .into_iter()
        .filter(|a| a.value.artifact_repository_id.as_deref() == Some(id))
        .collect();
    members.sort_by_key(|a| a.value.created_at);
    Ok(members)
}

fn repository_not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("Artifact repository {id} not found"))
}

/// A repository's list is its first artifact's (PATCH sets it on every artifact in it).
pub async fn repository_get(State(state): State<AppState>, Extension(caller): Extension<Caller>, Path(id): Path<String>, headers: HeaderMap, uri: Uri) -> Result<Response, ApiError> {
    let members = repository_members(&state, &id).await?;
    let Some(first) = members.first() else { return Err(repository_not_found(&id)) };
    read_list::<Artifact>(&state, &caller, &first.key, || repository_not_found(&id), headers, uri).await
}

pub async fn repository_patch(State(state): State<AppState>, Extension(caller): Extension<Caller>, Path(id): Path<String>, body: Bytes) -> Result<StatusCode, ApiError> {
    let members = repository_members(&state, &id).await?;
    let visible = members.iter().any(|a| role_of(&caller, a.value.creator(), a.value.shared_roles()).is_some());
    if !visible {
        return Err(repository_not_found(&id));
    }
    let list = new_list(&state, &body).await?;
    replace(&state, &caller, members, list, || repository_not_found(&id)).await
}
