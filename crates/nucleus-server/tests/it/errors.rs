use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Stack, temp_dir, whoami_artifact, workload};

fn locs(body: &Value) -> Vec<String> {
    body["detail"].as_array().unwrap_or_else(|| panic!("a list of field errors: {body}")).iter().map(|e| e["loc"].to_string()).collect()
}

#[tokio::test]
async fn every_error_class_answers_as_the_spec_says_and_changes_nothing() {
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;
    let (_, before) = stack.get("/workloads").await;
    let (_, artifacts_before) = stack.get("/artifacts").await;

    // 401: no token, wrong token; invoke too.
    let resp = stack.http.get(stack.url("/workloads")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("Authorization"));
    let resp = stack.http.get(stack.url("/workloads")).bearer_auth("nope").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = stack.http.get(stack.url("/endpoints/workloads/x/")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // 400: malformed JSON.
    let resp = stack
        .http
        .post(stack.url("/workloads"))
        .bearer_auth(crate::harness::TOKEN)
        .header("content-type", "application/json")
        .body("{\"name\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("malformed JSON"), "{body}");

    // 422: each invalid field named.
    let mut unknown = workload("w", whoami_artifact("a", &[]), 1);
    unknown["artifact"]["spec"]["containerGroups"][0]["containers"][0]["colour"] = json!("blue");
    let (code, body) = stack.post("/workloads", unknown).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(locs(&body), vec![r#"["body","artifact","spec","containerGroups",0,"containers",0,"colour"]"#]);
    assert_eq!(body["detail"][0]["type"], "extra_forbidden");

    let long = workload(&"n".repeat(5001), whoami_artifact("a", &[]), 1);
    let (code, body) = stack.post("/workloads", long).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(locs(&body), vec![r#"["body","name"]"#]);

    let mut bad_port = workload("w", whoami_artifact("a", &[]), 1);
    bad_port["artifact"]["spec"]["containerGroups"][0]["containers"][0]["port"] = json!(99);
    let (code, body) = stack.post("/workloads", bad_port).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(locs(&body), vec![r#"["body","artifact","spec","containerGroups",0,"containers",0,"port"]"#]);

    let mut both = workload("w", whoami_artifact("a", &[]), 1);
    both["artifactId"] = json!("0123456789abcdef01234567");
    let (code, body) = stack.post("/workloads", both).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(locs(&body), vec![r#"["body"]"#]);
    let (code, body) = stack.post("/workloads", json!({"name": "w"})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(locs(&body), vec![r#"["body"]"#]);

    for limit in ["0", "101", "ten"] {
        let (code, body) = stack.get(&format!("/workloads?limit={limit}")).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "limit={limit}");
        assert_eq!(locs(&body), vec![r#"["query","limit"]"#]);
    }
    let (code, body) = stack.get("/workloads?status=sleeping").await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // 404: unknown ids, unknown referenced artifact.
    for path in ["/workloads/nope", "/artifacts/nope", "/workloads/nope/protons", "/workloads/nope/events"] {
        let (code, body) = stack.get(path).await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{path}");
        assert!(body["detail"].as_str().unwrap().contains("nope"));
    }
    let (code, _) = stack.post("/workloads/nope/start", json!({})).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = stack.post("/workloads", json!({"name": "w", "artifactId": "0123456789abcdef01234567"})).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // Nothing above changed anything.
    let (_, after) = stack.get("/workloads").await;
    let (_, artifacts_after) = stack.get("/artifacts").await;
    assert_eq!(before["totalCount"], after["totalCount"]);
    assert_eq!(artifacts_before["totalCount"], artifacts_after["totalCount"]);
    assert_eq!(after["totalCount"], 0);

    // 409: locked artifacts are immutable, cannot be locked twice or deleted; in-use drafts cannot be deleted.
    let (code, draft) = stack.post("/artifacts", whoami_artifact("draft", &[])).await;
    assert_eq!(code, StatusCode::CREATED);
    assert_eq!((draft["status"].as_str(), draft["version"].is_null()), (Some("draft"), true));
    let draft_id = draft["id"].as_str().unwrap();
    let (code, renamed) = stack.call(Method::PATCH, &format!("/artifacts/{draft_id}"), Some(json!({"name": "renamed"}))).await;
    assert_eq!((code, renamed["name"].as_str()), (StatusCode::OK, Some("renamed")));
    let (code, locked) = stack.call(Method::PATCH, &format!("/artifacts/{draft_id}"), Some(json!({"status": "locked"}))).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!((locked["status"].as_str(), locked["version"].as_u64()), (Some("locked"), Some(1)));
    let (code, _) = stack.call(Method::PATCH, &format!("/artifacts/{draft_id}"), Some(json!({"status": "locked"}))).await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (code, _) = stack.call(Method::PATCH, &format!("/artifacts/{draft_id}"), Some(json!({"name": "x"}))).await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (code, _) = stack.call(Method::PUT, &format!("/artifacts/{draft_id}"), Some(whoami_artifact("x", &[]))).await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (code, _) = stack.call(Method::DELETE, &format!("/artifacts/{draft_id}"), None).await;
    assert_eq!(code, StatusCode::CONFLICT);
    let (_, still) = stack.get(&format!("/artifacts/{draft_id}")).await;
    assert_eq!(still["name"], "renamed");

    let (code, w) = stack.post("/workloads", json!({"name": "uses-draft", "artifact": whoami_artifact("in-use", &[])})).await;
    assert_eq!(code, StatusCode::CREATED, "{w}");
    let artifact_id = w["artifactId"].as_str().unwrap();
    let (code, body) = stack.call(Method::DELETE, &format!("/artifacts/{artifact_id}"), None).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert!(body["detail"].as_str().unwrap().contains(w["id"].as_str().unwrap()), "{body}");
    let (code, _) = stack.get("/workloads?status=submitted&status=provisioning&status=launching&status=running").await;
    assert_eq!(code, StatusCode::OK);

    // An unused draft can be deleted.
    let (_, spare) = stack.post("/artifacts", whoami_artifact("spare", &[])).await;
    let (code, _) = stack.call(Method::DELETE, &format!("/artifacts/{}/", spare["id"].as_str().unwrap()), None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
}
