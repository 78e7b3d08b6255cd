//! The Workload API model: the JSON documents of the Workload API (docs/api/) as serde types,
//! their validation, and the aggregation of replica states into proton and workload status.
//!
//! Everything here is pure: no I/O, no clocks, no randomness. The gateway validates requests with
//! it, meta stores its documents as JSON, and the scheduler aggregates status with it.

pub mod artifact;
pub mod autoscaling;
pub mod bundle;
pub mod clock;
pub mod container_options;
pub mod deployment;
pub mod event;
pub mod exec_policy;
pub mod identity;
pub mod otel;
pub mod page;
pub mod proton;
pub mod replacement;
pub mod stats;
pub mod status;
pub mod validation;
pub mod workload;

pub use artifact::{
    Artifact, ArtifactSpec, ArtifactStatus, ArtifactType, Container, ContainerGroup, EnvVar, InputArtifact, ProbeConfig,
    UpdateArtifactRequest,
};
pub use event::WorkloadEvent;
pub use page::Page;
pub use proton::{Condition, ContainerState, OverallStatus, Proton, ProtonRole, ReplicaPhase, ReplicaStatus, ReplicaStatusesSnapshot};
pub use status::ProtonStatus;
pub use validation::FieldError;
pub use workload::{CreateWorkloadRequest, DesiredState, GroupRuntime, Importance, UpdateWorkloadRequest, Workload, WorkloadRuntime};

/// Timestamps in documents: RFC 3339, UTC.
pub type Timestamp = chrono::DateTime<chrono::Utc>;

/// `creator` / `owners` entries.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserData {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}
