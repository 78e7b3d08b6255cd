use axum::http::StatusCode;
use serde_json::json;

use crate::harness::Api;

#[tokio::test]
async fn promote_locks_a_draft_once_and_removes_its_expiry() {
    let api = Api::start().await;
    let w = api.workload("w").await;
    let id = w["id"].as_str().unwrap();
    assert!(w["expiresAt"].is_string(), "a draft workload expires: {w}");

    let (code, promoted) = api.post(&format!("/workloads/{id}/promote"), json!({})).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{promoted}");
    assert!(promoted["expiresAt"].is_null(), "{promoted}");
    let (_, artifact) = api.get(&format!("/artifacts/{}", promoted["artifactId"].as_str().unwrap())).await;
    assert_eq!((artifact["status"].clone(), artifact["version"].clone()), (json!("locked"), json!(1)));
    let (_, history) = api.get(&format!("/workloads/{id}/history")).await;
    assert_eq!(history["data"][0]["name"], "promote", "{history}");

    let (code, body) = api.post(&format!("/workloads/{id}/promote"), json!({})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "only drafts: {body}");
}
