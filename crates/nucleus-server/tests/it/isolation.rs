//! What a workload can see of the host it runs on: only what it was given.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{SECRET_CANARY, Stack, TOKEN, temp_dir, whoami_artifact, workload};

#[tokio::test]
async fn a_replica_sees_only_its_own_environment_and_working_directory() {
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;
    let (code, created) = stack.post("/workloads", workload("env-printer", whoami_artifact("env", &[]), 2)).await;
    assert_eq!(code, reqwest::StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    stack.wait_status(id, "running").await;

    let mut seen: BTreeMap<String, Value> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 2 && Instant::now() < deadline {
        let (code, answer) = stack.invoke(id, "env").await;
        assert_eq!(code, reqwest::StatusCode::OK, "{answer}");
        seen.insert(answer["env"]["NUCLEUS_REPLICA"].as_str().unwrap().to_owned(), answer);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.len(), 2, "both replicas answered: {:?}", seen.keys());

    let expected: BTreeSet<&str> =
        ["PATH", "HOME", "LANG", "PORT", "GREETING", "NUCLEUS_REPLICA", "NUCLEUS_PROTON_ID", "NUCLEUS_WORKLOAD_ID", "NUCLEUS_ARTIFACT_ID"]
            .into();
    let mut homes = BTreeSet::new();
    for (replica, answer) in &seen {
        let env = answer["env"].as_object().unwrap();
        let names: BTreeSet<&str> = env.keys().map(String::as_str).collect();
        assert_eq!(names, expected, "replica {replica} sees exactly what it was given");
        for (name, value) in env {
            let value = value.as_str().unwrap();
            assert!(!value.contains(SECRET_CANARY) && !value.contains(TOKEN), "{name} leaks a control-plane secret");
        }
        assert_eq!(env["GREETING"], "hello");
        assert_eq!(env["NUCLEUS_WORKLOAD_ID"], id);
        let home = PathBuf::from(env["HOME"].as_str().unwrap());
        assert_eq!(answer["cwd"].as_str().map(PathBuf::from), Some(home.clone()), "runs in its HOME");
        assert!(home.starts_with(dir.path()) && home.is_dir(), "{} is a directory of its own under the data dir", home.display());
        homes.insert(home);
    }
    assert_eq!(homes.len(), 2, "each replica has its own directory: {homes:?}");

    let (code, _) = stack.post(&format!("/workloads/{id}/stop"), json!({})).await;
    assert_eq!(code, reqwest::StatusCode::ACCEPTED);
    stack.wait_status(id, "stopped").await;
    for home in &homes {
        assert!(!home.exists(), "{} is removed once the replica is stopped", home.display());
    }
}
