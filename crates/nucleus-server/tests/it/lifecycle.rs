use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Stack, gone, temp_dir, whoami_artifact, workload};

#[tokio::test]
async fn create_run_invoke_stop_start_delete() {
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;

    let (code, created) = stack.post("/workloads", workload("hello", whoami_artifact("whoami", &[]), 2)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["endpoint"], format!("{}/api/v2/endpoints/workloads/{id}/", stack.base));
    assert_eq!(created["status"], "submitted");
    assert_eq!(created["runtime"]["containerGroups"][0]["replicaCount"], 2);

    let running = stack.wait_status(&id, "running").await;
    let addresses = stack.replica_addresses(&running).await;
    assert_eq!(addresses.len(), 2);

    // Round-robin reaches both replicas once the gateway has heard that both are ready, which on a
    // loaded machine can come after the status says `running`; method, path, query and body get through.
    let mut replicas = HashSet::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    for i in 0.. {
        if replicas.len() == 2 || std::time::Instant::now() > deadline {
            break;
        }
        let (code, echo) = stack.invoke(&id, &format!("hello/world?i={i}")).await;
        assert_eq!(code, StatusCode::OK, "{echo}");
        assert_eq!(echo["path"], "/hello/world");
        assert_eq!(echo["query"], format!("i={i}"));
        assert!(echo["headers"].get("authorization").is_none(), "the Nucleus token must not reach the workload");
        replicas.insert(echo["replica"].as_str().unwrap().to_owned());
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(replicas.len(), 2, "both replicas answer: {replicas:?}");
    let resp = stack
        .http
        .request(Method::PUT, stack.url(&format!("/endpoints/workloads/{id}/upload")))
        .header("authorization", format!("Token {}", crate::harness::TOKEN))
        .body("payload-bytes")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let echo: serde_json::Value = resp.json().await.unwrap();
    assert_eq!((echo["method"].as_str(), echo["body"].as_str()), (Some("PUT"), Some("payload-bytes")));
    // No trailing slash on the invoke root works too, and is not redirected.
    let (code, _) = stack.get(&format!("/endpoints/workloads/{id}")).await;
    assert_eq!(code, StatusCode::OK);

    // Stop: 202, then stopped, and the processes are gone.
    let (code, op) = stack.post(&format!("/workloads/{id}/stop"), json!({})).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{op}");
    assert_eq!(op["workloadId"], id.as_str());
    assert!(op["trackVia"].as_str().unwrap().ends_with(&format!("/workloads/{id}/")));
    stack.wait_status(&id, "stopped").await;
    for address in &addresses {
        assert!(gone(address).await, "replica at {address} still listens after stop");
    }
    let (code, body) = stack.invoke(&id, "").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["detail"].as_str().unwrap().contains("stopped"), "{body}");
    let (code, _) = stack.post(&format!("/workloads/{id}/stop"), json!({})).await;
    assert_eq!(code, StatusCode::OK, "stopping a stopped workload is a no-op");

    // Start again.
    let (code, _) = stack.post(&format!("/workloads/{id}/start"), json!({})).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let running = stack.wait_status(&id, "running").await;
    let (code, _) = stack.post(&format!("/workloads/{id}/start"), json!({})).await;
    assert_eq!(code, StatusCode::OK, "starting a running workload is a no-op");
    let (code, _) = stack.invoke(&id, "again").await;
    assert_eq!(code, StatusCode::OK);

    // Protons, status details and events are visible.
    let (code, protons) = stack.get(&format!("/workloads/{id}/protons/")).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(protons["totalCount"], 1);
    assert_eq!(protons["data"][0]["id"], running["protonId"]);
    let (code, events) = stack.get(&format!("/workloads/{id}/events")).await;
    assert_eq!(code, StatusCode::OK);
    let kinds: Vec<&str> = events["data"].as_array().unwrap().iter().map(|e| e["eventType"].as_str().unwrap()).collect();
    for kind in ["workloadCreated", "workloadStopRequested", "workloadStartRequested", "protonStatusChanged"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }

    // Delete: 204, then 404, and the processes go away.
    let addresses = stack.replica_addresses(&running).await;
    let (code, _) = stack.call(Method::DELETE, &format!("/workloads/{id}/"), None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _) = stack.get(&format!("/workloads/{id}")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    for address in &addresses {
        assert!(gone(address).await, "replica at {address} still listens after delete");
    }
    // The artifact stays.
    let (code, _) = stack.get(&format!("/artifacts/{}", created["artifactId"].as_str().unwrap())).await;
    assert_eq!(code, StatusCode::OK);
}

#[tokio::test]
async fn lists_paginate_with_absolute_links_and_answer_with_or_without_slash() {
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;
    for i in 0..3 {
        let mut art = whoami_artifact(&format!("a{i}"), &[]);
        art["status"] = json!("locked");
        let (code, body) = stack.post("/artifacts/", art).await;
        assert_eq!(code, StatusCode::CREATED, "{body}");
        assert_eq!(body["version"], 1);
    }
    let (code, page) = stack.get("/artifacts?limit=2&orderBy=name").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!((page["count"].as_u64(), page["totalCount"].as_u64()), (Some(2), Some(3)));
    assert_eq!(page["data"][0]["name"], "a0");
    let next = page["next"].as_str().unwrap();
    assert!(next.starts_with(&stack.base), "{next}");
    let resp = stack.http.get(next).bearer_auth(crate::harness::TOKEN).send().await.unwrap();
    let second: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(second["data"][0]["name"], "a2");
    assert!(second["next"].is_null());
    assert!(second["previous"].as_str().unwrap().contains("offset=0"));
    let (code, desc) = stack.get("/artifacts/?orderBy=-name&search=A").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(desc["data"][0]["name"], "a2");
    let (code, _) = stack.get("/workloads/").await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = stack.get("/workloads").await;
    assert_eq!(code, StatusCode::OK);
    let (code, bundles) = stack.get("/mlops/compute/bundles/").await;
    assert_eq!(code, StatusCode::OK);
    let ids: Vec<&str> = bundles["data"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"cpu.small") && ids.contains(&"gpu.a10g.medium"), "{ids:?}");
    let (code, version) = stack.get("/version/").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(version["major"], 2);
}

#[tokio::test]
async fn a_replica_that_ignores_sigterm_is_killed_after_the_grace_period_and_start_waits_for_it() {
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;
    let whoami = crate::harness::whoami();
    let mut artifact = whoami_artifact("stubborn", &[]);
    // An ignored signal stays ignored across exec: the server never sees SIGTERM.
    artifact["spec"]["containerGroups"][0]["containers"][0]["entrypoint"] =
        json!(["sh", "-c", format!("trap '' TERM; exec {whoami} --port $PORT")]);
    let (code, created) = stack.post("/workloads", workload("stubborn", artifact, 1)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let running = stack.wait_status(id, "running").await;
    let (code, details) = stack.get(&format!("/workloads/{id}/protons/{}/statusDetails", running["protonId"].as_str().unwrap())).await;
    assert_eq!(code, StatusCode::OK, "{details}");
    let address = stack.replica_addresses(&running).await.remove(0);

    let (code, _) = stack.post(&format!("/workloads/{id}/stop"), json!({})).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    stack.wait_status(id, "stopping").await;
    let (code, body) = stack.post(&format!("/workloads/{id}/start"), json!({})).await;
    assert_eq!(code, StatusCode::CONFLICT, "start while stopping: {body}");
    assert!(body["detail"].as_str().unwrap().contains("stopping"));
    assert!(tokio::net::TcpStream::connect(&address).await.is_ok(), "still serving during the grace period");

    stack.wait_status(id, "stopped").await;
    assert!(gone(&address).await, "SIGKILL after the grace period ends it");
    let (code, _) = stack.post(&format!("/workloads/{id}/start"), json!({})).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    stack.wait_status(id, "running").await;
}

#[tokio::test]
async fn lists_filter_by_creator_ids_tags_artifact_status_and_repository() {
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;
    // An unknown orderBy is refused even when there is nothing to order.
    let (code, body) = stack.get("/workloads?orderBy=colour").await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["detail"][0]["msg"].as_str().unwrap().contains("importance"), "{body}");

    let (_, carol) = stack.post("/users", json!({ "username": "carol" })).await;
    let carol_id = carol["id"].as_str().unwrap();
    let (_, token) = stack.post(&format!("/users/{carol_id}/tokens"), json!({})).await;
    let token = token["token"].as_str().unwrap();
    let (code, mine) = stack.call_as(token, Method::POST, "/artifacts", Some(whoami_artifact("carols", &[]))).await;
    assert_eq!(code, StatusCode::CREATED, "{mine}");
    let mut locked = whoami_artifact("admins", &[]);
    locked["status"] = json!("locked");
    let (_, locked) = stack.post("/artifacts", locked).await;
    let names =
        |page: &Value| -> Vec<String> { page["data"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap().to_owned()).collect() };
    for by in ["carol", carol_id] {
        let (_, page) = stack.get(&format!("/artifacts?createdBy={by}")).await;
        assert_eq!(names(&page), ["carols"], "createdBy={by}");
    }
    let (_, page) = stack.get("/artifacts?createdBy=admin").await;
    assert_eq!(names(&page), ["admins"]);
    let (_, page) = stack.get(&format!("/artifacts?ids[]={}", locked["id"].as_str().unwrap())).await;
    assert_eq!(names(&page), ["admins"]);
    let (_, page) = stack.get("/artifacts?tagKeys=team").await;
    assert_eq!(page["totalCount"], 0, "nothing is tagged");
    let (_, page) = stack.get("/artifactRepositories?createdBy=carol").await;
    assert_eq!(names(&page), ["carols"]);

    let (code, from_locked) = stack.post("/workloads", json!({ "name": "locked-one", "artifactId": locked["id"] })).await;
    assert_eq!(code, StatusCode::CREATED, "{from_locked}");
    let (code, draft) = stack.post("/workloads", workload("draft-one", whoami_artifact("inline", &[]), 1)).await;
    assert_eq!(code, StatusCode::CREATED, "{draft}");
    let (_, page) = stack.get("/workloads?artifactStatus=locked").await;
    assert_eq!(names(&page), ["locked-one"]);
    let (_, page) = stack.get("/workloads?artifactStatus[]=draft").await;
    assert_eq!(names(&page), ["draft-one"]);
    let (_, page) = stack.get(&format!("/workloads?repositoryId={}", locked["artifactRepositoryId"].as_str().unwrap())).await;
    assert_eq!(names(&page), ["locked-one"]);
    let (_, page) = stack.get("/workloads?orderBy=name&createdBy=admin").await;
    assert_eq!(names(&page), ["draft-one", "locked-one"]);
}
