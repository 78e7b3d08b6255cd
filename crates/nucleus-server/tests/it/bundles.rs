//! Resource bundles end to end on `nucleus dev` (one process agent, no GPUs): a CPU bundle is
//! chosen and reported as `resolvedBundle`; a GPU-only request stays `submitted` and says which
//! resource is short.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Stack, temp_dir, whoami_artifact};

fn asking(name: &str, bundles: &[&str]) -> Value {
    json!({
        "name": name,
        "artifact": whoami_artifact(name, &[]),
        "runtime": {"containerGroups": [{"name": "default", "replicaCount": 1, "resourceBundles": bundles}]}
    })
}

#[tokio::test]
async fn bundles_resolve_to_what_the_agents_can_hold() {
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;

    // The first preference needs an H100 no agent has: the CPU bundle after it is chosen.
    let (code, created) = stack.post("/workloads", asking("cpu-bundle", &["gpu.h100.small", "cpu.small"])).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let running = stack.wait_status(created["id"].as_str().unwrap(), "running").await;
    let resolved = &running["runtime"]["containerGroups"][0]["resolvedBundle"];
    assert_eq!(resolved["id"], "cpu.small", "{running:#}");
    assert_eq!(resolved["cpuCount"], 1.0);

    // Only GPUs asked for: nothing can run it; it says why and stays submitted.
    let (code, created) = stack.post("/workloads", asking("gpu-bundle", &["gpu.l4.small"])).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let waiting = loop {
        let (_, w) = stack.get(&format!("/workloads/{id}")).await;
        let message = w["statusDetails"]["message"].as_str().unwrap_or_default().to_owned();
        if message.contains("gpu.l4.small") {
            break w;
        }
        assert!(Instant::now() < deadline, "no shortage message: {w:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(waiting["status"], "submitted", "{waiting:#}");
    assert!(waiting["statusDetails"]["message"].as_str().unwrap().contains("nvidia-l4"), "{waiting:#}");
    assert!(waiting["runtime"]["containerGroups"][0]["resolvedBundle"].is_null());
}
