//! `/workloads`: create (with an inline artifact or a reference), list, read, metadata updates,
//! start, stop and delete. Handlers only record intent in meta; the scheduler makes it happen.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use nucleus_api::identity::Role;
use nucleus_api::proton::ProtonStatusDetails;
use nucleus_api::validation::{self, Loc};
use nucleus_api::workload::{WorkloadOperationResponse, WorkloadSettings};
use nucleus_api::{
    Artifact, ArtifactStatus, CreateWorkloadRequest, DesiredState, Proton, ProtonRole, ProtonStatus, UpdateWorkloadRequest, Workload,
    WorkloadEvent, WorkloadRuntime,
};
use nucleus_client::{Txn, Versioned, WriteOutcome, keys};
use serde_json::json;

use crate::access::{Need, allow, permissions, role_of};
use crate::artifacts::{json_name, new_artifact};
use crate::auth::Caller;
use crate::lifetime::draft_expiry;
use crate::listing::{CommonFilters, Window, check, order, paginate};
use crate::request::{Query, base_url, json_body, workload_endpoint};
use crate::{ApiError, AppState, ids};

/// A workload as returned to `caller`: its stored document plus the absolute invoke URL and the
/// caller's permissions (the sharing list is read through `.../sharedRoles`).
pub fn formatted(mut workload: Workload, base: &str, caller: &Caller) -> Workload {
    workload.endpoint = Some(workload_endpoint(base, &workload.id));
    let role = role_of(caller, workload.creator.as_ref(), &workload.shared_roles);
    workload.permissions = role.map(|r| permissions(caller, r)).unwrap_or_default();
    workload.shared_roles.clear();
    workload
}

pub async fn create(State(state): State<AppState>, Extension(caller): Extension<Caller>, body: Bytes) -> Result<Response, ApiError> {
    let req: CreateWorkloadRequest = json_body(&body)?;
    check(validation::create_workload(&req))?;
    let now = nucleus_api::clock::now();
    // The artifact and the revision it was read at (None: inline, not written yet).
    let (artifact, artifact_revision) = match (&req.artifact, &req.artifact_id) {
        (Some(inline), _) => {
            crate::exec_rules::check(&state, &caller, &inline.spec, true).await?;
            (new_artifact(&state, inline.clone(), &caller).await?, None)
        }
        (None, Some(id)) => {
            let Some(existing) = state.meta.get_json::<Artifact>(&keys::artifact(id)).await? else {
                return Err(ApiError::artifact_not_found(id));
            };
            allow(role_of(&caller, existing.value.creator.as_ref(), &existing.value.shared_roles), Need::Read, || {
                ApiError::artifact_not_found(id)
            })?;
            let mut errors = Vec::new();
            if existing.value.spec.primary().is_none() {
                errors.push(nucleus_api::FieldError::new(
                    &Loc::body().key("artifactId"),
                    format!("Artifact {id} has no primary container; a workload needs one"),
                    "value_error",
                ));
            }
            if let Some(rt) = &req.runtime {
                validation::runtime(rt, &existing.value.spec, &Loc::body().key("runtime"), &mut errors);
            }
            check(errors)?;
            crate::exec_rules::check(&state, &caller, &existing.value.spec, false).await?;
            (existing.value, Some(existing.mod_revision))
        }
        (None, None) => unreachable!("validation requires artifact or artifactId"),
    };
    let group_names: Vec<String> = artifact.spec.container_groups.iter().map(|g| g.name.clone()).collect();
    let runtime = req.runtime.clone().unwrap_or_default().normalized(&group_names);
    let workload_id = ids::new_id();
    let proton = new_proton(&workload_id, format!("{}-v1", req.name), &artifact, ProtonRole::Active, &runtime, now)?;
    let workload = Workload {
        id: workload_id.clone(),
        name: req.name.clone(),
        description: req.description.clone().unwrap_or_default(),
        status: ProtonStatus::Submitted,
        importance: req.importance.unwrap_or_default(),
        workload_type: artifact.artifact_type,
        artifact_id: Some(artifact.id.clone()),
        artifact: Some(artifact.info()),
        endpoint: None,
        runtime,
        proton_id: Some(proton.id.clone()),
        replacement: None,
        owners: vec![caller.user_data()],
        creator: Some(caller.user_data()),
        permissions: vec!["*".to_owned()],
        tags: Vec::new(),
        created_at: now,
        updated_at: now,
        status_details: None,
        desired_state: DesiredState::Running,
        expires_at: (artifact.status == ArtifactStatus::Draft).then(|| draft_expiry(&state)),
        request_stats: None,
        shared_roles: Vec::new(),
    };
    let mut event = WorkloadEvent::new(
        &workload_id,
        "workloadCreated",
        json!({
            "message": format!("Workload created with artifact {} ({} replica(s))", artifact.id, proton.replica_count),
            "protonId": proton.id,
        }),
    );
    event.actor_id = Some(caller.id().to_owned());
    let txn = Txn::new()
        .require(&keys::workload(&workload_id), 0)
        .put_json(&keys::workload(&workload_id), &workload)?
        .put_json(&keys::proton(&workload_id, &proton.id), &proton)?
        .put_json(&keys::event(&workload_id, &event.id), &event)?;
    write_with_artifact(&state, &artifact, artifact_revision, &workload_id, txn).await?;
    let base = base_url(&state);
    Ok((StatusCode::CREATED, Json(formatted(workload, base, &caller))).into_response())
}

/// A proton of `artifact`'s primary container for `workload_id`, to run with `runtime` (normalized
/// to the artifact's groups): submitted, not placed yet.
pub(crate) fn new_proton(
    workload_id: &str,
    name: String,
    artifact: &Artifact,
    role: ProtonRole,
    runtime: &WorkloadRuntime,
    now: nucleus_api::Timestamp,
) -> Result<Proton, ApiError> {
    let Some((group, container)) = artifact.spec.primary() else {
        return Err(ApiError::Unprocessable(format!("Artifact {} has no primary container; a workload needs one", artifact.id)));
    };
    Ok(Proton {
        id: ids::new_id(),
        name,
        workload_id: workload_id.to_owned(),
        artifact_id: artifact.id.clone(),
        role: Some(role),
        status: ProtonStatus::Submitted,
        status_details: ProtonStatusDetails::default(),
        endpoint: None,
        replica_count: runtime.replicas_for(&group.name),
        runtime: runtime.clone(),
        running_since: None,
        created_at: now,
        updated_at: now,
        desired_state: DesiredState::Running,
        generation: 1,
        container: container.clone(),
        agent: None,
        message: None,
        traceparent: nucleus_telemetry::trace::current_traceparent(),
    })
}

/// The artifact a workload runs now; `missing` says what cannot be done without one.
pub(crate) async fn current_artifact(state: &AppState, workload: &Workload, missing: &str) -> Result<Versioned<Artifact>, ApiError> {
    let id = &workload.id;
    let Some(artifact_id) = &workload.artifact_id else {
        return Err(ApiError::Unprocessable(format!("Workload {id} has no artifact {missing}")));
    };
    state
        .meta
        .get_json::<Artifact>(&keys::artifact(artifact_id))
        .await?
        .ok_or_else(|| ApiError::Unprocessable(format!("The artifact {artifact_id} of workload {id} no longer exists")))
}

/// Writes a new workload (`workload_txn`, in its shard) that uses `artifact` (root group), with no
/// transaction spanning both groups, such that a concurrent artifact delete never leaves the
/// workload without its artifact. The delete reads the artifact at R, finds no workload using it,
/// then deletes on condition R; so, after the workload is written, the artifact is rewritten
/// unchanged on condition of the revision read here ("bumped"). Either the bump commits first and
/// the delete's condition fails, or the delete commits first, the bump finds the artifact gone and
/// the workload is rolled back (409). An inline artifact (`revision` None) is written first; if the
/// workload write then definitely failed, the artifact is removed again.
async fn write_with_artifact(
    state: &AppState,
    artifact: &Artifact,
    revision: Option<u64>,
    workload_id: &str,
    workload_txn: Txn,
) -> Result<(), ApiError> {
    let key = keys::artifact(&artifact.id);
    let (mut revision, inline) = match revision {
        Some(revision) => (revision, false),
        None => match state.meta.write(Txn::new().require(&key, 0).put_json(&key, artifact)?).await? {
            WriteOutcome::Applied { revision } => (revision, true),
            WriteOutcome::Conflict { .. } => {
                return Err(ApiError::Conflict(format!("Artifact {} already exists; retry", artifact.id)));
            }
        },
    };
    let written = state.meta.write(workload_txn).await;
    if !matches!(written, Ok(WriteOutcome::Applied { .. })) {
        // A transient error may hide a write that did apply: then keep the artifact (an unused
        // artifact is harmless, a workload without one is not).
        let maybe_applied = written.as_ref().is_err_and(nucleus_client::Error::is_transient);
        if inline && !maybe_applied {
            let undo = Txn::new().require(&key, revision).delete(&key);
            if let Err(err) = state.meta.write(undo).await {
                tracing::warn!(artifact = artifact.id, error = %err, "could not remove the artifact of a failed create");
            }
        }
        return Err(match written {
            Err(err) => err.into(),
            Ok(_) => ApiError::Conflict(format!("Workload {workload_id} already exists; retry")),
        });
    }
    let mut current = artifact.clone();
    loop {
        let bump = Txn::new().require(&key, revision).put_json(&key, &current)?;
        if state.meta.write(bump).await?.applied() {
            return Ok(());
        }
        match state.meta.get_json::<Artifact>(&key).await? {
            // Changed otherwise (renamed, locked...): bump what is there now.
            Some(doc) => (revision, current) = (doc.mod_revision, doc.value),
            None => {
                // Like a workload delete: the scheduler stops and forgets the proton, which may
                // already have been launched (deleting it here could orphan its replicas).
                let rollback = Txn::new().delete(&keys::workload(workload_id)).delete_prefix(&keys::events_of(workload_id));
                state.meta.write(rollback).await?;
                return Err(ApiError::Conflict(format!("Artifact {} was deleted while the workload was being created", artifact.id)));
            }
        }
    }
}

pub async fn list(State(state): State<AppState>, Extension(caller): Extension<Caller>, uri: Uri) -> Result<Response, ApiError> {
    let query = Query::parse(uri.query());
    let mut errors = Vec::new();
    let window = Window::from_query(&query, &mut errors);
    let search = query.one("search").map(str::to_lowercase);
    let statuses = query.all("status");
    for (i, s) in statuses.iter().enumerate() {
        if ProtonStatus::parse(s).is_none() {
            errors.push(nucleus_api::FieldError::new(
                &Loc::query().key("status").index(i),
                format!("'{s}' is not a workload status"),
                "enum",
            ));
        }
    }
    let importance = query.all("importance");
    let artifact_id = query.one("artifactId");
    let artifact_statuses = query.all("artifactStatus");
    let repository = query.one("repositoryId");
    let common = CommonFilters::from_query(&query);
    let artifact_status = |w: &Workload| w.artifact.as_ref().and_then(|a| a.status).map(|s| json_name(&s));
    let mut items: Vec<Workload> = state
        .meta
        .list_json::<Workload>(keys::WORKLOADS)
        .await?
        .into_iter()
        .map(|w| w.value)
        .filter(|w| role_of(&caller, w.creator.as_ref(), &w.shared_roles).is_some_and(|r| r >= Role::User))
        .filter(|w| search.as_ref().is_none_or(|s| w.name.to_lowercase().contains(s) || w.description.to_lowercase().contains(s)))
        .filter(|w| statuses.is_empty() || statuses.iter().any(|s| w.status.as_str() == s))
        .filter(|w| importance.is_empty() || importance.contains(&json_name(&w.importance)))
        .filter(|w| artifact_id.is_none_or(|a| w.artifact_id.as_deref() == Some(a)))
        .filter(|w| {
            artifact_statuses.is_empty()
                || artifact_status(w).is_some_and(|s| artifact_statuses.iter().any(|a| *a == s || (a == "registered" && s == "locked")))
        })
        .filter(|w| repository.is_none_or(|r| w.artifact.as_ref().and_then(|a| a.artifact_repository_id.as_deref()) == Some(r)))
        .filter(|w| common.keep(w))
        .collect();
    order(
        &mut items,
        &query,
        &["status", "importance"],
        |field, a, b| match field {
            "status" => Some(a.status.as_str().cmp(b.status.as_str())),
            "importance" => Some(a.importance.cmp(&b.importance)),
            _ => None,
        },
        &mut errors,
    );
    check(errors)?;
    let base = base_url(&state);
    let service_stats = query.one("serviceStats").is_some_and(|v| v == "true" || v == "1");
    let items: Vec<Workload> = items.into_iter().map(|w| formatted(w, base, &caller)).collect();
    let mut page = paginate(items, &window, &query, &state, &uri);
    if service_stats {
        for w in &mut page.data {
            w.request_stats = Some(crate::stats::endpoints::request_stats(&state, w).await?);
        }
    }
    Ok(Json(page).into_response())
}

/// The workload, if `caller` may do `need` with it (404 if it cannot see it, 403 if it may not).
pub async fn load(state: &AppState, caller: &Caller, id: &str, need: Need) -> Result<Versioned<Workload>, ApiError> {
    let workload = state.meta.get_json::<Workload>(&keys::workload(id)).await?.ok_or_else(|| ApiError::workload_not_found(id))?;
    allow(role_of(caller, workload.value.creator.as_ref(), &workload.value.shared_roles), need, || ApiError::workload_not_found(id))?;
    Ok(workload)
}

pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Workload>, ApiError> {
    let workload = load(&state, &caller, &id, Need::Read).await?;
    Ok(Json(formatted(workload.value, base_url(&state), &caller)))
}

pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Workload>, ApiError> {
    let patch: UpdateWorkloadRequest = json_body(&body)?;
    let mut errors = Vec::new();
    if let Some(name) = &patch.name {
        validation::name(name, &Loc::body().key("name"), &mut errors);
    }
    check(errors)?;
    load(&state, &caller, &id, Need::Change).await?;
    let updated = state
        .meta
        .update_json::<Workload, ApiError>(&keys::workload(&id), |w| {
            if let Some(name) = &patch.name {
                w.name.clone_from(name);
            }
            if let Some(description) = &patch.description {
                w.description.clone_from(description);
            }
            if let Some(importance) = patch.importance {
                w.importance = importance;
            }
            w.updated_at = nucleus_api::clock::now();
            Ok(())
        })
        .await??
        .ok_or_else(|| ApiError::workload_not_found(&id))?;
    Ok(Json(formatted(updated, base_url(&state), &caller)))
}

/// Deleting is legal in any state: the workload is gone at once (GET answers 404), and the
/// scheduler stops and removes its protons, which no longer have a workload.
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let current = load(&state, &caller, &id, Need::Change).await?;
    let txn = Txn::new()
        .require(&current.key, current.mod_revision)
        .delete(&current.key)
        .delete_prefix(&keys::events_of(&id))
        .delete_prefix(&keys::history_of(&id));
    if !state.meta.write(txn).await?.applied() {
        // Changed meanwhile (a status update): deleting is still what was asked.
        let txn = Txn::new().delete(&current.key).delete_prefix(&keys::events_of(&id)).delete_prefix(&keys::history_of(&id));
        state.meta.write(txn).await?;
    }
    state.recent_spans.forget(&id);
    Ok(StatusCode::NO_CONTENT)
}

/// What `start`/`stop` found and did.
enum Transition {
    Started,
    Stopped,
    AlreadyThere,
    Refused(ApiError),
}

pub async fn start(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    change_desired_state(&state, &caller, &id, DesiredState::Running).await
}

pub async fn stop(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    change_desired_state(&state, &caller, &id, DesiredState::Stopped).await
}

async fn change_desired_state(state: &AppState, caller: &Caller, id: &str, wanted: DesiredState) -> Result<Response, ApiError> {
    loop {
        let workload = load(state, caller, id, Need::Change).await?;
        let Some(proton_id) = workload.value.proton_id.clone() else {
            return Err(ApiError::Unprocessable(format!("Workload {id} has no active proton")));
        };
        let proton_key = keys::proton(id, &proton_id);
        let Some(proton) = state.meta.get_json::<Proton>(&proton_key).await? else {
            return Err(ApiError::Unprocessable(format!("Workload {id} has no active proton")));
        };
        let (mut w, mut p) = (workload.value.clone(), proton.value.clone());
        let transition = decide(&mut w, &mut p, wanted);
        if matches!(transition, Transition::Started) && w.expires_at.is_some() {
            w.expires_at = Some(draft_expiry(state)); // a draft's 8 hours start again
        }
        let (code, message) = match transition {
            Transition::Refused(err) => return Err(err),
            Transition::AlreadyThere => {
                let message = format!("Workload is already {}", w.status);
                return Ok(operation(state, id, StatusCode::OK, message));
            }
            Transition::Started => (StatusCode::ACCEPTED, "Workload is starting"),
            Transition::Stopped => (StatusCode::ACCEPTED, "Workload is stopping"),
        };
        let mut event = WorkloadEvent::new(
            id,
            if wanted == DesiredState::Running { "workloadStartRequested" } else { "workloadStopRequested" },
            json!({
                "message": message, "protonId": proton_id,
            }),
        );
        event.actor_id = Some(caller.id().to_owned());
        let txn = Txn::new()
            .require(&workload.key, workload.mod_revision)
            .require(&proton.key, proton.mod_revision)
            .put_json(&workload.key, &w)?
            .put_json(&proton.key, &p)?
            .put_json(&keys::event(id, &event.id), &event)?;
        if state.meta.write(txn).await?.applied() {
            return Ok(operation(state, id, code, message.to_owned()));
        }
        // The scheduler updated the status meanwhile: decide again on fresh documents.
    }
}

fn decide(w: &mut Workload, p: &mut Proton, wanted: DesiredState) -> Transition {
    let now = nucleus_api::clock::now();
    match wanted {
        DesiredState::Running => {
            if w.desired_state == DesiredState::Running && !w.status.is_failure() {
                return Transition::AlreadyThere;
            }
            if w.status == ProtonStatus::Stopping || p.status == ProtonStatus::Stopping {
                return Transition::Refused(ApiError::Conflict(format!(
                    "Workload {} is still stopping; start it again once it is stopped",
                    w.id
                )));
            }
            w.desired_state = DesiredState::Running;
            p.desired_state = DesiredState::Running;
            p.generation += 1;
            for status in [&mut w.status, &mut p.status] {
                *status = ProtonStatus::Submitted;
            }
            p.message = None;
            p.status_details = ProtonStatusDetails::default();
            w.status_details = None;
            w.updated_at = now;
            p.updated_at = now;
            Transition::Started
        }
        DesiredState::Stopped => {
            if w.desired_state == DesiredState::Stopped {
                return Transition::AlreadyThere;
            }
            w.desired_state = DesiredState::Stopped;
            p.desired_state = DesiredState::Stopped;
            for status in [&mut w.status, &mut p.status] {
                *status = ProtonStatus::Stopping;
            }
            w.updated_at = now;
            p.updated_at = now;
            Transition::Stopped
        }
    }
}

fn operation(state: &AppState, id: &str, code: StatusCode, message: String) -> Response {
    let track = format!("{}/api/v2/workloads/{id}/", base_url(state));
    (code, Json(WorkloadOperationResponse { status: message, workload_id: id.to_owned(), track_via: track })).into_response()
}

/// Runtime of a workload, for `GET /workloads/{id}/settings`.
pub async fn settings(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<WorkloadSettings>, ApiError> {
    let workload = load(&state, &caller, &id, Need::Read).await?;
    Ok(Json(WorkloadSettings { runtime: workload.value.runtime }))
}
