//! A proton as Kubernetes objects: a Deployment of its replicas and a ClusterIP Service in front
//! of them. Pure: the driver applies what these functions build.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, HTTPHeader, Lifecycle, LifecycleHandler,
    ObjectFieldSelector, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext,
    Service, ServicePort, ServiceSpec, SleepAction, Toleration,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::names::{
    ARTIFACT_ID_ANNOTATION, MANAGED_BY, MANAGER, PROTON_ID_ANNOTATION, PROTON_LABEL, SHARD_LABEL, WORKLOAD_ID_ANNOTATION, WORKLOAD_LABEL,
    container_name, label_value, resource_name,
};
use crate::driver::process::substitute_port;
use crate::driver::{ProbeScheme, ProbeSpec, ProtonSpec};

/// The extended resource of NVIDIA's device plugin.
pub(crate) const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// The node label of NVIDIA's GPU feature discovery that names the GPU model.
pub(crate) const GPU_PRODUCT_LABEL: &str = "nvidia.com/gpu.product";
/// The port a container that declares none listens on.
pub(crate) const DEFAULT_CONTAINER_PORT: u16 = 8080;
/// The port the Service exposes.
const SERVICE_PORT: i32 = 80;

/// The port the container listens on: the declared one, else 8080.
pub(crate) fn container_port(spec: &ProtonSpec) -> u16 {
    u16::try_from(spec.container.port).ok().filter(|port| *port != 0).unwrap_or(DEFAULT_CONTAINER_PORT)
}

/// The labels of the Deployment, its pods and the Service.
pub(crate) fn labels(spec: &ProtonSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), MANAGER.to_owned()),
        (PROTON_LABEL.to_owned(), resource_name(&spec.proton_id)),
        (WORKLOAD_LABEL.to_owned(), label_value(&spec.workload_id)),
        (SHARD_LABEL.to_owned(), spec.meta_shard.to_string()),
    ])
}

/// What selects the proton's pods: it never changes for a proton (a Deployment's selector is
/// immutable).
fn selector(spec: &ProtonSpec) -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_BY.to_owned(), MANAGER.to_owned()), (PROTON_LABEL.to_owned(), resource_name(&spec.proton_id))])
}

fn annotations(spec: &ProtonSpec) -> BTreeMap<String, String> {
    BTreeMap::from([
        (PROTON_ID_ANNOTATION.to_owned(), spec.proton_id.clone()),
        (WORKLOAD_ID_ANNOTATION.to_owned(), spec.workload_id.clone()),
        (ARTIFACT_ID_ANNOTATION.to_owned(), spec.artifact_id.clone()),
    ])
}

/// The proton's Deployment, as applied (server-side) in `namespace`.
pub(crate) fn deployment(spec: &ProtonSpec, namespace: &str) -> Deployment {
    let gpus = spec.resources.gpus.as_ref();
    Deployment {
        metadata: ObjectMeta {
            name: Some(resource_name(&spec.proton_id)),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels(spec)),
            annotations: Some(annotations(spec)),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(i32::try_from(spec.replica_count).unwrap_or(i32::MAX)),
            selector: LabelSelector { match_labels: Some(selector(spec)), ..LabelSelector::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels(spec)), annotations: Some(annotations(spec)), ..ObjectMeta::default() }),
                spec: Some(PodSpec {
                    containers: vec![container(spec)],
                    node_selector: gpus
                        .map(|gpus| BTreeMap::from([(GPU_PRODUCT_LABEL.to_owned(), super::gpu_models::product_label(&gpus.gpu_type))])),
                    tolerations: gpus.map(|_| {
                        vec![Toleration {
                            key: Some(GPU_RESOURCE.to_owned()),
                            operator: Some("Exists".to_owned()),
                            effect: Some("NoSchedule".to_owned()),
                            ..Toleration::default()
                        }]
                    }),
                    // Every proton of the namespace would otherwise be in every pod's env.
                    enable_service_links: Some(false),
                    // A workload gets no credentials for the Kubernetes API.
                    automount_service_account_token: Some(false),
                    // Pod Security's `restricted` level: not root, the runtime's seccomp profile.
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        seccomp_profile: Some(SeccompProfile { type_: "RuntimeDefault".to_owned(), localhost_profile: None }),
                        ..PodSecurityContext::default()
                    }),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// The proton's Service: ClusterIP, port 80 to the container's port, owned by the Deployment
/// whose uid is `owner_uid` (so that deleting the Deployment deletes it).
pub(crate) fn service(spec: &ProtonSpec, namespace: &str, owner_uid: &str) -> Service {
    let name = resource_name(&spec.proton_id);
    Service {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels(spec)),
            annotations: Some(annotations(spec)),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".to_owned(),
                kind: "Deployment".to_owned(),
                name,
                uid: owner_uid.to_owned(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector(spec)),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: SERVICE_PORT,
                target_port: Some(IntOrString::Int(container_port(spec).into())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// The preStop sleep (Kubernetes 1.30+): time for the pod's removal to reach the gateways.
const DRAIN_SECONDS: i64 = 2;

fn container(spec: &ProtonSpec) -> Container {
    let port = container_port(spec);
    let declared = spec.container.port;
    let entrypoint: Vec<String> = spec.container.entrypoint.iter().map(|argument| substitute_port(argument, port)).collect();
    Container {
        name: container_name(&spec.container.name),
        image: Some(spec.container.image_uri.clone()),
        // An empty entrypoint runs the image's own.
        command: (!entrypoint.is_empty()).then_some(entrypoint),
        env: Some(env(spec, port)),
        ports: Some(vec![ContainerPort {
            name: Some("http".to_owned()),
            container_port: port.into(),
            protocol: Some("TCP".to_owned()),
            ..ContainerPort::default()
        }]),
        resources: resources(spec),
        startup_probe: spec.container.startup_probe.as_ref().map(|probe| kube_probe(probe, declared, port, false)),
        readiness_probe: spec.container.readiness_probe.as_ref().map(|probe| kube_probe(probe, declared, port, true)),
        liveness_probe: spec.container.liveness_probe.as_ref().map(|probe| kube_probe(probe, declared, port, false)),
        // A pod a scale-down removes leaves the gateways' routes (not ready once terminating)
        // before it gets SIGTERM: no request is sent to a process that is going away.
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler { sleep: Some(SleepAction { seconds: DRAIN_SECONDS }), ..LifecycleHandler::default() }),
            ..Lifecycle::default()
        }),
        security_context: Some(container_security(spec.container.security.as_ref())),
        ..Container::default()
    }
}

/// The container's security context: no privilege escalation, every capability dropped, not
/// privileged, with what the artifact asks on top (the gateway let only an administrator loosen
/// these; anyone may make the root filesystem read-only or pick a seccomp profile).
fn container_security(asked: Option<&crate::driver::spec::Security>) -> SecurityContext {
    let asked = asked.cloned().unwrap_or_default();
    let mut drop = vec!["ALL".to_owned()];
    drop.extend(asked.capabilities_drop.into_iter().filter(|c| c != "ALL"));
    SecurityContext {
        allow_privilege_escalation: Some(asked.allow_privilege_escalation.unwrap_or(false)),
        privileged: Some(false),
        capabilities: Some(Capabilities { drop: Some(drop), add: (!asked.capabilities_add.is_empty()).then_some(asked.capabilities_add) }),
        read_only_root_filesystem: asked.read_only_root_filesystem,
        seccomp_profile: asked.seccomp.map(|(type_, localhost_profile)| SeccompProfile { type_, localhost_profile }),
        ..SecurityContext::default()
    }
}

/// The spec's variables, then what the process driver sets too: PORT and the replica's ids.
fn env(spec: &ProtonSpec, port: u16) -> Vec<EnvVar> {
    let value = |name: &str, value: String| EnvVar { name: name.to_owned(), value: Some(value), value_from: None };
    let ours = [
        value("PORT", port.to_string()),
        value("NUCLEUS_PROTON_ID", spec.proton_id.clone()),
        value("NUCLEUS_WORKLOAD_ID", spec.workload_id.clone()),
        value("NUCLEUS_ARTIFACT_ID", spec.artifact_id.clone()),
        EnvVar {
            name: "NUCLEUS_REPLICA".to_owned(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector { field_path: "metadata.name".to_owned(), api_version: None }),
                ..EnvVarSource::default()
            }),
        },
    ];
    let ours_named = |name: &str| ours.iter().any(|var| var.name == name);
    let theirs: Vec<EnvVar> =
        spec.container.env.iter().filter(|(name, _)| !ours_named(name)).map(|(name, text)| value(name, text.clone())).collect();
    theirs.into_iter().chain(ours).collect()
}

/// Requests equal to limits (guaranteed QoS) for CPU and memory; GPUs as limits, which
/// Kubernetes copies into requests.
fn resources(spec: &ProtonSpec) -> Option<ResourceRequirements> {
    let resources = &spec.resources;
    let mut amounts = BTreeMap::new();
    if resources.cpu_millis > 0 {
        amounts.insert("cpu".to_owned(), Quantity(format!("{}m", resources.cpu_millis)));
    }
    if resources.memory_bytes > 0 {
        amounts.insert("memory".to_owned(), Quantity(resources.memory_bytes.to_string()));
    }
    let mut limits = amounts.clone();
    if let Some(gpus) = &resources.gpus {
        limits.insert(GPU_RESOURCE.to_owned(), Quantity(gpus.count.to_string()));
    }
    if limits.is_empty() {
        return None;
    }
    Some(ResourceRequirements { requests: (!amounts.is_empty()).then_some(amounts), limits: Some(limits), claims: None })
}

/// An HTTP probe. A probe aimed at the declared port (or at port 0) goes to the container's port;
/// no host is set, so the kubelet probes the pod itself. Liveness and startup probes must have a success threshold of 1.
fn kube_probe(probe: &ProbeSpec, declared: u32, port: u16, readiness: bool) -> Probe {
    let target =
        if probe.port == 0 || probe.port == declared { i32::from(port) } else { i32::try_from(probe.port).unwrap_or(i32::from(port)) };
    let seconds = |duration: std::time::Duration| Some(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX));
    let count = |value: u32| Some(i32::try_from(value).unwrap_or(i32::MAX));
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(probe.path.clone()),
            port: IntOrString::Int(target),
            scheme: Some(
                match probe.scheme {
                    ProbeScheme::Http => "HTTP",
                    ProbeScheme::Https => "HTTPS",
                }
                .to_owned(),
            ),
            host: None,
            http_headers: (!probe.http_headers.is_empty())
                .then(|| probe.http_headers.iter().map(|(name, value)| HTTPHeader { name: name.clone(), value: value.clone() }).collect()),
        }),
        initial_delay_seconds: seconds(probe.initial_delay),
        period_seconds: seconds(probe.period),
        timeout_seconds: seconds(probe.timeout),
        failure_threshold: count(probe.failure_threshold),
        success_threshold: if readiness { count(probe.success_threshold) } else { Some(1) },
        ..Probe::default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::driver::{ContainerSpec, Gpus, Resources};

    pub(crate) fn gpu_spec() -> ProtonSpec {
        ProtonSpec {
            proton_id: "65f0a1b2c3d4e5f6a7b8c9d0".into(),
            workload_id: "65f0a1b2aaaaaaaaaaaaaaaa".into(),
            artifact_id: "artifact-1".into(),
            replica_count: 2,
            container: ContainerSpec {
                name: "primary".into(),
                image_uri: "registry.example/llm:1".into(),
                entrypoint: vec!["serve".into(), "--port=$PORT".into()],
                env: BTreeMap::from([("MODEL".to_owned(), "llama".to_owned()), ("PORT".to_owned(), "1".to_owned())]),
                port: 9000,
                startup_probe: None,
                readiness_probe: Some(ProbeSpec {
                    path: "/ready".into(),
                    port: 9000,
                    scheme: ProbeScheme::Http,
                    http_headers: BTreeMap::from([("X-Probe".to_owned(), "1".to_owned())]),
                    initial_delay: Duration::from_secs(5),
                    period: Duration::from_secs(10),
                    timeout: Duration::from_secs(2),
                    failure_threshold: 3,
                    success_threshold: 2,
                }),
                liveness_probe: Some(ProbeSpec {
                    path: "/live".into(),
                    port: 9100,
                    scheme: ProbeScheme::Https,
                    http_headers: BTreeMap::new(),
                    initial_delay: Duration::ZERO,
                    period: Duration::from_secs(1),
                    timeout: Duration::from_secs(1),
                    failure_threshold: 1,
                    success_threshold: 4,
                }),
                security: None,
            },
            resources: Resources {
                bundle_id: "gpu.l4.small".into(),
                cpu_millis: 4000,
                memory_bytes: 16 << 30,
                gpus: Some(Gpus { count: 1, gpu_type: "nvidia-l4".into(), memory_bytes: 24 << 30 }),
            },
            meta_shard: 7,
            log_retention_seconds: 0,
            fencing_token: 0,
        }
    }

    #[test]
    fn a_gpu_proton_becomes_a_deployment() {
        let deployment = serde_json::to_value(deployment(&gpu_spec(), "nucleus")).expect("json");
        let labels = json!({
            "app.kubernetes.io/managed-by": "nucleus",
            "nucleus.dev/proton": "proton-65f0a1b2c3d4e5f6a7b8c9d0",
            "nucleus.dev/workload": "65f0a1b2aaaaaaaaaaaaaaaa",
            "nucleus.dev/shard": "7",
        });
        assert_eq!(deployment["apiVersion"], "apps/v1");
        assert_eq!(deployment["kind"], "Deployment");
        assert_eq!(deployment["metadata"]["name"], "proton-65f0a1b2c3d4e5f6a7b8c9d0");
        assert_eq!(deployment["metadata"]["namespace"], "nucleus");
        assert_eq!(deployment["metadata"]["labels"], labels);
        assert_eq!(deployment["metadata"]["annotations"]["nucleus.dev/proton-id"], "65f0a1b2c3d4e5f6a7b8c9d0");
        let spec = &deployment["spec"];
        assert_eq!(spec["replicas"], 2);
        assert_eq!(
            spec["selector"]["matchLabels"],
            json!({
                "app.kubernetes.io/managed-by": "nucleus",
                "nucleus.dev/proton": "proton-65f0a1b2c3d4e5f6a7b8c9d0",
            })
        );
        assert_eq!(spec["template"]["metadata"]["labels"], labels);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["nodeSelector"], json!({"nvidia.com/gpu.product": "NVIDIA-L4"}));
        assert_eq!(pod["tolerations"], json!([{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]));
        let container = &pod["containers"][0];
        assert_eq!(container["name"], "primary");
        assert_eq!(container["image"], "registry.example/llm:1");
        assert_eq!(container["command"], json!(["serve", "--port=9000"]));
        assert_eq!(container["ports"], json!([{"name": "http", "containerPort": 9000, "protocol": "TCP"}]));
        assert_eq!(
            container["resources"],
            json!({
                "requests": {"cpu": "4000m", "memory": "17179869184"},
                "limits": {"cpu": "4000m", "memory": "17179869184", "nvidia.com/gpu": "1"},
            })
        );
        let env = container["env"].as_array().expect("env");
        let var = |name: &str| env.iter().find(|var| var["name"] == name).cloned();
        assert_eq!(var("MODEL"), Some(json!({"name": "MODEL", "value": "llama"})));
        assert_eq!(var("PORT"), Some(json!({"name": "PORT", "value": "9000"})));
        assert_eq!(env.iter().filter(|var| var["name"] == "PORT").count(), 1);
        assert_eq!(
            var("NUCLEUS_REPLICA"),
            Some(json!({"name": "NUCLEUS_REPLICA", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}))
        );
        assert_eq!(
            container["readinessProbe"],
            json!({
                "httpGet": {
                    "path": "/ready",
                    "port": 9000,
                    "scheme": "HTTP",
                    "httpHeaders": [{"name": "X-Probe", "value": "1"}],
                },
                "initialDelaySeconds": 5,
                "periodSeconds": 10,
                "timeoutSeconds": 2,
                "failureThreshold": 3,
                "successThreshold": 2,
            })
        );
        assert_eq!(
            container["livenessProbe"],
            json!({
                "httpGet": {"path": "/live", "port": 9100, "scheme": "HTTPS"},
                "initialDelaySeconds": 0,
                "periodSeconds": 1,
                "timeoutSeconds": 1,
                "failureThreshold": 1,
                "successThreshold": 1,
            })
        );
        assert!(container.get("startupProbe").is_none());
        assert!(deployment.get("status").is_none());
    }

    #[test]
    fn a_cpu_proton_has_no_gpu_scheduling() {
        let mut spec = gpu_spec();
        spec.resources = Resources::default();
        spec.container.port = 0;
        spec.container.name = "Web_Server".into();
        let deployment = serde_json::to_value(deployment(&spec, "nucleus")).expect("json");
        let pod = &deployment["spec"]["template"]["spec"];
        assert!(pod.get("nodeSelector").is_none(), "{pod}");
        assert!(pod.get("tolerations").is_none(), "{pod}");
        let container = &pod["containers"][0];
        assert!(container.get("resources").is_none(), "{container}");
        assert_eq!(container["ports"][0]["containerPort"], 8080);
        assert_eq!(container["name"], "web-server");
    }

    #[test]
    fn the_artifacts_security_context_goes_on_top_of_the_defaults() {
        let container_security = |spec: &ProtonSpec| {
            let deployment = serde_json::to_value(deployment(spec, "nucleus")).expect("json");
            deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"].clone()
        };
        let defaults = json!({"allowPrivilegeEscalation": false, "privileged": false, "capabilities": {"drop": ["ALL"]}});
        assert_eq!(container_security(&gpu_spec()), defaults);

        let mut spec = gpu_spec();
        spec.container.security = Some(crate::driver::Security {
            read_only_root_filesystem: Some(true),
            capabilities_drop: vec!["NET_RAW".into(), "ALL".into()],
            seccomp: Some(("Localhost".into(), Some("profiles/serve.json".into()))),
            ..crate::driver::Security::default()
        });
        assert_eq!(
            container_security(&spec),
            json!({
                "allowPrivilegeEscalation": false,
                "privileged": false,
                "readOnlyRootFilesystem": true,
                "capabilities": {"drop": ["ALL", "NET_RAW"]},
                "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/serve.json"},
            })
        );
    }

    #[test]
    fn the_service_is_owned_by_the_deployment() {
        let service = serde_json::to_value(service(&gpu_spec(), "nucleus", "uid-1")).expect("json");
        assert_eq!(service["apiVersion"], "v1");
        assert_eq!(service["kind"], "Service");
        assert_eq!(service["metadata"]["name"], "proton-65f0a1b2c3d4e5f6a7b8c9d0");
        assert_eq!(service["metadata"]["labels"]["nucleus.dev/shard"], "7");
        assert_eq!(
            service["metadata"]["ownerReferences"],
            json!([{
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": "proton-65f0a1b2c3d4e5f6a7b8c9d0",
                "uid": "uid-1",
                "controller": true,
                "blockOwnerDeletion": true,
            }])
        );
        assert_eq!(service["spec"]["type"], "ClusterIP");
        assert_eq!(service["spec"]["ports"], json!([{"name": "http", "port": 80, "targetPort": 9000, "protocol": "TCP"}]));
        assert_eq!(service["spec"]["selector"]["nucleus.dev/proton"], "proton-65f0a1b2c3d4e5f6a7b8c9d0");
    }
}
