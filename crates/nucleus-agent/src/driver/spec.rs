//! What a Launch asks for, checked and with the defaults a driver relies on filled in.

use std::collections::BTreeMap;
use std::time::Duration;

use nucleus_proto::agent::v1 as proto;
use serde::{Deserialize, Serialize};

use crate::error::Error;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtonSpec {
    pub proton_id: String,
    pub workload_id: String,
    pub artifact_id: String,
    pub replica_count: u32,
    pub container: ContainerSpec,
    /// What each replica needs (the process driver ignores it).
    pub resources: Resources,
    /// The metadata shard that holds the workload; drivers label what they create with it.
    pub meta_shard: u64,
    /// How long the replicas' log records are kept (0: the agent's default).
    #[serde(default)]
    pub log_retention_seconds: u64,
    /// The fencing token of the scheduler call that asked for this launch (already checked by the
    /// agent; drivers may record it, e.g. to label what they create).
    #[serde(default)]
    pub fencing_token: u64,
}

impl ProtonSpec {
    /// Whether `other` runs the same thing, possibly with another replica count (or log
    /// retention: locking a workload's artifact lengthens it without touching the replicas; or
    /// fencing token: a new scheduler re-launching what runs changes nothing).
    pub fn same_except_replicas(&self, other: &ProtonSpec) -> bool {
        let comparable = ProtonSpec {
            replica_count: other.replica_count,
            log_retention_seconds: other.log_retention_seconds,
            fencing_token: other.fencing_token,
            ..self.clone()
        };
        comparable == *other
    }

    pub fn log_retention(&self) -> Duration {
        match self.log_retention_seconds {
            0 => crate::logs::DEFAULT_RETENTION,
            seconds => Duration::from_secs(seconds),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    pub name: String,
    pub image_uri: String,
    pub entrypoint: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// The port the container declares; probes aimed at it (or at port 0) go to the chosen port.
    pub port: u32,
    pub startup_probe: Option<ProbeSpec>,
    pub readiness_probe: Option<ProbeSpec>,
    pub liveness_probe: Option<ProbeSpec>,
    /// The artifact's security settings on top of the driver's defaults (the Kubernetes driver
    /// applies them; the process driver's replicas run without capabilities as `--run-as` anyway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
}

/// What `SecurityContext` asks of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Security {
    pub read_only_root_filesystem: Option<bool>,
    pub allow_privilege_escalation: Option<bool>,
    pub capabilities_add: Vec<String>,
    pub capabilities_drop: Vec<String>,
    /// (type, localhost profile) when one is asked for.
    pub seccomp: Option<(String, Option<String>)>,
}

impl From<proto::SecurityContext> for Security {
    fn from(s: proto::SecurityContext) -> Security {
        let seccomp = (!s.seccomp_profile_type.is_empty())
            .then(|| (s.seccomp_profile_type, (!s.seccomp_localhost_profile.is_empty()).then_some(s.seccomp_localhost_profile)));
        Security {
            read_only_root_filesystem: s.read_only_root_filesystem,
            allow_privilege_escalation: s.allow_privilege_escalation,
            capabilities_add: s.capabilities_add,
            capabilities_drop: s.capabilities_drop,
            seccomp,
        }
    }
}

/// The resources of one replica. Zero CPU or memory means no request or limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// The resource bundle the replica was placed by, for labels and messages.
    pub bundle_id: String,
    pub cpu_millis: u32,
    pub memory_bytes: u64,
    pub gpus: Option<Gpus>,
}

/// GPUs of one replica: always at least one, always of a named type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gpus {
    pub count: u32,
    /// The GPU model, matched against the nodes' GPU product label.
    pub gpu_type: String,
    /// Memory of each GPU; 0 when unknown.
    pub memory_bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbeScheme {
    Http,
    Https,
}

/// An HTTP probe with Kubernetes semantics. Zero periods, timeouts and thresholds read as 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeSpec {
    pub path: String,
    pub port: u32,
    pub scheme: ProbeScheme,
    pub http_headers: BTreeMap<String, String>,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

impl TryFrom<proto::LaunchRequest> for ProtonSpec {
    type Error = Error;

    fn try_from(request: proto::LaunchRequest) -> Result<ProtonSpec, Error> {
        if request.proton_id.is_empty() {
            return Err(Error::InvalidSpec("proton_id is empty".into()));
        }
        let Some(primary) = request.primary else {
            return Err(Error::InvalidSpec(format!("proton {} has no primary container", request.proton_id)));
        };
        Ok(ProtonSpec {
            proton_id: request.proton_id,
            workload_id: request.workload_id,
            artifact_id: request.artifact_id,
            replica_count: request.replica_count,
            container: ContainerSpec::try_from(primary)?,
            resources: request.resources.map(Resources::try_from).transpose()?.unwrap_or_default(),
            meta_shard: request.meta_shard,
            log_retention_seconds: request.log_retention_seconds,
            fencing_token: request.fencing_token,
        })
    }
}

impl TryFrom<proto::Resources> for Resources {
    type Error = Error;

    fn try_from(resources: proto::Resources) -> Result<Resources, Error> {
        let gpus = match (resources.gpu_count, resources.gpu_type.is_empty()) {
            (0, _) => None,
            (count, true) => {
                return Err(Error::InvalidSpec(format!(
                    "resources ask for {count} GPUs but name no gpu_type: say which model (e.g. \"nvidia-l4\")"
                )));
            }
            (count, false) => Some(Gpus { count, gpu_type: resources.gpu_type, memory_bytes: resources.gpu_memory_bytes }),
        };
        Ok(Resources { bundle_id: resources.bundle_id, cpu_millis: resources.cpu_millis, memory_bytes: resources.memory_bytes, gpus })
    }
}

impl TryFrom<proto::ContainerSpec> for ContainerSpec {
    type Error = Error;

    fn try_from(spec: proto::ContainerSpec) -> Result<ContainerSpec, Error> {
        let probe = |probe: Option<proto::Probe>| probe.map(ProbeSpec::try_from).transpose();
        Ok(ContainerSpec {
            startup_probe: probe(spec.startup_probe)?,
            readiness_probe: probe(spec.readiness_probe)?,
            liveness_probe: probe(spec.liveness_probe)?,
            security: spec.security_context.map(Security::from),
            name: spec.name,
            image_uri: spec.image_uri,
            entrypoint: spec.entrypoint,
            env: spec.env.into_iter().collect(),
            port: spec.port,
        })
    }
}

impl TryFrom<proto::Probe> for ProbeSpec {
    type Error = Error;

    fn try_from(probe: proto::Probe) -> Result<ProbeSpec, Error> {
        let scheme = match probe.scheme.to_ascii_uppercase().as_str() {
            "" | "HTTP" => ProbeScheme::Http,
            "HTTPS" => ProbeScheme::Https,
            other => {
                return Err(Error::InvalidSpec(format!("unknown probe scheme {other:?}")));
            }
        };
        if !nucleus_api::validation::is_replica_itself(&probe.host) {
            return Err(Error::InvalidSpec(format!("probe host {:?}: a probe may only check the replica itself", probe.host)));
        }
        let at_least_one = |value: u32| value.max(1);
        Ok(ProbeSpec {
            path: if probe.path.starts_with('/') { probe.path } else { format!("/{}", probe.path) },
            port: probe.port,
            scheme,
            http_headers: probe.http_headers.into_iter().collect(),
            initial_delay: Duration::from_secs(probe.initial_delay_seconds.into()),
            period: Duration::from_secs(at_least_one(probe.period_seconds).into()),
            timeout: Duration::from_secs(at_least_one(probe.timeout_seconds).into()),
            failure_threshold: at_least_one(probe.failure_threshold),
            success_threshold: at_least_one(probe.success_threshold),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_probe_settings_read_as_one() {
        let probe = ProbeSpec::try_from(proto::Probe { path: "ready".into(), ..Default::default() }).expect("valid probe");
        assert_eq!(probe.path, "/ready");
        let elsewhere = proto::Probe { path: "/".into(), host: "169.254.169.254".into(), ..Default::default() };
        let err = ProbeSpec::try_from(elsewhere).expect_err("a probe of another host");
        assert!(err.to_string().contains("only check the replica itself"), "{err}");
        assert_eq!(probe.scheme, ProbeScheme::Http);
        assert_eq!(probe.period, Duration::from_secs(1));
        assert_eq!(probe.timeout, Duration::from_secs(1));
        assert_eq!((probe.failure_threshold, probe.success_threshold), (1, 1));
    }

    #[test]
    fn gpus_need_a_type() {
        let gpus = |gpu_count: u32, gpu_type: &str| {
            Resources::try_from(proto::Resources {
                cpu_millis: 4000,
                gpu_count,
                gpu_type: gpu_type.into(),
                gpu_memory_bytes: 24 << 30,
                ..Default::default()
            })
        };
        assert!(matches!(gpus(1, ""), Err(Error::InvalidSpec(_))));
        assert_eq!(
            gpus(2, "nvidia-l4").expect("valid").gpus,
            Some(Gpus { count: 2, gpu_type: "nvidia-l4".into(), memory_bytes: 24 << 30 })
        );
        let cpu_only = gpus(0, "nvidia-l4").expect("valid");
        assert_eq!((cpu_only.cpu_millis, cpu_only.gpus), (4000, None));
    }

    #[test]
    fn launch_without_container_is_refused() {
        let request = proto::LaunchRequest { proton_id: "p".into(), ..Default::default() };
        assert!(matches!(ProtonSpec::try_from(request), Err(Error::InvalidSpec(_))));
    }
}
