//! A workload's lifetime (docs/api/README.md, "Lifetime") on `nucleus dev` with a 6-second draft TTL: a draft workload
//! carries its expiry, is removed by the scheduler when it passes, and a (re)start gives it the
//! whole TTL again; promote locks the artifact as the repository's next version, removes the
//! expiry, records the promotion in the history and restarts nothing.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};

use crate::harness::{Stack, temp_dir, whoami_artifact, workload};

const TTL_SECONDS: i64 = 6;

fn expiry(w: &serde_json::Value) -> chrono::DateTime<chrono::Utc> {
    w["expiresAt"].as_str().unwrap_or_else(|| panic!("no expiresAt: {w:#}")).parse().unwrap()
}

#[tokio::test]
async fn drafts_expire_unless_promoted_and_promote_restarts_nothing() {
    let dir = temp_dir();
    let stack = Stack::start_with(dir.path(), &["--draft-ttl-seconds", &TTL_SECONDS.to_string()]).await;

    // Promoted at once: it outlives the TTL.
    let (code, kept) = stack.post("/workloads", workload("kept", whoami_artifact("kept", &[]), 1)).await;
    assert_eq!(code, StatusCode::CREATED, "{kept}");
    let kept_id = kept["id"].as_str().unwrap().to_owned();
    let created_at: chrono::DateTime<chrono::Utc> = kept["createdAt"].as_str().unwrap().parse().unwrap();
    assert_eq!((expiry(&kept) - created_at).num_seconds(), TTL_SECONDS, "{kept:#}");
    let (code, promoted) = stack.post(&format!("/workloads/{kept_id}/promote"), serde_json::json!({})).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{promoted}");
    assert!(promoted.get("expiresAt").is_none(), "no expiry once promoted: {promoted:#}");
    assert_eq!((&promoted["id"], &promoted["protonId"], &promoted["endpoint"]), (&kept["id"], &kept["protonId"], &kept["endpoint"]));
    assert_eq!(promoted["artifact"]["status"], "locked", "{promoted:#}");
    let artifact_id = kept["artifactId"].as_str().unwrap();
    let (_, artifact) = stack.get(&format!("/artifacts/{artifact_id}")).await;
    assert_eq!((artifact["status"].as_str(), artifact["version"].as_u64()), (Some("locked"), Some(1)), "{artifact:#}");
    let (code, history) = stack.get(&format!("/workloads/{kept_id}/history")).await;
    assert_eq!(code, StatusCode::OK, "{history}");
    assert_eq!(history["count"], 1, "{history:#}");
    assert_eq!(history["data"][0]["candidateArtifactId"], artifact_id);
    assert_eq!(history["data"][0]["status"], "completed");
    let (code, related) = stack.get(&format!("/workloads/{kept_id}/related")).await;
    assert_eq!(code, StatusCode::OK, "{related}");
    let kinds: Vec<&str> = related["data"].as_array().unwrap().iter().map(|r| r["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["artifact", "artifact_repository", "proton"], "{related:#}");
    assert_eq!(related["count"], 3);
    assert_eq!(related["data"][2]["id"], kept["protonId"]);
    let (code, again) = stack.post(&format!("/workloads/{kept_id}/promote"), serde_json::json!({})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{again}");
    assert!(again["detail"].as_str().unwrap().contains("not a draft"), "{again}");
    let (code, _) = stack.post("/workloads/000000000000000000000000/promote", serde_json::json!({})).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // Restarted: the TTL starts again.
    let (_, restarted) = stack.post("/workloads", workload("restarted", whoami_artifact("restarted", &[]), 1)).await;
    let restarted_id = restarted["id"].as_str().unwrap().to_owned();
    let (code, _) = stack.post(&format!("/workloads/{restarted_id}/stop"), serde_json::json!({})).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    stack.wait_status(&restarted_id, "stopped").await;
    let (code, _) = stack.post(&format!("/workloads/{restarted_id}/start"), serde_json::json!({})).await;
    assert_eq!(code, StatusCode::ACCEPTED);
    let (_, after_start) = stack.get(&format!("/workloads/{restarted_id}")).await;
    assert!(expiry(&after_start) > expiry(&restarted), "start gives the whole TTL again: {after_start:#}");

    // Left a draft: removed once its time is up, replica and all.
    let (_, doomed) = stack.post("/workloads", workload("doomed", whoami_artifact("doomed", &[]), 1)).await;
    let doomed_id = doomed["id"].as_str().unwrap().to_owned();
    stack.wait_status(&doomed_id, "running").await;
    let deadline = Instant::now() + Duration::from_secs(TTL_SECONDS as u64 + 20);
    loop {
        let (code, body) = stack.call(Method::GET, &format!("/workloads/{doomed_id}"), None).await;
        if code == StatusCode::NOT_FOUND {
            break;
        }
        assert!(Instant::now() < deadline, "the expired draft is still there: {body:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (code, _) = stack.invoke(&doomed_id, "once").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "nothing serves an expired workload");
    // The promoted one is still there and running.
    let (code, still) = stack.get(&format!("/workloads/{kept_id}")).await;
    assert_eq!(code, StatusCode::OK, "{still}");
    assert!(still.get("expiresAt").is_none());
}
