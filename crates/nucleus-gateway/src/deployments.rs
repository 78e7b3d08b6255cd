//! The legacy deployments (docs/api/README.md, "Legacy deployments"): `/console/deployments` CRUD, `/stats`, and the stable
//! invoke URL `/api/v2/endpoints/deployments/{id}/...`. A deployment fronts one workload whose
//! artifact is locked, and a workload backs at most one deployment.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use nucleus_api::deployment::{CreateDeploymentRequest, Deployment, UpdateDeploymentRequest};
use nucleus_api::validation::{self, Loc};
use nucleus_api::{Artifact, ArtifactStatus, FieldError};
use nucleus_client::{Txn, Versioned, keys};

use crate::access::Need;
use crate::auth::Caller;
use crate::listing::{Window, check, paginate};
use crate::request::{Query, base_url, json_body};
use crate::workloads::load as load_workload;
use crate::{ApiError, AppState, ids};

pub const PREFIX: &str = "/api/v2/endpoints/deployments/";

fn formatted(mut deployment: Deployment, base: &str) -> Deployment {
    deployment.endpoint = Some(format!("{base}{PREFIX}{}/", deployment.id));
    deployment
}

/// The deployment, if `caller` may do `need` with its workload (a deployment whose workload is
/// gone can still be read and deleted by the administrator).
pub(crate) async fn load(state: &AppState, caller: &Caller, id: &str, need: Need) -> Result<Versioned<Deployment>, ApiError> {
    let not_found = || ApiError::NotFound(format!("Deployment {id} not found"));
    let deployment = state.meta.get_json::<Deployment>(&keys::deployment(id)).await?.ok_or_else(not_found)?;
    match load_workload(state, caller, &deployment.value.workload_id, need).await {
        Ok(_) => Ok(deployment),
        Err(ApiError::NotFound(_)) if *caller == Caller::Admin => Ok(deployment),
        Err(ApiError::NotFound(_)) => Err(not_found()),
        Err(err) => Err(err),
    }
}

pub async fn create(State(state): State<AppState>, Extension(caller): Extension<Caller>, body: Bytes) -> Result<Response, ApiError> {
    let req: CreateDeploymentRequest = json_body(&body)?;
    let mut errors = Vec::new();
    validation::name(&req.name, &Loc::body().key("name"), &mut errors);
    check(errors)?;
    let workload = match load_workload(&state, &caller, &req.workload_id, Need::Change).await {
        Ok(w) => w.value,
        Err(ApiError::NotFound(_)) => {
            return Err(ApiError::Validation(vec![FieldError::new(
                &Loc::body().key("workloadId"),
                format!("Workload {} not found", req.workload_id),
                "value_error",
            )]));
        }
        Err(err) => return Err(err),
    };
    let artifact = match &workload.artifact_id {
        Some(a) => state.meta.get_json::<Artifact>(&keys::artifact(a)).await?.map(|a| a.value),
        None => None,
    };
    if artifact.as_ref().is_none_or(|a| a.status != ArtifactStatus::Locked) {
        return Err(ApiError::Unprocessable(format!(
            "Workload {} runs a draft artifact; only workloads of registered (locked) artifacts can be deployed: promote it first",
            workload.id
        )));
    }
    let now = nucleus_api::clock::now();
    let deployment = Deployment {
        id: ids::new_id(),
        name: req.name,
        description: req.description.unwrap_or_default(),
        workload_id: workload.id.clone(),
        importance: req.importance.unwrap_or(workload.importance),
        endpoint: None,
        permissions: vec!["*".to_owned()],
        created_at: now,
        updated_at: now,
    };
    let txn = Txn::new()
        .require(&keys::deployment_of_workload(&workload.id), 0)
        .put_json(&keys::deployment_of_workload(&workload.id), &deployment.id)?
        .put_json(&keys::deployment(&deployment.id), &deployment)?;
    if !state.meta.write(txn).await?.applied() {
        return Err(ApiError::Conflict(format!("Workload {} already backs a deployment; one workload per deployment", workload.id)));
    }
    Ok((StatusCode::CREATED, Json(formatted(deployment, base_url(&state)))).into_response())
}

pub async fn list(State(state): State<AppState>, Extension(caller): Extension<Caller>, uri: Uri) -> Result<Response, ApiError> {
    let query = Query::parse(uri.query());
    let mut errors = Vec::new();
    let window = Window::from_query(&query, &mut errors);
    check(errors)?;
    let base = base_url(&state);
    let mut items: Vec<Deployment> = Vec::new();
    for d in state.meta.list_json::<Deployment>(keys::DEPLOYMENTS).await? {
        if load_workload(&state, &caller, &d.value.workload_id, Need::Read).await.is_ok() {
            items.push(formatted(d.value, base));
        }
    }
    items.sort_by_key(|d| std::cmp::Reverse(d.created_at));
    Ok(Json(paginate(items, &window, &query, &state, &uri)).into_response())
}

pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Deployment>, ApiError> {
    Ok(Json(formatted(load(&state, &caller, &id, Need::Read).await?.value, base_url(&state))))
}

pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Deployment>, ApiError> {
    let patch: UpdateDeploymentRequest = json_body(&body)?;
    let mut errors = Vec::new();
    if let Some(name) = &patch.name {
        validation::name(name, &Loc::body().key("name"), &mut errors);
    }
    check(errors)?;
    load(&state, &caller, &id, Need::Change).await?;
    let updated = state
        .meta
        .update_json::<Deployment, ApiError>(&keys::deployment(&id), |d| {
            if let Some(name) = &patch.name {
                d.name.clone_from(name);
            }
            if let Some(description) = &patch.description {
                d.description.clone_from(description);
            }
            if let Some(importance) = patch.importance {
                d.importance = importance;
            }
            d.updated_at = nucleus_api::clock::now();
            Ok(())
        })
        .await??
        .ok_or_else(|| ApiError::NotFound(format!("Deployment {id} not found")))?;
    Ok(Json(formatted(updated, base_url(&state))))
}

/// Removes the deployment (its workload stays).
pub async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let current = load(&state, &caller, &id, Need::Change).await?;
    let txn = Txn::new()
        .require(&current.key, current.mod_revision)
        .delete(&current.key)
        .delete(&keys::deployment_of_workload(&current.value.workload_id));
    if !state.meta.write(txn).await?.applied() {
        return Err(ApiError::Conflict(format!("Deployment {id} changed meanwhile; retry")));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The statistics of the deployment's workload.
pub async fn stats(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Json<nucleus_api::stats::ProtonRequestStats>, ApiError> {
    let deployment = load(&state, &caller, &id, Need::Read).await?.value;
    crate::stats::endpoints::get(State(state), Extension(caller), Path(deployment.workload_id), uri).await
}
