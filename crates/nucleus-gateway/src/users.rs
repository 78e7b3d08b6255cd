//! `/users` (Nucleus's own, not in the Workload API): the administrator creates, disables and
//! deletes users; a user may list itself. Tokens are in [`crate::tokens`].

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use nucleus_api::FieldError;
use nucleus_api::identity::{CreateUserRequest, TokenRecord, UpdateUserRequest, User};
use nucleus_api::validation::Loc;
use nucleus_client::{Txn, keys};

use crate::auth::Caller;
use crate::listing::{Window, check, paginate};
use crate::request::{Query, json_body};
use crate::{ApiError, AppState, ids};

pub(crate) fn admin_only(caller: &Caller) -> Result<(), ApiError> {
    match caller {
        Caller::Admin => Ok(()),
        Caller::User { .. } => Err(ApiError::Forbidden("Only the administrator (the gateway's configured token) manages users".to_owned())),
    }
}

pub async fn create(State(state): State<AppState>, Extension(caller): Extension<Caller>, body: Bytes) -> Result<Response, ApiError> {
    admin_only(&caller)?;
    let req: CreateUserRequest = json_body(&body)?;
    let valid =
        (1..=100).contains(&req.username.chars().count()) && req.username.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    if !valid {
        check(vec![FieldError::new(
            &Loc::body().key("username"),
            "A username is 1 to 100 letters, digits or . _ @ -",
            "string_pattern_mismatch",
        )])?;
    }
    let user = User {
        id: ids::new_id(),
        username: req.username,
        full_name: req.full_name,
        email: req.email,
        created_at: nucleus_api::clock::now(),
        disabled: false,
    };
    let txn = Txn::new()
        .require(&keys::username(&user.username), 0)
        .put_json(&keys::username(&user.username), &user.id)?
        .put_json(&keys::user(&user.id), &user)?;
    if !state.meta.write(txn).await?.applied() {
        return Err(ApiError::Conflict(format!("The username {} is taken; pick another", user.username)));
    }
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

/// Every user for the administrator; a user sees itself.
pub async fn list(State(state): State<AppState>, Extension(caller): Extension<Caller>, uri: Uri) -> Result<Response, ApiError> {
    let query = Query::parse(uri.query());
    let mut errors = Vec::new();
    let window = Window::from_query(&query, &mut errors);
    check(errors)?;
    let users: Vec<User> = state
        .meta
        .list_json::<User>(keys::USERS)
        .await?
        .into_iter()
        .map(|u| u.value)
        .filter(|u| caller == Caller::Admin || u.id == caller.id())
        .collect();
    Ok(Json(paginate(users, &window, &query, &state, &uri)).into_response())
}

/// `PATCH /users/{id}`: disable (or enable) a user, or change its name or email. A disabled
/// user's tokens stop working at once on this gateway, within 30 s on the others.
pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    admin_only(&caller)?;
    let req: UpdateUserRequest = json_body(&body)?;
    let key = keys::user(&id);
    loop {
        let Some(mut user) = state.meta.get_json::<User>(&key).await? else {
            return Err(ApiError::NotFound(format!("User {id} not found")));
        };
        if let Some(disabled) = req.disabled {
            user.value.disabled = disabled;
        }
        if let Some(full_name) = &req.full_name {
            user.value.full_name = Some(full_name.clone());
        }
        if let Some(email) = &req.email {
            user.value.email = Some(email.clone());
        }
        if state.meta.write(Txn::new().require(&key, user.mod_revision).put_json(&key, &user.value)?).await?.applied() {
            state.tokens.clear();
            return Ok(Json(user.value).into_response());
        }
    }
}

/// `DELETE /users/{id}`: the user and every token of theirs. What they created stays, owned by
/// nobody but the administrator and those it was shared with.
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admin_only(&caller)?;
    let Some(user) = state.meta.get_json::<User>(&keys::user(&id)).await? else {
        return Err(ApiError::NotFound(format!("User {id} not found")));
    };
    let tokens = state.meta.list_json::<TokenRecord>(keys::TOKENS).await?;
    let mut txn =
        Txn::new().require(&keys::user(&id), user.mod_revision).delete(&keys::user(&id)).delete(&keys::username(&user.value.username));
    for token in tokens.iter().filter(|t| t.value.user_id == id) {
        txn = txn.delete(&token.key);
    }
    if !state.meta.write(txn).await?.applied() {
        return Err(ApiError::Conflict(format!("User {id} changed while it was being deleted; try again")));
    }
    state.tokens.clear();
    Ok(StatusCode::NO_CONTENT.into_response())
}
