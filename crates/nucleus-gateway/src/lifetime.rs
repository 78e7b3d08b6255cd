//! A workload's lifetime (docs/api/README.md, "Lifetime"): a draft workload expires `draft_ttl` (8 hours) after it was
//! created or last started, and the scheduler then removes it; `POST /workloads/{id}/promote` locks
//! its artifact (assigning the repository's next version), removes the expiry, resets the
//! statistics and records the promotion in `GET /workloads/{id}/history`. Nothing restarts: same id, endpoint and protons.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use nucleus_api::replacement::{Replacement, ReplacementStatus};
use nucleus_api::{ArtifactStatus, Workload, WorkloadEvent};
use nucleus_client::{Txn, keys};
use serde_json::json;

use crate::access::Need;
use crate::artifacts::{lock, write_if_unchanged};
use crate::auth::Caller;
use crate::listing::{Window, check, paginate};
use crate::replacements::TENANT_ID;
use crate::request::{Query, base_url};
use crate::workloads::{current_artifact, formatted, load};
use crate::{ApiError, AppState};

/// When a draft workload (re)started now expires.
pub fn draft_expiry(state: &AppState) -> nucleus_api::Timestamp {
    let ttl = chrono::Duration::from_std(state.config.draft_ttl).unwrap_or(chrono::Duration::hours(8));
    nucleus_api::clock::now() + ttl
}

pub async fn promote(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let workload = load(&state, &caller, &id, Need::Change).await?;
    if workload.value.proton_id.is_none() {
        return Err(ApiError::Unprocessable(format!("Workload {id} has no active proton; there is nothing to promote")));
    }
    if workload.value.active_replacement().is_some() {
        return Err(ApiError::Unprocessable(format!(
            "Workload {id} has a replacement in progress; promote it once the replacement has completed or been cancelled"
        )));
    }
    let artifact = current_artifact(&state, &workload.value, "to promote").await?;
    let artifact_id = artifact.value.id.clone();
    // A locked artifact with an expiry left is a promotion that stopped half-way (or an artifact
    // locked directly): finish it. Otherwise only drafts can be promoted.
    if artifact.value.status == ArtifactStatus::Locked && workload.value.expires_at.is_none() {
        return Err(ApiError::Unprocessable(format!(
            "The artifact {artifact_id} of workload {id} is not a draft (it is locked as version {}); only draft workloads can be promoted",
            artifact.value.version.unwrap_or_default()
        )));
    }
    let mut locked = artifact.value.clone();
    if locked.status != ArtifactStatus::Locked {
        lock(&state, &mut locked).await?;
        write_if_unchanged(&state, &artifact, &locked).await?;
    }
    let now = nucleus_api::clock::now();
    let message = format!("Promoted: artifact {artifact_id} locked as version {}", locked.version.unwrap_or_default());
    let record = Replacement {
        message: Some(message),
        ..Replacement::new("promote".to_owned(), &id, &artifact_id, ReplacementStatus::Completed, caller.id(), TENANT_ID, now)
    };
    let promoted = loop {
        let current = load(&state, &caller, &id, Need::Change).await?;
        let mut w: Workload = current.value.clone();
        w.expires_at = None;
        w.artifact = Some(locked.info());
        w.updated_at = now;
        let mut event = WorkloadEvent::new(
            &id,
            "workloadPromoted",
            json!({
                "message": record.message, "artifactId": artifact_id, "version": locked.version,
            }),
        );
        event.actor_id = Some(caller.id().to_owned());
        let txn = Txn::new()
            .require(&current.key, current.mod_revision)
            .put_json(&current.key, &w)?
            .put_json(&keys::history(&id, &record.id), &record)?
            .put_json(&keys::event(&id, &event.id), &event)?
            .delete_prefix(&keys::stats_of(&id)); // a promoted workload starts its statistics afresh
        if state.meta.write(txn).await?.applied() {
            state.stats.forget(&id);
            break w;
        }
        // The scheduler wrote the status meanwhile: apply the promotion to the fresh document.
    };
    Ok((StatusCode::ACCEPTED, Json(formatted(promoted, base_url(&state), &caller))).into_response())
}

/// Past replacements and promotions, newest first.
pub async fn history(
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
    let mut records: Vec<Replacement> =
        state.meta.list_json::<Replacement>(&keys::history_of(&id)).await?.into_iter().map(|r| r.value).collect();
    records.reverse();
    Ok(Json(paginate(records, &window, &query, &state, &uri)).into_response())
}
