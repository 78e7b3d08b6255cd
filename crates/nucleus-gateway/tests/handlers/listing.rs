use axum::http::StatusCode;
use serde_json::json;

use crate::harness::Api;

#[tokio::test]
async fn pages_link_on_the_public_url_and_filters_are_checked() {
    let api = Api::start().await;
    for name in ["a", "b", "c"] {
        api.workload(name).await;
    }
    let (code, page) = api.get("/workloads?limit=2").await;
    assert_eq!(code, StatusCode::OK, "{page}");
    assert_eq!((page["count"].clone(), page["totalCount"].clone()), (json!(2), json!(3)));
    let next = page["next"].as_str().unwrap_or_else(|| panic!("a next link: {page}"));
    assert!(next.starts_with("https://api.example.test/api/v2/workloads"), "{next}");
    let (_, rest) = api.get(next.trim_start_matches("https://api.example.test/api/v2")).await;
    assert_eq!((rest["count"].clone(), rest["next"].clone()), (json!(1), json!(null)), "{rest}");

    let (code, _) = api.get("/workloads?limit=0").await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, _) = api.get("/workloads?status=sleepy").await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, page) = api.get("/workloads?status=stopped").await;
    assert_eq!((code, page["totalCount"].clone()), (StatusCode::OK, json!(0)), "{page}");
}
