//! Request statistics on `nucleus dev`: every invocation is counted per proton (answers, 4xx,
//! 5xx), persisted per minute and summed by the stats endpoints; `serviceStats=true` embeds
//! them in the list, and the OTel metrics API (`/otel/workload/{id}/metrics/autocollectedValues/`)
//! reads the same counts; DELETE resets them; bad parameters are refused without changing anything.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{Stack, temp_dir, whoami_artifact, workload};

#[tokio::test]
async fn invocations_are_counted_per_proton_and_minute() {
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;
    let (_, created) = stack.post("/workloads", workload("counted", whoami_artifact("counted", &[]), 1)).await;
    let id = created["id"].as_str().unwrap().to_owned();
    stack.wait_status(&id, "running").await;
    for _ in 0..20 {
        assert_eq!(stack.invoke(&id, "hello").await.0, StatusCode::OK);
    }
    for _ in 0..3 {
        assert_eq!(stack.invoke(&id, "status/404").await.0, StatusCode::NOT_FOUND);
    }
    for _ in 0..2 {
        assert_eq!(stack.invoke(&id, "status/500").await.0, StatusCode::INTERNAL_SERVER_ERROR);
    }
    // Counts reach meta within a flush period.
    let deadline = Instant::now() + Duration::from_secs(15);
    let stats = loop {
        let (code, stats) = stack.get(&format!("/workloads/{id}/stats")).await;
        assert_eq!(code, StatusCode::OK, "{stats}");
        if stats["metrics"]["totalRequests"] == 25 {
            break stats;
        }
        assert!(Instant::now() < deadline, "not counted: {stats:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let metrics = &stats["metrics"];
    assert_eq!((metrics["userErrors"].as_u64(), metrics["serverErrors"].as_u64()), (Some(3), Some(2)), "{stats:#}");
    assert_eq!(metrics["totalErrorRate"], 0.2);
    assert!(metrics["concurrentRequests"].as_u64() >= Some(1));

    let start = (nucleus_api::clock::now() - chrono::Duration::minutes(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (code, over_time) = stack.get(&format!("/workloads/{id}/stats/totalRequests?resolution=PT1M&startTime={start}")).await;
    assert_eq!(code, StatusCode::OK, "{over_time}");
    let buckets = over_time["buckets"].as_array().unwrap();
    assert!((5..=6).contains(&buckets.len()), "{over_time:#}");
    assert_eq!(buckets.iter().map(|b| b["value"].as_u64().unwrap()).sum::<u64>(), 25);
    assert_eq!(over_time["summary"]["protonId"], created["protonId"]);

    // The OTel metrics API reads the same counts, plus the replicas the agent reports.
    let (code, catalogue) = stack.get(&format!("/otel/workload/{id}/metrics/")).await;
    assert_eq!(code, StatusCode::OK, "{catalogue}");
    let names: Vec<&str> = catalogue["data"].as_array().unwrap().iter().map(|m| m["otelName"].as_str().unwrap()).collect();
    assert!(names.contains(&"http.server.request.count") && names.contains(&"nucleus.replicas.ready"), "{names:?}");
    let (code, values) = stack.get(&format!("/otel/workload/{id}/metrics/autocollectedValues/")).await;
    assert_eq!(code, StatusCode::OK, "{values}");
    let value = |values: &serde_json::Value, name: &str, aggregation: &str| {
        values["data"].as_array().unwrap().iter().find(|v| v["otelName"] == name && v["aggregation"] == aggregation).unwrap()
            ["aggregatedValue"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(value(&values, "http.server.request.count", "sum"), 25.0, "{values:#}");
    assert_eq!(value(&values, "http.server.request.server_errors", "sum"), 2.0);
    assert_eq!(value(&values, "http.server.request.error_rate", "avg"), 0.2);
    assert!(value(&values, "http.server.request.duration", "p95") > 0.0);
    assert_eq!((value(&values, "nucleus.replicas.desired", "last"), value(&values, "nucleus.replicas.ready", "last")), (1.0, 1.0));
    let proton = created["protonId"].as_str().unwrap();
    let (_, other) =
        stack.get(&format!("/otel/workload/{id}/metrics/autocollectedValues/?searchKeys=proton_id&searchValues=x{proton}")).await;
    assert_eq!(value(&other, "http.server.request.count", "sum"), 0.0, "another proton's counts: {other:#}");
    let (_, before) = stack.get(&format!("/otel/workload/{id}/metrics/autocollectedValues/?endTime=2026-01-01T00:00:00Z")).await;
    assert_eq!(value(&before, "http.server.request.count", "sum"), 0.0, "nothing was counted then");
    let (code, bad) = stack.get(&format!("/otel/workload/{id}/metrics/autocollectedValues/?searchKeys=pod&searchValues=x")).await;
    assert_eq!((code, &bad["detail"][0]["loc"]), (StatusCode::UNPROCESSABLE_ENTITY, &json!(["query", "searchKeys"])), "{bad}");
    assert_eq!(stack.get("/otel/workload/nope/metrics/autocollectedValues/").await.0, StatusCode::NOT_FOUND);

    let (code, bad) = stack.get(&format!("/workloads/{id}/stats/bogus")).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert_eq!(bad["detail"][0]["loc"], json!(["path", "metric_name"]));
    let (code, bad) = stack.get(&format!("/workloads/{id}/stats?startTime=2026-01-02T00:00:00Z&endTime=2026-01-01T00:00:00Z")).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}");

    let (code, page) = stack.get("/workloads?serviceStats=true").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(page["data"][0]["requestStats"]["totalRequests"], 25, "{page:#}");
    assert_eq!(page["data"][0]["requestStats"]["errorRates"].as_array().unwrap().len(), 7);
    let (_, plain) = stack.get("/workloads").await;
    assert!(plain["data"][0].get("requestStats").is_none(), "only when asked for");
    let (code, overview) = stack.get("/workloads/stats").await;
    assert_eq!(code, StatusCode::OK, "{overview}");
    assert_eq!((overview["workloads"]["total"].as_u64(), overview["requests"]["total"].as_u64()), (Some(1), Some(25)), "{overview:#}");
    assert_eq!(overview["requests"]["failed"], 5);

    let (code, _) = stack.call(Method::DELETE, &format!("/workloads/{id}/stats"), None).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    tokio::time::sleep(Duration::from_secs(3)).await; // a flush after the reset brings nothing back
    let (_, after) = stack.get(&format!("/workloads/{id}/stats")).await;
    assert_eq!(after["metrics"]["totalRequests"], 0, "{after:#}");
}
