//! The invoke URL as callers use it: replicas that die under load cost no request, and a workload
//! whose only replica is gone answers 503 with `Retry-After` (never 502) until it is back;
//! WebSocket, HTTP/2 (h2c) and gRPC go through; SSE and large uploads stream; the headers the
//! replica sees are the caller's, minus hop-by-hop ones and the token, plus `X-Forwarded-*`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Stack, TOKEN, send_signal, temp_dir, whoami_artifact, workload};

/// Creates a whoami workload with `replicas` replicas and waits until it runs.
async fn running(stack: &Stack, name: &str, replicas: u32) -> (String, Value) {
    let (code, created) = stack.post("/workloads", workload(name, whoami_artifact(name, &[]), replicas)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let running = stack.wait_status(&id, "running").await;
    (id, running)
}

/// The process id behind a replica address (whoami says it in every echo).
async fn pid_at(address: &str) -> Option<u32> {
    let answer = reqwest::get(format!("http://{address}/pid")).await.ok()?;
    let echo: Value = answer.json().await.ok()?;
    echo["pid"].as_u64().map(|p| p as u32)
}

/// What callers saw: answers by status, and the failures in full.
#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    failures: Mutex<Vec<String>>,
    pids: Mutex<std::collections::BTreeSet<u32>>,
}

/// `callers` keep-alive clients calling the invoke URL until `stop`.
fn load(stack: &Stack, id: &str, callers: usize, stop: Arc<AtomicBool>, tally: Arc<Tally>) -> Vec<tokio::task::JoinHandle<()>> {
    (0..callers)
        .map(|_| {
            let url = stack.url(&format!("/endpoints/workloads/{id}/load"));
            let (stop, tally) = (stop.clone(), tally.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    match client.get(&url).bearer_auth(TOKEN).send().await {
                        Ok(answer) if answer.status() == StatusCode::OK => {
                            let echo: Value = answer.json().await.unwrap_or_default();
                            if let Some(pid) = echo["pid"].as_u64() {
                                tally.pids.lock().unwrap().insert(pid as u32);
                            }
                            tally.ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(answer) => {
                            let status = answer.status();
                            let body = answer.text().await.unwrap_or_default();
                            tally.failures.lock().unwrap().push(format!("{status}: {body}"));
                        }
                        Err(err) => tally.failures.lock().unwrap().push(format!("transport: {err}")),
                    }
                }
            })
        })
        .collect()
}

#[tokio::test]
async fn killing_one_of_three_replicas_under_load_fails_no_request() {
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;
    let (id, running) = running(&stack, "survivor", 3).await;
    let addresses = stack.replica_addresses(&running).await;
    let victim = addresses[0].clone();
    let old_pid = pid_at(&victim).await.expect("the replica answers directly");

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let callers = load(&stack, &id, 8, stop.clone(), tally.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    send_signal(old_pid as i32, libc::SIGKILL);
    let killed_at = Instant::now();

    // Until the replica is back (a new process on its address) and has served through the gateway.
    let deadline = Instant::now() + Duration::from_secs(60);
    let new_pid = loop {
        if let Some(pid) = pid_at(&victim).await.filter(|p| *p != old_pid)
            && tally.pids.lock().unwrap().contains(&pid)
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "the killed replica was not replaced and routed to again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await.unwrap();
    }
    let failures = tally.failures.lock().unwrap().clone();
    let ok = tally.ok.load(Ordering::Relaxed);
    println!("{ok} answers, {} failures; replica {victim} back as pid {new_pid} {:?} after the kill", failures.len(), killed_at.elapsed());
    assert!(failures.is_empty(), "{} of {} requests failed, first: {:?}", failures.len(), ok + failures.len(), failures.first());
    assert!(ok > 100, "the load ran ({ok} answers)");
    let (_, w) = stack.get(&format!("/workloads/{id}")).await;
    assert_eq!(w["status"], "running", "{w:#}");
}

#[tokio::test]
async fn a_workload_whose_only_replica_died_answers_503_with_retry_after_until_it_is_back() {
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;
    let (id, running) = running(&stack, "alone", 1).await;
    let address = stack.replica_addresses(&running).await.remove(0);
    let old_pid = pid_at(&address).await.expect("the replica answers directly");
    send_signal(old_pid as i32, libc::SIGKILL);

    let url = stack.url(&format!("/endpoints/workloads/{id}/again"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut unavailable = 0;
    loop {
        let answer = stack.http.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        match answer.status() {
            StatusCode::OK => {
                let echo: Value = answer.json().await.unwrap();
                if echo["pid"].as_u64() != Some(old_pid as u64) {
                    break;
                }
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                let retry_after = answer.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
                let body: Value = answer.json().await.unwrap();
                assert_eq!(retry_after.as_deref(), Some("1"), "{body}");
                let detail = body["detail"].as_str().unwrap();
                assert!(detail.contains(&id) && detail.to_lowercase().contains("retry"), "says which workload and what to do: {detail}");
                assert!(!detail.contains(&address), "no internal address in the answer: {detail}");
                unavailable += 1;
            }
            other => panic!("expected 200 or 503 while the replica restarts, got {other}: {}", answer.text().await.unwrap()),
        }
        assert!(Instant::now() < deadline, "the replica did not come back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(unavailable > 0, "the restart (1 s back-off) was seen as 503s");
}

#[tokio::test]
async fn websocket_http2_grpc_sse_and_uploads_go_through() {
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;
    let (id, _) = running(&stack, "protocols", 1).await;
    let authority = stack.base.trim_start_matches("http://").to_owned();
    let prefix = format!("/api/v2/endpoints/workloads/{id}");

    // WebSocket: the token is checked at the handshake, then messages flow both ways.
    let ws_url = format!("ws://{authority}{prefix}/ws");
    let refused = tokio_tungstenite::connect_async(ws_url.as_str()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(answer)) => assert_eq!(answer.status(), 401),
        other => panic!("a handshake without a token must get 401, got {:?}", other.map(|(_, r)| r.status())),
    }
    let mut handshake = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(ws_url.as_str()).unwrap();
    handshake.headers_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (mut socket, answer) = tokio_tungstenite::connect_async(handshake).await.expect("WebSocket handshake through the gateway");
    assert_eq!(answer.status(), 101);
    use tokio_tungstenite::tungstenite::Message;
    let hello = socket.next().await.unwrap().unwrap();
    assert!(hello.to_text().unwrap().starts_with("hello from "), "{hello:?}");
    for text in ["one", "two", "three"] {
        socket.send(Message::text(text)).await.unwrap();
        assert_eq!(socket.next().await.unwrap().unwrap(), Message::text(text));
    }
    socket.send(Message::binary(vec![0u8, 1, 2, 255])).await.unwrap();
    assert_eq!(socket.next().await.unwrap().unwrap(), Message::binary(vec![0u8, 1, 2, 255]));
    socket.close(None).await.unwrap();

    // HTTP/2 with prior knowledge from the caller; the replica is asked over HTTP/1.1.
    let stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let (mut h2, connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("h2c handshake with the gateway");
    tokio::spawn(connection);
    let request = http::Request::get(format!("http://{authority}{prefix}/over-h2?q=1"))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let answer = h2.send_request(request).await.expect("an h2c answer");
    assert_eq!((answer.status(), answer.version()), (http::StatusCode::OK, http::Version::HTTP_2));
    let body = http_body_util::BodyExt::collect(answer.into_body()).await.unwrap().to_bytes();
    let echo: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((echo["path"].as_str(), echo["query"].as_str()), (Some("/over-h2"), Some("q=1")), "{echo}");

    // gRPC over HTTP/2: the standard health check, through the invoke URL.
    let channel = tonic::transport::Endpoint::from_shared(stack.base.clone()).unwrap().connect().await.unwrap();
    let grpc_prefix = prefix.clone();
    let through_gateway = tower::ServiceExt::map_request(channel, move |mut request: http::Request<tonic::body::Body>| {
        let path = format!("{grpc_prefix}{}", request.uri().path());
        *request.uri_mut() = path.parse().unwrap();
        request.headers_mut().insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
        request
    });
    let mut health = tonic_health::pb::health_client::HealthClient::new(through_gateway);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await
        .expect("gRPC health check through the invoke URL")
        .into_inner()
        .status;
    assert_eq!(status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32);

    // SSE: events arrive one by one, not all at the end.
    let answer = stack.http.get(stack.url(&format!("/endpoints/workloads/{id}/events/5"))).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let mut stream = answer.bytes_stream();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.next().await {
        chunks.push(String::from_utf8(chunk.unwrap().to_vec()).unwrap());
    }
    assert!(chunks.len() >= 5, "each event its own chunk: {chunks:?}");
    assert!(chunks.concat().contains("data: event 4"), "{chunks:?}");

    // A 200 MiB upload streams through in pieces.
    const MIB: usize = 1024 * 1024;
    let pieces = futures::stream::iter((0..200).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![7u8; MIB]))));
    let answer = stack
        .http
        .post(stack.url(&format!("/endpoints/workloads/{id}/bytes")))
        .bearer_auth(TOKEN)
        .body(reqwest::Body::wrap_stream(pieces))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let counted: Value = answer.json().await.unwrap();
    assert_eq!(counted["bytes"], json!(200 * MIB), "{counted}");
    assert!(counted["chunks"].as_u64().unwrap() > 1, "{counted}");
}

#[tokio::test]
async fn the_replica_sees_forwarded_headers_and_links_use_the_public_url() {
    let dir = temp_dir();
    let stack = Stack::start_with(dir.path(), &["--public-url", "https://nucleus.example.com/"]).await;
    let (id, running) = running(&stack, "headers", 1).await;
    assert_eq!(running["endpoint"], format!("https://nucleus.example.com/api/v2/endpoints/workloads/{id}/"));
    let (code, op) = stack.post(&format!("/workloads/{id}/start"), json!({})).await;
    assert_eq!(code, StatusCode::OK, "{op}");
    assert!(op["trackVia"].as_str().unwrap().starts_with("https://nucleus.example.com/"), "{op}");

    let answer = stack
        .http
        .get(stack.url(&format!("/endpoints/workloads/{id}/who?x=1")))
        .bearer_auth(TOKEN)
        .header("host", "spoofed.example.org")
        .header("connection", "keep-alive, x-hop-secret")
        .header("x-hop-secret", "for this hop only")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-app", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let echo: Value = answer.json().await.unwrap();
    let headers = &echo["headers"];
    assert_eq!(headers["x-app"], "kept", "{echo:#}");
    assert!(headers.get("x-hop-secret").is_none(), "a header named in Connection is hop-by-hop: {echo:#}");
    assert!(headers.get("authorization").is_none(), "the Nucleus token is not the workload's: {echo:#}");
    assert_eq!(headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "https");
    assert_eq!(headers["x-forwarded-host"], "spoofed.example.org");
    assert_eq!(headers["x-forwarded-prefix"], format!("/api/v2/endpoints/workloads/{id}"));
    assert!(headers["forwarded"].as_str().unwrap().contains("for=127.0.0.1;proto=https"), "{echo:#}");
}

/// Reads one HTTP/1.1 answer (head and `content-length` body) from `stream`, keeping what follows
/// in `buf` for the next one.
async fn read_answer(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>, head_request: bool) -> (String, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end + 4].to_vec()).unwrap();
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().parse::<usize>().unwrap()))
                .unwrap_or(0);
            let length = if head_request { 0 } else { length };
            while buf.len() < end + 4 + length {
                let mut more = [0u8; 8192];
                let n = stream.read(&mut more).await.unwrap();
                assert!(n > 0, "the connection closed in the middle of an answer: {head}");
                buf.extend_from_slice(&more[..n]);
            }
            let body = buf[end + 4..end + 4 + length].to_vec();
            buf.drain(..end + 4 + length);
            return (head, body);
        }
        let mut more = [0u8; 8192];
        let n = stream.read(&mut more).await.unwrap();
        assert!(n > 0, "the connection closed before an answer");
        buf.extend_from_slice(&more[..n]);
    }
}

#[tokio::test]
async fn one_connection_carries_pipelined_head_and_rest_calls_in_order() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = temp_dir();
    let stack = Stack::start(dir.path()).await;
    let (id, _) = running(&stack, "pipelined", 1).await;
    let authority = stack.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let auth = format!("Authorization: Bearer {TOKEN}\r\n");
    let invoke = |path: &str, method: &str| format!("{method} /api/v2/endpoints/workloads/{id}{path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n");
    // Two invoke calls in one write (pipelined), then a HEAD, then a REST call on the same
    // connection, then one more invoke call that asks to close.
    let two = format!("{}{}", invoke("/first?n=1", "GET"), invoke("/second", "GET"));
    stream.write_all(two.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    for (path, query) in [("/first", "n=1"), ("/second", "")] {
        let (head, body) = read_answer(&mut stream, &mut buf, false).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let echo: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!((echo["path"].as_str(), echo["query"].as_str()), (Some(path), Some(query)), "answers in order");
    }
    stream.write_all(invoke("/head", "HEAD").as_bytes()).await.unwrap();
    let (head, body) = read_answer(&mut stream, &mut buf, true).await;
    assert!(head.starts_with("HTTP/1.1 200") && head.to_ascii_lowercase().contains("content-length"), "{head}");
    assert!(body.is_empty(), "no body after a HEAD");
    stream.write_all(format!("GET /api/v2/workloads/{id} HTTP/1.1\r\nHost: x\r\n{auth}\r\n").as_bytes()).await.unwrap();
    let (head, body) = read_answer(&mut stream, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["id"], id.as_str(), "the REST API answers on the same connection");
    stream
        .write_all(format!("GET /api/v2/endpoints/workloads/{id}/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\r\n").as_bytes())
        .await
        .unwrap();
    let (head, body) = read_answer(&mut stream, &mut buf, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["path"], "/last");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0))), "closed after an answer to `Connection: close`");

    // The same on a connection that only ever invoked (the fast path's own answer).
    let mut stream = tokio::net::TcpStream::connect(&authority).await.unwrap();
    stream
        .write_all(format!("GET /api/v2/endpoints/workloads/{id}/only HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{auth}\r\n").as_bytes())
        .await
        .unwrap();
    let (head, _) = read_answer(&mut stream, &mut Vec::new(), false).await;
    assert!(head.starts_with("HTTP/1.1 200") && head.to_ascii_lowercase().contains("connection: close"), "{head}");
    let closed = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0))), "closed after an answer to `Connection: close`");
}
