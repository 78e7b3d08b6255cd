use axum::http::StatusCode;
use serde_json::json;

use crate::harness::{Api, locs};

#[tokio::test]
async fn a_deployment_fronts_one_locked_workload() {
    let api = Api::start().await;
    let w = api.workload("w").await;
    let id = w["id"].as_str().unwrap();
    let ask = json!({"name": "prod", "workloadId": id});

    let (code, body) = api.post("/console/deployments", ask.clone()).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "a draft cannot be deployed: {body}");
    let (code, body) = api.post("/console/deployments", json!({"name": "prod", "workloadId": "000000000000000000000000"})).await;
    assert_eq!((code, locs(&body)), (StatusCode::UNPROCESSABLE_ENTITY, vec![json!(["body", "workloadId"])]));

    api.post(&format!("/workloads/{id}/promote"), json!({})).await;
    let (code, deployment) = api.post("/console/deployments", ask.clone()).await;
    assert_eq!(code, StatusCode::CREATED, "{deployment}");
    let (code, _) = api.post("/console/deployments", ask).await;
    assert_eq!(code, StatusCode::CONFLICT, "one deployment per workload");

    let dep = deployment["id"].as_str().unwrap();
    let (code, _) = api.delete(&format!("/console/deployments/{dep}")).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _) = api.get(&format!("/console/deployments/{dep}")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}
