//! `/users` (Nucleus's own, not in the Workload API): the administrator creates users and API
//! tokens; a user may list itself and make tokens for itself. A token is shown once, at creation.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use nucleus_api::FieldError;
use nucleus_api::identity::{CreateUserRequest, TokenCreated, TokenRecord, User};
use nucleus_api::validation::Loc;
use nucleus_client::{Txn, keys};

use crate::auth::{Caller, token_hash};
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

/// A new API token for the user (the administrator, or the user itself).
pub async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if caller != Caller::Admin && caller.id() != id {
        return Err(ApiError::Forbidden("You can only make tokens for yourself".to_owned()));
    }
    if state.meta.get(&keys::user(&id)).await?.is_none() {
        return Err(ApiError::NotFound(format!("User {id} not found")));
    }
    let secret = format!("nct_{:032x}{:032x}", uuid::Uuid::new_v4().as_u128(), uuid::Uuid::new_v4().as_u128());
    let record = TokenRecord { user_id: id.clone(), created_at: nucleus_api::clock::now() };
    let key = keys::token(&token_hash(&secret));
    state.meta.write(Txn::new().require(&key, 0).put_json(&key, &record)?).await?;
    Ok((StatusCode::CREATED, Json(TokenCreated { token: secret, user_id: id, created_at: record.created_at })).into_response())
}
