//! Rolling replacement on `nucleus dev`: a 2-replica workload is replaced by a new artifact while
//! clients call it without pause: not one request fails, traffic moves to the candidate in one
//! step, the old proton drains and goes, and the record lands in the history. A candidate that
//! cannot start ends the replacement `errored` while the current proton keeps serving; the API's
//! refusals (second POST 422, settings 409, draft/locked mismatch 422) change nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Stack, temp_dir, whoami_artifact, workload};

async fn new_artifact(stack: &Stack, body: Value) -> String {
    let (code, artifact) = stack.post("/artifacts", body).await;
    assert_eq!(code, StatusCode::CREATED, "{artifact}");
    artifact["id"].as_str().unwrap().to_owned()
}

async fn wait_for(stack: &Stack, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, w) = stack.get(&format!("/workloads/{id}")).await;
        if done(&w) {
            return w;
        }
        assert!(Instant::now() < deadline, "{what} did not happen: {w:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_replacement_under_load_drops_no_request() {
    let dir = temp_dir();
    let stack = Arc::new(Stack::start(dir.path()).await);
    let (code, created) = stack.post("/workloads", workload("rolled", whoami_artifact("rolled", &[]), 2)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let old_proton = created["protonId"].as_str().unwrap().to_owned();
    stack.wait_status(&id, "running").await;
    let next = new_artifact(&stack, whoami_artifact("rolled-v2", &[])).await;

    // Callers that never pause, counting every answer that is not a 200.
    let stop = Arc::new(AtomicBool::new(false));
    let (calls, failures) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut callers = Vec::new();
    for _ in 0..4 {
        let (stack, id, stop, calls, failures) = (stack.clone(), id.clone(), stop.clone(), calls.clone(), failures.clone());
        callers.push(tokio::spawn(async move {
            let mut last_failure = None;
            while !stop.load(Ordering::Relaxed) {
                let (code, body) = stack.invoke(&id, "hello").await;
                calls.fetch_add(1, Ordering::Relaxed);
                if code != StatusCode::OK {
                    failures.fetch_add(1, Ordering::Relaxed);
                    last_failure = Some(format!("{code} {body}"));
                }
            }
            last_failure
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let body = json!({"artifactId": next, "strategy": "rolling", "config": {"warmupDurationMinutes": 0}});
    let (code, started) = stack.post(&format!("/workloads/{id}/replacement"), body.clone()).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["status"], "submitted");
    assert_eq!(started["candidateArtifactId"], next.as_str());
    let candidate = started["candidateProtonIds"][0].as_str().unwrap().to_owned();
    // One at a time.
    let (code, again) = stack.post(&format!("/workloads/{id}/replacement"), body).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{again}");
    let (code, settings) = stack.call(reqwest::Method::PATCH, &format!("/workloads/{id}/settings"), Some(json!({"runtime": {}}))).await;
    assert_eq!(code, StatusCode::CONFLICT, "{settings}");
    let (code, current) = stack.get(&format!("/workloads/{id}/replacement")).await;
    assert_eq!((code, current["id"].clone()), (StatusCode::OK, started["id"].clone()));

    let switched = wait_for(&stack, &id, "the switch", |w| w["protonId"] == candidate.as_str()).await;
    assert_eq!(switched["artifactId"], next.as_str());
    let done = wait_for(&stack, &id, "completion", |w| w["replacement"].is_null()).await;
    assert_eq!(done["status"], "running", "{done:#}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        let last = caller.await.unwrap();
        assert!(last.is_none(), "a request failed during the replacement: {last:?}");
    }
    let (calls, failures) = (calls.load(Ordering::Relaxed), failures.load(Ordering::Relaxed));
    println!("replacement under load: {calls} requests, {failures} failed");
    assert_eq!(failures, 0);
    assert!(calls > 100, "the callers kept calling: {calls}");

    // The new artifact answers; the old proton is gone; the history has the record.
    let (code, echo) = stack.invoke(&id, "who").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(echo["artifactId"], next.as_str(), "{echo:#}");
    let (_, protons) = stack.get(&format!("/workloads/{id}/protons")).await;
    let ids: Vec<&str> = protons["data"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [candidate.as_str()], "the old proton {old_proton} was removed");
    assert_eq!(protons["data"][0]["role"], "active");
    let (_, history) = stack.get(&format!("/workloads/{id}/history")).await;
    assert_eq!(history["data"][0]["status"], "completed", "{history:#}");
    assert!(history["data"][0]["switchedAt"].is_string());
    let (code, none) = stack.get(&format!("/workloads/{id}/replacement")).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{none}");
    assert_eq!(none["detail"], "There is no active replacement for this workload.");

    // A candidate that cannot start: errored, and the current proton keeps serving.
    let mut broken = whoami_artifact("broken", &[]);
    broken["spec"]["containerGroups"][0]["containers"][0]["entrypoint"] = json!(["/bin/false"]);
    let broken = new_artifact(&stack, broken).await;
    let (code, started) = stack.post(&format!("/workloads/{id}/replacement"), json!({"artifactId": broken, "strategy": "rolling"})).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{started}");
    let errored = wait_for(&stack, &id, "the errored end", |w| w["replacement"]["status"] == "errored").await;
    assert!(errored["replacement"]["message"].as_str().unwrap().contains("keeps serving"), "{errored:#}");
    assert_eq!(errored["protonId"], candidate.as_str());
    let (code, echo) = stack.invoke(&id, "still").await;
    assert_eq!((code, echo["artifactId"].as_str()), (StatusCode::OK, Some(next.as_str())));

    // Draft and locked do not mix; a wrong strategy names the field.
    let mut locked = whoami_artifact("locked", &[]);
    locked["status"] = json!("locked");
    let locked = new_artifact(&stack, locked).await;
    let (code, mismatch) = stack.post(&format!("/workloads/{id}/replacement"), json!({"artifactId": locked, "strategy": "rolling"})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{mismatch}");
    assert!(mismatch["detail"].as_str().unwrap().starts_with("Artifact status mismatch"), "{mismatch}");
    let (code, wrong) = stack.post(&format!("/workloads/{id}/replacement"), json!({"artifactId": next, "strategy": "canary"})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{wrong}");
    assert_eq!(wrong["detail"][0]["loc"], json!(["body", "strategy"]), "{wrong}");
}

/// A replacement with a rollback gate whose candidate answers 500 to everything (and passes its
/// probes): it takes its canary share, breaks the gate and is rolled back by itself. Only canary
/// requests fail; none after the rollback; the events say why, with the measurements.
#[tokio::test]
async fn a_gated_replacement_whose_candidate_fails_rolls_back_by_itself() {
    let dir = temp_dir();
    let stack = Arc::new(Stack::start(dir.path()).await);
    let (code, created) = stack.post("/workloads", workload("gated", whoami_artifact("gated", &[]), 2)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let current = created["protonId"].as_str().unwrap().to_owned();
    let current_artifact = created["artifactId"].as_str().unwrap().to_owned();
    stack.wait_status(&id, "running").await;
    let broken = new_artifact(&stack, whoami_artifact("gated-v2", &["--fail-requests"])).await;

    // A gate out of range is named and starts nothing.
    let bad = json!({"artifactId": broken, "strategy": "rolling", "config": {"rollback": {"maxErrorRate": 2, "window": "P1D"}}});
    let (code, refused) = stack.post(&format!("/workloads/{id}/replacement"), bad).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let fields: Vec<&Value> = refused["detail"].as_array().unwrap().iter().map(|e| &e["loc"][3]).collect();
    assert_eq!(fields, [&json!("maxErrorRate"), &json!("window")], "{refused}");
    let (_, unchanged) = stack.get(&format!("/workloads/{id}")).await;
    assert!(unchanged["replacement"].is_null(), "{unchanged:#}");

    // Callers that never pause; each failure is noted with the time it came.
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let failed_at = Arc::new(std::sync::Mutex::new(Vec::<Instant>::new()));
    let mut callers = Vec::new();
    for _ in 0..4 {
        let (stack, id, stop, calls, failed_at) = (stack.clone(), id.clone(), stop.clone(), calls.clone(), failed_at.clone());
        callers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (code, _) = stack.invoke(&id, "hello").await;
                calls.fetch_add(1, Ordering::Relaxed);
                if code != StatusCode::OK {
                    failed_at.lock().unwrap().push(Instant::now());
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let gate = json!({"maxErrorRate": 0.05, "window": "PT30S", "canaryPercent": 10, "minRequests": 10});
    let body = json!({"artifactId": broken, "strategy": "rolling", "config": {"rollback": gate}});
    let (code, started) = stack.post(&format!("/workloads/{id}/replacement"), body).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["config"]["rollback"]["canaryPercent"], 10);

    let canary = wait_for(&stack, &id, "the canary", |w| w["replacement"]["canaryStartedAt"].is_string()).await;
    let calls_before_canary = calls.load(Ordering::Relaxed);
    assert_eq!(canary["protonId"], current.as_str(), "a canary does not move the workload");
    let rolled_back = wait_for(&stack, &id, "the rollback", |w| w["replacement"]["status"] == "errored").await;
    let ended = Instant::now();
    let calls_in_canary = calls.load(Ordering::Relaxed) - calls_before_canary;
    let message = rolled_back["replacement"]["message"].as_str().unwrap();
    assert!(message.starts_with("Rolled back") && message.contains("error rate 100.0% > 5.0%"), "{message}");
    assert_eq!(
        (rolled_back["protonId"].as_str(), rolled_back["artifactId"].as_str()),
        (Some(current.as_str()), Some(current_artifact.as_str()))
    );

    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }
    let failed_at = failed_at.lock().unwrap().clone();
    // Requests that were under way when the rollback was written may still finish on the canary.
    let after = failed_at.iter().filter(|at| **at > ended + Duration::from_millis(500)).count();
    println!("gated replacement: {calls_in_canary} requests during the canary, {} failed, {after} after the rollback", failed_at.len());
    assert!(!failed_at.is_empty(), "the canary took its share");
    assert_eq!(after, 0, "no request fails once the canary is rolled back");
    assert!(failed_at.len() * 100 <= calls_in_canary * 15 + 10, "only the canary share failed: {} of {calls_in_canary}", failed_at.len());

    let (_, events) = stack.get(&format!("/workloads/{id}/events?limit=100")).await;
    let kinds: Vec<&str> = events["data"].as_array().unwrap().iter().map(|e| e["eventType"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"replacementCanary") && kinds.contains(&"replacementRolledBack"), "{kinds:?}");
    let (_, history) = stack.get(&format!("/workloads/{id}/history")).await;
    assert_eq!(history["data"][0]["status"], "errored", "{history:#}");
    let (code, echo) = stack.invoke(&id, "after").await;
    assert_eq!((code, echo["artifactId"].as_str()), (StatusCode::OK, Some(current_artifact.as_str())));
}
