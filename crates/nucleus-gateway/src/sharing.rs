//! `GET/PATCH .../sharedRoles` of workloads, artifacts and artifact repositories (docs/api/README.md, "Sharing").
//! PATCH replaces the list (1 to 100 roles: users by id or username, groups by id, the
//! organization; `NO_ROLE` leaves one out) and answers 204. Only owners may share; readers may look.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use nucleus_api::identity::{ORGANIZATION_ID, Recipient, Role, SharedRole, SharedRoleInput, SharedRolesUpdateRequest, User, UserGroup};
use nucleus_api::validation::Loc;
use nucleus_api::{Artifact, FieldError, UserData, Workload};
use nucleus_client::{Txn, Versioned, keys};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::access::{Need, allow, role_of};
use crate::auth::Caller;
use crate::listing::{Window, check, paginate};
use crate::request::{Query, json_body};
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

async fn read_list<T: Shared>(
    state: &AppState,
    caller: &Caller,
    key: &str,
    hidden: impl Fn() -> ApiError,
    uri: Uri,
) -> Result<Response, ApiError> {
    let query = Query::parse(uri.query());
    let mut errors = Vec::new();
    let window = Window::from_query(&query, &mut errors);
    check(errors)?;
    let object = state.meta.get_json::<T>(key).await?.ok_or_else(&hidden)?;
    allow(role_of(caller, object.value.creator(), object.value.shared_roles()), Need::Read, hidden)?;
    Ok(Json(paginate(shown(&object.value), &window, &query, state, &uri)).into_response())
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
        let Some(recipient) = Recipient::parse(&input.share_recipient_type) else {
            errors.push(FieldError::new(&loc.key("shareRecipientType"), "Input should be 'user', 'group' or 'organization'", "enum"));
            continue;
        };
        let Some(role) = Role::parse(&input.role) else {
            errors.push(FieldError::new(
                &loc.key("role"),
                "Input should be owner, user, consumer (or a spec role name such as READ_ONLY, NO_ROLE)",
                "enum",
            ));
            continue;
        };
        let found = match recipient {
            Recipient::User => find_user(state, input).await?,
            Recipient::Group => find_group(state, input).await?,
            Recipient::Organization => organization(input),
        };
        let (id, name) = match found {
            Ok(found) => found,
            Err((field, message)) => {
                errors.push(FieldError::new(&if field.is_empty() { loc } else { loc.key(field) }, message, "value_error"));
                continue;
            }
        };
        list.retain(|s| !(s.id == id && s.share_recipient_type == recipient.as_str()));
        if let Some(role) = role {
            list.push(SharedRole { id, name, role, share_recipient_type: recipient.as_str().to_owned() });
        }
    }
    check(errors)?;
    Ok(list)
}

/// A recipient found: `(id, name)`; or the field to blame and why.
type Found = Result<(String, String), (&'static str, String)>;

/// A user by id or username.
async fn find_user(state: &AppState, input: &SharedRoleInput) -> Result<Found, ApiError> {
    let user_id = match (&input.id, &input.username) {
        (Some(id), _) => Some(id.clone()),
        (None, Some(name)) => state.meta.get_json::<String>(&keys::username(name)).await?.map(|v| v.value),
        (None, None) => return Ok(Err(("", "Give the user's id or username".to_owned()))),
    };
    let user = match user_id {
        Some(id) => state.meta.get_json::<User>(&keys::user(&id)).await?.map(|u| u.value),
        None => None,
    };
    Ok(match user {
        Some(user) => Ok((user.id, user.username)),
        None => Err((if input.id.is_some() { "id" } else { "username" }, "No such user".to_owned())),
    })
}

/// A group by id (made with `POST /groups`).
async fn find_group(state: &AppState, input: &SharedRoleInput) -> Result<Found, ApiError> {
    let Some(id) = &input.id else { return Ok(Err(("id", "Give the group's id (see GET /api/v2/groups)".to_owned()))) };
    Ok(match state.meta.get_json::<UserGroup>(&keys::user_group(id)).await? {
        Some(group) => Ok((group.value.id, group.value.name)),
        None => Err(("id", "No such group".to_owned())),
    })
}

/// The organization: its id, or none given.
fn organization(input: &SharedRoleInput) -> Found {
    match input.id.as_deref() {
        None | Some(ORGANIZATION_ID) => Ok((ORGANIZATION_ID.to_owned(), "organization".to_owned())),
        Some(_) => Err(("id", format!("The organization's id is {ORGANIZATION_ID} (or leave id out)"))),
    }
}

/// Rewrites the sharing lists of `objects` (owner required on each), all or nothing.
async fn replace<T: Shared>(
    state: &AppState,
    caller: &Caller,
    objects: Vec<Versioned<T>>,
    list: Vec<SharedRole>,
    hidden: impl Fn() -> ApiError,
) -> Result<StatusCode, ApiError> {
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

pub async fn workload_get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    read_list::<Workload>(&state, &caller, &keys::workload(&id), || ApiError::workload_not_found(&id), uri).await
}

pub async fn workload_patch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    patch_one::<Workload>(&state, &caller, &keys::workload(&id), || ApiError::workload_not_found(&id), &body).await
}

pub async fn artifact_get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    read_list::<Artifact>(&state, &caller, &keys::artifact(&id), || ApiError::artifact_not_found(&id), uri).await
}

pub async fn artifact_patch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    patch_one::<Artifact>(&state, &caller, &keys::artifact(&id), || ApiError::artifact_not_found(&id), &body).await
}

/// `PATCH .../sharedRoles` of the one object at `key`: its owner (or the administrator) replaces
/// the list; anyone else gets what `hidden` says (404 without a role, 403 with too little).
async fn patch_one<T: Shared>(
    state: &AppState,
    caller: &Caller,
    key: &str,
    hidden: impl Fn() -> ApiError,
    body: &Bytes,
) -> Result<StatusCode, ApiError> {
    let object = state.meta.get_json::<T>(key).await?;
    allow(object.as_ref().and_then(|o| role_of(caller, o.value.creator(), o.value.shared_roles())), Need::Change, &hidden)?;
    let list = new_list(state, body).await?;
    replace(state, caller, object.into_iter().collect(), list, hidden).await
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
pub async fn repository_get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let members = repository_members(&state, &id).await?;
    let Some(first) = members.first() else { return Err(repository_not_found(&id)) };
    read_list::<Artifact>(&state, &caller, &first.key, || repository_not_found(&id), uri).await
}

pub async fn repository_patch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let members = repository_members(&state, &id).await?;
    let visible = members.iter().any(|a| role_of(&caller, a.value.creator(), a.value.shared_roles()).is_some());
    if !visible {
        return Err(repository_not_found(&id));
    }
    let list = new_list(&state, &body).await?;
    replace(&state, &caller, members, list, || repository_not_found(&id)).await
}
