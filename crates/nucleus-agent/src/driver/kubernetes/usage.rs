//! The autoscaler's signals from a cluster: each pod's CPU use from the metrics API
//! (`metrics.k8s.io/v1beta1`, served by metrics-server) as a percent of its CPU request (of one
//! core without one), and the Prometheus metrics it exports, scraped at its pod IP (the agent runs
//! in the cluster).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

use super::names::PROTON_LABEL;
use super::quantity::Quantity;
use crate::driver::{ReplicaUsage, UsageQuery};
use crate::error::Error;

const SCRAPE_TIMEOUT: Duration = Duration::from_millis(800);

/// `PodMetricsList` of `metrics.k8s.io/v1beta1`, as much of it as is read.
#[derive(Debug, Deserialize)]
struct PodMetricsList {
    #[serde(default)]
    items: Vec<PodMetrics>,
}

#[derive(Debug, Deserialize)]
struct PodMetrics {
    metadata: PodMetricsMeta,
    #[serde(default)]
    containers: Vec<ContainerMetrics>,
}

#[derive(Debug, Deserialize)]
struct PodMetricsMeta {
    name: String,
}

#[derive(Debug, Deserialize)]
struct ContainerMetrics {
    #[serde(default)]
    usage: BTreeMap<String, String>,
}

/// CPU millicores each pod of the proton named `resource` uses now, by pod name.
pub(crate) async fn pod_cpu_millis(client: &kube::Client, namespace: &str, resource: &str) -> Result<HashMap<String, u64>, Error> {
    let uri = format!("/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods?labelSelector={PROTON_LABEL}%3D{resource}");
    let request = http::Request::get(uri).body(Vec::new()).map_err(|err| Error::InvalidSpec(format!("metrics request: {err}")))?;
    let list: PodMetricsList =
        client.request(request).await.map_err(Error::kubernetes("read pod metrics (metrics.k8s.io: is metrics-server installed?)"))?;
    Ok(list
        .items
        .into_iter()
        .map(|pod| {
            let used = pod.containers.iter().filter_map(|c| Quantity::parse(c.usage.get("cpu")?)).map(Quantity::millis).sum();
            (pod.metadata.name, used)
        })
        .collect())
}

/// The pod's CPU request in millicores (its containers' sum), or one core without one.
fn requested_millis(pod: &Pod) -> u64 {
    let requested: u64 = pod
        .spec
        .iter()
        .flat_map(|spec| &spec.containers)
        .filter_map(|c| c.resources.as_ref()?.requests.as_ref()?.get("cpu"))
        .filter_map(|q| Quantity::parse(&q.0))
        .map(Quantity::millis)
        .sum();
    if requested == 0 { 1000 } else { requested }
}

fn is_ready(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.conditions.as_ref()).is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Where the pod serves: its IP and its first container's first port.
fn address(pod: &Pod) -> Option<String> {
    let ip = pod.status.as_ref()?.pod_ip.as_ref()?;
    let port = pod.spec.as_ref()?.containers.first()?.ports.as_ref()?.first()?.container_port;
    Some(format!("{ip}:{port}"))
}

/// Measures the `pods` of a proton for `query`; `cpu`: [`pod_cpu_millis`], when asked and known.
pub(crate) async fn measure(
    client: &reqwest::Client,
    query: &UsageQuery,
    pods: &[Pod],
    cpu: Option<&HashMap<String, u64>>,
) -> Vec<ReplicaUsage> {
    let scrapes = pods.iter().map(|pod| async move {
        match address(pod) {
            Some(address) => crate::driver::prometheus::scrape(client, &address, &query.metrics, SCRAPE_TIMEOUT).await,
            None => HashMap::new(),
        }
    });
    let scraped = futures::future::join_all(scrapes).await;
    pods.iter()
        .zip(scraped)
        .map(|(pod, metrics)| {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let cpu_percent = cpu.and_then(|used| used.get(&name)).map(|used| *used as f64 / requested_millis(pod) as f64 * 100.0);
            ReplicaUsage { replica: name, ready: is_ready(pod), cpu_percent, metrics }
        })
        .collect()
}
