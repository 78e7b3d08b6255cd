//! Replica logs on Kubernetes, read from the pod log API when asked (the kubelet keeps them; the
//! agent stores nothing): the newest lines of each pod of the protons asked about, with the
//! previous instance's where the container restarted, so that a crash shows after the restart.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use futures::{AsyncReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::{Api, ListParams, LogParams};
use nucleus_proto::agent::v1::{LogRecord, LogsRequest, LogsResponse};

use super::names::{PROTON_LABEL, resource_name};
use crate::error::Error;
use crate::logs::parse::unix_nanos;
use crate::logs::{Stream, filter, parse_line};

/// The newest lines read from each container: as many as one answer can hold.
const TAIL_LINES: i64 = filter::MAX_LIMIT as i64;
/// The most read from one container's log, however long its lines.
const MAX_LOG_BYTES: usize = 4 * 1024 * 1024;
/// Pods whose logs are read at once.
const CONCURRENT_READS: usize = 4;

/// The answer to `request` from the logs of the protons' pods in `namespace`.
pub(super) async fn query(pods: &Api<Pod>, namespace: &str, request: &LogsRequest) -> Result<LogsResponse, Error> {
    let since_seconds = request.start_unix_nanos.map(|start| since_seconds(start, nucleus_api::clock::now()));
    let mut records = Vec::new();
    for proton_id in request.proton_ids.iter().collect::<BTreeSet<_>>() {
        let selector = format!("{PROTON_LABEL}={}", resource_name(proton_id));
        let listed = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(Error::kubernetes(format!("list the pods of proton {proton_id} in namespace {namespace}")))?;
        let read: Vec<Vec<LogRecord>> = futures::stream::iter(listed.items)
            .map(|pod| pod_records(pods, namespace, pod, proton_id, since_seconds))
            .buffered(CONCURRENT_READS)
            .try_collect()
            .await?;
        records.extend(read.into_iter().flatten());
    }
    Ok(filter::answer(records.iter(), request))
}

/// What the pod's container printed: its previous instance's lines, then the current one's.
async fn pod_records(
    pods: &Api<Pod>,
    namespace: &str,
    pod: Pod,
    proton_id: &str,
    since_seconds: Option<i64>,
) -> Result<Vec<LogRecord>, Error> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    // The driver's pods have one container, the replica's.
    let Some(container) = pod.spec.as_ref().and_then(|spec| spec.containers.first()).map(|container| container.name.clone()) else {
        return Ok(Vec::new());
    };
    let status = pod.status.as_ref().and_then(|status| status.container_statuses.as_ref()?.iter().find(|s| s.name == container));
    let current =
        LogParams { container: Some(container), timestamps: true, since_seconds, tail_lines: Some(TAIL_LINES), ..LogParams::default() };
    let mut records = Vec::new();
    if status.is_some_and(has_previous) {
        let previous = LogParams { previous: true, ..current.clone() };
        if let Some(text) = read(pods, namespace, name, &previous).await? {
            records.extend(lines(&text, proton_id, name));
        }
    }
    if let Some(text) = read(pods, namespace, name, &current).await? {
        records.extend(lines(&text, proton_id, name));
    }
    Ok(records)
}

/// Whether the container restarted and the log of its previous instance is not the one the
/// kubelet serves as current: a container waiting to restart (`CrashLoopBackOff`) has no current
/// instance, so the kubelet serves its last one for both, which would be read twice.
fn has_previous(status: &ContainerStatus) -> bool {
    let last = status.last_state.as_ref().and_then(|state| state.terminated.as_ref());
    let Some(previous) = last.and_then(|last| last.container_id.as_deref()).filter(|id| !id.is_empty()) else {
        return false;
    };
    // The container the kubelet reads for a log request without `previous`.
    let state = status.state.as_ref();
    let current = if state.is_some_and(|state| state.running.is_some()) {
        status.container_id.as_deref()
    } else {
        state.and_then(|state| state.terminated.as_ref()?.container_id.as_deref()).filter(|id| !id.is_empty()).or(Some(previous))
    };
    status.restart_count > 0 && current != Some(previous)
}

/// The log `params` select of pod `name`; `None` when there is none to read: the container has
/// not started yet or has no previous instance (400), or the pod is gone (404).
async fn read(pods: &Api<Pod>, namespace: &str, name: &str, params: &LogParams) -> Result<Option<String>, Error> {
    let which = if params.previous { "previous log" } else { "log" };
    let failed = |err: kube::Error| {
        let forbidden = matches!(&err, kube::Error::Api(status) if status.code == 403);
        let rbac = if forbidden { " (the agent needs get on pods/log)" } else { "" };
        Error::kubernetes(format!("read the {which} of pod {namespace}/{name}{rbac}"))(err)
    };
    // Read as bytes, not with `Api::logs`, which fails on output that is not UTF-8.
    let stream = match pods.log_stream(name, params).await {
        Ok(stream) => stream,
        Err(kube::Error::Api(status)) if status.code == 400 || status.code == 404 => {
            tracing::debug!(pod = %name, previous = params.previous, reason = %status.message, "no log to read");
            return Ok(None);
        }
        Err(err) => return Err(failed(err)),
    };
    // The newest MAX_LOG_BYTES of the tail: `limitBytes` would keep the oldest.
    let mut stream = std::pin::pin!(stream);
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut cut = false;
    loop {
        let read = stream.read(&mut chunk).await.map_err(|err| failed(kube::Error::ReadEvents(err)))?;
        if read == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..read]);
        if bytes.len() > 2 * MAX_LOG_BYTES {
            bytes.drain(..bytes.len() - MAX_LOG_BYTES);
            cut = true;
        }
    }
    if bytes.len() > MAX_LOG_BYTES {
        bytes.drain(..bytes.len() - MAX_LOG_BYTES);
        cut = true;
    }
    if cut && let Some(newline) = bytes.iter().position(|byte| *byte == b'\n') {
        bytes.drain(..=newline); // the first line was cut
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The records of a log read with `timestamps`: each line is `<RFC 3339 time> <what was printed>`.
fn lines<'a>(text: &'a str, proton_id: &'a str, replica: &'a str) -> impl Iterator<Item = LogRecord> + 'a {
    let now = nucleus_api::clock::now();
    text.lines().map(move |line| {
        let stamped = line.split_once(' ').and_then(|(at, rest)| Some((DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc), rest)));
        let (observed, printed) = stamped.unwrap_or((now, line));
        parse_line(printed, Stream::Unknown, observed, proton_id, replica)
    })
}

/// `sinceSeconds` for the lines from `start` on: whole seconds, rounded up, at least 1 (the API
/// server refuses less; a start in the future then reads the last second, which the filter drops).
fn since_seconds(start_unix_nanos: i64, now: DateTime<Utc>) -> i64 {
    let ago = unix_nanos(now).saturating_sub(start_unix_nanos);
    (ago.saturating_add(999_999_999) / 1_000_000_000).max(1)
}

#[cfg(test)]
mod tests {
    use nucleus_proto::agent::v1::Severity;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).expect("time").with_timezone(&Utc)
    }

    #[test]
    fn lines_take_the_kubelet_time_unless_they_carry_their_own() {
        let text = "2026-03-02T10:20:00.123456789Z INFO:     Uvicorn running on http://0.0.0.0:9000\n\
                    2026-03-02T10:20:01Z {\"level\":\"error\",\"msg\":\"boom\",\"time\":\"2026-03-02T10:19:59Z\"}\n\
                    2026-03-02T10:20:02.5Z \n\
                    no timestamp here\r\n";
        let before = nucleus_api::clock::now();
        let records: Vec<LogRecord> = lines(text, "p", "pod-a").collect();
        let summary: Vec<(&str, Severity)> = records.iter().map(|r| (r.message.as_str(), r.severity())).collect();
        assert_eq!(
            summary,
            [
                ("INFO:     Uvicorn running on http://0.0.0.0:9000", Severity::Info),
                ("boom", Severity::Error),
                ("", Severity::Info),
                ("no timestamp here", Severity::Info),
            ]
        );
        assert_eq!(records[0].unix_nanos, unix_nanos(at("2026-03-02T10:20:00.123456789Z")));
        assert_eq!(records[1].unix_nanos, unix_nanos(at("2026-03-02T10:19:59Z")), "the line's own time wins");
        assert_eq!(records[2].unix_nanos, unix_nanos(at("2026-03-02T10:20:02.5Z")));
        assert!(records[3].unix_nanos >= unix_nanos(before), "read now");
        assert!(records.iter().all(|r| r.replica == "pod-a" && r.proton_id == "p" && r.stream.is_empty()));
    }

    #[test]
    fn since_seconds_rounds_up_and_is_at_least_one() {
        let now = at("2026-03-02T10:20:00Z");
        assert_eq!(since_seconds(unix_nanos(at("2026-03-02T10:19:00Z")), now), 60);
        assert_eq!(since_seconds(unix_nanos(at("2026-03-02T10:18:59.5Z")), now), 61);
        assert_eq!(since_seconds(unix_nanos(at("2026-03-02T10:25:00Z")), now), 1);
        assert_eq!(since_seconds(i64::MIN, now), i64::MAX / 1_000_000_000);
    }

    fn status(value: serde_json::Value) -> ContainerStatus {
        let mut base = serde_json::json!({"name": "primary", "image": "i", "imageID": "", "ready": false, "restartCount": 1});
        base.as_object_mut().expect("object").extend(value.as_object().expect("object").clone());
        serde_json::from_value(base).expect("a ContainerStatus")
    }

    #[test]
    fn a_previous_instance_is_read_only_when_the_kubelet_serves_another_as_current() {
        let last = serde_json::json!({"terminated": {"exitCode": 1, "containerID": "containerd://old"}});
        let running = status(serde_json::json!({"state": {"running": {}}, "lastState": last, "containerID": "containerd://new"}));
        assert!(has_previous(&running));
        let crashed =
            status(serde_json::json!({"state": {"terminated": {"exitCode": 137, "containerID": "containerd://new"}}, "lastState": last}));
        assert!(has_previous(&crashed));
        let backing_off = status(
            serde_json::json!({"state": {"waiting": {"reason": "CrashLoopBackOff"}}, "lastState": last, "containerID": "containerd://old"}),
        );
        assert!(!has_previous(&backing_off), "its current log is the previous instance's");
        let never_restarted = status(serde_json::json!({"state": {"running": {}}, "lastState": {}, "restartCount": 0}));
        assert!(!has_previous(&never_restarted));
    }
}
