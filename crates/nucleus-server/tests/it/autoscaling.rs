//! Autoscaling on `nucleus dev` with short windows: the tutorial's legacy shape is accepted and
//! echoed in the newest one; concurrent callers scale the workload up to its maximum and a light
//! load brings it back down, with no failed request either way; idle, it goes to zero replicas
//! (status still `running`, endpoint unchanged) and the next request wakes it and succeeds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Stack, temp_dir, whoami_artifact};

const WINDOWS: [&str; 6] = ["--autoscale-stable-window", "4s", "--autoscale-panic-window", "2s", "--scale-to-zero-grace", "2s"];

/// The active proton's asked-for replica count.
async fn replica_count(stack: &Stack, id: &str) -> u64 {
    let (code, w) = stack.get(&format!("/workloads/{id}")).await;
    assert_eq!(code, StatusCode::OK, "{w}");
    let (code, p) = stack.get(&format!("/workloads/{id}/protons/{}", w["protonId"].as_str().unwrap())).await;
    assert_eq!(code, StatusCode::OK, "{p}");
    p["replicaCount"].as_u64().unwrap()
}

/// Polls until the replica count satisfies `want`; panics with what it saw.
async fn wait_count(stack: &Stack, id: &str, what: &str, want: impl Fn(u64) -> bool, within: Duration) -> Duration {
    let started = Instant::now();
    let mut seen = Vec::new();
    while started.elapsed() < within {
        let count = replica_count(stack, id).await;
        if seen.last() != Some(&count) {
            seen.push(count);
        }
        if want(count) {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the replica count never became {what} within {within:?}; it went {seen:?}");
}

/// `callers` loops invoking `/sleep/{ms}` until `stop`; counts answers that are not 200.
fn load(
    stack: &Stack,
    id: &str,
    callers: usize,
    ms: u64,
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicU32>,
) -> Vec<tokio::task::JoinHandle<u32>> {
    (0..callers)
        .map(|_| {
            let (http, url, stop, failed) =
                (stack.http.clone(), stack.url(&format!("/endpoints/workloads/{id}/sleep/{ms}")), stop.clone(), failed.clone());
            tokio::spawn(async move {
                let mut served = 0;
                while !stop.load(Ordering::Relaxed) {
                    match http.get(&url).bearer_auth(crate::harness::TOKEN).send().await {
                        Ok(r) if r.status() == StatusCode::OK => served += 1,
                        Ok(r) => {
                            let status = r.status();
                            eprintln!("failed call: {status} {}", r.text().await.unwrap_or_default());
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(err) => {
                            eprintln!("failed call: {err}");
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                served
            })
        })
        .collect()
}

async fn stop_load(stop: &AtomicBool, callers: Vec<tokio::task::JoinHandle<u32>>) -> u32 {
    stop.store(true, Ordering::Relaxed);
    let mut served = 0;
    for caller in callers {
        served += caller.await.unwrap();
    }
    served
}

#[tokio::test]
async fn concurrency_scales_up_and_down_then_to_zero_and_a_request_wakes_it_with_no_failed_request() {
    let dir = temp_dir();
    let stack = Stack::start_with(dir.path(), &WINDOWS).await;
    // The tutorial's (legacy) shape: bounds on the policy.
    let body = json!({
        "name": "autoscaled",
        "artifact": whoami_artifact("autoscaled", &[]),
        "runtime": {"containerGroups": [{"name": "default", "autoscaling": {"enabled": true, "policies": [
            {"scalingMetric": "httpRequestsConcurrency", "target": 1, "minCount": 0, "maxCount": 3}
        ]}}]}
    });
    let (code, created) = stack.post("/workloads", body).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let autoscaling = &created["runtime"]["containerGroups"][0]["autoscaling"];
    assert_eq!(
        autoscaling,
        &json!({"enabled": true, "minReplicaCount": 0, "maxReplicaCount": 3,
            "policies": [{"scalingMetric": "httpRequestsConcurrency", "target": 1.0}]}),
        "echoed in the newest shape"
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let endpoint = created["endpoint"].clone();
    stack.wait_status(&id, "running").await;
    assert_eq!(replica_count(&stack, &id).await, 1, "a group that may rest at zero starts with one replica");

    // Six callers, each always with a 300 ms request in flight: concurrency 6 at target 1 → the
    // maximum, 3, and never more.
    let failed = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let callers = load(&stack, &id, 6, 300, stop.clone(), failed.clone());
    let took = wait_count(&stack, &id, "3", |n| n == 3, Duration::from_secs(20)).await;
    println!("scaled up to 3 replicas {took:?} after the load began");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(replica_count(&stack, &id).await, 3, "held at the maximum under load");
    let served = stop_load(&stop, callers).await;

    // One caller: concurrency ~1 → back down to 1 replica while it keeps calling.
    let stop = Arc::new(AtomicBool::new(false));
    let callers = load(&stack, &id, 1, 300, stop.clone(), failed.clone());
    let took = wait_count(&stack, &id, "1", |n| n == 1, Duration::from_secs(30)).await;
    println!("scaled down to 1 replica {took:?} after the load dropped");
    tokio::time::sleep(Duration::from_secs(3)).await; // the drained replicas stop meanwhile
    let served = served + stop_load(&stop, callers).await;
    assert_eq!(failed.load(Ordering::Relaxed), 0, "failed requests while scaling ({served} served)");

    // Idle: zero replicas after the stable window and the grace; still `running`, same endpoint.
    let (_, serving) = stack.get(&format!("/workloads/{id}")).await;
    let last_replicas = stack.replica_addresses(&serving).await;
    let took = wait_count(&stack, &id, "0", |n| n == 0, Duration::from_secs(30)).await;
    println!("scaled to zero {took:?} after the last request");
    let idle = stack.wait_status(&id, "running").await;
    assert_eq!(idle["endpoint"], endpoint);
    let (code, details) = stack.get(&format!("/workloads/{id}/protons/{}/statusDetails", idle["protonId"].as_str().unwrap())).await;
    assert_eq!(code, StatusCode::OK, "{details}");
    let wait_idle = Instant::now();
    let mut details = details;
    while details["replicas"].as_array().is_some_and(|r| !r.is_empty()) && wait_idle.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        details = stack.get(&format!("/workloads/{id}/protons/{}/statusDetails", idle["protonId"].as_str().unwrap())).await.1;
    }
    assert_eq!(details["replicas"], json!([]), "no replica runs at zero: {details}");
    assert!(details["overallStatus"]["summary"].as_str().unwrap().contains("Idle at 0"), "{details}");
    // A retired replica keeps serving for a short drain after it leaves the report (so that no
    // gateway routes to a replica that is gone): wait for it to go, so that the next request
    // finds nothing and has to wake the workload.
    for address in &last_replicas {
        assert!(crate::harness::gone(address).await, "the retired replica {address} still serves");
    }

    // The next request is held, wakes the workload and succeeds.
    let started = Instant::now();
    let (code, answer) = stack.invoke(&id, "sleep/10").await;
    assert_eq!(code, StatusCode::OK, "the request that woke it: {answer}");
    println!("cold start from zero answered in {:?}", started.elapsed());
    assert_eq!(replica_count(&stack, &id).await, 1);

    let (_, events) = stack.get(&format!("/workloads/{id}/events?limit=100")).await;
    let scaled: Vec<&Value> = events["data"].as_array().unwrap().iter().filter(|e| e["eventType"] == "autoscaled").collect();
    assert!(scaled.len() >= 3, "each decision is an event: {events:#}");
}

#[tokio::test]
async fn bad_autoscaling_is_refused_naming_the_field_and_creates_nothing() {
    let dir = temp_dir();
    let stack = Stack::start_with(dir.path(), &WINDOWS).await;
    let body = json!({
        "name": "bad-autoscaling",
        "artifact": whoami_artifact("bad-autoscaling", &[]),
        "runtime": {"containerGroups": [{"name": "default", "autoscaling": {"enabled": true, "minReplicaCount": 0, "maxReplicaCount": 2,
            "policies": [{"scalingMetric": "cpuAverageUtilization", "target": 70}]}}]}
    });
    let (code, answer) = stack.post("/workloads", body).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["detail"][0]["loc"], json!(["body", "runtime", "containerGroups", 0, "autoscaling", "minReplicaCount"]), "{answer}");
    let (_, list) = stack.get("/workloads").await;
    assert_eq!(list["count"], 0, "{list}");
}

#[tokio::test]
async fn changing_only_autoscaling_applies_in_place_without_a_replacement() {
    let dir = temp_dir();
    let stack = Stack::start_with(dir.path(), &WINDOWS).await;
    let autoscaling = |max: u32| {
        json!({"enabled": true, "minReplicaCount": 2, "maxReplicaCount": max,
        "policies": [{"scalingMetric": "httpRequestsInFlight", "target": 5}]})
    };
    let body = json!({
        "name": "in-place",
        "artifact": whoami_artifact("in-place", &[]),
        "runtime": {"containerGroups": [{"name": "default", "autoscaling": autoscaling(3)}]}
    });
    let (code, created) = stack.post("/workloads", body).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let running = stack.wait_status(&id, "running").await;
    assert_eq!(replica_count(&stack, &id).await, 2, "starts at its minimum");

    // The floor goes up to 3: applied in place, at once, on the same proton.
    let raised = json!({"enabled": true, "minReplicaCount": 3, "maxReplicaCount": 4,
        "policies": [{"scalingMetric": "httpRequestsInFlight", "target": 5}]});
    let patch = json!({"runtime": {"containerGroups": [{"name": "default", "autoscaling": raised}]}});
    let (code, record) = stack.call(reqwest::Method::PATCH, &format!("/workloads/{id}/settings"), Some(patch)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{record}");
    assert_eq!(record["status"], "completed", "{record}");
    let (_, after) = stack.get(&format!("/workloads/{id}")).await;
    assert_eq!(after["protonId"], running["protonId"], "no new proton");
    assert_eq!(after["replacement"], Value::Null, "no replacement under way");
    assert_eq!(after["runtime"]["containerGroups"][0]["autoscaling"]["maxReplicaCount"], 4);
    assert_eq!(replica_count(&stack, &id).await, 3, "brought inside the new bounds");
    let (_, events) = stack.get(&format!("/workloads/{id}/events?limit=100")).await;
    assert!(events["data"].as_array().unwrap().iter().any(|e| e["eventType"] == "autoscalingUpdated"), "{events:#}");
    wait_count(&stack, &id, "3 and running", |n| n == 3, Duration::from_secs(5)).await;
    let (code, answer) = stack.invoke(&id, "").await;
    assert_eq!(code, StatusCode::OK, "{answer}");
}

/// A workload scaling on `policy` between 1 and 3 replicas, running whoami with `args`.
async fn create_scaled(stack: &Stack, name: &str, args: &[&str], policy: Value) -> String {
    let body = json!({
        "name": name,
        "artifact": whoami_artifact(name, args),
        "runtime": {"containerGroups": [{"name": "default", "autoscaling": {"enabled": true, "minReplicaCount": 1, "maxReplicaCount": 3,
            "policies": [policy]}}]}
    });
    let (code, created) = stack.post("/workloads", body).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    stack.wait_status(&id, "running").await;
    id
}

#[tokio::test]
async fn a_replica_that_burns_cpu_scales_its_workload_up() {
    let dir = temp_dir();
    let stack = Stack::start_with(dir.path(), &WINDOWS).await;
    // The replica keeps 30 % of a core busy: of the (default) one-core allocation, at a target of
    // 20 %, that asks for 2 (kept light: other tests share this machine's cores).
    let id =
        create_scaled(&stack, "cpu-burner", &["--burn-cpu", "30"], json!({"scalingMetric": "cpuAverageUtilization", "target": 20})).await;
    let took = wait_count(&stack, &id, "more than 1", |n| n > 1, Duration::from_secs(30)).await;
    println!("CPU-driven scale-up {took:?} after the first replica was running");
    let (_, events) = stack.get(&format!("/workloads/{id}/events?limit=100")).await;
    assert!(events["data"].as_array().unwrap().iter().any(|e| e["eventType"] == "autoscaled"), "{events:#}");
}

#[tokio::test]
async fn a_metric_the_replica_exports_drives_scaling() {
    let dir = temp_dir();
    let stack = Stack::start_with(dir.path(), &WINDOWS).await;
    let policy = json!({"scalingMetric": "whoami_queue_depth", "metricsPath": "/metrics", "target": 10});
    let id = create_scaled(&stack, "queue", &[], policy).await;
    // Idle queue: stays at its minimum for longer than a stable window.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(replica_count(&stack, &id).await, 1, "an empty queue keeps the minimum");
    // 25 waiting at a target of 10 per replica → 3.
    let (code, answer) = stack.invoke(&id, "queue-depth/25").await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    let took = wait_count(&stack, &id, "3", |n| n == 3, Duration::from_secs(30)).await;
    println!("metric-driven scale-up {took:?} after the gauge rose");
}

/// Every role its own process, two gateways: the workload goes to zero, the gateway it was created
/// through is killed, and a request through the other one wakes it.
#[tokio::test]
async fn whichever_gateway_holds_the_request_wakes_the_workload_after_another_one_died() {
    use crate::harness::{free_port, send_signal, spawn_nucleus};
    struct Process(std::process::Child);
    impl Drop for Process {
        fn drop(&mut self) {
            send_signal(self.0.id() as i32, libc::SIGTERM);
            let _ = self.0.wait();
        }
    }
    let dir = temp_dir();
    let meta = format!("127.0.0.1:{}", free_port());
    let meta_args = ["meta", "--listen", &meta, "--data-dir", &dir.path().join("meta").to_string_lossy()].map(String::from);
    let _meta = Process(spawn_nucleus(&meta_args, "serving on ").await.0);
    let mut scheduler_args = vec!["scheduler".to_owned(), "--meta".to_owned(), meta.clone()];
    scheduler_args.extend(WINDOWS.iter().map(|a| a.to_string()));
    let _scheduler = Process(spawn_nucleus(&scheduler_args, "started (meta").await.0);
    let agent_args = [
        "agent",
        "--meta",
        &meta,
        "--listen",
        &format!("127.0.0.1:{}", free_port()),
        "--data-dir",
        &dir.path().join("agent").to_string_lossy(),
    ]
    .map(String::from);
    let _agent = Process(spawn_nucleus(&agent_args, "serving on ").await.0);
    let mut first = Stack::gateway(std::slice::from_ref(&meta)).await;
    let second = Stack::gateway(std::slice::from_ref(&meta)).await;

    let body = json!({
        "name": "two-gateways",
        "artifact": whoami_artifact("two-gateways", &[]),
        "runtime": {"containerGroups": [{"name": "default", "autoscaling": {"enabled": true, "minReplicaCount": 0, "maxReplicaCount": 2,
            "policies": [{"scalingMetric": "httpRequestsConcurrency", "target": 1}]}}]}
    });
    let (code, created) = first.post("/workloads", body).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    first.wait_status(&id, "running").await;
    let (code, answer) = first.invoke(&id, "through-the-first").await;
    assert_eq!(code, StatusCode::OK, "{answer}");
    wait_count(&second, &id, "0", |n| n == 0, Duration::from_secs(30)).await;

    first.stop();
    let started = Instant::now();
    let (code, answer) = second.invoke(&id, "woken-by-the-second").await;
    assert_eq!(code, StatusCode::OK, "the second gateway held the request and woke the workload: {answer}");
    println!("woken through the second gateway in {:?}", started.elapsed());
    assert_eq!(replica_count(&second, &id).await, 1);
}

/// A workload at zero whose replica never becomes ready: the held request gets 503 with
/// `Retry-After` at the activator's timeout (not a dropped connection), and past the queue bound a
/// request is refused at once the same way.
#[tokio::test]
async fn held_requests_past_the_timeout_or_the_queue_bound_get_503_with_retry_after() {
    let dir = temp_dir();
    let mut flags = WINDOWS.to_vec();
    flags.extend(["--activator-timeout", "2s", "--max-held-per-workload", "1"]);
    let stack = Stack::start_with(dir.path(), &flags).await;
    let body = json!({
        "name": "never-ready",
        "artifact": whoami_artifact("never-ready", &["--fail-readiness"]),
        "runtime": {"containerGroups": [{"name": "default", "autoscaling": {"enabled": true, "minReplicaCount": 0, "maxReplicaCount": 1,
            "policies": [{"scalingMetric": "httpRequestsConcurrency", "target": 1}]}}]}
    });
    let (code, created) = stack.post("/workloads", body).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let url = stack.url(&format!("/endpoints/workloads/{id}/echo"));
    let call = |http: reqwest::Client, url: String| async move {
        let started = Instant::now();
        let response = http.get(&url).bearer_auth(crate::harness::TOKEN).send().await.expect("an answer, not a dropped connection");
        let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        (response.status(), retry_after, response.text().await.unwrap(), started.elapsed())
    };
    let held = tokio::spawn(call(stack.http.clone(), url.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, retry_after, message, _) = call(stack.http.clone(), url.clone()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "past the queue bound: {message}");
    assert!(retry_after.is_some(), "{message}");
    assert!(message.contains("--max-held-per-workload"), "{message}");
    let (status, retry_after, message, waited) = held.await.unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{message}");
    assert!(retry_after.is_some(), "{message}");
    assert!(message.contains("--activator-timeout"), "{message}");
    assert!(waited >= Duration::from_secs(2), "held for {waited:?}");
}
