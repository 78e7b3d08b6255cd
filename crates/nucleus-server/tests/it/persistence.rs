use reqwest::StatusCode;

use crate::harness::{Stack, gone, temp_dir, whoami_artifact, workload};

#[tokio::test]
async fn everything_survives_a_restart_and_running_workloads_run_again() {
    let dir = temp_dir();
    let mut stack = Stack::start(dir.path()).await;
    let (code, artifact) = stack.post("/artifacts", whoami_artifact("kept", &[])).await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, created) = stack.post("/workloads", workload("kept", whoami_artifact("inline", &[]), 1)).await;
    assert_eq!(code, StatusCode::CREATED);
    let id = created["id"].as_str().unwrap().to_owned();
    let running = stack.wait_status(&id, "running").await;
    let old_addresses = stack.replica_addresses(&running).await;

    stack.stop();
    for address in &old_addresses {
        assert!(gone(address).await, "replica {address} outlived nucleus dev");
    }

    let stack = Stack::start(dir.path()).await;
    let (code, again) = stack.get(&format!("/artifacts/{}", artifact["id"].as_str().unwrap())).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(again["name"], "kept");
    let running = stack.wait_status(&id, "running").await;
    assert_eq!(running["protonId"], created["protonId"]);
    assert_eq!(running["createdAt"], created["createdAt"]);
    let (code, echo) = stack.invoke(&id, "after-restart").await;
    assert_eq!(code, StatusCode::OK, "{echo}");
    assert_eq!(echo["path"], "/after-restart");
}
