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

#[tokio::test]
async fn tokens_are_listed_without_their_secret_revoked_and_expire() {
    let api = Api::start().await;
    let (alice_id, alice) = api.user("alice").await;
    let (bob_id, _bob) = api.user("bob").await;

    let (code, laptop) =
        api.call_as(Some(&alice), Method::POST, &format!("/users/{alice_id}/tokens"), Some(json!({"name": "laptop"}))).await;
    assert_eq!(code, StatusCode::CREATED, "{laptop}");
    let laptop_secret = laptop["token"].as_str().unwrap().to_owned();
    let (code, page) = api.call_as(Some(&alice), Method::GET, &format!("/users/{alice_id}/tokens"), None).await;
    assert_eq!(code, StatusCode::OK, "{page}");
    assert_eq!(page["totalCount"], 2, "the first token and the laptop's: {page}");
    assert_eq!(page["data"][1]["name"], "laptop");
    assert_eq!(page["data"][1]["id"], laptop["id"]);
    assert!(!page.to_string().contains(&laptop_secret) && !page.to_string().contains(&alice), "no secret is listed: {page}");

    // Another user learns nothing of alice's tokens, nor can revoke them.
    let (_, bob) = api.call(Method::POST, &format!("/users/{bob_id}/tokens"), Some(json!({}))).await;
    let bob = bob["token"].as_str().unwrap();
    let (code, body) = api.call_as(Some(bob), Method::GET, &format!("/users/{alice_id}/tokens"), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{body}");
    let laptop_path = format!("/users/{alice_id}/tokens/{}", laptop["id"].as_str().unwrap());
    let (code, _) = api.call_as(Some(bob), Method::DELETE, &laptop_path, None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    let (code, _) = api.call_as(Some(&laptop_secret), Method::GET, "/workloads", None).await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = api.call_as(Some(&alice), Method::DELETE, &laptop_path, None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _) = api.call_as(Some(&laptop_secret), Method::GET, "/workloads", None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "a revoked token is refused at once");
    let (code, _) = api.call_as(Some(&alice), Method::DELETE, &laptop_path, None).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "already revoked");

    let (code, body) = api.post(&format!("/users/{alice_id}/tokens"), json!({"expiresAt": "2020-01-01T00:00:00Z"})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(locs(&body), [json!(["body", "expiresAt"])]);
    let soon = nucleus_api::clock::now() + chrono::Duration::milliseconds(1500);
    let (code, brief) = api.post(&format!("/users/{alice_id}/tokens"), json!({"expiresAt": soon})).await;
    assert_eq!(code, StatusCode::CREATED, "{brief}");
    let brief = brief["token"].as_str().unwrap();
    let (code, _) = api.call_as(Some(brief), Method::GET, "/workloads", None).await;
    assert_eq!(code, StatusCode::OK, "valid until it expires");
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let (code, _) = api.call_as(Some(brief), Method::GET, "/workloads", None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED, "refused once expired, cached or not");
}

#[tokio::test]
async fn a_disabled_or_deleted_user_is_refused_at_once() {
    let api = Api::start().await;
    let (carol_id, carol) = api.user("carol").await;
    let (code, _) = api.call_as(Some(&carol), Method::GET, "/workloads", None).await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = api.call_as(Some(&carol), Method::PATCH, &format!("/users/{carol_id}"), Some(json!({"disabled": true}))).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "a user cannot disable anyone, itself included");
    let (code, user) = api.patch(&format!("/users/{carol_id}"), json!({"disabled": true})).await;
    assert_eq!((code, &user["disabled"]), (StatusCode::OK, &json!(true)), "{user}");
    let (code, _) = api.call_as(Some(&carol), Method::GET, "/workloads", None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, _) = api.patch(&format!("/users/{carol_id}"), json!({"disabled": false})).await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = api.call_as(Some(&carol), Method::GET, "/workloads", None).await;
    assert_eq!(code, StatusCode::OK, "enabled again");

    let (code, _) = api.delete(&format!("/users/{carol_id}")).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _) = api.call_as(Some(&carol), Method::GET, "/workloads", None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    let (code, _) = api.delete(&format!("/users/{carol_id}")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, again) = api.post("/users", json!({"username": "carol"})).await;
    assert_eq!(code, StatusCode::CREATED, "the name is free again: {again}");
}

#[tokio::test]
async fn adding_to_a_repository_takes_its_owners_role() {
    let api = Api::start().await;
    let (_, alice) = api.user("alice").await;
    let (_, bob) = api.user("bob").await;
    let (code, first) = api.call_as(Some(&alice), Method::POST, "/artifacts", Some(artifact("model"))).await;
    assert_eq!(code, StatusCode::CREATED, "{first}");
    let repository = first["artifactRepositoryId"].as_str().unwrap();
    let mut second = artifact("model-v2");
    second["artifactRepositoryId"] = json!(repository);

    let (code, body) = api.call_as(Some(&bob), Method::POST, "/artifacts", Some(second.clone())).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "a repository bob cannot see is not found: {body}");
    let share =
        |role: &str| json!({"operation": "updateRoles", "roles": [{"username": "bob", "role": role, "shareRecipientType": "user"}]});
    let path = format!("/artifacts/{}/sharedRoles", first["id"].as_str().unwrap());
    let (code, _) = api.call_as(Some(&alice), Method::PATCH, &path, Some(share("READ_ONLY"))).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, body) = api.call_as(Some(&bob), Method::POST, "/artifacts", Some(second.clone())).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "reading is not adding: {body}");
    assert!(body["detail"].as_str().unwrap().contains("OWNER"), "{body}");
    let (code, body) = api.call_as(Some(&bob), Method::POST, "/workloads", Some(workload("w", second.clone()))).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "nor through an inline artifact: {body}");
    let (code, _) = api.call_as(Some(&alice), Method::PATCH, &path, Some(share("OWNER"))).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, added) = api.call_as(Some(&bob), Method::POST, "/artifacts", Some(second)).await;
    assert_eq!(code, StatusCode::CREATED, "{added}");
    assert_eq!(added["artifactRepositoryId"], repository);
}

#[tokio::test]
async fn a_conflict_names_only_the_workloads_the_caller_may_see() {
    let api = Api::start().await;
    let (_, alice) = api.user("alice").await;
    let (_, bob) = api.user("bob").await;
    let (_, made) = api.call_as(Some(&alice), Method::POST, "/artifacts", Some(artifact("shared"))).await;
    let artifact_id = made["id"].as_str().unwrap();
    let body = json!({"name": "alices", "artifactId": artifact_id});
    let (code, workload) = api.call_as(Some(&alice), Method::POST, "/workloads", Some(body)).await;
    assert_eq!(code, StatusCode::CREATED, "{workload}");
    let share = json!({"operation": "updateRoles", "roles": [{"username": "bob", "role": "OWNER", "shareRecipientType": "user"}]});
    let (code, _) = api.call_as(Some(&alice), Method::PATCH, &format!("/artifacts/{artifact_id}/sharedRoles"), Some(share)).await;
    assert_eq!(code, StatusCode::NO_CONTENT);

    let (code, refused) = api.call_as(Some(&bob), Method::DELETE, &format!("/artifacts/{artifact_id}"), None).await;
    assert_eq!(code, StatusCode::CONFLICT, "{refused}");
    let detail = refused["detail"].as_str().unwrap();
    assert!(detail.contains("1 you cannot see"), "{detail}");
    assert!(!detail.contains(workload["id"].as_str().unwrap()), "alice's workload id leaked to bob: {detail}");
    let (_, refused) = api.call_as(Some(&alice), Method::DELETE, &format!("/artifacts/{artifact_id}"), None).await;
    assert!(refused["detail"].as_str().unwrap().contains(workload["id"].as_str().unwrap()), "its owner sees which: {refused}");
}
