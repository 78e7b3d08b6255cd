//! Identity and sharing on `nucleus dev`: the administrator (the configured token) makes users
//! and their tokens; a user's workload is invisible to others (404) until shared; a `user` may
//! read and invoke but not change (403), a `consumer` may only invoke; `permissions` follow the
//! caller; events record who acted.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Stack, temp_dir, whoami_artifact, workload};

async fn user(stack: &Stack, name: &str) -> (String, String) {
    let (code, made) = stack.post("/users", json!({"username": name})).await;
    assert_eq!(code, StatusCode::CREATED, "{made}");
    let id = made["id"].as_str().unwrap().to_owned();
    let (code, token) = stack.post(&format!("/users/{id}/tokens"), json!({})).await;
    assert_eq!(code, StatusCode::CREATED, "{token}");
    (id, token["token"].as_str().unwrap().to_owned())
}

async fn as_(stack: &Stack, token: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    stack.call_as(token, method, path, body).await
}

#[tokio::test]
async fn objects_are_private_until_shared_and_roles_decide_what_is_allowed() {
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;
    let (alice_id, alice) = user(&stack, "alice").await;
    let (_bob_id, bob) = user(&stack, "bob").await;
    let (carol_id, carol) = user(&stack, "carol").await;
    let (code, _) = stack.post("/users", json!({"username": "alice"})).await;
    assert_eq!(code, StatusCode::CONFLICT, "a username is taken once");
    let (code, bad) = stack.post("/users", json!({"username": "no spaces"})).await;
    assert_eq!((code, bad["detail"][0]["loc"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!(["body", "username"])));
    let (code, _) = as_(&stack, &alice, Method::POST, "/users", Some(json!({"username": "mallory"}))).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "only the administrator makes users");
    let (code, _) = as_(&stack, "nct_not-a-token", Method::GET, "/workloads", None).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);

    // Alice's workload: hers, nobody else's.
    let (code, created) =
        as_(&stack, &alice, Method::POST, "/workloads", Some(workload("alices", whoami_artifact("alices", &[]), 1))).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["creator"]["id"], alice_id.as_str());
    assert!(created["permissions"].as_array().unwrap().contains(&json!("CAN_SHARE")), "{created}");
    stack.wait_status(&id, "running").await;
    let (code, _) = as_(&stack, &bob, Method::GET, &format!("/workloads/{id}"), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "not shared: invisible");
    let (_, page) = as_(&stack, &bob, Method::GET, "/workloads", None).await;
    assert_eq!(page["count"], 0, "{page}");
    let (code, _) = as_(&stack, &bob, Method::GET, &format!("/endpoints/workloads/{id}/x"), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = as_(&stack, &bob, Method::GET, &format!("/artifacts/{}", created["artifactId"].as_str().unwrap()), None).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "her artifact too");

    // Shared: bob as user (by username), carol as consumer (by id).
    let roles = json!({"operation": "updateRoles", "roles": [
        {"username": "bob", "role": "USER", "shareRecipientType": "user"},
        {"id": carol_id, "role": "consumer", "shareRecipientType": "user"}
    ]});
    let (code, body) = as_(&stack, &bob, Method::PATCH, &format!("/workloads/{id}/sharedRoles"), Some(roles.clone())).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "bob cannot see it yet: {body}");
    let (code, body) = as_(&stack, &alice, Method::PATCH, &format!("/workloads/{id}/sharedRoles"), Some(roles)).await;
    assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
    let (code, seen) = as_(&stack, &bob, Method::GET, &format!("/workloads/{id}"), None).await;
    assert_eq!(code, StatusCode::OK, "{seen}");
    assert_eq!(seen["permissions"], json!(["CAN_VIEW", "CAN_MAKE_PREDICTIONS"]));
    assert!(seen.get("sharedRoles").is_none(), "the list is read through sharedRoles");
    let (code, _) = as_(&stack, &bob, Method::POST, &format!("/workloads/{id}/stop"), Some(json!({}))).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "a user may not change it");
    let (code, _) = as_(
        &stack,
        &bob,
        Method::PATCH,
        &format!("/workloads/{id}/sharedRoles"),
        Some(json!({"operation": "updateRoles", "roles": [{"username": "bob", "role": "OWNER", "shareRecipientType": "user"}]})),
    )
    .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "nor share it");
    let (code, echo) = as_(&stack, &bob, Method::GET, &format!("/endpoints/workloads/{id}/hi"), None).await;
    assert_eq!(code, StatusCode::OK, "a user may invoke: {echo}");
    let (code, _) = as_(&stack, &carol, Method::GET, &format!("/workloads/{id}"), None).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "a consumer may not read it");
    let (code, _) = as_(&stack, &carol, Method::GET, &format!("/workloads/{id}/stats"), None).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "nor its statistics");
    let (code, _) = as_(&stack, &carol, Method::GET, &format!("/endpoints/workloads/{id}/hi"), None).await;
    assert_eq!(code, StatusCode::OK, "a consumer may invoke");

    let (code, list) = as_(&stack, &bob, Method::GET, &format!("/workloads/{id}/sharedRoles"), None).await;
    assert_eq!(code, StatusCode::OK, "{list}");
    let entries: Vec<(String, String)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_owned(), r["role"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(entries, [("alice".to_owned(), "owner".to_owned()), ("bob".into(), "user".into()), ("carol".into(), "consumer".into())]);

    // Refusals name the field and change nothing.
    for (body, loc) in [
        (json!({"operation": "updateRoles", "roles": []}), json!(["body", "roles"])),
        (
            json!({"operation": "updateRoles", "roles": [{"username": "nobody", "role": "user", "shareRecipientType": "user"}]}),
            json!(["body", "roles", 0, "username"]),
        ),
        (
            json!({"operation": "updateRoles", "roles": [{"username": "bob", "role": "boss", "shareRecipientType": "user"}]}),
            json!(["body", "roles", 0, "role"]),
        ),
    ] {
        let (code, refused) = as_(&stack, &alice, Method::PATCH, &format!("/workloads/{id}/sharedRoles"), Some(body)).await;
        assert_eq!((code, refused["detail"][0]["loc"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, loc), "{refused}");
    }

    // PATCH replaces the list: carol is left out and can no longer invoke.
    let only_bob = json!({"operation": "updateRoles", "roles": [{"username": "bob", "role": "user", "shareRecipientType": "user"}]});
    let (code, _) = as_(&stack, &alice, Method::PATCH, &format!("/workloads/{id}/sharedRoles"), Some(only_bob)).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, _) = as_(&stack, &carol, Method::GET, &format!("/endpoints/workloads/{id}/hi"), None).await;
        if code == StatusCode::NOT_FOUND {
            break;
        }
        assert!(Instant::now() < deadline, "carol can still invoke: {code}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The administrator sees everything; events say who acted.
    let (code, admin_view) = stack.get(&format!("/workloads/{id}")).await;
    assert_eq!((code, admin_view["permissions"].clone()), (StatusCode::OK, json!(["*"])));
    let (_, events) = stack.get(&format!("/workloads/{id}/events")).await;
    let created_by = events["data"].as_array().unwrap().iter().find(|e| e["eventType"] == "workloadCreated").map(|e| e["actorId"].clone());
    assert_eq!(created_by, Some(json!(alice_id)));
}

#[tokio::test]
async fn sharing_with_a_group_reaches_its_members_and_with_the_organization_everyone() {
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;
    let (alice_id, alice) = user(&stack, "alice").await;
    let (bob_id, bob) = user(&stack, "bob").await;
    let (_, carol) = user(&stack, "carol").await;
    let (code, artifact) = as_(&stack, &alice, Method::POST, "/artifacts", Some(whoami_artifact("alices", &[]))).await;
    assert_eq!(code, StatusCode::CREATED, "{artifact}");
    let path = format!("/artifacts/{}", artifact["id"].as_str().unwrap());

    // Only the administrator makes groups and changes their members.
    let (code, _) = as_(&stack, &alice, Method::POST, "/groups", Some(json!({"name": "ml"}))).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, group) = stack.post("/groups", json!({"name": "ml"})).await;
    assert_eq!(code, StatusCode::CREATED, "{group}");
    let group_id = group["id"].as_str().unwrap().to_owned();
    let (code, refused) = stack.post(&format!("/groups/{group_id}/users"), json!({"userIds": [bob_id, "nobody"]})).await;
    assert_eq!((code, refused["detail"][0]["loc"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!(["body", "userIds", 1])), "{refused}");
    let (code, group) = stack.post(&format!("/groups/{group_id}/users"), json!({"userIds": [bob_id]})).await;
    assert_eq!((code, group["memberIds"].clone()), (StatusCode::OK, json!([bob_id])), "{group}");
    let (_, bobs_groups) = as_(&stack, &bob, Method::GET, "/groups", None).await;
    assert_eq!(bobs_groups["totalCount"], 1);
    let (_, carols_groups) = as_(&stack, &carol, Method::GET, "/groups", None).await;
    assert_eq!(carols_groups["totalCount"], 0);

    // Before sharing, bob learns nothing; shared with his group as user, he reads, carol does not.
    let (code, _) = as_(&stack, &bob, Method::GET, &path, None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let to_group = json!({"operation": "updateRoles", "roles": [{"id": group_id, "role": "READ_ONLY", "shareRecipientType": "group"}]});
    let (code, body) = as_(&stack, &alice, Method::PATCH, &format!("{path}/sharedRoles"), Some(to_group)).await;
    assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
    let (code, _) = as_(&stack, &bob, Method::GET, &path, None).await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = as_(&stack, &carol, Method::GET, &path, None).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // Shared with the organization as consumer as well: carol now knows it exists but may not read
    // it (403); bob keeps the better of his two roles.
    let both = json!({"operation": "updateRoles", "roles": [
        {"id": group_id, "role": "user", "shareRecipientType": "group"},
        {"role": "consumer", "shareRecipientType": "organization"}
    ]});
    let (code, body) = as_(&stack, &alice, Method::PATCH, &format!("{path}/sharedRoles"), Some(both)).await;
    assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
    let (code, _) = as_(&stack, &carol, Method::GET, &path, None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    let (code, _) = as_(&stack, &bob, Method::GET, &path, None).await;
    assert_eq!(code, StatusCode::OK);
    let (_, list) = as_(&stack, &alice, Method::GET, &format!("{path}/sharedRoles"), None).await;
    let kinds: Vec<&str> = list["data"].as_array().unwrap().iter().map(|r| r["shareRecipientType"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["user", "group", "organization"], "{list}");
    assert_eq!(list["data"][0]["id"], alice_id.as_str());

    // Out of the group, bob is back to the organization's consumer role, at once.
    let (code, _) = stack.call(Method::DELETE, &format!("/groups/{group_id}/users/{bob_id}"), None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _) = as_(&stack, &bob, Method::GET, &path, None).await;
    assert_eq!(code, StatusCode::FORBIDDEN);

    // Wrong recipients name the field.
    for (role, loc) in [
        (json!({"id": "no-such-group", "role": "user", "shareRecipientType": "group"}), json!(["body", "roles", 0, "id"])),
        (json!({"id": "another-org", "role": "user", "shareRecipientType": "organization"}), json!(["body", "roles", 0, "id"])),
        (json!({"id": bob_id, "role": "user", "shareRecipientType": "role"}), json!(["body", "roles", 0, "shareRecipientType"])),
    ] {
        let body = json!({"operation": "updateRoles", "roles": [role]});
        let (code, refused) = as_(&stack, &alice, Method::PATCH, &format!("{path}/sharedRoles"), Some(body)).await;
        assert_eq!((code, refused["detail"][0]["loc"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, loc), "{refused}");
    }
}
