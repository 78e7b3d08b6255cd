//! Protons (a deployed version of a workload: N replicas of one container group) and the replica
//! status snapshot (`GET .../protons/{id}/statusDetails`).

use serde::{Deserialize, Serialize};

use crate::artifact::Container;
use crate::status::{ProtonStatus, worst};
use crate::workload::{DesiredState, WorkloadRuntime};
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProtonRole {
    Active,
    Candidate,
}

/// A proton as stored and returned (`ProtonFormatted`, plus the scheduler's fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Proton {
    pub id: String,
    pub name: String,
    pub workload_id: String,
    pub artifact_id: String,
    pub role: Option<ProtonRole>,
    pub status: ProtonStatus,
    /// `{logTail}` while starting or after a failure.
    #[serde(default)]
    pub status_details: ProtonStatusDetails,
    #[serde(default)]
    pub endpoint: Option<String>,
    pub runtime: WorkloadRuntime,
    #[serde(default)]
    pub running_since: Option<DateTime<Utc>>,
    pub replica_count: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// What the user asked for: running or stopped.
    pub desired_state: DesiredState,
    /// Bumped by every start, so that the scheduler launches afresh after a stop or an error.
    pub generation: u64,
    /// The primary container as it was when the proton was made: later artifact edits do not leak in.
    pub container: Container,
    /// The agent the scheduler placed the proton on.
    #[serde(default)]
    pub agent: Option<String>,
    /// Why the proton is in its status (errors say what to do next).
    #[serde(default)]
    pub message: Option<String>,
    /// The W3C `traceparent` of the request that made it, when traces are exported: the
    /// scheduler's launch and the agent continue that trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProtonStatusDetails {
    #[serde(default)]
    pub log_tail: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplicaPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl ReplicaPhase {
    pub fn parse(text: &str) -> ReplicaPhase {
        match text {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            _ => Self::Unknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub condition_type: String,
    pub met: Option<bool>,
    pub since: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    pub name: String,
    pub image: String,
    pub ready: bool,
    pub restart_count: u32,
    pub started_at: Option<String>,
    /// running | waiting | terminated | unknown
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    pub name: String,
    pub address: String,
    pub node_address: String,
    pub started_at: Option<String>,
    pub status: ReplicaPhase,
    pub conditions: Vec<Condition>,
    pub containers: Vec<ContainerState>,
    #[serde(default)]
    pub log_tail: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ReplicaStatus {
    /// Ready replicas receive traffic.
    pub fn is_ready(&self) -> bool {
        self.status == ReplicaPhase::Running && self.conditions.iter().any(|c| c.condition_type == "Ready" && c.met == Some(true))
    }

    /// The replica's state in the proton vocabulary.
    pub fn state(&self) -> ProtonStatus {
        let backing_off = self.containers.iter().any(|c| c.reason.as_deref() == Some("CrashLoopBackOff"));
        match self.status {
            ReplicaPhase::Failed => ProtonStatus::Errored,
            ReplicaPhase::Pending if backing_off => ProtonStatus::Restarting,
            // Not on a node yet: still waiting to be scheduled (spec: submitted).
            ReplicaPhase::Pending if self.node_address.is_empty() => ProtonStatus::Submitted,
            ReplicaPhase::Pending => ProtonStatus::Provisioning,
            ReplicaPhase::Running if self.is_ready() => ProtonStatus::Running,
            ReplicaPhase::Running => ProtonStatus::Launching,
            ReplicaPhase::Succeeded => ProtonStatus::Stopped,
            ReplicaPhase::Unknown => ProtonStatus::Unknown,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverallStatus {
    pub state: ProtonStatus,
    pub summary: String,
    pub last_updated: String,
}

/// `ReplicaStatusesSnapshot`, stored by the scheduler for each proton the agent reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatusesSnapshot {
    pub overall_status: OverallStatus,
    pub replicas: Vec<ReplicaStatus>,
}

impl ReplicaStatusesSnapshot {
    /// Addresses of the replicas that may receive traffic.
    pub fn ready_addresses(&self) -> Vec<String> {
        self.replicas.iter().filter(|r| r.is_ready()).map(|r| r.address.clone()).collect()
    }
}

/// The state of a proton whose agent runs `replicas` out of `expected`: the worst replica wins, and
/// a replica not reported yet counts as provisioning.
pub fn aggregate(replicas: &[ReplicaStatus], expected: u32) -> ProtonStatus {
    if expected == 0 && replicas.is_empty() {
        return ProtonStatus::Running; // idle at zero, by the autoscaler's choice
    }
    let missing = (expected as usize).saturating_sub(replicas.len());
    let states = replicas.iter().map(ReplicaStatus::state).chain(std::iter::repeat_n(ProtonStatus::Provisioning, missing));
    worst(states).unwrap_or(ProtonStatus::Provisioning)
}

/// The summary of a proton the autoscaler took down to zero replicas.
pub const IDLE_AT_ZERO: &str = "Idle at 0 replicas: the next request starts one";

/// A one-line human summary of a snapshot, e.g. "2/3 replicas ready".
pub fn summary(replicas: &[ReplicaStatus], expected: u32) -> String {
    let ready = replicas.iter().filter(|r| r.is_ready()).count();
    if expected == 0 && replicas.is_empty() {
        return IDLE_AT_ZERO.to_owned();
    }
    match replicas.iter().find_map(|r| r.error.as_deref()) {
        Some(error) => format!("{ready}/{expected} replicas ready; {error}"),
        None => format!("{ready}/{expected} replicas ready"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replica(phase: ReplicaPhase, ready: bool, reason: Option<&str>) -> ReplicaStatus {
        ReplicaStatus {
            name: "r".into(),
            address: "127.0.0.1:1".into(),
            node_address: "127.0.0.1".into(),
            started_at: None,
            status: phase,
            conditions: vec![Condition { condition_type: "Ready".into(), met: Some(ready), since: String::new() }],
            containers: vec![ContainerState {
                name: "c".into(),
                image: "i".into(),
                ready,
                restart_count: 0,
                started_at: None,
                status: "running".into(),
                reason: reason.map(str::to_owned),
            }],
            log_tail: vec![],
            error: None,
        }
    }

    #[test]
    fn replicas_aggregate_worst_first() {
        let up = replica(ReplicaPhase::Running, true, None);
        let starting = replica(ReplicaPhase::Running, false, None);
        let failed = replica(ReplicaPhase::Failed, false, Some("Error"));
        let backoff = replica(ReplicaPhase::Pending, false, Some("CrashLoopBackOff"));
        assert_eq!(aggregate(&[up.clone(), up.clone()], 2), ProtonStatus::Running);
        assert_eq!(aggregate(&[up.clone(), starting.clone()], 2), ProtonStatus::Launching);
        assert_eq!(aggregate(&[up.clone(), failed], 2), ProtonStatus::Errored);
        assert_eq!(aggregate(&[up.clone(), backoff], 2), ProtonStatus::Restarting);
        assert_eq!(aggregate(std::slice::from_ref(&up), 2), ProtonStatus::Provisioning);
        assert_eq!(aggregate(&[], 1), ProtonStatus::Provisioning);
        assert_eq!(aggregate(&[], 0), ProtonStatus::Running, "idle at zero, by the autoscaler");
    }

    #[test]
    fn a_pending_replica_is_submitted_until_it_has_a_node() {
        let scheduled = replica(ReplicaPhase::Pending, false, None);
        let unscheduled = ReplicaStatus { node_address: String::new(), ..scheduled.clone() };
        assert_eq!(scheduled.state(), ProtonStatus::Provisioning);
        assert_eq!(unscheduled.state(), ProtonStatus::Submitted);
        let up = replica(ReplicaPhase::Running, true, None);
        assert_ne!(aggregate(&[up, unscheduled], 2), ProtonStatus::Running);
    }

    #[test]
    fn only_ready_running_replicas_get_traffic() {
        let snapshot = ReplicaStatusesSnapshot {
            overall_status: OverallStatus { state: ProtonStatus::Launching, summary: String::new(), last_updated: String::new() },
            replicas: vec![
                replica(ReplicaPhase::Running, true, None),
                ReplicaStatus { address: "b".into(), ..replica(ReplicaPhase::Running, false, None) },
            ],
        };
        assert_eq!(snapshot.ready_addresses(), vec!["127.0.0.1:1".to_owned()]);
    }
}
