//! `/groups` (Nucleus's own, beside `/users`): the administrator makes groups of users, which
//! objects can then be shared with (`shareRecipientType: group`). A user sees the groups it is in.
//! Membership counts from the member's next call on this gateway (others within the token cache's
//! 30 s).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use nucleus_api::FieldError;
use nucleus_api::identity::{CreateGroupRequest, GroupMembersRequest, UserGroup};
use nucleus_api::validation::Loc;
use nucleus_client::{Txn, keys};

use crate::auth::Caller;
use crate::listing::{Window, check, paginate};
use crate::request::{Query, json_body};
use crate::users::admin_only;
use crate::{ApiError, AppState, ids};

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound(format!("Group {id} not found; GET /api/v2/groups lists them"))
}

pub async fn create(State(state): State<AppState>, Extension(caller): Extension<Caller>, body: Bytes) -> Result<Response, ApiError> {
    admin_only(&caller)?;
    let req: CreateGroupRequest = json_body(&body)?;
    if !(1..=100).contains(&req.name.chars().count()) {
        check(vec![FieldError::new(&Loc::body().key("name"), "A group name is 1 to 100 characters", "string_too_long")])?;
    }
    let group = UserGroup { id: ids::new_id(), name: req.name, member_ids: Vec::new(), created_at: nucleus_api::clock::now() };
    let key = keys::user_group(&group.id);
    state.meta.write(Txn::new().require(&key, 0).put_json(&key, &group)?).await?;
    Ok((StatusCode::CREATED, Json(group)).into_response())
}

/// Every group for the administrator; a user, the groups it is in.
pub async fn list(State(state): State<AppState>, Extension(caller): Extension<Caller>, uri: Uri) -> Result<Response, ApiError> {
    let query = Query::parse(uri.query());
    let mut errors = Vec::new();
    let window = Window::from_query(&query, &mut errors);
    check(errors)?;
    let mut groups: Vec<UserGroup> = state
        .meta
        .list_json::<UserGroup>(keys::USER_GROUPS)
        .await?
        .into_iter()
        .map(|g| g.value)
        .filter(|g| caller == Caller::Admin || g.member_ids.iter().any(|m| m == caller.id()))
        .collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Json(paginate(groups, &window, &query, &state, &uri)).into_response())
}

/// Adds users (by id) to a group; those already in it stay once.
pub async fn add_members(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<UserGroup>, ApiError> {
    admin_only(&caller)?;
    let req: GroupMembersRequest = json_body(&body)?;
    let mut errors = Vec::new();
    if req.user_ids.is_empty() || req.user_ids.len() > 100 {
        errors.push(FieldError::new(&Loc::body().key("userIds"), "List should have 1 to 100 items", "too_short"));
    }
    for (i, user) in req.user_ids.iter().enumerate() {
        if state.meta.get(&keys::user(user)).await?.is_none() {
            errors.push(FieldError::new(&Loc::body().key("userIds").index(i), "No such user", "value_error"));
        }
    }
    check(errors)?;
    let group = state
        .meta
        .update_json::<UserGroup, ApiError>(&keys::user_group(&id), |group| {
            for user in &req.user_ids {
                if !group.member_ids.contains(user) {
                    group.member_ids.push(user.clone());
                }
            }
            Ok(())
        })
        .await??
        .ok_or_else(|| not_found(&id))?;
    state.tokens.clear();
    Ok(Json(group))
}

pub async fn remove_member(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((id, user)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    admin_only(&caller)?;
    let mut was_member = false;
    state
        .meta
        .update_json::<UserGroup, ApiError>(&keys::user_group(&id), |group| {
            was_member = group.member_ids.contains(&user);
            group.member_ids.retain(|m| *m != user);
            Ok(())
        })
        .await??
        .ok_or_else(|| not_found(&id))?;
    if !was_member {
        return Err(ApiError::NotFound(format!("User {user} is not in group {id}")));
    }
    state.tokens.clear();
    Ok(StatusCode::NO_CONTENT)
}
