//! The driver against a fake API server: the exact requests it makes and the reports it
//! publishes from the pod watch.

use std::collections::BTreeMap;
use std::time::Duration;

use http::Method;
use k8s_openapi::api::core::v1::Pod;
use nucleus_proto::agent::v1::{LogsRequest, LogsResponse, ProtonReport, Severity};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::testing::{Call, FakeApi, PATIENCE, failure, node_fixture, pod_fixture};
use super::{KubernetesConfig, KubernetesDriver};
use crate::driver::{ContainerSpec, Driver, Gpus, ProbeScheme, ProbeSpec, ProtonSpec, Resources};
use crate::error::Error;
use crate::status::StatusHub;

const PROTON: &str = "65f0a1b2c3d4e5f6a7b8c9d0";
const WORKLOAD: &str = "65f0a1b2aaaaaaaaaaaaaaaa";
const NAME: &str = "proton-65f0a1b2c3d4e5f6a7b8c9d0";
const DEPLOYMENT_PATH: &str = "/apis/apps/v1/namespaces/nucleus/deployments/proton-65f0a1b2c3d4e5f6a7b8c9d0";
const SERVICE_PATH: &str = "/api/v1/namespaces/nucleus/services/proton-65f0a1b2c3d4e5f6a7b8c9d0";
const UID: &str = "9b2e3c4d-5f60-4a7b-8c9d-0e1f2a3b4c5d";

fn spec(replicas: u32) -> ProtonSpec {
    ProtonSpec {
        proton_id: PROTON.into(),
        workload_id: WORKLOAD.into(),
        artifact_id: "artifact-1".into(),
        replica_count: replicas,
        container: ContainerSpec {
            name: "primary".into(),
            image_uri: "registry.example/llm:1".into(),
            entrypoint: vec!["serve".into(), "--port=$PORT".into()],
            env: BTreeMap::from([("MODEL".to_owned(), "llama".to_owned())]),
            port: 9000,
            startup_probe: Some(ProbeSpec {
                path: "/healthz".into(),
                port: 0,
                scheme: ProbeScheme::Http,
                http_headers: BTreeMap::new(),
                initial_delay: Duration::ZERO,
                period: Duration::from_secs(2),
                timeout: Duration::from_secs(1),
                failure_threshold: 90,
                success_threshold: 1,
            }),
            readiness_probe: Some(ProbeSpec {
                path: "/ready".into(),
                port: 9000,
                scheme: ProbeScheme::Http,
                http_headers: BTreeMap::from([("X-Probe".to_owned(), "1".to_owned())]),
                initial_delay: Duration::from_secs(5),
                period: Duration::from_secs(10),
                timeout: Duration::from_secs(2),
                failure_threshold: 3,
                success_threshold: 1,
            }),
            liveness_probe: None,
            security: None,
        },
        resources: Resources {
            bundle_id: "gpu.l4.small".into(),
            cpu_millis: 4000,
            memory_bytes: 16 << 30,
            gpus: Some(Gpus { count: 1, gpu_type: "NVIDIA-L4".into(), memory_bytes: 24 << 30 }),
        },
        meta_shard: 7,
        log_retention_seconds: 0,
        fencing_token: 0,
    }
}

struct Setup {
    driver: KubernetesDriver,
    api: FakeApi,
    reports: broadcast::Receiver<ProtonReport>,
    hub: StatusHub,
}

/// A driver whose API server already has `pods`.
fn setup(pods: Vec<Pod>) -> Setup {
    let (client, api) = FakeApi::start(pods);
    let hub = StatusHub::new();
    let (_, reports) = hub.subscribe();
    let config = KubernetesConfig { client, namespace: "nucleus".into() };
    let driver = KubernetesDriver::new(config, hub.clone());
    Setup { driver, api, reports, hub }
}

/// The next report that satisfies `done`; panics with the last one seen if none comes.
async fn report_where(reports: &mut broadcast::Receiver<ProtonReport>, done: impl Fn(&ProtonReport) -> bool) -> ProtonReport {
    let mut last = None;
    let found = tokio::time::timeout(PATIENCE, async {
        loop {
            let report = reports.recv().await.expect("hub open");
            if done(&report) {
                return report;
            }
            last = Some(report);
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no such report; last one: {last:#?}"))
}

fn phases(report: &ProtonReport) -> Vec<&str> {
    report.replicas.iter().map(|r| r.phase.as_str()).collect()
}

/// What the API server answers to an apply: the object with server-set fields.
fn applied(call: &Call, uid: &str) -> Value {
    let mut object = call.body.clone();
    object["metadata"]["uid"] = json!(uid);
    object["metadata"]["resourceVersion"] = json!("50101");
    object["metadata"]["creationTimestamp"] = json!("2026-03-02T10:15:00Z");
    object
}

fn assert_apply(call: &Call, path: &str) {
    assert_eq!(call.method, Method::PATCH, "{}", call.uri);
    assert_eq!(call.path(), path);
    assert_eq!(call.query(), [("fieldManager".to_owned(), "nucleus-agent".to_owned()), ("force".to_owned(), "true".to_owned())]);
    assert_eq!(call.content_type, "application/apply-patch+yaml");
}

/// Serves the two applies of a launch, checks them, and returns the Deployment applied.
async fn serve_launch(api: &mut FakeApi) -> Value {
    let call = api.next_call().await;
    assert_apply(&call, DEPLOYMENT_PATH);
    let deployment = call.body.clone();
    let answer = applied(&call, UID);
    call.respond(200, answer);

    let call = api.next_call().await;
    assert_apply(&call, SERVICE_PATH);
    let service = &call.body;
    assert_eq!(service["kind"], "Service");
    assert_eq!(service["metadata"]["ownerReferences"][0]["uid"], UID);
    assert_eq!(service["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    assert_eq!(service["spec"]["ports"][0]["port"], 80);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], 9000);
    let answer = applied(&call, "service-uid");
    call.respond(200, answer);
    deployment
}

#[tokio::test]
async fn launch_applies_the_deployment_then_the_service_it_owns() {
    let Setup { driver, mut api, mut reports, .. } = setup(Vec::new());
    let (launched, deployment) = tokio::join!(driver.launch(spec(2)), serve_launch(&mut api));
    launched.expect("launch");

    assert_eq!(deployment["kind"], "Deployment");
    assert_eq!(deployment["metadata"]["name"], NAME);
    assert_eq!(
        deployment["metadata"]["labels"],
        json!({
            "app.kubernetes.io/managed-by": "nucleus",
            "nucleus.dev/proton": NAME,
            "nucleus.dev/workload": WORKLOAD,
            "nucleus.dev/shard": "7",
        })
    );
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["nodeSelector"]["nvidia.com/gpu.product"], "NVIDIA-L4");
    assert_eq!(pod["tolerations"][0]["key"], "nvidia.com/gpu");
    assert_eq!(pod["tolerations"][0]["effect"], "NoSchedule");
    assert_eq!(pod["automountServiceAccountToken"], false, "no API credentials in the pod");
    assert_eq!(pod["securityContext"], json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}}));
    let container = &pod["containers"][0];
    assert_eq!(
        container["securityContext"],
        json!({"allowPrivilegeEscalation": false, "privileged": false, "capabilities": {"drop": ["ALL"]}})
    );
    assert_eq!(container["resources"]["limits"]["nvidia.com/gpu"], "1");
    assert_eq!(container["resources"]["limits"]["cpu"], "4000m");
    assert_eq!(container["resources"]["requests"]["memory"], "17179869184");
    assert_eq!(container["lifecycle"]["preStop"], json!({"sleep": {"seconds": 2}}), "drained before SIGTERM on scale-down");
    assert_eq!(container["startupProbe"]["httpGet"], json!({"path": "/healthz", "port": 9000, "scheme": "HTTP"}));
    assert_eq!(container["startupProbe"]["failureThreshold"], 90);
    assert_eq!(container["readinessProbe"]["periodSeconds"], 10);
    assert_eq!(container["readinessProbe"]["httpGet"]["httpHeaders"], json!([{"name": "X-Probe", "value": "1"}]));

    let report = report_where(&mut reports, |r| r.proton_id == PROTON).await;
    assert_eq!(report.lifecycle(), nucleus_proto::agent::v1::Lifecycle::Running);
    assert_eq!(report.workload_id, WORKLOAD);
    assert!(report.replicas.is_empty());
}

#[tokio::test]
async fn relaunching_with_another_replica_count_reapplies_down_to_zero() {
    let Setup { driver, mut api, .. } = setup(Vec::new());
    let (launched, first) = tokio::join!(driver.launch(spec(2)), serve_launch(&mut api));
    launched.expect("launch");
    let (launched, second) = tokio::join!(driver.launch(spec(5)), serve_launch(&mut api));
    launched.expect("relaunch");
    assert_eq!(first["spec"]["replicas"], 2);
    assert_eq!(second["spec"]["replicas"], 5);
    assert_eq!(first["spec"]["template"], second["spec"]["template"]);
    // The autoscaler's zero: the Deployment stays, with no pods (no HPA object is ever made).
    let (launched, idle) = tokio::join!(driver.launch(spec(0)), serve_launch(&mut api));
    launched.expect("scale to zero");
    assert_eq!((idle["kind"].as_str(), idle["spec"]["replicas"].as_i64()), (Some("Deployment"), Some(0)));
    assert_eq!(first["spec"]["template"], idle["spec"]["template"]);
}

#[tokio::test]
async fn pods_are_reported_as_they_change() {
    let Setup { driver, mut api, mut reports, .. } = setup(Vec::new());
    let (launched, _) = tokio::join!(driver.launch(spec(1)), serve_launch(&mut api));
    launched.expect("launch");

    let mut pod = pod_fixture("pod-pending-unscheduled");
    api.pod_event("ADDED", &pod);
    let report = report_where(&mut reports, |r| r.replicas.len() == 1).await;
    assert_eq!(phases(&report), ["pending"]);
    assert_eq!(report.replicas[0].node_address, "");

    // The same pod, scheduled, then running and ready.
    let name = pod.metadata.name.clone();
    for (fixture, phase, container, ready) in [
        ("pod-pending-container-creating", "pending", "waiting", false),
        ("pod-running-not-ready", "running", "running", false),
        ("pod-running-ready", "running", "running", true),
    ] {
        pod = pod_fixture(fixture);
        pod.metadata.name = name.clone();
        api.pod_event("MODIFIED", &pod);
        let report = report_where(&mut reports, |r| {
            let first = r.replicas.first().and_then(|replica| replica.containers.first());
            first.is_some_and(|c| (c.status.as_str(), c.ready) == (container, ready))
        })
        .await;
        assert_eq!(phases(&report), [phase], "{fixture}");
        assert_eq!(report.replicas.len(), 1, "{fixture}: one pod, modified");
        assert_eq!(report.replicas[0].node_address, "gke-gpu-pool-l4-1a2b");
    }

    // The kubelet restarts its container twice: counted in the agent's restart series.
    let counted = || {
        let text = nucleus_telemetry::encode();
        let line = text.lines().find(|l| l.starts_with("nucleus_agent_replica_restarts_total{driver=\"kubernetes\"}")).map(str::to_owned);
        line.and_then(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok())).unwrap_or(0.0)
    };
    let before = counted();
    let statuses = pod.status.as_mut().and_then(|s| s.container_statuses.as_mut()).expect("container statuses");
    statuses[0].restart_count += 2;
    let restarts = u32::try_from(statuses[0].restart_count).expect("count");
    api.pod_event("MODIFIED", &pod);
    report_where(&mut reports, |r| {
        r.replicas.first().and_then(|replica| replica.containers.first()).is_some_and(|c| c.restart_count == restarts)
    })
    .await;
    assert_eq!(counted() - before, 2.0);

    api.pod_event("DELETED", &pod);
    let report = report_where(&mut reports, |r| r.replicas.is_empty()).await;
    assert_eq!(report.lifecycle(), nucleus_proto::agent::v1::Lifecycle::Running, "a lost pod is not a stop");
}

#[tokio::test]
async fn stop_deletes_the_deployment_in_the_foreground_and_waits_for_the_pods() {
    let ready = pod_fixture("pod-running-ready");
    let Setup { driver, mut api, mut reports, .. } = setup(vec![ready.clone()]);
    report_where(&mut reports, |r| r.replicas.len() == 1).await;

    let serve = async {
        let call = api.next_call().await;
        assert_eq!(call.method, Method::DELETE);
        assert_eq!(call.path(), DEPLOYMENT_PATH);
        assert_eq!(call.body["propagationPolicy"], "Foreground");
        let mut deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": NAME,
                "namespace": "nucleus",
                "uid": UID,
                "deletionTimestamp": "2026-03-02T10:30:00Z",
                "finalizers": ["foregroundDeletion"],
                "annotations": {"nucleus.dev/workload-id": WORKLOAD},
            },
            "spec": {"replicas": 1, "selector": {"matchLabels": {"nucleus.dev/proton": NAME}}, "template": {}},
        });
        deployment["metadata"]["resourceVersion"] = json!("50200");
        call.respond(200, deployment);
    };
    let (stopped, ()) = tokio::join!(driver.stop(PROTON.into(), Duration::from_secs(10)), serve);
    stopped.expect("stop");
    let report = report_where(&mut reports, |r| r.lifecycle() != nucleus_proto::agent::v1::Lifecycle::Running).await;
    assert_eq!(report.lifecycle(), nucleus_proto::agent::v1::Lifecycle::Stopping);
    assert_eq!(report.replicas.len(), 1, "the pod is still there");

    let mut terminating = ready;
    terminating.metadata.deletion_timestamp = terminating.metadata.creation_timestamp.clone();
    api.pod_event("MODIFIED", &terminating);
    api.pod_event("DELETED", &terminating);
    let report = report_where(&mut reports, |r| r.lifecycle() == nucleus_proto::agent::v1::Lifecycle::Stopped).await;
    assert!(report.replicas.is_empty());
    assert_eq!(report.workload_id, WORKLOAD);
}

#[tokio::test]
async fn stopping_a_proton_without_pods_stops_it_at_once() {
    let Setup { driver, mut api, mut reports, .. } = setup(Vec::new());
    let (launched, _) = tokio::join!(driver.launch(spec(0)), serve_launch(&mut api));
    launched.expect("launch");
    let serve = async {
        let call = api.next_call().await;
        assert_eq!((call.method.clone(), call.path()), (Method::DELETE, DEPLOYMENT_PATH));
        call.respond(404, failure(404, "NotFound", "deployments.apps \"x\" not found"));
    };
    let (stopped, ()) = tokio::join!(driver.stop(PROTON.into(), Duration::from_secs(1)), serve);
    stopped.expect("a Deployment already gone is stopped");
    let stopping = report_where(&mut reports, |r| r.lifecycle() == nucleus_proto::agent::v1::Lifecycle::Stopping).await;
    assert!(stopping.replicas.is_empty());
    report_where(&mut reports, |r| r.lifecycle() == nucleus_proto::agent::v1::Lifecycle::Stopped).await;
}

#[tokio::test]
async fn a_restarted_agent_adopts_the_running_pods_and_shutdown_deletes_nothing() {
    let pods = vec![pod_fixture("pod-running-ready"), pod_fixture("pod-crash-loop-back-off")];
    let Setup { driver, mut api, mut reports, hub } = setup(pods);
    let report = report_where(&mut reports, |r| r.replicas.len() == 2).await;
    assert_eq!(report.proton_id, PROTON);
    assert_eq!(report.workload_id, WORKLOAD);
    assert_eq!(report.lifecycle(), nucleus_proto::agent::v1::Lifecycle::Running);
    assert_eq!(phases(&report), ["running", "pending"]);

    // Launching it again is a plain apply; nothing else is recreated.
    let (launched, _) = tokio::join!(driver.launch(spec(2)), serve_launch(&mut api));
    launched.expect("launch");

    driver.shutdown().await;
    assert_eq!(api.unexpected_call().await, None, "shutdown must leave the cluster alone");
    assert!(matches!(driver.launch(spec(2)).await, Err(Error::ShuttingDown)));
    assert_eq!(hub.snapshot()[0].replicas.len(), 2, "still reported");
}

#[tokio::test]
async fn launch_of_a_proton_being_deleted_is_refused_until_it_is_gone() {
    let Setup { driver, mut api, .. } = setup(Vec::new());
    let serve = async {
        let call = api.next_call().await;
        assert_apply(&call, DEPLOYMENT_PATH);
        let mut answer = applied(&call, UID);
        answer["metadata"]["deletionTimestamp"] = json!("2026-03-02T10:30:00Z");
        call.respond(200, answer);
        assert_eq!(api.unexpected_call().await, None, "no Service for a dying Deployment");
    };
    let (launched, ()) = tokio::join!(driver.launch(spec(1)), serve);
    let err = launched.expect_err("refused");
    assert!(matches!(err, Error::StillStopping(_)), "{err}");
    assert_eq!(tonic::Status::from(err).code(), tonic::Code::Unavailable);
}

#[tokio::test]
async fn a_forbidden_apply_says_what_permission_is_missing() {
    let Setup { driver, mut api, .. } = setup(Vec::new());
    let serve = async {
        let call = api.next_call().await;
        call.respond(
            403,
            failure(
                403,
                "Forbidden",
                "deployments.apps \"proton-65f0a1b2c3d4e5f6a7b8c9d0\" is forbidden: User \"system:serviceaccount:nucleus:agent\" cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"nucleus\"",
            ),
        );
    };
    let (launched, ()) = tokio::join!(driver.launch(spec(1)), serve);
    let err = launched.expect_err("forbidden");
    let message = err.to_string();
    assert!(message.starts_with(&format!("cannot apply Deployment nucleus/{NAME}: the API server answered 403 Forbidden")), "{message}");
    assert!(message.contains("RBAC"), "{message}");
    assert_eq!(tonic::Status::from(err).code(), tonic::Code::FailedPrecondition);
}

#[tokio::test]
async fn a_spec_without_image_is_refused_before_any_request() {
    let Setup { driver, mut api, .. } = setup(Vec::new());
    let mut spec = spec(1);
    spec.container.image_uri.clear();
    assert!(matches!(driver.launch(spec).await, Err(Error::InvalidSpec(_))));
    assert_eq!(api.unexpected_call().await, None);
}

#[tokio::test]
async fn capacity_lists_the_schedulable_nodes() {
    let Setup { driver, mut api, .. } = setup(Vec::new());
    let serve = async {
        let call = api.next_call().await;
        assert_eq!((call.method.clone(), call.path()), (Method::GET, "/api/v1/nodes"));
        let mut cordoned = node_fixture("node-cpu");
        cordoned.metadata.name = Some("gke-cpu-pool-cordoned".into());
        cordoned.spec.get_or_insert_default().unschedulable = Some(true);
        call.respond(
            200,
            json!({
                "apiVersion": "v1",
                "kind": "NodeList",
                "metadata": {"resourceVersion": "50300"},
                "items": [node_fixture("node-gpu-l4"), cordoned, node_fixture("node-cpu")],
            }),
        );
    };
    let (capacity, ()) = tokio::join!(driver.capacity(), serve);
    let capacity = capacity.expect("capacity");
    let summary: Vec<(&str, u32, &str)> =
        capacity.iter().map(|node| (node.name.as_str(), node.gpu_count, node.gpu_type.as_str())).collect();
    assert_eq!(summary, [("gke-gpu-pool-l4-1a2b", 2, "nvidia-l4"), ("gke-cpu-pool-9f8e", 0, "")]);
}

#[tokio::test]
async fn usage_reads_cpu_from_the_metrics_api_and_scrapes_the_pods() {
    // A replica's metrics endpoint on loopback, standing in for the pod's IP and port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut request = [0u8; 1024];
                let _ = stream.read(&mut request).await;
                let body = "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model=\"m\"} 6\n";
                let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    let Setup { driver, mut api, mut reports, .. } = setup(Vec::new());
    let (launched, _) = tokio::join!(driver.launch(spec(1)), serve_launch(&mut api));
    launched.expect("launch");
    let mut pod = pod_fixture("pod-running-ready");
    pod.status.as_mut().unwrap().pod_ip = Some("127.0.0.1".into());
    pod.spec.as_mut().unwrap().containers[0].ports.as_mut().unwrap()[0].container_port = i32::from(port);
    api.pod_event("ADDED", &pod);
    report_where(&mut reports, |r| r.replicas.len() == 1).await;

    let query = nucleus_proto::agent::v1::UsageQuery {
        proton_id: PROTON.into(),
        cpu: true,
        metrics: vec![nucleus_proto::agent::v1::ScrapedMetric { name: "vllm:num_requests_waiting".into(), path: "/metrics".into() }],
    };
    let serve_metrics = async {
        let call = api.next_call().await;
        assert_eq!((call.method.clone(), call.path()), (Method::GET, "/apis/metrics.k8s.io/v1beta1/namespaces/nucleus/pods"));
        assert_eq!(call.query(), [("labelSelector".to_owned(), format!("nucleus.dev/proton%3D{NAME}"))]);
        // As metrics-server answers: usage in nanocores.
        call.respond(200, json!({
            "kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1", "metadata": {},
            "items": [{"metadata": {"name": pod.metadata.name, "namespace": "nucleus"}, "timestamp": "2026-12-07T16:00:00Z", "window": "15s",
                "containers": [{"name": "primary", "usage": {"cpu": "3000000000n", "memory": "1Gi"}}]}]
        }));
    };
    let (usage, ()) = tokio::join!(driver.usage(vec![query]), serve_metrics);
    let usage = usage.expect("usage");
    let replica = &usage[0].replicas[0];
    assert!(replica.ready);
    assert_eq!(replica.cpu_percent, Some(75.0), "3 cores used of a 4-core request");
    assert_eq!(replica.metrics.get("vllm:num_requests_waiting"), Some(&6.0));
}

const PODS_PATH: &str = "/api/v1/namespaces/nucleus/pods";

fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().expect("a pod name")
}

/// Serves one `logs` call: the list of the proton's pods, answered with `pods`, then the log
/// reads, in any order, each answered from `reads` by pod name and whether it asks for the
/// previous instance: `Ok` with the log (timestamped, as the kubelet sends it), `Err` with a
/// failure. Panics on a read not in `reads`.
async fn serve_logs(api: &mut FakeApi, pods: &[Pod], mut reads: Vec<(String, bool, Result<&str, Value>)>) {
    let call = api.next_call().await;
    assert_eq!((call.method.clone(), call.path()), (Method::GET, PODS_PATH));
    assert_eq!(call.query(), [("labelSelector".to_owned(), format!("nucleus.dev%2Fproton%3D{NAME}"))]);
    call.respond(200, json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "50400"}, "items": pods}));
    let expected_query =
        [("container", "primary"), ("tailLines", "10000"), ("timestamps", "true")].map(|(key, value)| (key.to_owned(), value.to_owned()));
    while !reads.is_empty() {
        let call = api.next_call().await;
        assert_eq!(call.method, Method::GET, "{}", call.uri);
        let pod = call.path().strip_prefix(PODS_PATH).and_then(|rest| rest.strip_prefix('/')?.strip_suffix("/log"));
        let pod = pod.unwrap_or_else(|| panic!("not a pod log read: {}", call.uri)).to_owned();
        let mut query = call.query();
        let previous = query.contains(&("previous".to_owned(), "true".to_owned()));
        query.retain(|(key, _)| key != "previous");
        assert_eq!(query, expected_query, "{}", call.uri);
        let at = reads.iter().position(|(name, prev, _)| *name == pod && *prev == previous);
        let (_, _, answer) = reads.remove(at.unwrap_or_else(|| panic!("unexpected log read of {pod} (previous: {previous})")));
        match answer {
            Ok(log) => call.respond_text(log),
            Err(failure) => {
                let code = failure["code"].as_u64().and_then(|code| u16::try_from(code).ok()).expect("a status code");
                call.respond(code, failure);
            }
        }
    }
}

fn logs_request(min_severity: Severity, limit: u32) -> LogsRequest {
    LogsRequest { proton_ids: vec![PROTON.into()], min_severity: min_severity as i32, limit, ..LogsRequest::default() }
}

/// (replica, message, severity) of each record, in the answer's order.
fn records(answer: &LogsResponse) -> Vec<(&str, &str, Severity)> {
    answer.records.iter().map(|r| (r.replica.as_str(), r.message.as_str(), r.severity())).collect()
}

fn at(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text).expect("time").timestamp_nanos_opt().expect("in range")
}

#[tokio::test]
async fn logs_of_all_pods_newest_first() {
    let pods = vec![pod_fixture("pod-running-ready"), pod_fixture("pod-running-not-ready")];
    let (a, b) = (pod_name(&pods[0]), pod_name(&pods[1]));
    let log_a = "2026-03-02T10:20:00.000000001Z INFO:     Started server process [1]\n\
                 2026-03-02T10:20:02.500000000Z {\"level\":\"error\",\"message\":\"CUDA out of memory\",\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\"}\n";
    let log_b = "2026-03-02T10:20:01.000000000Z loading model weights\n\
                 2026-03-02T10:20:03.250000000Z WARNING: request took 12.4s\n";
    let reads = || vec![(a.clone(), false, Ok(log_a)), (b.clone(), false, Ok(log_b))];
    let Setup { driver, mut api, .. } = setup(Vec::new());

    let (answer, ()) = tokio::join!(driver.logs(logs_request(Severity::Unspecified, 0)), serve_logs(&mut api, &pods, reads()));
    let answer = answer.expect("logs");
    assert_eq!(
        records(&answer),
        [
            (b.as_str(), "WARNING: request took 12.4s", Severity::Warning),
            (a.as_str(), "CUDA out of memory", Severity::Error),
            (b.as_str(), "loading model weights", Severity::Info),
            (a.as_str(), "INFO:     Started server process [1]", Severity::Info),
        ]
    );
    assert_eq!(answer.matched, 4);
    let first = &answer.records[0];
    assert_eq!((first.unix_nanos, first.proton_id.as_str(), first.stream.as_str()), (at("2026-03-02T10:20:03.25Z"), PROTON, ""));
    assert_eq!(answer.records[1].trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");

    let (answer, ()) = tokio::join!(driver.logs(logs_request(Severity::Warning, 1)), serve_logs(&mut api, &pods, reads()));
    let answer = answer.expect("logs");
    assert_eq!(records(&answer), [(b.as_str(), "WARNING: request took 12.4s", Severity::Warning)]);
    assert_eq!(answer.matched, 2, "the error matched too, beyond the limit");
}

#[tokio::test]
async fn logs_of_a_restarted_container_include_its_previous_instance() {
    // Restarted once after an OOM kill, and one waiting to restart (the kubelet serves the last
    // crash as its current log: read once).
    let pods = vec![pod_fixture("pod-oom-killed"), pod_fixture("pod-crash-loop-back-off")];
    let (oom, crashing) = (pod_name(&pods[0]), pod_name(&pods[1]));
    let previous = "2026-03-02T10:22:25.000000000Z Loading checkpoint shards: 100%\n\
                    2026-03-02T10:22:29.100000000Z 2026-03-02 10:22:29,100 ERROR model_runner: CUDA out of memory\n";
    let current = "2026-03-02T10:24:31.000000000Z INFO:     Started server process [1]\n";
    let crash = "2026-03-02T10:21:12.900000000Z FATAL: MODEL names no model\n";
    let reads = vec![(oom.clone(), true, Ok(previous)), (oom.clone(), false, Ok(current)), (crashing.clone(), false, Ok(crash))];
    let Setup { driver, mut api, .. } = setup(Vec::new());

    let (answer, ()) = tokio::join!(driver.logs(logs_request(Severity::Unspecified, 0)), serve_logs(&mut api, &pods, reads));
    let answer = answer.expect("logs");
    assert_eq!(
        records(&answer),
        [
            (oom.as_str(), "INFO:     Started server process [1]", Severity::Info),
            (oom.as_str(), "2026-03-02 10:22:29,100 ERROR model_runner: CUDA out of memory", Severity::Error),
            (oom.as_str(), "Loading checkpoint shards: 100%", Severity::Info),
            (crashing.as_str(), "FATAL: MODEL names no model", Severity::Critical),
        ]
    );
    assert_eq!(api.unexpected_call().await, None, "no previous log of the crash-looping pod");
}

#[tokio::test]
async fn pods_without_a_log_yet_are_skipped() {
    let pods = vec![pod_fixture("pod-pending-container-creating"), pod_fixture("pod-oom-killed")];
    let (creating, oom) = (pod_name(&pods[0]), pod_name(&pods[1]));
    let waiting = format!("container \"primary\" in pod \"{creating}\" is waiting to start: ContainerCreating");
    // The previous instance was removed since the pod was listed.
    let gone = format!("previous terminated container \"primary\" in pod \"{oom}\" not found");
    let reads = vec![
        (creating.clone(), false, Err(failure(400, "BadRequest", &waiting))),
        (oom.clone(), true, Err(failure(400, "BadRequest", &gone))),
        (oom.clone(), false, Ok("2026-03-02T10:24:31.000000000Z INFO:     Started server process [1]\n")),
    ];
    let Setup { driver, mut api, .. } = setup(Vec::new());

    let (answer, ()) = tokio::join!(driver.logs(logs_request(Severity::Unspecified, 0)), serve_logs(&mut api, &pods, reads));
    let answer = answer.expect("a pod without a log is no error");
    assert_eq!(records(&answer), [(oom.as_str(), "INFO:     Started server process [1]", Severity::Info)]);
}

#[tokio::test]
async fn a_forbidden_log_read_fails_the_call() {
    let pods = vec![pod_fixture("pod-running-ready")];
    let name = pod_name(&pods[0]);
    let denied = format!(
        "pods \"{name}\" is forbidden: User \"system:serviceaccount:nucleus:agent\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"nucleus\""
    );
    let reads = vec![(name.clone(), false, Err(failure(403, "Forbidden", &denied)))];
    let Setup { driver, mut api, .. } = setup(Vec::new());

    let (answer, ()) = tokio::join!(driver.logs(logs_request(Severity::Unspecified, 0)), serve_logs(&mut api, &pods, reads));
    let message = answer.expect_err("forbidden").to_string();
    assert!(message.starts_with(&format!("cannot read the log of pod nucleus/{name} (the agent needs get on pods/log)")), "{message}");
}
