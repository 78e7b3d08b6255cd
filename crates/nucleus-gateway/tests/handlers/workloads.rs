use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Api, artifact, locs, workload};

#[tokio::test]
async fn create_refuses_bad_input_whole_and_writes_nothing() {
    let api = Api::start().await;
    let mut bad = workload("w", artifact("a"));
    bad["runtime"]["containerGroups"][0]["replicaCount"] = json!(-1);
    let (code, body) = api.post("/workloads", bad).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(locs(&body), vec![json!(["body", "runtime", "containerGroups", 0, "replicaCount"])]);
    let (code, body) = api.post("/workloads", json!({"name": "w", "artifactId": "000000000000000000000000"})).await;
    assert!(code == StatusCode::NOT_FOUND || code == StatusCode::UNPROCESSABLE_ENTITY, "{code} {body}");
    // The inline artifact of the refused create was not stored either.
    let (_, workloads) = api.get("/workloads").await;
    let (_, artifacts) = api.get("/artifacts").await;
    assert_eq!((workloads["totalCount"].clone(), artifacts["totalCount"].clone()), (json!(0), json!(0)));
}

#[tokio::test]
async fn stop_and_start_follow_the_transition_rules() {
    let api = Api::start().await;
    let created = api.workload("w").await;
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["endpoint"], format!("https://api.example.test/api/v2/endpoints/workloads/{id}/"), "links use the public URL");

    let (code, _) = api.post(&format!("/workloads/{id}/stop"), json!({})).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    // No scheduler runs: the workload stays `stopping`, and a start is refused until it stopped.
    let (code, body) = api.post(&format!("/workloads/{id}/start"), json!({})).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    let (_, after) = api.get(&format!("/workloads/{id}")).await;
    assert_eq!(after["status"], "stopping", "{after}");

    let (code, _) = api.delete(&format!("/workloads/{id}")).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _) = api.get(&format!("/workloads/{id}")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = api.post(&format!("/workloads/{id}/stop"), json!({})).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_token_is_needed_and_other_users_see_nothing_of_a_workload() {
    let api = Api::start().await;
    let (code, _) = api.call_as(None, Method::GET, "/workloads", None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, _) = api.call_as(Some("not-a-token"), Method::GET, "/workloads", None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);

    let (_, alice) = api.user("alice").await;
    let (_, bob) = api.user("bob").await;
    let (code, created) = api.call_as(Some(&alice), Method::POST, "/workloads", Some(workload("mine", artifact("mine")))).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let (code, _) = api.call_as(Some(&bob), Method::GET, &format!("/workloads/{id}"), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "not shared: not there at all");
    let (code, page) = api.call_as(Some(&bob), Method::GET, "/workloads", None).await;
    assert_eq!((code, page["totalCount"].clone()), (StatusCode::OK, json!(0)));
    let (code, page) = api.call_as(Some(&alice), Method::GET, "/workloads", None).await;
    assert_eq!((code, page["totalCount"].clone()), (StatusCode::OK, json!(1)));
}

#[tokio::test]
async fn a_resource_allocation_is_typed_kept_as_given_and_unknown_fields_are_named() {
    let api = Api::start().await;
    let allocation = json!({"cpu": 1.5, "memory": "2GiB", "gpu": 1, "gpuMemory": 25_769_803_776u64});
    let mut body = workload("w", artifact("a"));
    body["artifact"]["spec"]["containerGroups"][0]["containers"][0]["name"] = json!("main");
    body["runtime"]["containerGroups"][0]["containers"] = json!([{"name": "main", "resourceAllocation": allocation}]);
    let mut bad = body.clone();
    bad["runtime"]["containerGroups"][0]["containers"][0]["resourceAllocation"]["gpuType"] = json!("h100");
    let (code, refused) = api.post("/workloads", bad).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(locs(&refused), vec![json!(["body", "runtime", "containerGroups", 0, "containers", 0, "resourceAllocation", "gpuType"])]);

    let (code, created) = api.post("/workloads", body).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let kept = &created["runtime"]["containerGroups"][0]["containers"][0]["resourceAllocation"];
    assert_eq!(*kept, json!({"cpu": 1.5, "memory": "2GiB", "gpu": 1.0, "gpuMemory": 25_769_803_776u64}), "{created}");
}
