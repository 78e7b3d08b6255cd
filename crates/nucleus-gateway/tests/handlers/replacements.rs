use axum::http::StatusCode;
use serde_json::json;

use crate::harness::{Api, artifact};

#[tokio::test]
async fn replacement_refuses_what_the_rules_forbid_and_allows_one_at_a_time() {
    let api = Api::start().await;
    let w = api.workload("w").await;
    let id = w["id"].as_str().unwrap();
    let path = format!("/workloads/{id}/replacement");

    let (code, _) = api.get(&path).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "none active");
    let (code, _) = api.post(&path, json!({"artifactId": "000000000000000000000000", "strategy": "rolling"})).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "unknown artifact");

    // draft → locked: refused (promote instead).
    let (_, locked) = api.post("/artifacts", json!({"status": "locked", "name": "l", "spec": artifact("l")["spec"]})).await;
    let (code, body) = api.post(&path, json!({"artifactId": locked["id"], "strategy": "rolling"})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("mismatch"), "{body}");

    // draft → draft: accepted; a second one and a settings change wait for it.
    let (_, next) = api.post("/artifacts", artifact("next")).await;
    let (code, record) = api.post(&path, json!({"artifactId": next["id"], "strategy": "rolling"})).await;
    assert_eq!((code, record["status"].clone()), (StatusCode::ACCEPTED, json!("submitted")), "{record}");
    let (code, _) = api.post(&path, json!({"artifactId": next["id"], "strategy": "rolling"})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let settings = json!({"runtime": {"containerGroups": [{"name": "default", "replicaCount": 2}]}});
    let (code, _) = api.patch(&format!("/workloads/{id}/settings"), settings).await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (code, shown) = api.get(&path).await;
    assert_eq!((code, shown["id"].clone()), (StatusCode::OK, record["id"].clone()));
    let (_, workload) = api.get(&format!("/workloads/{id}")).await;
    assert_eq!(workload["replacement"]["id"], record["id"], "the typed record is on the workload: {workload}");

    // Cancel: the record says so.
    let (code, cancelled) = api.delete(&path).await;
    assert_eq!((code, cancelled["status"].clone()), (StatusCode::ACCEPTED, json!("deleting")), "{cancelled}");
}
