//! Pods as replica statuses, in the agent's vocabulary (the same the process driver reports).
//! Pure: the watcher feeds it what the API server says.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus as KubeContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use nucleus_proto::agent::v1::{Condition, ContainerStatus, ProtonReport, ReplicaStatus};

use super::names::{PROTON_ID_ANNOTATION, PROTON_LABEL, WORKLOAD_ID_ANNOTATION, WORKLOAD_LABEL};
use crate::status::rfc3339;

/// The pod conditions reported, in this order (the process driver reports the same four).
const CONDITIONS: [&str; 4] = ["PodScheduled", "Initialized", "ContainersReady", "Ready"];

/// The proton a pod belongs to: the exact id the driver annotated it with, else the name label.
pub(crate) fn proton_id(pod: &Pod) -> Option<String> {
    let metadata = &pod.metadata;
    let annotation = metadata.annotations.as_ref()?.get(PROTON_ID_ANNOTATION);
    annotation.or_else(|| metadata.labels.as_ref()?.get(PROTON_LABEL)).cloned()
}

/// The workload of a pod's proton, from its annotation, else its label, else empty.
pub(crate) fn workload_id(pod: &Pod) -> String {
    let metadata = &pod.metadata;
    metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(WORKLOAD_ID_ANNOTATION))
        .or_else(|| metadata.labels.as_ref()?.get(WORKLOAD_LABEL))
        .cloned()
        .unwrap_or_default()
}

/// The report of a proton whose pods are `pods`.
pub(crate) fn report<'a>(
    proton_id: &str,
    workload_id: &str,
    lifecycle: nucleus_proto::agent::v1::Lifecycle,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> ProtonReport {
    ProtonReport {
        proton_id: proton_id.to_owned(),
        workload_id: workload_id.to_owned(),
        lifecycle: lifecycle as i32,
        replicas: pods.into_iter().map(replica_status).collect(),
        observed_at: String::new(),
        removed: false,
    }
}

/// One pod as a replica:
/// - phase: the pod's, lower-cased, except that a pod whose container waits in
///   `CrashLoopBackOff` is pending (the process driver's word for a replica waiting to be
///   restarted; Kubernetes keeps such a pod `Running`);
/// - node_address: the node's name, empty until the pod is scheduled;
/// - address: pod IP and container port, empty until the pod has an IP;
/// - a terminating pod is not `Ready`, whatever its last probe said: it is going away.
pub(crate) fn replica_status(pod: &Pod) -> ReplicaStatus {
    let spec = pod.spec.as_ref();
    let status = pod.status.clone().unwrap_or_default();
    let containers = containers(pod);
    let backing_off = containers.iter().any(|container| container.status == "waiting" && container.reason == "CrashLoopBackOff");
    let phase = match status.phase.as_deref().unwrap_or("Pending") {
        "Running" if backing_off => "pending",
        "Pending" => "pending",
        "Running" => "running",
        "Succeeded" => "succeeded",
        "Failed" => "failed",
        _ => "unknown",
    };
    let port = spec
        .and_then(|spec| spec.containers.first())
        .and_then(|container| container.ports.as_ref()?.first())
        .map(|port| port.container_port);
    let address = match (status.pod_ip.as_deref(), port) {
        (Some(ip), Some(port)) if ip.contains(':') => format!("[{ip}]:{port}"),
        (Some(ip), Some(port)) => format!("{ip}:{port}"),
        _ => String::new(),
    };
    let deleted_at = pod.metadata.deletion_timestamp.as_ref();
    let conditions = CONDITIONS
        .iter()
        .filter_map(|kind| {
            let condition = status.conditions.as_ref()?.iter().find(|condition| condition.type_ == *kind)?;
            let met = condition.status == "True";
            Some(match deleted_at {
                Some(at) if *kind == "Ready" && met => Condition { r#type: condition.type_.clone(), met: false, since: time(at) },
                _ => Condition {
                    r#type: condition.type_.clone(),
                    met,
                    since: condition.last_transition_time.as_ref().map(time).unwrap_or_default(),
                },
            })
        })
        .collect();
    ReplicaStatus {
        name: pod.metadata.name.clone().unwrap_or_default(),
        address,
        node_address: spec.and_then(|spec| spec.node_name.clone()).unwrap_or_default(),
        started_at: status.start_time.as_ref().or(pod.metadata.creation_timestamp.as_ref()).map(time).unwrap_or_default(),
        phase: phase.to_owned(),
        conditions,
        containers,
        log_tail: Vec::new(),
        error: if phase == "failed" { failure(pod) } else { String::new() },
    }
}

/// The containers' statuses; before the kubelet reports any, the spec's containers as waiting
/// (for the scheduler's reason when the pod cannot be scheduled).
fn containers(pod: &Pod) -> Vec<ContainerStatus> {
    let status = pod.status.as_ref();
    let reported = status.and_then(|status| status.container_statuses.as_ref());
    if let Some(reported) = reported.filter(|reported| !reported.is_empty()) {
        return reported.iter().map(container_status).collect();
    }
    let unscheduled = status
        .and_then(|status| status.conditions.as_ref())
        .and_then(|conditions| conditions.iter().find(|condition| condition.type_ == "PodScheduled" && condition.status != "True"))
        .map(|condition| condition.reason.clone().unwrap_or_default())
        .unwrap_or_default();
    pod.spec
        .iter()
        .flat_map(|spec| &spec.containers)
        .map(|container| ContainerStatus {
            name: container.name.clone(),
            image: container.image.clone().unwrap_or_default(),
            status: "waiting".to_owned(),
            reason: unscheduled.clone(),
            ..ContainerStatus::default()
        })
        .collect()
}

fn container_status(reported: &KubeContainerStatus) -> ContainerStatus {
    let state = reported.state.clone().unwrap_or_default();
    let last_started = || {
        let last = reported.last_state.as_ref()?.terminated.as_ref()?;
        last.started_at.as_ref().map(time)
    };
    let (status, reason, started_at) = match &state {
        ContainerState { running: Some(running), .. } => ("running", None, running.started_at.as_ref().map(time)),
        ContainerState { terminated: Some(terminated), .. } => {
            ("terminated", terminated.reason.clone(), terminated.started_at.as_ref().map(time))
        }
        ContainerState { waiting: Some(waiting), .. } => ("waiting", waiting.reason.clone(), last_started()),
        _ => ("unknown", None, None),
    };
    ContainerStatus {
        name: reported.name.clone(),
        image: reported.image.clone(),
        ready: reported.ready,
        restart_count: u32::try_from(reported.restart_count).unwrap_or(0),
        started_at: started_at.unwrap_or_default(),
        status: status.to_owned(),
        reason: reason.unwrap_or_default(),
    }
}

/// Why a failed pod failed: the pod's own message (an eviction, a deadline), else the first
/// container that terminated with an error.
fn failure(pod: &Pod) -> String {
    let status = pod.status.as_ref();
    if let Some(message) = status.and_then(|status| status.message.clone()) {
        return match status.and_then(|status| status.reason.as_deref()) {
            Some(reason) => format!("{reason}: {message}"),
            None => message,
        };
    }
    let terminated = status.and_then(|status| status.container_statuses.as_ref()).into_iter().flatten().find_map(|container| {
        let terminated = container.state.as_ref()?.terminated.as_ref()?;
        (terminated.exit_code != 0).then_some((container.name.as_str(), terminated))
    });
    match terminated {
        Some((name, terminated)) => {
            format!("container {name} exited with code {} ({})", terminated.exit_code, terminated.reason.as_deref().unwrap_or("Error"))
        }
        None => "the pod failed".to_owned(),
    }
}

fn time(time: &Time) -> String {
    DateTime::<Utc>::from_timestamp_millis(time.0.as_millisecond()).map(rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::kubernetes::testing::pod_fixture;

    fn condition(replica: &ReplicaStatus, kind: &str) -> Option<(bool, String)> {
        replica.conditions.iter().find(|condition| condition.r#type == kind).map(|condition| (condition.met, condition.since.clone()))
    }

    #[test]
    fn an_unscheduled_pod_is_pending_without_a_node() {
        let pod = pod_fixture("pod-pending-unscheduled");
        let replica = replica_status(&pod);
        assert_eq!(replica.name, "proton-65f0a1b2c3d4e5f6a7b8c9d0-7d9f8b6c5-x2x4q");
        assert_eq!(replica.phase, "pending");
        assert_eq!(replica.node_address, "");
        assert_eq!(replica.address, "");
        assert_eq!(condition(&replica, "PodScheduled"), Some((false, "2026-03-02T10:15:00.000Z".into())));
        assert_eq!(replica.conditions.len(), 1);
        assert_eq!(replica.containers.len(), 1);
        let container = &replica.containers[0];
        assert_eq!(
            (container.name.as_str(), container.status.as_str(), container.reason.as_str()),
            ("primary", "waiting", "Unschedulable")
        );
        assert_eq!(container.image, "registry.example/llm:1");
        assert_eq!(replica.started_at, "2026-03-02T10:15:00.000Z", "creation time");
        assert_eq!(proton_id(&pod).as_deref(), Some("65f0a1b2c3d4e5f6a7b8c9d0"));
        assert_eq!(workload_id(&pod), "65f0a1b2aaaaaaaaaaaaaaaa");
    }

    #[test]
    fn a_scheduled_pod_creating_its_container_is_pending_on_its_node() {
        let replica = replica_status(&pod_fixture("pod-pending-container-creating"));
        assert_eq!(replica.phase, "pending");
        assert_eq!(replica.node_address, "gke-gpu-pool-l4-1a2b");
        assert_eq!(replica.address, "", "no pod IP yet");
        assert_eq!(condition(&replica, "PodScheduled").map(|c| c.0), Some(true));
        assert_eq!(condition(&replica, "Ready").map(|c| c.0), Some(false));
        let container = &replica.containers[0];
        assert_eq!((container.status.as_str(), container.reason.as_str(), container.ready), ("waiting", "ContainerCreating", false));
        assert_eq!(replica.started_at, "2026-03-02T10:15:02.000Z");
    }

    #[test]
    fn a_running_pod_not_yet_ready() {
        let replica = replica_status(&pod_fixture("pod-running-not-ready"));
        assert_eq!(replica.phase, "running");
        assert_eq!(replica.address, "10.8.2.14:9000");
        assert_eq!(
            replica.conditions.iter().map(|c| (c.r#type.as_str(), c.met)).collect::<Vec<_>>(),
            [("PodScheduled", true), ("Initialized", true), ("ContainersReady", false), ("Ready", false)]
        );
        let container = &replica.containers[0];
        assert_eq!((container.status.as_str(), container.ready), ("running", false));
        assert_eq!(container.started_at, "2026-03-02T10:16:41.000Z");
        assert_eq!(container.reason, "");
    }

    #[test]
    fn a_ready_pod() {
        let replica = replica_status(&pod_fixture("pod-running-ready"));
        assert_eq!(replica.phase, "running");
        assert_eq!(replica.address, "10.8.2.15:9000");
        assert_eq!(condition(&replica, "Ready"), Some((true, "2026-03-02T10:17:03.000Z".into())));
        assert!(replica.containers[0].ready);
        assert_eq!(replica.error, "");
    }

    #[test]
    fn a_crash_looping_pod_is_pending_with_its_restarts() {
        let replica = replica_status(&pod_fixture("pod-crash-loop-back-off"));
        assert_eq!(replica.phase, "pending", "Kubernetes says Running");
        let container = &replica.containers[0];
        assert_eq!((container.status.as_str(), container.reason.as_str()), ("waiting", "CrashLoopBackOff"));
        assert_eq!(container.restart_count, 5);
        assert_eq!(container.started_at, "2026-03-02T10:21:12.000Z", "last run");
        assert_eq!(replica.error, "", "it will be restarted");
    }

    #[test]
    fn an_oom_killed_container_is_terminated() {
        let replica = replica_status(&pod_fixture("pod-oom-killed"));
        assert_eq!(replica.phase, "running");
        let container = &replica.containers[0];
        assert_eq!((container.status.as_str(), container.reason.as_str(), container.restart_count), ("terminated", "OOMKilled", 1));
        assert_eq!(condition(&replica, "Ready").map(|c| c.0), Some(false));
    }

    #[test]
    fn a_failed_pod_says_why() {
        let mut pod = pod_fixture("pod-oom-killed");
        let status = pod.status.as_mut().expect("status");
        status.phase = Some("Failed".into());
        let replica = replica_status(&pod);
        assert_eq!(replica.phase, "failed");
        assert_eq!(replica.error, "container primary exited with code 137 (OOMKilled)");

        let status = pod.status.as_mut().expect("status");
        status.reason = Some("Evicted".into());
        status.message = Some("The node was low on resource: memory.".into());
        assert_eq!(replica_status(&pod).error, "Evicted: The node was low on resource: memory.");
    }

    #[test]
    fn a_terminating_pod_is_not_ready() {
        let mut pod = pod_fixture("pod-running-ready");
        pod.metadata.deletion_timestamp = pod.metadata.creation_timestamp.clone();
        let replica = replica_status(&pod);
        assert_eq!(condition(&replica, "Ready"), Some((false, "2026-03-02T10:15:00.000Z".into())));
    }

    #[test]
    fn a_report_lists_every_pod() {
        let pods = [pod_fixture("pod-running-ready"), pod_fixture("pod-running-not-ready")];
        let report = report("p", "w", nucleus_proto::agent::v1::Lifecycle::Running, &pods);
        assert_eq!((report.proton_id.as_str(), report.workload_id.as_str()), ("p", "w"));
        assert_eq!(report.lifecycle(), nucleus_proto::agent::v1::Lifecycle::Running);
        assert_eq!(report.replicas.iter().map(|r| r.address.as_str()).collect::<Vec<_>>(), ["10.8.2.15:9000", "10.8.2.14:9000"]);
    }
}
