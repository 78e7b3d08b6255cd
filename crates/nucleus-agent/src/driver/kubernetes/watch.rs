//! The pod watcher: keeps each proton's pods up to date from a watch of every pod the driver
//! manages, adopts the protons it did not launch (those of an earlier agent) and publishes a
//! report on each change.

use std::collections::BTreeMap;
use std::sync::Weak;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};

use super::names::MANAGED_SELECTOR;
use super::status::{proton_id, workload_id};
use super::{Inner, Lifecycle, Proton, State};

/// Runs until the driver is gone. Watch errors are retried with backoff (the watcher re-lists
/// when it has to, which reconciles whatever was missed).
pub(super) async fn watch_pods(inner: Weak<Inner>, pods: Api<Pod>) {
    let config = watcher::Config::default().labels(MANAGED_SELECTOR);
    let mut events = std::pin::pin!(watcher::watcher(pods, config).default_backoff());
    while let Some(event) = events.next().await {
        let Some(inner) = inner.upgrade() else {
            return;
        };
        match event {
            Ok(event) => inner.on_pod_event(event),
            Err(err) => {
                tracing::warn!(error = %err, "watching pods failed; retrying (check the agent's RBAC: list and watch pods)");
            }
        }
    }
}

impl Inner {
    fn on_pod_event(&self, event: Event<Pod>) {
        let mut state = self.state();
        let changed: Vec<String> = match event {
            Event::Init => {
                state.relisting = Some(BTreeMap::new());
                Vec::new()
            }
            Event::InitApply(pod) => {
                if let (Some(relisting), Some(name)) = (state.relisting.as_mut(), pod.metadata.name.clone()) {
                    relisting.insert(name, pod);
                }
                Vec::new()
            }
            Event::InitDone => relisted(&mut state),
            Event::Apply(pod) => applied(&mut state, pod).into_iter().collect(),
            Event::Delete(pod) => deleted(&mut state, &pod).into_iter().collect(),
        };
        for id in changed {
            Inner::settle(&mut state, &id);
            self.publish_locked(&state, &id);
        }
    }
}

/// Replaces every proton's pods with those of the completed list; returns every proton.
fn relisted(state: &mut State) -> Vec<String> {
    let listed = state.relisting.take().unwrap_or_default();
    state.listed = true;
    for proton in state.protons.values_mut() {
        proton.pods.clear();
    }
    for pod in listed.into_values() {
        applied(state, pod);
    }
    state.protons.keys().cloned().collect()
}

/// Records a pod (adopting its proton if unknown); returns its proton.
fn applied(state: &mut State, pod: Pod) -> Option<String> {
    let (id, name) = (proton_id(&pod)?, pod.metadata.name.clone()?);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let proton = state.protons.entry(id.clone()).or_insert_with(|| {
        tracing::info!(proton = %id, pod = %name, "adopting a proton this agent did not launch");
        Proton {
            workload_id: workload_id(&pod),
            lifecycle: if terminating { Lifecycle::Stopping } else { Lifecycle::Running },
            pods: BTreeMap::new(),
        }
    });
    // A pod of a stopped proton is one still going away.
    if proton.lifecycle == Lifecycle::Stopped {
        proton.lifecycle = Lifecycle::Stopping;
    }
    let restarted = new_restarts(proton.pods.get(&name), &pod);
    if restarted > 0 {
        crate::metrics::metrics().restarts.with(&["kubernetes"]).inc_by(restarted as f64);
    }
    proton.pods.insert(name, pod);
    Some(id)
}

/// Container restarts the kubelet made since `before` (a pod first seen, e.g. at adoption,
/// counts none: its restarts happened before this agent watched).
fn new_restarts(before: Option<&Pod>, after: &Pod) -> u64 {
    let count = |pod: &Pod| -> u64 {
        let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.as_ref());
        statuses.map_or(0, |all| all.iter().map(|c| u64::try_from(c.restart_count).unwrap_or(0)).sum())
    };
    before.map_or(0, |before| count(after).saturating_sub(count(before)))
}

/// Forgets a pod; returns its proton.
fn deleted(state: &mut State, pod: &Pod) -> Option<String> {
    let (id, name) = (proton_id(pod)?, pod.metadata.name.as_deref()?);
    state.protons.get_mut(&id)?.pods.remove(name);
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(restarts: &[i32]) -> Pod {
        let statuses: Vec<serde_json::Value> = restarts
            .iter()
            .enumerate()
            .map(|(i, n)| serde_json::json!({"name": format!("c{i}"), "image": "x", "imageID": "", "ready": true, "restartCount": n}))
            .collect();
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "status": {"containerStatuses": statuses}})).expect("pod")
    }

    #[test]
    fn restarts_are_counted_as_they_happen_not_at_first_sight() {
        assert_eq!(new_restarts(None, &pod(&[4])), 0, "restarts before the agent watched");
        assert_eq!(new_restarts(Some(&pod(&[4, 0])), &pod(&[5, 2])), 3);
        assert_eq!(new_restarts(Some(&pod(&[5])), &pod(&[5])), 0);
        assert_eq!(new_restarts(Some(&pod(&[5])), &pod(&[])), 0, "a status without containers yet");
    }
}
