//! `/users/{id}/tokens`: API tokens of a user, made, listed (without their secret) and revoked by
//! the administrator or the user itself. The secret is shown once, at creation; meta keeps its
//! SHA-256 only. A revoked or expired token is refused at once on this gateway and within 30 s
//! (the resolved-token cache) on the others.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use nucleus_api::FieldError;
use nucleus_api::identity::{CreateTokenRequest, TokenCreated, TokenRecord, User};
use nucleus_api::validation::Loc;
use nucleus_client::{Txn, Versioned, keys};

use crate::auth::{Caller, token_hash};
use crate::listing::{Window, check, paginate};
use crate::request::{Query, json_body};
use crate::{ApiError, AppState, ids};

/// How a token made before tokens had ids is named: the start of its hash (not the secret).
fn id_of(token: &Versioned<TokenRecord>) -> String {
    if token.value.id.is_empty() { token.key.trim_start_matches(keys::TOKENS).chars().take(16).collect() } else { token.value.id.clone() }
}

/// The administrator manages everyone's tokens, a user its own; anyone else learns nothing about
/// the user (404, as for a user that does not exist).
async fn owner(state: &AppState, caller: &Caller, user_id: &str) -> Result<(), ApiError> {
    let not_found = || ApiError::NotFound(format!("User {user_id} not found"));
    if *caller != Caller::Admin && caller.id() != user_id {
        return Err(not_found());
    }
    match state.meta.get_json::<User>(&keys::user(user_id)).await? {
        Some(_) => Ok(()),
        None => Err(not_found()),
    }
}

/// `POST /users/{id}/tokens`, with an optional `{name, expiresAt}`.
pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(user_id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: CreateTokenRequest = if body.iter().all(u8::is_ascii_whitespace) { CreateTokenRequest::default() } else { json_body(&body)? };
    let now = nucleus_api::clock::now();
    let mut errors = Vec::new();
    if req.expires_at.is_some_and(|at| at <= now) {
        errors.push(FieldError::new(&Loc::body().key("expiresAt"), "expiresAt must be in the future", "value_error"));
    }
    if req.name.as_ref().is_some_and(|n| n.chars().count() > 100) {
        errors.push(FieldError::new(&Loc::body().key("name"), "String should have at most 100 characters", "string_too_long"));
    }
    check(errors)?;
    owner(&state, &caller, &user_id).await?;
    let secret = format!("nct_{:032x}{:032x}", uuid::Uuid::new_v4().as_u128(), uuid::Uuid::new_v4().as_u128());
    let record = TokenRecord { id: ids::new_id(), user_id, name: req.name, created_at: now, expires_at: req.expires_at };
    let key = keys::token(&token_hash(&secret));
    state.meta.write(Txn::new().require(&key, 0).put_json(&key, &record)?).await?;
    let TokenRecord { id, user_id, name, created_at, expires_at } = record;
    Ok((StatusCode::CREATED, Json(TokenCreated { token: secret, id, user_id, name, created_at, expires_at })).into_response())
}

/// `GET /users/{id}/tokens`: the user's tokens, oldest first, without their secrets.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(user_id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let query = Query::parse(uri.query());
    let mut errors = Vec::new();
    let window = Window::from_query(&query, &mut errors);
    check(errors)?;
    owner(&state, &caller, &user_id).await?;
    let mut tokens: Vec<TokenRecord> = state
        .meta
        .list_json::<TokenRecord>(keys::TOKENS)
        .await?
        .into_iter()
        .filter(|t| t.value.user_id == user_id)
        .map(|t| TokenRecord { id: id_of(&t), ..t.value })
        .collect();
    tokens.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
    Ok(Json(paginate(tokens, &window, &query, &state, &uri)).into_response())
}

/// `DELETE /users/{id}/tokens/{tokenId}`: revoke.
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((user_id, token_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    owner(&state, &caller, &user_id).await?;
    let tokens = state.meta.list_json::<TokenRecord>(keys::TOKENS).await?;
    let Some(token) = tokens.iter().find(|t| t.value.user_id == user_id && id_of(t) == token_id) else {
        return Err(ApiError::NotFound(format!("Token {token_id} not found")));
    };
    state.meta.write(Txn::new().require(&token.key, token.mod_revision).delete(&token.key)).await?;
    state.tokens.clear();
    Ok(StatusCode::NO_CONTENT.into_response())
}
