//! Workloads: the stable, governed endpoint in front of a proton.

use serde::{Deserialize, Serialize};

use crate::artifact::InputArtifact;
use crate::status::ProtonStatus;
use chrono::{DateTime, Utc};

use crate::{ArtifactType, UserData};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Importance {
    #[default]
    Low,
    Moderate,
    High,
    Critical,
}

/// What the user asked a workload (and its active proton) to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DesiredState {
    Running,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadRuntime {
    #[serde(default)]
    pub container_groups: Vec<GroupRuntime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enclave_selection_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enclaves: Option<Vec<String>>,
    /// Nucleus: how long a replica may take to start answering an invoke call (response headers)
    /// before the caller gets 504; the gateway's `--upstream-timeout` (300 s) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 3600)]
    pub invoke_timeout_seconds: Option<i64>,
}

fn default_group_name() -> String {
    "default".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GroupRuntime {
    #[serde(default = "default_group_name")]
    pub name: String,
    /// Terraform sends 0 to mean "not set".
    #[serde(default)]
    pub replica_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ContainerOverride>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_bundles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle_selection_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_bundle: Option<crate::bundle::ResourceBundle>,
}

pub use crate::autoscaling::Autoscaling;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerOverride {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_allocation: Option<ResourceAllocation>,
}

/// `resourceAllocation` of a container: what one replica of it needs. Units are checked where the
/// allocation is placed (the scheduler names a bad field in the proton's status).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceAllocation {
    /// Cores, fractional allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
    /// Whole GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<f64>,
    /// Memory each GPU must have at least.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_memory: Option<Quantity>,
}

/// An amount of memory: a number of bytes, or a string with units (`"16GiB"`, `"512MB"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum Quantity {
    Bytes(u64),
    Text(String),
}

impl WorkloadRuntime {
    /// The runtime as returned: every artifact group present, `replicaCount` filled in.
    pub fn normalized(mut self, group_names: &[String]) -> WorkloadRuntime {
        for name in group_names {
            if !self.container_groups.iter().any(|g| &g.name == name) {
                self.container_groups.push(GroupRuntime {
                    name: name.clone(),
                    replica_count: None,
                    autoscaling: None,
                    containers: Vec::new(),
                    resource_bundles: None,
                    bundle_selection_policy: None,
                    resolved_bundle: None,
                });
            }
        }
        for group in &mut self.container_groups {
            group.autoscaling = group.autoscaling.take().map(Autoscaling::hoisted);
            let autoscaled = group.autoscaling.as_ref().is_some_and(|a| a.enabled);
            if !autoscaled && group.replica_count.unwrap_or(0) < 1 {
                group.replica_count = Some(1);
            }
        }
        self
    }

    /// How many replicas a group starts with: its replica count, or for an autoscaled group its
    /// floor, at least one (a group that may rest at zero starts with one, so that it answers at
    /// once; the autoscaler takes it down when idle).
    pub fn replicas_for(&self, group: &str) -> u32 {
        let Some(g) = self.container_groups.iter().find(|g| g.name == group) else {
            return 1;
        };
        match &g.autoscaling {
            Some(a) if a.enabled => a.bounds().0.max(1),
            _ => u32::try_from(g.replica_count.unwrap_or(1).max(1)).unwrap_or(1),
        }
    }

    /// The enabled autoscaling of its (first) autoscaled group, if any.
    pub fn autoscaling(&self) -> Option<&Autoscaling> {
        self.container_groups.iter().filter_map(|g| g.autoscaling.as_ref()).find(|a| a.enabled)
    }
}

/// `POST /workloads`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateWorkloadRequest {
    #[schema(min_length = 1, max_length = 5000)]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub artifact: Option<InputArtifact>,
    #[serde(default)]
    pub artifact_id: Option<String>,
    #[serde(default)]
    pub importance: Option<Importance>,
    #[serde(default)]
    pub runtime: Option<WorkloadRuntime>,
    #[serde(default)]
    pub use_case_id: Option<String>,
}

/// `PATCH /workloads/{id}`: metadata only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateWorkloadRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub importance: Option<Importance>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadStatusDetails {
    #[serde(default)]
    pub log_tail: Option<Vec<String>>,
    /// Why the workload is in its status, when that needs saying (errors, stuck scheduling).
    #[serde(default)]
    pub message: Option<String>,
}

/// A workload as stored and returned (`WorkloadFormatted`); `endpoint` is filled in by the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Workload {
    pub id: String,
    pub name: String,
    pub description: String,
    pub status: ProtonStatus,
    pub importance: Importance,
    #[serde(rename = "type")]
    pub workload_type: ArtifactType,
    pub artifact_id: Option<String>,
    pub artifact: Option<crate::artifact::ArtifactInfo>,
    #[serde(default)]
    pub endpoint: Option<String>,
    pub runtime: WorkloadRuntime,
    pub proton_id: Option<String>,
    #[serde(default)]
    pub replacement: Option<crate::replacement::Replacement>,
    #[serde(default)]
    pub owners: Vec<UserData>,
    pub creator: Option<UserData>,
    #[serde(default)]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub tags: Vec<crate::container_options::TagInfo>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub status_details: Option<WorkloadStatusDetails>,
    pub desired_state: DesiredState,
    /// When a draft workload expires (8 hours after it was created or last started): the
    /// scheduler then stops and removes it. `None` once its artifact is locked (promote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// `requestStats`: filled in by the gateway for `serviceStats=true`; never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_stats: Option<crate::stats::ServiceStats>,
    /// Who it is shared with (read through `.../sharedRoles`; kept out of the formatted object).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_roles: Vec<crate::identity::SharedRole>,
}

/// The answer to `POST /workloads/{id}/start` and `/stop` (`WorkloadOperationResponse`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadOperationResponse {
    pub status: String,
    pub workload_id: String,
    /// Where to follow the operation: the workload's own URL.
    pub track_via: String,
}

/// `GET /workloads/{id}/settings`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WorkloadSettings {
    pub runtime: WorkloadRuntime,
}

/// One object related to a workload (`GET /workloads/{id}/related`): its artifact, the
/// artifact's repository, its protons.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RelatedObject {
    pub id: String,
    /// `artifact`, `artifact_repository` or `proton`.
    #[serde(rename = "type")]
    pub object_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RelatedObjects {
    pub count: usize,
    pub data: Vec<RelatedObject>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_fills_missing_groups_and_counts() {
        let rt: WorkloadRuntime = serde_json::from_str(r#"{"containerGroups":[{"replicaCount":0}]}"#).unwrap();
        let rt = rt.normalized(&["default".to_owned(), "extra".to_owned()]);
        assert_eq!(rt.container_groups.len(), 2);
        assert!(rt.container_groups.iter().all(|g| g.replica_count == Some(1)));
        assert_eq!(rt.replicas_for("default"), 1);
    }

    #[test]
    fn replica_count_is_honoured() {
        let rt: WorkloadRuntime = serde_json::from_str(r#"{"containerGroups":[{"name":"default","replicaCount":3}]}"#).unwrap();
        assert_eq!(rt.replicas_for("default"), 3);
    }

    #[test]
    fn autoscaling_as_boolean_is_refused() {
        assert!(serde_json::from_str::<GroupRuntime>(r#"{"autoscaling":true}"#).is_err());
    }
}
