//! Between the agent's wire types and the API documents.

use std::time::Duration;

use nucleus_api::proton::{aggregate, summary};
use nucleus_api::{Condition, ContainerState, OverallStatus, ProbeConfig, Proton, ReplicaPhase, ReplicaStatus, ReplicaStatusesSnapshot};
use nucleus_proto::agent::v1 as pb;

pub fn replica(r: &pb::ReplicaStatus) -> ReplicaStatus {
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    ReplicaStatus {
        name: r.name.clone(),
        address: r.address.clone(),
        node_address: r.node_address.clone(),
        started_at: non_empty(&r.started_at),
        status: ReplicaPhase::parse(&r.phase),
        conditions: r
            .conditions
            .iter()
            .map(|c| Condition { condition_type: c.r#type.clone(), met: Some(c.met), since: c.since.clone() })
            .collect(),
        containers: r
            .containers
            .iter()
            .map(|c| ContainerState {
                name: c.name.clone(),
                image: c.image.clone(),
                ready: c.ready,
                restart_count: c.restart_count,
                started_at: non_empty(&c.started_at),
                status: c.status.clone(),
                reason: non_empty(&c.reason),
            })
            .collect(),
        log_tail: r.log_tail.clone(),
        error: non_empty(&r.error),
    }
}

pub fn snapshot(report: &pb::ProtonReport, expected: u32) -> ReplicaStatusesSnapshot {
    let replicas: Vec<ReplicaStatus> = report.replicas.iter().map(replica).collect();
    ReplicaStatusesSnapshot {
        overall_status: OverallStatus {
            state: aggregate(&replicas, expected),
            summary: summary(&replicas, expected),
            last_updated: report.observed_at.clone(),
        },
        replicas,
    }
}

fn security_context(s: &nucleus_api::container_options::SecurityContext) -> pb::SecurityContext {
    let capabilities = s.capabilities.clone().unwrap_or_default();
    let seccomp = s.seccomp_profile.as_ref();
    pb::SecurityContext {
        read_only_root_filesystem: s.read_only_root_filesystem,
        allow_privilege_escalation: s.allow_privilege_escalation,
        capabilities_add: capabilities.add.unwrap_or_default(),
        capabilities_drop: capabilities.drop.unwrap_or_default(),
        seccomp_profile_type: seccomp.map(|p| p.profile_type.as_str().to_owned()).unwrap_or_default(),
        seccomp_localhost_profile: seccomp.and_then(|p| p.localhost_profile.clone()).unwrap_or_default(),
    }
}

fn probe(p: &ProbeConfig, container_port: Option<i64>) -> pb::Probe {
    let to_u32 = |v: i64| u32::try_from(v).unwrap_or(0);
    // The spec's default probe port (8080) means "the container's port" unless that is declared.
    let port = if Some(p.port) == container_port || p.port == 8080 { 0 } else { to_u32(p.port) };
    pb::Probe {
        path: p.path.clone(),
        port,
        scheme: p.scheme.clone(),
        host: p.host.clone().unwrap_or_default(),
        http_headers: p.http_headers.clone().into_iter().collect(),
        initial_delay_seconds: to_u32(p.initial_delay_seconds),
        period_seconds: to_u32(p.period_seconds),
        timeout_seconds: to_u32(p.timeout_seconds),
        failure_threshold: to_u32(p.failure_threshold),
        success_threshold: to_u32(p.success_threshold),
    }
}

/// `draft`: the workload's artifact is not locked (its log records are kept for less long).
pub fn launch_request(p: &Proton, fencing_token: u64, meta_shard: u64, draft: bool) -> pb::LaunchRequest {
    let c = &p.container;
    let env = c
        .environment_vars
        .iter()
        .filter(|v| v.source.as_deref().unwrap_or("string") == "string")
        .filter_map(|v| Some((v.name.clone()?, v.value.clone()?)))
        .collect();
    pb::LaunchRequest {
        proton_id: p.id.clone(),
        workload_id: p.workload_id.clone(),
        artifact_id: p.artifact_id.clone(),
        replica_count: p.replica_count,
        primary: Some(pb::ContainerSpec {
            name: c.name.clone().unwrap_or_else(|| "primary".to_owned()),
            image_uri: c.image_uri.clone().unwrap_or_default(),
            entrypoint: c.entrypoint.clone().unwrap_or_default(),
            env,
            port: c.port.and_then(|p| u32::try_from(p).ok()).unwrap_or(0),
            startup_probe: c.startup_probe.as_ref().map(|pr| probe(pr, c.port)),
            readiness_probe: c.readiness_probe.as_ref().map(|pr| probe(pr, c.port)),
            liveness_probe: c.liveness_probe.as_ref().map(|pr| probe(pr, c.port)),
            security_context: c.security_context.as_ref().map(security_context),
        }),
        fencing_token,
        meta_shard,
        resources: resolved_bundle(p).map(|bundle| crate::bundles::resources(&bundle)),
        log_retention_seconds: if draft { DRAFT_LOG_RETENTION } else { LOCKED_LOG_RETENTION }.as_secs(),
    }
}

/// How long agents keep a replica's log records: a draft workload lives hours, a locked one
/// serves production and is looked back on longer.
pub const DRAFT_LOG_RETENTION: Duration = Duration::from_secs(24 * 3600);
pub const LOCKED_LOG_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// The bundle the proton was placed with (its runtime group's `resolvedBundle`), if any.
pub fn resolved_bundle(p: &Proton) -> Option<nucleus_api::bundle::ResourceBundle> {
    p.runtime.container_groups.iter().find_map(|g| g.resolved_bundle.clone())
}
