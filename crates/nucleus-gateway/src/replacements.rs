//! Rolling replacement (docs/api/README.md, "Replacement"): `POST/GET/DELETE /workloads/{id}/replacement` and
//! `PATCH /workloads/{id}/settings`. The gateway records the intent (the `Replacement` on the
//! workload and a candidate proton) in one transaction; the scheduler walks the state machine:
//! candidate running and warmed up → traffic switched in one write of the workload → old proton
//! drained and stopped → completed (and into the history).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use nucleus_api::replacement::{Replacement, ReplacementConfig, ReplacementStatus, StartReplacementRequest, UpdateSettingsRequest};
use nucleus_api::validation::{self, Loc};
use nucleus_api::{Artifact, ArtifactStatus, FieldError, ProtonRole, Workload, WorkloadEvent};
use nucleus_client::{Txn, Versioned, keys};
use serde_json::json;

use crate::access::{Need, allow, role_of};
use crate::auth::Caller;
use crate::listing::check;
use crate::request::json_body;
use crate::workloads::{current_artifact, load, new_proton};
use crate::{ApiError, AppState, ids};

/// The tenant every record names until tenants exist (a fixed UUID v4).
pub const TENANT_ID: &str = nucleus_api::identity::ORGANIZATION_ID;

pub async fn start(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: StartReplacementRequest = json_body(&body)?;
    if req.strategy != "rolling" {
        check(vec![FieldError::new(
            &Loc::body().key("strategy"),
            format!("Input should be 'rolling' (got '{}'); rolling is the only strategy", req.strategy),
            "enum",
        )])?;
    }
    let workload = load(&state, &caller, &id, Need::Change).await?;
    if workload.value.active_replacement().is_some() {
        return Err(ApiError::Unprocessable(format!(
            "A replacement of workload {id} is already in progress; wait for it to finish or cancel it (DELETE .../replacement)"
        )));
    }
    let Some(artifact) = state.meta.get_json::<Artifact>(&keys::artifact(&req.artifact_id)).await? else {
        return Err(ApiError::artifact_not_found(&req.artifact_id));
    };
    allow(role_of(&caller, artifact.value.creator.as_ref(), &artifact.value.shared_roles), Need::Read, || {
        ApiError::artifact_not_found(&req.artifact_id)
    })?;
    let current_status = match &workload.value.artifact_id {
        Some(current) => state.meta.get_json::<Artifact>(&keys::artifact(current)).await?.map(|a| a.value.status),
        None => None,
    };
    if let Some(current_status) = current_status
        && current_status != artifact.value.status
    {
        return Err(ApiError::Unprocessable(format!(
            "Artifact status mismatch: the workload runs a {} artifact and {} is {}; replace drafts with drafts and locked with locked (promote a draft workload instead)",
            status_name(current_status),
            req.artifact_id,
            status_name(artifact.value.status)
        )));
    }
    if artifact.value.status == ArtifactStatus::Locked && workload.value.artifact_id.as_deref() == Some(req.artifact_id.as_str()) {
        return Err(ApiError::Unprocessable(format!(
            "Workload {id} already runs locked artifact {}; replace it with another artifact, or change the runtime with PATCH .../settings",
            req.artifact_id
        )));
    }
    let config = req.config.clone().unwrap_or_default();
    if let Some(gate) = &config.rollback {
        let problems = gate.problems();
        check(
            problems
                .into_iter()
                .map(|(field, msg)| FieldError::new(&Loc::body().key("config").key("rollback").key(field), msg, "value_error"))
                .collect(),
        )?;
    }
    let record = begin(&state, &caller, workload, artifact.value, req.runtime, config, Loc::body().key("runtime")).await?;
    Ok((StatusCode::ACCEPTED, Json(record)).into_response())
}

/// Same artifact, new runtime: a rolling replacement with the default timing. 409 while one is
/// in progress.
pub async fn update_settings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: UpdateSettingsRequest = json_body(&body)?;
    let workload = load(&state, &caller, &id, Need::Change).await?;
    if workload.value.active_replacement().is_some() {
        return Err(ApiError::Conflict(format!(
            "A replacement of workload {id} is already in progress; change the settings once it has finished"
        )));
    }
    let artifact = current_artifact(&state, &workload.value, "to run the new settings with").await?;
    let mut errors = Vec::new();
    validation::runtime(&req.runtime, &artifact.value.spec, &Loc::body().key("runtime"), &mut errors);
    check(errors)?;
    let group_names: Vec<String> = artifact.value.spec.container_groups.iter().map(|g| g.name.clone()).collect();
    let runtime = req.runtime.clone().normalized(&group_names);
    if crate::autoscaling_settings::only_autoscaling_changed(&workload.value.runtime, &runtime) {
        let record = crate::autoscaling_settings::apply(&state, &caller, &workload, runtime).await?;
        return Ok((StatusCode::ACCEPTED, Json(record)).into_response());
    }
    let record =
        begin(&state, &caller, workload, artifact.value, Some(req.runtime), ReplacementConfig::default(), Loc::body().key("runtime"))
            .await?;
    Ok((StatusCode::ACCEPTED, Json(record)).into_response())
}

/// Writes the replacement and its candidate proton.
async fn begin(
    state: &AppState,
    caller: &Caller,
    workload: Versioned<Workload>,
    artifact: Artifact,
    runtime: Option<nucleus_api::WorkloadRuntime>,
    config: ReplacementConfig,
    runtime_loc: Loc,
) -> Result<Replacement, ApiError> {
    let id = workload.value.id.clone();
    let Some(previous) = workload.value.proton_id.clone() else {
        return Err(ApiError::Unprocessable(format!("Workload {id} has no active proton to replace")));
    };
    let mut errors = Vec::new();
    if let Some(rt) = &runtime {
        validation::runtime(rt, &artifact.spec, &runtime_loc, &mut errors);
    }
    check(errors)?;
    let group_names: Vec<String> = artifact.spec.container_groups.iter().map(|g| g.name.clone()).collect();
    let runtime = runtime.unwrap_or_else(|| workload.value.runtime.clone()).normalized(&group_names);
    let now = nucleus_api::clock::now();
    let name = format!("{}-{}", workload.value.name, &ids::new_id()[16..]);
    let candidate = new_proton(&id, name, &artifact, ProtonRole::Candidate, &runtime, now)?;
    let name = format!("replacement of {} by artifact {}", workload.value.name, artifact.id);
    let record = Replacement {
        candidate_proton_ids: vec![candidate.id.clone()],
        previous_proton_ids: vec![previous],
        config,
        runtime: Some(runtime),
        ..Replacement::new(name, &id, &artifact.id, ReplacementStatus::Submitted, caller.id(), TENANT_ID, now)
    };
    let mut w = workload.value.clone();
    w.replacement = Some(record.clone());
    w.updated_at = now;
    let mut event = WorkloadEvent::new(
        &id,
        "replacementCreated",
        json!({
            "message": format!("Replacement started: candidate proton {} with artifact {}", candidate.id, artifact.id),
            "replacementId": record.id, "candidateProtonId": candidate.id,
        }),
    );
    event.actor_id = Some(caller.id().to_owned());
    let txn = Txn::new()
        .require(&workload.key, workload.mod_revision)
        .put_json(&workload.key, &w)?
        .put_json(&keys::proton(&id, &candidate.id), &candidate)?
        .put_json(&keys::event(&id, &event.id), &event)?;
    if !state.meta.write(txn).await?.applied() {
        return Err(ApiError::Conflict(format!("Workload {id} changed meanwhile (another replacement or a status change); retry")));
    }
    Ok(record)
}

pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Replacement>, ApiError> {
    let workload = load(&state, &caller, &id, Need::Read).await?;
    workload
        .value
        .active_replacement()
        .map(Json)
        .ok_or_else(|| ApiError::NotFound("There is no active replacement for this workload.".to_owned()))
}

/// Cancels: the replacement goes `deleting`; the scheduler stops the candidate and the current
/// proton keeps serving.
pub async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    loop {
        let workload = load(&state, &caller, &id, Need::Change).await?;
        let Some(mut record) = workload.value.active_replacement() else {
            return Err(ApiError::NotFound("There is no active replacement for this workload.".to_owned()));
        };
        if record.switched_at.is_some() {
            return Err(ApiError::Conflict(format!(
                "The replacement of workload {id} has already switched traffic to the candidate and is finishing; it cannot be cancelled"
            )));
        }
        record.status = ReplacementStatus::Deleting;
        record.updated_at = nucleus_api::clock::now();
        let mut w = workload.value.clone();
        w.replacement = Some(record.clone());
        let event = WorkloadEvent::new(
            &id,
            "replacementCancelRequested",
            json!({ "message": "Replacement cancel requested", "replacementId": record.id }),
        );
        let txn = Txn::new()
            .require(&workload.key, workload.mod_revision)
            .put_json(&workload.key, &w)?
            .put_json(&keys::event(&id, &event.id), &event)?;
        if state.meta.write(txn).await?.applied() {
            return Ok((StatusCode::ACCEPTED, Json(record)).into_response());
        }
    }
}

fn status_name(status: ArtifactStatus) -> &'static str {
    match status {
        ArtifactStatus::Draft => "draft",
        ArtifactStatus::Locked => "locked",
    }
}
