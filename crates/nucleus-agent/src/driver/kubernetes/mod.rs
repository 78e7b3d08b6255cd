//! The Kubernetes driver: a proton is a Deployment (its replicas are the pods) and a ClusterIP
//! Service, both server-side applied in one namespace; replica status comes from a watch of the
//! pods the driver manages.
//!
//! The cluster holds all state: an agent that restarts lists the pods again (by label) and reports
//! them, and launching an unchanged proton is a no-op apply. Shutting the agent down leaves the
//! Deployments running.

mod capacity;
mod gpu_models;
mod logs;
mod manifest;
mod names;
mod quantity;
mod status;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
mod usage;
mod watch;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use tokio::task::JoinHandle;

use self::names::{FIELD_MANAGER, WORKLOAD_ID_ANNOTATION, resource_name};
use super::{Driver, Lifecycle, LogsRequest, LogsResponse, NodeCapacity, ProtonSpec, ProtonUsage, UsageQuery};
use crate::error::Error;
use crate::status::StatusHub;

/// Where the driver finds the cluster and which namespace it runs protons in.
#[derive(Clone)]
pub struct KubernetesConfig {
    pub client: kube::Client,
    pub namespace: String,
}

impl KubernetesConfig {
    /// The namespace protons run in unless told otherwise.
    pub const DEFAULT_NAMESPACE: &str = "nucleus";

    /// A client from the environment: the kubeconfig (`KUBECONFIG` or `~/.kube/config`) when
    /// there is one, else the in-cluster service account.
    pub async fn infer(namespace: impl Into<String>) -> Result<KubernetesConfig, Error> {
        let client = kube::Client::try_default().await.map_err(Error::KubernetesConfig)?;
        Ok(KubernetesConfig { client, namespace: namespace.into() })
    }
}

pub struct KubernetesDriver {
    inner: Arc<Inner>,
    /// The pod watcher; ended by `shutdown` or when the driver is dropped.
    watcher: JoinHandle<()>,
}

struct Inner {
    namespace: String,
    /// For requests outside the typed APIs (the metrics API).
    client: kube::Client,
    /// Scrapes replicas' metrics for the autoscaler.
    scraper: reqwest::Client,
    deployments: Api<Deployment>,
    services: Api<Service>,
    /// For replica logs (the watcher has its own).
    pods: Api<Pod>,
    nodes: Api<Node>,
    hub: StatusHub,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    protons: BTreeMap<String, Proton>,
    /// Whether the watcher has listed the pods at least once: until then, seeing no pod of a
    /// proton says nothing about whether it has any.
    listed: bool,
    /// The pods of a (re-)list under way, by name, until it is complete.
    relisting: Option<BTreeMap<String, Pod>>,
    shutting_down: bool,
}

struct Proton {
    workload_id: String,
    lifecycle: Lifecycle,
    /// Its pods, by name.
    pods: BTreeMap<String, Pod>,
}

impl KubernetesDriver {
    /// Starts watching the namespace's pods; must be called within a tokio runtime.
    pub(crate) fn new(config: KubernetesConfig, hub: StatusHub) -> KubernetesDriver {
        let KubernetesConfig { client, namespace } = config;
        let pods: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        let inner = Arc::new(Inner {
            deployments: Api::namespaced(client.clone(), &namespace),
            services: Api::namespaced(client.clone(), &namespace),
            pods: pods.clone(),
            nodes: Api::all(client.clone()),
            client,
            scraper: reqwest::Client::builder().no_proxy().build().unwrap_or_default(),
            namespace,
            hub,
            state: Mutex::default(),
        });
        let watcher = tokio::spawn(watch::watch_pods(Arc::downgrade(&inner), pods));
        KubernetesDriver { inner, watcher }
    }
}

impl Drop for KubernetesDriver {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl Driver for KubernetesDriver {
    fn kind(&self) -> &'static str {
        "kubernetes"
    }

    fn launch(&self, spec: ProtonSpec) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.inner.launch(spec))
    }

    /// Deletes the Deployment (foreground: its ReplicaSets and pods go first, the Service with
    /// it by owner reference). The pods' own termination grace applies, not `grace`.
    fn stop(&self, proton_id: String, _grace: Duration) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(self.inner.stop(proton_id))
    }

    fn capacity(&self) -> BoxFuture<'_, Result<Vec<NodeCapacity>, Error>> {
        Box::pin(async {
            let nodes = self.inner.nodes.list(&ListParams::default()).await.map_err(Error::kubernetes("list nodes"))?;
            Ok(capacity::capacities(&nodes.items))
        })
    }

    fn usage(&self, queries: Vec<UsageQuery>) -> BoxFuture<'_, Result<Vec<ProtonUsage>, Error>> {
        Box::pin(async move {
            let mut answers = Vec::with_capacity(queries.len());
            for query in &queries {
                let pods: Vec<Pod> = match self.inner.state().protons.get(&query.proton_id) {
                    Some(proton) => proton.pods.values().cloned().collect(),
                    None => continue,
                };
                let cpu = if query.cpu {
                    match usage::pod_cpu_millis(&self.inner.client, &self.inner.namespace, &resource_name(&query.proton_id)).await {
                        Ok(cpu) => Some(cpu),
                        Err(err) => {
                            tracing::warn!(proton = %query.proton_id, error = %err, "no CPU use for autoscaling");
                            None
                        }
                    }
                } else {
                    None
                };
                let replicas = usage::measure(&self.inner.scraper, query, &pods, cpu.as_ref()).await;
                answers.push(ProtonUsage { proton_id: query.proton_id.clone(), replicas });
            }
            Ok(answers)
        })
    }

    /// Reads the logs of the protons' pods from the API server (the kubelet keeps them).
    fn logs(&self, request: LogsRequest) -> BoxFuture<'_, Result<LogsResponse, Error>> {
        Box::pin(async move { logs::query(&self.inner.pods, &self.inner.namespace, &request).await })
    }

    /// Stops watching and refuses further launches; the Deployments keep running.
    fn shutdown(&self) -> BoxFuture<'_, ()> {
        self.inner.state().shutting_down = true;
        self.watcher.abort();
        Box::pin(std::future::ready(()))
    }
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // Every update of the state is completed under the lock before anything can panic.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Applies the Deployment, then the Service owned by it; a proton already running with the
    /// same spec is left as it is, one with another replica count is scaled.
    async fn launch(&self, spec: ProtonSpec) -> Result<(), Error> {
        if self.state().shutting_down {
            return Err(Error::ShuttingDown);
        }
        if spec.container.image_uri.is_empty() {
            return Err(Error::InvalidSpec(format!("proton {} has no image: the Kubernetes driver needs image_uri", spec.proton_id)));
        }
        let name = resource_name(&spec.proton_id);
        let namespace = &self.namespace;
        let apply = PatchParams::apply(FIELD_MANAGER).force();
        let deployment = self
            .deployments
            .patch(&name, &apply, &Patch::Apply(manifest::deployment(&spec, namespace)))
            .await
            .map_err(Error::kubernetes(format!("apply Deployment {namespace}/{name}")))?;
        if deployment.metadata.deletion_timestamp.is_some() {
            return Err(Error::StillStopping(spec.proton_id));
        }
        let uid = deployment.metadata.uid.unwrap_or_default();
        self.services
            .patch(&name, &apply, &Patch::Apply(manifest::service(&spec, namespace, &uid)))
            .await
            .map_err(Error::kubernetes(format!("apply Service {namespace}/{name}")))?;
        tracing::info!(proton = %spec.proton_id, deployment = %name, replicas = spec.replica_count, "applied");

        let mut state = self.state();
        let proton = state.protons.entry(spec.proton_id.clone()).or_insert_with(|| Proton {
            workload_id: spec.workload_id.clone(),
            lifecycle: Lifecycle::Running,
            pods: BTreeMap::new(),
        });
        proton.workload_id = spec.workload_id;
        proton.lifecycle = Lifecycle::Running;
        self.publish_locked(&state, &spec.proton_id);
        Ok(())
    }

    async fn stop(&self, proton_id: String) -> Result<(), Error> {
        let name = resource_name(&proton_id);
        let namespace = &self.namespace;
        let deleted = match self.deployments.delete(&name, &DeleteParams::foreground()).await {
            Ok(deleted) => deleted.left(),
            Err(kube::Error::Api(status)) if status.code == 404 => None,
            Err(err) => {
                return Err(Error::kubernetes(format!("delete Deployment {namespace}/{name}"))(err));
            }
        };
        let mut state = self.state();
        let listed = state.listed;
        let proton = match (state.protons.get_mut(&proton_id), deleted) {
            (Some(proton), _) => proton,
            (None, None) => {
                tracing::debug!(proton = %proton_id, "stop of an unknown proton: nothing to do");
                return Ok(());
            }
            // Its Deployment exists but no pod of it was seen (none yet, or none at all).
            (None, Some(deployment)) => state.protons.entry(proton_id.clone()).or_insert(Proton {
                workload_id: deployment
                    .metadata
                    .annotations
                    .and_then(|mut annotations| annotations.remove(WORKLOAD_ID_ANNOTATION))
                    .unwrap_or_default(),
                lifecycle: Lifecycle::Stopping,
                pods: BTreeMap::new(),
            }),
        };
        if proton.lifecycle != Lifecycle::Stopped {
            proton.lifecycle = Lifecycle::Stopping;
        }
        tracing::info!(proton = %proton_id, deployment = %name, "stopping");
        self.publish_locked(&state, &proton_id);
        if listed && Self::settle(&mut state, &proton_id) {
            self.publish_locked(&state, &proton_id);
        }
        Ok(())
    }

    /// Marks a stopping proton without pods stopped; whether it did.
    fn settle(state: &mut State, proton_id: &str) -> bool {
        match state.protons.get_mut(proton_id) {
            Some(proton) if proton.lifecycle == Lifecycle::Stopping && proton.pods.is_empty() => {
                proton.lifecycle = Lifecycle::Stopped;
                tracing::info!(proton = %proton_id, "proton stopped: no pod left");
                true
            }
            _ => false,
        }
    }

    /// Publishes the proton's report. Called with the state locked, so that reports reach the
    /// hub in the order the changes happened.
    fn publish_locked(&self, state: &State, proton_id: &str) {
        if let Some(proton) = state.protons.get(proton_id) {
            self.hub.publish(status::report(proton_id, &proton.workload_id, proton.lifecycle.to_proto(), proton.pods.values()));
        }
    }
}
