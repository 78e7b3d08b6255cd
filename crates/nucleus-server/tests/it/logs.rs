//! Replica logs on `nucleus dev`, read the way DataRobot's tooling reads them
//! (`GET /otel/workload/{id}/logs/`): what a replica prints at start and per request shows up
//! within 2 s, newest first, with its severity; the level, time, text and proton filters narrow
//! it; bad parameters are named; the records outlive the replica; a follow (server-sent events)
//! sends new lines as they come and ends when the workload is deleted.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Stack, temp_dir, whoami, workload};

/// Prints a Python-style INFO line, a JSON warning with a trace id and a traceback-ish line on
/// stderr, then serves.
fn chatty_artifact() -> Value {
    let script = format!(
        "echo 'INFO:root:booting'; echo '{{\"level\":\"warning\",\"message\":\"cache cold\",\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\"}}'; \
         echo 'Traceback (most recent call last): boom' >&2; exec {} --port $PORT",
        whoami()
    );
    json!({
        "name": "chatty",
        "spec": {"containerGroups": [{"name": "default", "containers": [{
            "name": "web",
            "imageUri": "example/whoami:1",
            "primary": true,
            "port": 8080,
            "entrypoint": ["sh", "-c", script],
            "readinessProbe": {"path": "/ready", "port": 8080, "initialDelaySeconds": 0, "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 30}
        }]}]}
    })
}

async fn logs(stack: &Stack, id: &str, query: &str) -> (StatusCode, Value) {
    stack.get(&format!("/otel/workload/{id}/logs/{query}")).await
}

fn messages(page: &Value) -> Vec<String> {
    page["data"].as_array().expect("data").iter().map(|r| r["message"].as_str().expect("message").to_owned()).collect()
}

/// Polls until a page of `query` has a record whose message contains `text`; returns the page
/// and how long it took.
async fn wait_for(stack: &Stack, id: &str, query: &str, text: &str, within: Duration) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let (code, page) = logs(stack, id, query).await;
        assert_eq!(code, StatusCode::OK, "{page}");
        if messages(&page).iter().any(|m| m.contains(text)) {
            return (page, started.elapsed());
        }
        assert!(started.elapsed() < within, "'{text}' not in the logs within {within:?}: {page:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A client of `GET /otel/workload/{id}/logs/stream/` (server-sent events).
struct Follow {
    response: reqwest::Response,
    buffer: String,
}

impl Follow {
    async fn open(stack: &Stack, id: &str, query: &str) -> Follow {
        let response = stack
            .http
            .get(stack.url(&format!("/otel/workload/{id}/logs/stream/{query}")))
            .bearer_auth(crate::harness::TOKEN)
            .send()
            .await
            .expect("stream");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Follow { response, buffer: String::new() }
    }

    /// The next event's name and data.
    async fn next(&mut self) -> (String, String) {
        loop {
            if let Some(at) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..at + 2).collect();
                let field = |name: &str| block.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned());
                if let Some(data) = field("data:") {
                    return (field("event:").unwrap_or_default(), data);
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk()).await.expect("an event within 10 s");
            let chunk = chunk.expect("stream").expect("the stream is open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    async fn next_log(&mut self) -> Value {
        let (kind, data) = self.next().await;
        assert_eq!(kind, "log", "{data}");
        serde_json::from_str(&data).expect("a record")
    }

    async fn next_until_end(&mut self) -> String {
        loop {
            let (kind, data) = self.next().await;
            if kind == "end" {
                return data;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replica_output_is_served_as_filtered_log_records() {
    let dir = temp_dir();
    let mut stack = Stack::start(dir.path()).await;
    let (code, created) = stack.post("/workloads/", workload("chatty", chatty_artifact(), 1)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let running = stack.wait_status(&id, "running").await;
    let proton = running["protonId"].as_str().expect("proton").to_owned();

    // The sandbox's request: no parameters at all, newest first.
    let (page, _) = wait_for(&stack, &id, "", "booting", Duration::from_secs(5)).await;
    let data = page["data"].as_array().expect("data");
    let find = |text: &str| data.iter().find(|r| r["message"].as_str().is_some_and(|m| m.contains(text))).cloned();
    let booting = find("booting").expect("booting");
    assert_eq!((booting["level"].as_str(), booting["stream"].as_str()), (Some("INFO"), Some("stdout")), "{booting}");
    assert_eq!(booting["protonId"], proton.as_str());
    let cold = find("cache cold").expect("the JSON line");
    assert_eq!((cold["level"].as_str(), cold["message"].as_str()), (Some("WARNING"), Some("cache cold")), "{cold}");
    assert_eq!(cold["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    let traceback = find("Traceback").expect("stderr");
    assert_eq!((traceback["level"].as_str(), traceback["stream"].as_str()), (Some("ERROR"), Some("stderr")));
    let times: Vec<&str> = data.iter().map(|r| r["timestamp"].as_str().expect("timestamp")).collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    assert!(page["count"].as_u64().is_some() && page.get("next").is_some() && page.get("previous").is_some(), "{page}");

    // A line printed while serving is there within 2 s.
    let (code, _) = stack.invoke(&id, "status/200?marker=fresh-42").await;
    assert_eq!(code, StatusCode::OK);
    let (_, took) = wait_for(&stack, &id, "?includes=fresh-42", "fresh-42", Duration::from_secs(2)).await;
    eprintln!("a request's log line was served after {took:?}");

    // Followed live (`logs -f`): the newest records first, then each new line as it is printed.
    let mut follow = Follow::open(&stack, &id, "?limit=2&level=info").await;
    let backlog = [follow.next_log().await, follow.next_log().await];
    assert!(backlog.iter().all(|r| r["level"] != "DEBUG"), "{backlog:?}");
    assert!(backlog[0]["timestamp"].as_str() <= backlog[1]["timestamp"].as_str(), "oldest first: {backlog:?}");
    let (code, _) = stack.invoke(&id, "status/200?marker=live-7").await;
    assert_eq!(code, StatusCode::OK);
    let started = Instant::now();
    loop {
        let record = follow.next_log().await;
        if record["message"].as_str().is_some_and(|m| m.contains("live-7")) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(2), "the live line did not come within 2 s");
    }
    eprintln!("a followed line came after {:?}", started.elapsed());
    let (code, bad) = stack.get(&format!("/otel/workload/{id}/logs/stream/?offset=3")).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");

    // The requests DataRobot's tooling makes.
    let (code, errors) = logs(&stack, &id, "?limit=100&level=error&includes=Traceback").await;
    assert_eq!(code, StatusCode::OK, "{errors}");
    assert_eq!(messages(&errors), ["Traceback (most recent call last): boom"]);
    let (_, warnings) = logs(&stack, &id, "?limit=100&offset=0&level=warn").await;
    assert_eq!(messages(&warnings).len(), 2, "warning and error, not info: {warnings:#}");
    let (_, traced) = logs(&stack, &id, "?traceId=4bf92f3577b34da6a3ce929d0e0e4736").await;
    assert_eq!(messages(&traced), ["cache cold"]);
    let (_, excluded) = logs(&stack, &id, "?includes=boot&excludes=booting").await;
    assert!(messages(&excluded).is_empty(), "{excluded}");
    let (_, by_proton) = logs(&stack, &id, &format!("?searchKeys=proton_id&searchValues={proton}&level=info")).await;
    assert!(messages(&by_proton).iter().any(|m| m == "INFO:root:booting"), "{by_proton}");
    let (_, other_proton) = logs(&stack, &id, "?searchKeys=proton_id&searchValues=nope").await;
    assert_eq!(other_proton["count"], 0, "{other_proton}");
    let future = (nucleus_api::clock::now() + chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, later) = logs(&stack, &id, &format!("?startTime={}", future.replace('+', "%2B"))).await;
    assert_eq!(later["count"], 0, "nothing was printed in the future: {later}");
    let past = (nucleus_api::clock::now() - chrono::Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (_, since) = logs(&stack, &id, &format!("?startTime={past}&endTime={future}")).await;
    assert!(messages(&since).len() >= 4, "{since}");
    let (_, first) = logs(&stack, &id, "?limit=1").await;
    assert_eq!(first["data"].as_array().map(Vec::len), Some(1));
    assert!(first["next"].as_str().is_some_and(|next| next.contains("offset=1")), "{first}");

    // Bad input is named; unknown workloads and callers without a token are refused.
    let (code, bad) = logs(&stack, &id, "?level=loud").await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert!(bad.to_string().contains("level"), "{bad}");
    let (code, _) = logs(&stack, &id, "?limit=1001").await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    let (code, _) = logs(&stack, "no-such-workload", "").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let anonymous = stack.http.get(stack.url(&format!("/otel/workload/{id}/logs/"))).send().await.expect("answer");
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // Stopped, the replica is gone but what it printed is still there.
    let (code, stopped) = stack.post(&format!("/workloads/{id}/stop"), json!({})).await;
    assert!(code.is_success(), "{stopped}");
    stack.wait_status(&id, "stopped").await;
    let (_, after) = logs(&stack, &id, "?includes=booting").await;
    assert_eq!(messages(&after), ["INFO:root:booting"], "{after}");

    // Deleted, the follow ends with word of why.
    let (code, _) = stack.call(reqwest::Method::DELETE, &format!("/workloads/{id}"), None).await;
    assert!(code.is_success());
    assert_eq!(follow.next_until_end().await, format!("workload {id} was deleted"));
    stack.stop();
}
