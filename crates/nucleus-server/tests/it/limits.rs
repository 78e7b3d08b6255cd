//! The limits a public endpoint needs, each met with its documented answer while the gateway keeps
//! serving everyone else: a slowloris connection is closed after the header-read timeout, an idle
//! one after the idle timeout, a replica that never answers costs its caller a 504 naming it, a
//! workload over its in-flight limit answers 503 with `Retry-After`, a REST body over the limit
//! gets a 413 in the API's error shape, and a connection over the connection limit a 503.

use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{Stack, TOKEN, temp_dir, whoami_artifact};

#[tokio::test]
async fn slow_clients_idle_connections_hung_replicas_and_busy_workloads_get_their_answers() {
    let dir = temp_dir();
    let flags = ["--header-read-timeout", "1", "--idle-timeout", "2", "--max-in-flight-per-workload", "2"];
    let mut stack = Stack::start_with(dir.path(), &flags).await;
    // With a 1 s header-read timeout, a pooled connection idle for about a second may be closed
    // just as it is reused: a race every keep-alive client has with every server's timeout.
    // Fresh connections keep the checks below about what they check.
    stack.http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let authority = stack.base.trim_start_matches("http://").to_owned();
    let mut body = json!({
        "name": "limits",
        "artifact": whoami_artifact("limits", &[]),
        "runtime": {"containerGroups": [{"name": "default", "replicaCount": 1}], "invokeTimeoutSeconds": 1}
    });
    let (code, created) = stack.post("/workloads", body.clone()).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["runtime"]["invokeTimeoutSeconds"], 1);
    stack.wait_status(&id, "running").await;

    // Slowloris: headers trickle in and never end; the connection is closed after the
    // header-read timeout, and others are served meanwhile.
    let mut slow = TcpStream::connect(&authority).await.unwrap();
    slow.write_all(b"GET /api/v2/version HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if slow.write_all(b"X-Slow: 1\r\n").await.is_err() {
                return Some(started.elapsed());
            }
        }
        None
    });
    let (code, _) = stack.get("/version").await;
    assert_eq!(code, StatusCode::OK, "served while a slow client holds a connection");
    let closed_after = trickle.await.unwrap().expect("the slowloris connection was never closed");
    println!("slowloris connection closed after {closed_after:?} (header-read timeout 1 s)");

    // Idle: a connection with nothing to do is closed after the idle timeout. HTTP/2 has no
    // header-read timer, so this is the idle timeout's doing alone.
    let stream = TcpStream::connect(&authority).await.unwrap();
    let (mut h2, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("http://{authority}/api/v2/version"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(h2.send_request(request).await.unwrap().status(), http::StatusCode::OK);
    let closed = tokio::time::timeout(Duration::from_secs(20), connection).await;
    assert!(closed.is_ok(), "an idle HTTP/2 connection stayed open");

    // A replica that never answers: 504 naming it, after the workload's own 1 s timeout, while
    // other calls to the same workload are answered.
    let hung = {
        let (http, url) = (stack.http.clone(), stack.url(&format!("/endpoints/workloads/{id}/sleep/600000")));
        tokio::spawn(async move { http.get(url).bearer_auth(TOKEN).send().await.unwrap() })
    };
    let (code, echo) = stack.invoke(&id, "meanwhile").await;
    assert_eq!(code, StatusCode::OK, "{echo}");
    let answer = hung.await.unwrap();
    assert_eq!(answer.status(), StatusCode::GATEWAY_TIMEOUT);
    let detail: Value = answer.json().await.unwrap();
    let detail = detail["detail"].as_str().unwrap();
    assert!(detail.contains("Replica ") && detail.contains("within 1 s"), "{detail}");

    // Over the in-flight limit (2): 503 with Retry-After, and room again once the others end. The
    // two calls stream 30 events 100 ms apart: their headers come at once (the 1 s header timeout
    // does not apply) and they stay in flight for 3 s, however slow this machine is.
    let (admitted, mut admissions) = tokio::sync::mpsc::channel(2);
    let slow_calls: Vec<_> = (0..2)
        .map(|_| {
            let (http, url) = (stack.http.clone(), stack.url(&format!("/endpoints/workloads/{id}/events/30")));
            let admitted = admitted.clone();
            tokio::spawn(async move {
                let answer = http.get(url).bearer_auth(TOKEN).send().await.unwrap();
                let _ = admitted.send(()).await;
                let status = answer.status();
                let body = answer.text().await.unwrap();
                assert_eq!(body.matches("data:").count(), 30, "every event arrived: {body}");
                status
            })
        })
        .collect();
    // Wait until both are in flight (their headers are in): a third call is refused then. Probing
    // earlier could take the second one's slot.
    for _ in 0..2 {
        admissions.recv().await.expect("both slow calls answer");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let answer = stack.http.get(stack.url(&format!("/endpoints/workloads/{id}/third"))).bearer_auth(TOKEN).send().await.unwrap();
        if answer.status() == StatusCode::SERVICE_UNAVAILABLE {
            break answer;
        }
        assert!(Instant::now() < deadline, "a third call was never refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(refused.headers()["retry-after"], "1");
    let detail: Value = refused.json().await.unwrap();
    assert!(detail["detail"].as_str().unwrap().contains("in flight"), "{detail}");
    for call in slow_calls {
        assert_eq!(call.await.unwrap(), StatusCode::OK);
    }
    let (code, _) = stack.invoke(&id, "after").await;
    assert_eq!(code, StatusCode::OK);

    // A REST body over the limit: 413 in the API's error shape, with and without a length.
    body["description"] = json!("x".repeat(3 * 1024 * 1024));
    let (code, refused) = stack.post("/workloads", body.clone()).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("at most 2097152 bytes"), "{refused}");
    let text = body.to_string();
    let chunks =
        futures::stream::iter(text.into_bytes().chunks(64 * 1024).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>());
    let answer = stack
        .http
        .post(stack.url("/workloads"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let refused: Value = answer.json().await.unwrap();
    assert!(refused["detail"].is_string(), "{refused}");
    let (_, list) = stack.get("/workloads").await;
    assert_eq!(list["totalCount"], 1, "nothing was created: {list}");
}

#[tokio::test]
async fn a_connection_over_the_limit_gets_503_and_the_others_are_served() {
    let dir = temp_dir();
    let stack = Stack::start_with(dir.path(), &["--max-connections", "3", "--workers", "1"]).await;
    let authority = stack.base.trim_start_matches("http://").to_owned();
    // The harness's readiness check may still hold a connection: fill up to the limit with ours.
    let mut held = Vec::new();
    let mut refused = None;
    for _ in 0..4 {
        let mut stream = TcpStream::connect(&authority).await.unwrap();
        let request = format!("GET /api/v2/version HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).await.unwrap();
        let head = String::from_utf8_lossy(&buf[..n]).into_owned();
        if head.starts_with("HTTP/1.1 503") {
            refused = Some(head);
            break;
        }
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        held.push(stream);
    }
    let refused = refused.expect("a fourth connection was not refused");
    assert!(refused.contains("retry-after: 1") && refused.contains("--max-connections"), "{refused}");
    assert!(held.len() <= 3);
    drop(held);
    // Room again once the held connections close.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = reqwest::Client::new();
        let answer = fresh.get(stack.url("/version")).bearer_auth(TOKEN).send().await.unwrap();
        if answer.status() == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "no room after the connections closed: {}", answer.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
