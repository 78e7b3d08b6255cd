//! Traces on `nucleus dev --otlp-endpoint`, received by a real OTLP/gRPC receiver (the
//! collector's TraceService from opentelemetry-proto, started here): a create is one trace from
//! the caller's REST call through meta's write and the scheduler's launch to the agent's Launch; an invoke
//! continues the caller's `traceparent` and hands the replica its own span as the parent, and is
//! listed at `/otel/workload/{id}/traces/`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{Stack, TOKEN, temp_dir, whoami_artifact, workload};

#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace: String,
    span: String,
    parent: String,
}

#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<Received>>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().expect("lock");
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                    AnyValue::StringValue(name) => Some(name.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                spans.push(Received {
                    service: service.clone(),
                    name: span.name,
                    trace: hex(&span.trace_id),
                    span: hex(&span.span_id),
                    parent: hex(&span.parent_span_id),
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl Receiver {
    /// Waits (the exporter batches every few seconds) for a span of `trace` named `name`.
    async fn span(&self, trace: &str, name: &str) -> Received {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(found) = self.spans.lock().expect("lock").iter().find(|s| s.trace == trace && s.name == name).cloned() {
                return found;
            }
            assert!(Instant::now() < deadline, "no span '{name}' in trace {trace}; received: {:#?}", self.spans.lock().expect("lock"));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

const CREATE_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CREATE_CALLER: &str = "00f067aa0ba902b7";
const INVOKE_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const INVOKE_CALLER: &str = "b7ad6b7169203331";

#[tokio::test(flavor = "multi_thread")]
async fn a_create_and_an_invoke_are_traced_across_the_roles_and_to_the_replica() {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(receiver.clone()))
        .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
    let receiving = tokio::spawn(server);

    let dir = temp_dir();
    let mut stack = Stack::start_with(dir.path(), &["--otlp-endpoint", &endpoint]).await;
    let created = stack
        .http
        .post(stack.url("/workloads/"))
        .bearer_auth(TOKEN)
        .header("traceparent", format!("00-{CREATE_TRACE}-{CREATE_CALLER}-01"))
        .json(&workload("traced", whoami_artifact("traced", &[]), 1))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    stack.wait_status(&id, "running").await;

    // One trace: the REST call (child of the caller's span), the scheduler's launch under it,
    // the agent's Launch under that.
    let rest = receiver.span(CREATE_TRACE, "POST /api/v2/workloads/").await;
    assert_eq!((rest.parent.as_str(), rest.service.as_str()), (CREATE_CALLER, "nucleus-dev"), "{rest:?}");
    let write = receiver.span(CREATE_TRACE, "meta write").await;
    assert_eq!(write.parent, rest.span, "meta's write continues the REST call over gRPC: {write:?}");
    let launch = receiver.span(CREATE_TRACE, "launch").await;
    assert_eq!(launch.parent, rest.span, "the scheduler's launch continues the create: {launch:?}");
    let agent = receiver.span(CREATE_TRACE, "agent launch").await;
    assert_eq!(agent.parent, launch.span, "the agent's Launch continues the scheduler's: {agent:?}");
    let spawn = receiver.span(CREATE_TRACE, "replica spawn").await;
    assert_eq!(spawn.parent, agent.span, "the process start is part of the Launch: {spawn:?}");

    // An invoke continues the caller's trace, and the replica's parent is the gateway's span.
    let answer = stack
        .http
        .get(stack.url(&format!("/endpoints/workloads/{id}/traced")))
        .bearer_auth(TOKEN)
        .header("traceparent", format!("00-{INVOKE_TRACE}-{INVOKE_CALLER}-01"))
        .send()
        .await
        .expect("invoke");
    assert_eq!(answer.status(), StatusCode::OK);
    let echo: Value = answer.json().await.expect("echo");
    let seen = echo["headers"]["traceparent"].as_str().expect("the replica got a traceparent").to_owned();
    let parts: Vec<&str> = seen.split('-').collect();
    assert_eq!((parts.len(), parts[1]), (4, INVOKE_TRACE), "{seen}");
    assert_ne!(parts[2], INVOKE_CALLER, "the gateway's own span is the replica's parent, not the caller's");
    let invoke = receiver.span(INVOKE_TRACE, "invoke").await;
    assert_eq!((invoke.parent.as_str(), invoke.span.as_str()), (INVOKE_CALLER, parts[2]), "{invoke:?}");

    // The gateway's recent invoke spans, through the API (durations in nanoseconds).
    let (code, listed) = stack.get(&format!("/otel/workload/{id}/traces/")).await;
    assert_eq!(code, StatusCode::OK, "{listed}");
    let summary =
        listed["data"].as_array().and_then(|d| d.iter().find(|t| t["traceId"] == INVOKE_TRACE)).expect("the invoke's trace").clone();
    assert_eq!((summary["rootSpanName"].as_str(), summary["spansCount"].as_u64()), (Some("invoke"), Some(1)), "{summary}");
    assert!(summary["duration"].as_u64().is_some_and(|ns| ns > 1000), "nanoseconds: {summary}");
    let (code, trace) = stack.get(&format!("/otel/workload/{id}/traces/{INVOKE_TRACE}/")).await;
    assert_eq!(code, StatusCode::OK, "{trace}");
    assert_eq!(trace["spans"][0]["spanId"], parts[2], "{trace}");
    assert_eq!(trace["spans"][0]["parentSpanId"], INVOKE_CALLER, "{trace}");
    let (code, _) = stack.get(&format!("/otel/workload/{id}/traces/{CREATE_TRACE}/")).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "the gateway keeps invoke spans only");
    let (code, _) = stack.get("/otel/workload/no-such-workload/traces/").await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    stack.stop();
    receiving.abort();
}
