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

    let expected: BTreeSet<&str> = [
        "PATH",
        "HOME",
        "HOST",
        "LANG",
        "PORT",
        "GREETING",
        "NUCLEUS_REPLICA",
        "NUCLEUS_PROTON_ID",
        "NUCLEUS_WORKLOAD_ID",
        "NUCLEUS_ARTIFACT_ID",
    ]
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

/// A user with a token of their own.
async fn user(stack: &Stack, name: &str) -> String {
    let (code, created) = stack.post("/users", json!({ "username": name })).await;
    assert_eq!(code, reqwest::StatusCode::CREATED, "{created}");
    let (code, token) = stack.post(&format!("/users/{}/tokens", created["id"].as_str().unwrap()), json!({})).await;
    assert_eq!(code, reqwest::StatusCode::CREATED, "{token}");
    token["token"].as_str().unwrap().to_owned()
}

fn shell_artifact(name: &str) -> Value {
    let mut artifact = whoami_artifact(name, &[]);
    artifact["spec"]["containerGroups"][0]["containers"][0]["entrypoint"] = json!(["sh", "-c", "cat /etc/passwd; sleep 600"]);
    artifact
}

#[tokio::test]
async fn commands_an_agent_does_not_allow_are_refused_at_create_naming_the_rule() {
    let dir = temp_dir();
    let stack = Stack::start_with(dir.path(), &["--allow-exec", "nucleus-whoami"]).await;
    let carol = user(&stack, "carol").await;

    let (code, body) = stack.call_as(&carol, reqwest::Method::POST, "/workloads", Some(workload("sh", shell_artifact("sh"), 1))).await;
    assert_eq!(code, reqwest::StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let error = &body["detail"][0];
    assert_eq!(error["loc"], json!(["body", "artifact", "spec", "containerGroups", 0, "containers", 0, "entrypoint"]), "{body}");
    let message = error["msg"].as_str().unwrap();
    assert!(message.contains("`sh`") && message.contains("--allow-exec") && message.contains("nucleus-whoami"), "{message}");
    let (code, body) = stack.post("/workloads", workload("sh-admin", shell_artifact("sh-admin"), 1)).await;
    assert_eq!(code, reqwest::StatusCode::UNPROCESSABLE_ENTITY, "the list binds the administrator too: {body}");
    let (_, page) = stack.get("/artifacts").await;
    assert_eq!(page["totalCount"], 0, "a refused create leaves no artifact behind: {page}");

    let (code, created) =
        stack.call_as(&carol, reqwest::Method::POST, "/workloads", Some(workload("ok", whoami_artifact("ok", &[]), 1))).await;
    assert_eq!(code, reqwest::StatusCode::CREATED, "{created}");
    stack.wait_status(created["id"].as_str().unwrap(), "running").await;
}

#[tokio::test]
async fn on_an_admins_only_agent_a_user_cannot_run_commands() {
    let dir = temp_dir();
    let stack = Stack::start_with(dir.path(), &["--allow-exec", "admins"]).await;
    let dave = user(&stack, "dave").await;
    let (code, body) = stack.call_as(&dave, reqwest::Method::POST, "/workloads", Some(workload("w", whoami_artifact("w", &[]), 1))).await;
    assert_eq!(code, reqwest::StatusCode::FORBIDDEN, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("--allow-exec admins"), "{body}");
    let (code, created) = stack.post("/workloads", workload("w", whoami_artifact("w", &[]), 1)).await;
    assert_eq!(code, reqwest::StatusCode::CREATED, "the administrator may: {created}");
}

/// The attack of the review: `env` as an entrypoint printed the agent's whole environment, the
/// administrator's token included, into the replica's log tail for anyone to read.
#[tokio::test]
async fn an_entrypoint_that_prints_its_environment_logs_no_secret() {
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;
    let mut artifact = whoami_artifact("env", &[]);
    artifact["spec"]["containerGroups"][0]["containers"][0]["entrypoint"] = json!(["sh", "-c", "env; exit 3"]);
    let (code, created) = stack.post("/workloads", workload("env", artifact, 1)).await;
    assert_eq!(code, reqwest::StatusCode::CREATED, "{created}");
    let failed = stack.wait_status(created["id"].as_str().unwrap(), "errored").await;
    let tail: Vec<&str> = failed["statusDetails"]["logTail"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
    assert!(tail.iter().any(|line| line.starts_with("PORT=")), "the environment was printed: {tail:?}");
    assert!(tail.iter().any(|line| line.starts_with("GREETING=hello")), "with the artifact's variables: {tail:?}");
    for line in &tail {
        assert!(!line.contains(SECRET_CANARY) && !line.contains(TOKEN), "a secret in the log: {line}");
        assert!(!line.starts_with("NUCLEUS_TOKEN=") && !line.starts_with("RUST_LOG="), "the agent's own environment: {line}");
    }
}
