use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Stack, temp_dir, whoami_artifact, workload};

#[tokio::test]
async fn a_command_that_exits_at_once_ends_errored_with_its_message() {
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;
    let artifact = json!({
        "name": "crasher",
        "spec": {"containerGroups": [{"containers": [{
            "imageUri": "example/crasher:1", "primary": true, "port": 8080,
            "entrypoint": ["sh", "-c", "echo starting up; echo 'boom: missing model file' >&2; exit 3"]
        }]}]}
    });
    let (code, created) = stack.post("/workloads", workload("crasher", artifact, 1)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let errored = stack.wait_status(id, "errored").await;
    let message = errored["statusDetails"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("status 3"), "message says how it exited: {errored:#}");
    let tail = errored["statusDetails"]["logTail"].to_string();
    assert!(tail.contains("boom: missing model file"), "log tail kept: {errored:#}");
    let (code, body) = stack.invoke(id, "").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["detail"].as_str().unwrap().contains("errored"));
}

#[tokio::test]
async fn a_command_that_cannot_start_ends_errored() {
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;
    let artifact = json!({
        "name": "missing",
        "spec": {"containerGroups": [{"containers": [{
            "imageUri": "example/missing:1", "primary": true, "port": 8080,
            "entrypoint": ["/no/such/binary", "--port", "$PORT"]
        }]}]}
    });
    let (_, created) = stack.post("/workloads", workload("missing", artifact, 1)).await;
    let errored = stack.wait_status(created["id"].as_str().unwrap(), "errored").await;
    let message = errored["statusDetails"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("/no/such/binary"), "{errored:#}");
}

#[tokio::test]
async fn a_replica_that_never_gets_ready_never_receives_traffic() {
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;
    let (code, created) = stack.post("/workloads", workload("unready", whoami_artifact("unready", &["--fail-readiness"]), 1)).await;
    assert_eq!(code, StatusCode::CREATED);
    let id = created["id"].as_str().unwrap();
    let launching = stack.wait_status(id, "launching").await;
    for _ in 0..10 {
        let (code, body) = stack.invoke(id, "").await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "an unready replica got traffic: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let path = format!("/workloads/{id}/protons/{}/statusDetails", launching["protonId"].as_str().unwrap());
    let (code, details) = stack.get(&path).await;
    assert_eq!(code, StatusCode::OK);
    let replica = &details["replicas"][0];
    assert_eq!(replica["containers"][0]["ready"], false, "{details:#}");
    assert_eq!(replica["status"], "running");
    // failureThreshold 30 × periodSeconds 1: then it is errored for good.
    let errored = stack.wait_status(id, "errored").await;
    assert!(errored["statusDetails"]["message"].as_str().unwrap().contains("readiness"), "{errored:#}");
}
