//! Legacy deployments on `nucleus dev`: only a workload of a locked artifact can be deployed, a
//! workload backs one deployment, the deployment's invoke URL reaches the workload, and its
//! metadata can be read, changed and deleted (the workload stays).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Stack, temp_dir, whoami_artifact, workload};

#[tokio::test]
async fn a_deployment_fronts_one_promoted_workload() {
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;
    let (_, created) = stack.post("/workloads", workload("served", whoami_artifact("served", &[]), 1)).await;
    let workload_id = created["id"].as_str().unwrap().to_owned();
    stack.wait_status(&workload_id, "running").await;

    let (code, refused) = stack.post("/console/deployments", json!({"name": "prod", "workloadId": workload_id})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "a draft cannot be deployed: {refused}");
    assert!(refused["detail"].as_str().unwrap().contains("promote"), "{refused}");
    let (code, unknown) = stack.post("/console/deployments", json!({"name": "prod", "workloadId": "000000000000000000000000"})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{unknown}");
    assert_eq!(unknown["detail"][0]["loc"], json!(["body", "workloadId"]));

    let (code, _) = stack.post(&format!("/workloads/{workload_id}/promote"), json!({})).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let (code, deployment) =
        stack.post("/console/deployments", json!({"name": "prod", "workloadId": workload_id, "importance": "high"})).await;
    assert_eq!(code, StatusCode::CREATED, "{deployment}");
    let id = deployment["id"].as_str().unwrap().to_owned();
    assert_eq!(deployment["importance"], "high");
    assert!(deployment["endpoint"].as_str().unwrap().ends_with(&format!("/api/v2/endpoints/deployments/{id}/")), "{deployment}");
    let (code, twice) = stack.post("/console/deployments", json!({"name": "again", "workloadId": workload_id})).await;
    assert_eq!(code, StatusCode::CONFLICT, "one deployment per workload: {twice}");

    let (code, echo) = stack.get(&format!("/endpoints/deployments/{id}/some/path?x=1")).await;
    assert_eq!(code, StatusCode::OK, "{echo}");
    assert_eq!((echo["path"].as_str(), echo["query"].as_str()), (Some("/some/path"), Some("x=1")));

    let (code, page) = stack.get("/console/deployments").await;
    assert_eq!((code, page["count"].as_u64()), (StatusCode::OK, Some(1)));
    let (code, renamed) = stack.call(Method::PATCH, &format!("/console/deployments/{id}"), Some(json!({"name": "production"}))).await;
    assert_eq!((code, renamed["name"].as_str()), (StatusCode::OK, Some("production")));
    let (code, stats) = stack.get(&format!("/console/deployments/{id}/stats")).await;
    assert_eq!(code, StatusCode::OK, "{stats}");
    assert!(stats["metrics"]["totalRequests"].is_u64(), "{stats}");

    let (code, _) = stack.call(Method::DELETE, &format!("/console/deployments/{id}"), None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _) = stack.get(&format!("/console/deployments/{id}")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = stack.get(&format!("/endpoints/deployments/{id}/x")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = stack.get(&format!("/workloads/{workload_id}")).await;
    assert_eq!(code, StatusCode::OK, "the workload stays");
    // Its workload can be deployed again.
    let (code, _) = stack.post("/console/deployments", json!({"name": "prod-2", "workloadId": workload_id})).await;
    assert_eq!(code, StatusCode::CREATED);
}
