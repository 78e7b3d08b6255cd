use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Api, artifact, locs, workload};

#[tokio::test]
async fn only_the_administrator_manages_users_and_groups_check_their_members() {
    let api = Api::start().await;
    let (alice_id, alice) = api.user("alice").await;
    let (code, _) = api.call_as(Some(&alice), Method::POST, "/users", Some(json!({"username": "mallory"}))).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, body) = api.post("/users", json!({"username": "alice"})).await;
    assert_eq!(code, StatusCode::CONFLICT, "usernames are unique: {body}");

    let (code, group) = api.post("/groups", json!({"name": "ml"})).await;
    assert_eq!(code, StatusCode::CREATED, "{group}");
    let gid = group["id"].as_str().unwrap();
    let (code, body) = api.post(&format!("/groups/{gid}/users"), json!({"userIds": [alice_id, "nobody"]})).await;
    assert_eq!((code, locs(&body)), (StatusCode::UNPROCESSABLE_ENTITY, vec![json!(["body", "userIds", 1])]));
    let (code, group) = api.post(&format!("/groups/{gid}/users"), json!({"userIds": [alice_id]})).await;
    assert_eq!((code, group["memberIds"].clone()), (StatusCode::OK, json!([alice_id])));
}

#[tokio::test]
async fn sharing_roles_decide_what_another_user_may_do() {
    let api = Api::start().await;
    let (_, alice) = api.user("alice").await;
    let (_, bob) = api.user("bob").await;
    let (_, created) = api.call_as(Some(&alice), Method::POST, "/workloads", Some(workload("w", artifact("a")))).await;
    let id = created["id"].as_str().unwrap();
    let roles =
        |role: &str| json!({"operation": "updateRoles", "roles": [{"username": "bob", "role": role, "shareRecipientType": "user"}]});

    // Consumer: may invoke, not read.
    let (code, _) = api.call_as(Some(&alice), Method::PATCH, &format!("/workloads/{id}/sharedRoles"), Some(roles("CONSUMER"))).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _) = api.call_as(Some(&bob), Method::GET, &format!("/workloads/{id}"), None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    // User: may read, not change or share.
    api.call_as(Some(&alice), Method::PATCH, &format!("/workloads/{id}/sharedRoles"), Some(roles("USER"))).await;
    let (code, seen) = api.call_as(Some(&bob), Method::GET, &format!("/workloads/{id}"), None).await;
    assert_eq!(code, StatusCode::OK, "{seen}");
    let (code, _) = api.call_as(Some(&bob), Method::POST, &format!("/workloads/{id}/stop"), Some(json!({}))).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, _) = api.call_as(Some(&bob), Method::PATCH, &format!("/workloads/{id}/sharedRoles"), Some(roles("OWNER"))).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (_, shared) = api.call_as(Some(&alice), Method::GET, &format!("/workloads/{id}/sharedRoles"), None).await;
    assert!(shared.to_string().contains("bob"), "{shared}");
}
