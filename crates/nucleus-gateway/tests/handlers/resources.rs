//! Protons, repositories and statistics: the read paths around a workload.

use axum::http::StatusCode;
use serde_json::json;

use crate::harness::{Api, locs};

#[tokio::test]
async fn a_new_workload_has_one_active_proton_and_empty_statistics() {
    let api = Api::start().await;
    let w = api.workload("w").await;
    let id = w["id"].as_str().unwrap();
    let (code, protons) = api.get(&format!("/workloads/{id}/protons")).await;
    assert_eq!((code, protons["totalCount"].clone()), (StatusCode::OK, json!(1)), "{protons}");
    assert_eq!(protons["data"][0]["id"], w["protonId"]);
    let (code, _) = api.get(&format!("/workloads/{id}/protons/000000000000000000000000")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    let (code, stats) = api.get(&format!("/workloads/{id}/stats")).await;
    assert_eq!(code, StatusCode::OK, "{stats}");
    assert!(stats.to_string().contains("totalRequests"), "{stats}");
    let (code, body) = api.get(&format!("/workloads/{id}/stats?startTime=yesterday")).await;
    assert_eq!((code, locs(&body)), (StatusCode::UNPROCESSABLE_ENTITY, vec![json!(["query", "startTime"])]));
    let (code, body) = api.get(&format!("/workloads/{id}/stats/colour")).await;
    assert_eq!((code, locs(&body)), (StatusCode::UNPROCESSABLE_ENTITY, vec![json!(["path", "metric_name"])]));
}

#[tokio::test]
async fn a_repository_in_use_or_with_locked_artifacts_is_not_deleted() {
    let api = Api::start().await;
    let w = api.workload("w").await;
    let (_, artifact) = api.get(&format!("/artifacts/{}", w["artifactId"].as_str().unwrap())).await;
    let repo = artifact["artifactRepositoryId"].as_str().unwrap().to_owned();
    let (code, listed) = api.get("/artifactRepositories").await;
    assert_eq!((code, listed["totalCount"].clone()), (StatusCode::OK, json!(1)), "{listed}");

    let (code, body) = api.delete(&format!("/artifactRepositories/{repo}")).await;
    assert_eq!(code, StatusCode::CONFLICT, "used by the workload: {body}");
    api.delete(&format!("/workloads/{}", w["id"].as_str().unwrap())).await;
    let (code, _) = api.delete(&format!("/artifactRepositories/{repo}")).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _) = api.get(&format!("/artifactRepositories/{repo}")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}
