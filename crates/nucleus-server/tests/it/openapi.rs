//! The served OpenAPI document: public, in both forms, and every operation it lists is a route
//! the gateway really has (schemathesis, in CI, checks the answers against it).

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::harness::{Stack, temp_dir};

#[tokio::test]
async fn the_document_is_served_without_a_token_and_lists_only_real_routes() {
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;
    let resp = stack.http.get(stack.url("/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let resp = stack.http.get(stack.url("/openapi.yaml")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/yaml");
    assert!(resp.text().await.unwrap().starts_with("openapi: 3.1.0"));

    let paths = doc["paths"].as_object().unwrap();
    let mut checked = 0;
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let concrete = path
                .split('/')
                .map(|segment| if segment.starts_with('{') { "no-such-object" } else { segment })
                .collect::<Vec<_>>()
                .join("/");
            let relative = concrete.strip_prefix("/api/v2").expect("every path is under /api/v2");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let (status, body) = stack.call(method.clone(), relative, Some(serde_json::json!({}))).await;
            let detail = body["detail"].as_str().unwrap_or_default();
            assert!(
                status != StatusCode::METHOD_NOT_ALLOWED && !detail.contains("no such route"),
                "{method} {path} is documented but not routed: {status} {body}"
            );
            assert!(!status.is_server_error(), "{method} {path}: {status} {body}");
            checked += 1;
        }
    }
    assert!(checked > 80, "only {checked} operations documented");
}
