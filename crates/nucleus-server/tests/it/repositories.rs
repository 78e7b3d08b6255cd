//! Artifact repositories (derived from the artifacts that name them) and clone.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Stack, temp_dir, whoami_artifact};

#[tokio::test]
async fn repositories_version_locked_artifacts_and_delete_all_or_nothing() {
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;

    let mut v1 = whoami_artifact("model", &[]);
    v1["status"] = json!("locked");
    let (code, first) = stack.post("/artifacts", v1.clone()).await;
    assert_eq!(code, StatusCode::CREATED, "{first}");
    let repo = first["artifactRepositoryId"].as_str().unwrap().to_owned();
    v1["artifactRepositoryId"] = json!(repo);
    let (_, second) = stack.post("/artifacts", v1.clone()).await;
    assert_eq!((first["version"].as_u64(), second["version"].as_u64()), (Some(1), Some(2)));

    // A different type cannot join the repository; nothing is created.
    let mut other = v1.clone();
    other["type"] = json!("nim");
    let (code, body) = stack.post("/artifacts", other).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["detail"][0]["loc"], json!(["body", "type"]));

    let (code, summary) = stack.get(&format!("/artifactRepositories/{repo}/")).await;
    assert_eq!(code, StatusCode::OK, "{summary}");
    assert_eq!((summary["numArtifacts"].as_u64(), summary["lastVersionNumber"].as_u64()), (Some(2), Some(2)));
    assert_eq!(summary["type"], "service");
    let (code, page) = stack.get("/artifactRepositories?limit=5").await;
    assert_eq!((code, page["totalCount"].as_u64()), (StatusCode::OK, Some(1)));

    // Clone a locked artifact: a new draft in the same repository.
    let (code, draft) = stack.post(&format!("/artifacts/{}/clone", second["id"].as_str().unwrap()), json!({"name": "model-edit"})).await;
    assert_eq!(code, StatusCode::OK, "{draft}");
    assert_eq!((draft["status"].as_str(), draft["version"].is_null()), (Some("draft"), true));
    assert_eq!(draft["artifactRepositoryId"], repo.as_str());
    assert_eq!(draft["spec"], second["spec"]);
    let (code, _) = stack.post(&format!("/artifacts/{}/clone", second["id"].as_str().unwrap()), json!({"name": ""})).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, _) = stack.post("/artifacts/nope/clone", json!({"name": "x"})).await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // Locked members block the delete; nothing goes.
    let (code, body) = stack.call(Method::DELETE, &format!("/artifactRepositories/{repo}"), None).await;
    assert_eq!(code, StatusCode::CONFLICT, "{body}");
    assert!(body["detail"].as_str().unwrap().contains(first["id"].as_str().unwrap()));
    let (_, after) = stack.get(&format!("/artifactRepositories/{repo}")).await;
    assert_eq!(after["numArtifacts"], 3);

    // A repository of drafts only goes in one piece.
    let (_, a) = stack.post("/artifacts", whoami_artifact("scratch", &[])).await;
    let scratch = a["artifactRepositoryId"].as_str().unwrap().to_owned();
    let mut b = whoami_artifact("scratch-2", &[]);
    b["artifactRepositoryId"] = json!(scratch);
    let (_, b) = stack.post("/artifacts", b).await;
    let (code, _) = stack.call(Method::DELETE, &format!("/artifactRepositories/{scratch}"), None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    for id in [&a["id"], &b["id"]] {
        let (code, _) = stack.get(&format!("/artifacts/{}", id.as_str().unwrap())).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
    }
    let (code, _) = stack.get(&format!("/artifactRepositories/{scratch}")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}
