use axum::http::StatusCode;
use serde_json::json;

use crate::harness::{Api, artifact, locs};

#[tokio::test]
async fn a_draft_is_editable_until_locked_then_versioned_and_frozen() {
    let api = Api::start().await;
    let (code, draft) = api.post("/artifacts", artifact("model")).await;
    assert_eq!(code, StatusCode::CREATED, "{draft}");
    assert_eq!((draft["status"].clone(), draft["version"].clone()), (json!("draft"), json!(null)));
    let id = draft["id"].as_str().unwrap();

    let (code, renamed) = api.patch(&format!("/artifacts/{id}"), json!({"name": "model-2"})).await;
    assert_eq!((code, renamed["name"].clone()), (StatusCode::OK, json!("model-2")), "{renamed}");
    let (code, locked) = api.patch(&format!("/artifacts/{id}"), json!({"status": "locked"})).await;
    assert_eq!((code, locked["status"].clone(), locked["version"].clone()), (StatusCode::OK, json!("locked"), json!(1)), "{locked}");

    // Locked: no edits, no delete, and the document is unchanged by the refusals.
    let (code, _) = api.patch(&format!("/artifacts/{id}"), json!({"name": "other"})).await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (code, _) = api.delete(&format!("/artifacts/{id}")).await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (_, after) = api.get(&format!("/artifacts/{id}")).await;
    assert_eq!((after["name"].clone(), after["status"].clone()), (json!("model-2"), json!("locked")));

    // A clone is a new draft in the same repository.
    let (code, clone) = api.post(&format!("/artifacts/{id}/clone"), json!({"name": "model-3"})).await;
    assert_eq!((code, clone["status"].clone()), (StatusCode::OK, json!("draft")), "{clone}");
    assert_eq!(clone["artifactRepositoryId"], after["artifactRepositoryId"]);
    assert_ne!(clone["id"], after["id"]);
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_named_and_nothing_is_stored() {
    let api = Api::start().await;
    let mut bad = artifact("model");
    bad["spec"]["containerGroups"][0]["containers"][0]["port"] = json!(99);
    let (code, body) = api.post("/artifacts", bad).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(locs(&body), vec![json!(["body", "spec", "containerGroups", 0, "containers", 0, "port"])]);
    let (code, _) = api.get("/artifacts/000000000000000000000000").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (_, page) = api.get("/artifacts").await;
    assert_eq!(page["totalCount"], 0, "{page}");
}

/// Together far over gRPC's 4 MiB message limit: meta answers the list in pages.
#[tokio::test]
async fn several_artifacts_of_almost_two_mebibytes_are_stored_and_listed() {
    let api = Api::start().await;
    let description = "d".repeat(1_900_000);
    for i in 0..4 {
        let mut big = artifact(&format!("big-{i}"));
        big["description"] = json!(description);
        let (code, body) = api.post("/artifacts", big).await;
        assert_eq!(code, StatusCode::CREATED, "{}", &body.to_string()[..200.min(body.to_string().len())]);
    }
    let (code, page) = api.get("/artifacts?limit=10&orderBy=name").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(page["totalCount"], 4);
    for (i, item) in page["data"].as_array().unwrap().iter().enumerate() {
        assert_eq!(item["name"], format!("big-{i}"));
        assert_eq!(item["description"].as_str().map(str::len), Some(1_900_000));
    }
}

#[tokio::test]
async fn only_the_administrator_may_loosen_a_containers_security_defaults() {
    let api = Api::start().await;
    let (_, token) = api.user("ana").await;
    let with_security = |security: serde_json::Value| {
        let mut body = artifact("secure");
        body["spec"]["containerGroups"][0]["containers"][0]["securityContext"] = security;
        body
    };
    let loosen = with_security(json!({"capabilities": {"add": ["NET_ADMIN"]}}));
    let (code, body) = api.call_as(Some(&token), axum::http::Method::POST, "/artifacts", Some(loosen.clone())).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| d.contains("securityContext.capabilities.add")), "{body}");
    let (_, page) = api.get("/artifacts").await;
    assert_eq!(page["totalCount"], 0, "a refused artifact is not stored: {page}");

    let tighten = with_security(
        json!({"readOnlyRootFilesystem": true, "capabilities": {"drop": ["NET_RAW"]}, "seccompProfile": {"type": "RuntimeDefault"}}),
    );
    let (code, made) = api.call_as(Some(&token), axum::http::Method::POST, "/artifacts", Some(tighten)).await;
    assert_eq!(code, StatusCode::CREATED, "{made}");
    let stored = &made["spec"]["containerGroups"][0]["containers"][0]["securityContext"];
    assert_eq!(
        stored,
        &json!({"readOnlyRootFilesystem": true, "capabilities": {"drop": ["NET_RAW"]}, "seccompProfile": {"type": "RuntimeDefault"}})
    );
    let id = made["id"].as_str().unwrap();
    let (code, _) = api
        .call_as(Some(&token), axum::http::Method::PATCH, &format!("/artifacts/{id}"), Some(json!({"spec": loosen["spec"].clone()})))
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "an update cannot loosen them either");

    let (code, made) = api.post("/artifacts", loosen).await;
    assert_eq!(code, StatusCode::CREATED, "the administrator may: {made}");
}

#[tokio::test]
async fn routes_and_seccomp_profiles_are_checked_and_the_build_reference_is_the_servers() {
    let api = Api::start().await;
    let mut bad = artifact("routed");
    let container = &mut bad["spec"]["containerGroups"][0]["containers"][0];
    container["routes"] =
        json!([{"path": "/v1", "auth": "required"}, {"path": "/v1", "auth": "optional"}, {"path": "v2", "auth": "disabled"}]);
    container["securityContext"] = json!({"seccompProfile": {"type": "RuntimeDefault", "localhostProfile": "p.json"}});
    let (code, body) = api.post("/artifacts", bad).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let container_loc = |rest: &[serde_json::Value]| {
        let mut loc = vec![json!("body"), json!("spec"), json!("containerGroups"), json!(0), json!("containers"), json!(0)];
        loc.extend_from_slice(rest);
        serde_json::Value::Array(loc)
    };
    assert_eq!(
        locs(&body),
        vec![
            container_loc(&[json!("routes"), json!(1), json!("path")]),
            container_loc(&[json!("routes"), json!(2), json!("path")]),
            container_loc(&[json!("securityContext"), json!("seccompProfile"), json!("localhostProfile")]),
        ]
    );
    let mut unknown_auth = artifact("routed");
    unknown_auth["spec"]["containerGroups"][0]["containers"][0]["routes"] = json!([{"path": "/v1", "auth": "sometimes"}]);
    let (code, body) = api.post("/artifacts", unknown_auth).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    let mut good = artifact("routed");
    let container = &mut good["spec"]["containerGroups"][0]["containers"][0];
    container["routes"] = json!([{"path": "/v1", "auth": "required"}]);
    container["build"] = json!({"artifactImageBuildId": "b1", "status": "COMPLETED", "createdAt": "2026-12-01T00:00:00Z"});
    let (code, made) = api.post("/artifacts", good).await;
    assert_eq!(code, StatusCode::CREATED, "{made}");
    let stored = &made["spec"]["containerGroups"][0]["containers"][0];
    assert_eq!(stored["routes"], json!([{"path": "/v1", "auth": "required"}]));
    assert!(stored.get("build").is_none(), "a client's build reference is dropped: {stored}");
}
