//! Test support: the recorded fixtures of `tests/fixtures/` and a fake API server behind a
//! `kube::Client` (a `tower_test` mock) that serves the pod watch itself and hands every other
//! request to the test, which asserts on it and answers.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::{Mutex, mpsc};
use tower_test::mock::{self, SendResponse};

/// Waits on anything a test expects to happen.
pub(crate) const PATIENCE: Duration = Duration::from_secs(5);

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{path}: {err}"))
}

pub(crate) fn pod_fixture(name: &str) -> Pod {
    serde_json::from_value(fixture(name)).expect("a Pod")
}

pub(crate) fn node_fixture(name: &str) -> Node {
    serde_json::from_value(fixture(name)).expect("a Node")
}

/// A request the driver made (other than the pod watch), waiting for the test's answer.
pub(crate) struct Call {
    pub method: Method,
    /// Path and query, as sent.
    pub uri: String,
    pub content_type: String,
    /// The body as JSON; Null when empty.
    pub body: Value,
    respond: SendResponse<Response<Body>>,
}

impl Call {
    pub(crate) fn path(&self) -> &str {
        self.uri.split('?').next().unwrap_or_default()
    }

    /// The query parameters, sorted, without empty pairs.
    pub(crate) fn query(&self) -> Vec<(String, String)> {
        let query = self.uri.split_once('?').map_or("", |(_, query)| query);
        let mut pairs: Vec<(String, String)> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (key.to_owned(), value.to_owned())
            })
            .collect();
        pairs.sort();
        pairs
    }

    /// Answers with plain text, as the pod log API does.
    pub(crate) fn respond_text(self, text: &str) {
        let response = Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "text/plain")
            .body(Body::from(text.as_bytes().to_vec()))
            .expect("response");
        self.respond.send_response(response);
    }

    pub(crate) fn respond(self, status: u16, body: Value) {
        let response = Response::builder()
            .status(StatusCode::from_u16(status).expect("status"))
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).expect("json")))
            .expect("response");
        self.respond.send_response(response);
    }
}

/// An API server `Status` failure, as the API server sends it.
pub(crate) fn failure(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    })
}

pub(crate) struct FakeApi {
    calls: mpsc::UnboundedReceiver<Call>,
    events: mpsc::UnboundedSender<Value>,
}

impl FakeApi {
    /// A client whose API server lists `pods` to the pod watcher, then streams the events sent
    /// with [`FakeApi::pod_event`].
    pub(crate) fn start(pods: Vec<Pod>) -> (kube::Client, FakeApi) {
        let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::unbounded_channel::<Value>();
        let events_rx = Arc::new(Mutex::new(events_rx));
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let uri = parts.uri.to_string();
                let is_pods = parts.uri.path() == "/api/v1/namespaces/nucleus/pods";
                // The watcher's list selects every managed pod; other lists (one proton's pods) go to the test.
                let is_watcher_list = uri.contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dnucleus");
                if is_pods && parts.method == Method::GET && uri.contains("watch=true") {
                    tokio::spawn(serve_watch(events_rx.clone(), respond));
                } else if is_pods && parts.method == Method::GET && is_watcher_list {
                    let list = json!({
                        "apiVersion": "v1",
                        "kind": "PodList",
                        "metadata": {"resourceVersion": "50000"},
                        "items": pods,
                    });
                    respond.send_response(Response::new(Body::from(serde_json::to_vec(&list).expect("json"))));
                } else {
                    let bytes = body.collect_bytes().await.expect("request body");
                    let call = Call {
                        content_type: parts
                            .headers
                            .get("content-type")
                            .and_then(|value| value.to_str().ok())
                            .unwrap_or_default()
                            .to_owned(),
                        method: parts.method,
                        uri,
                        body: if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("a JSON body") },
                        respond,
                    };
                    if calls_tx.send(call).is_err() {
                        return;
                    }
                }
            }
        });
        (kube::Client::new(service, "nucleus"), FakeApi { calls, events })
    }

    /// The driver's next request; panics if none comes.
    pub(crate) async fn next_call(&mut self) -> Call {
        tokio::time::timeout(PATIENCE, self.calls.recv()).await.expect("the driver made no request in time").expect("fake API server gone")
    }

    /// Waits a little for a request the driver must not make; returns it if it did.
    pub(crate) async fn unexpected_call(&mut self) -> Option<(Method, String)> {
        tokio::time::timeout(Duration::from_millis(300), self.calls.recv()).await.ok().flatten().map(|call| (call.method, call.uri))
    }

    /// Streams a watch event (`ADDED`, `MODIFIED` or `DELETED`) of `pod` to the pod watcher.
    pub(crate) fn pod_event(&self, kind: &str, pod: &Pod) {
        let event = json!({"type": kind, "object": pod});
        self.events.send(event).expect("fake API server gone");
    }
}

/// Answers one watch request with the events sent since the last one (waiting for at least one).
async fn serve_watch(events: Arc<Mutex<mpsc::UnboundedReceiver<Value>>>, respond: SendResponse<Response<Body>>) {
    let mut events = events.lock().await;
    let Some(first) = events.recv().await else {
        return;
    };
    let mut lines = serde_json::to_vec(&first).expect("json");
    while let Ok(event) = events.try_recv() {
        lines.push(b'\n');
        lines.extend(serde_json::to_vec(&event).expect("json"));
    }
    lines.push(b'\n');
    respond.send_response(Response::new(Body::from(lines)));
}
