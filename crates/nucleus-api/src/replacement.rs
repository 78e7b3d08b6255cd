//! `Replacement` (docs/api/README.md, "Replacement"): a rolling replacement of a workload's proton, and the records of
//! the workload's history (past replacements and promotions).

use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};

use crate::WorkloadRuntime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplacementStatus {
    #[default]
    Unknown,
    Submitted,
    Initializing,
    Promoting,
    Finalizing,
    Completed,
    Errored,
    Deleting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplacementStrategy {
    #[default]
    Rolling,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplacementConfig {
    #[serde(default)]
    pub warmup_duration_minutes: u32,
    #[serde(default)]
    pub keep_old_version_minutes: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Replacement {
    pub id: String,
    pub name: String,
    pub workload_id: String,
    pub candidate_artifact_id: String,
    #[serde(default)]
    pub candidate_proton_ids: Vec<String>,
    #[serde(default)]
    pub previous_proton_ids: Vec<String>,
    pub status: ReplacementStatus,
    pub strategy: ReplacementStrategy,
    #[serde(default)]
    pub config: ReplacementConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<WorkloadRuntime>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub switched_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub deleted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub is_deleted: bool,
    pub tenant_id: String,
    pub user_id: String,
}

impl Replacement {
    /// A new record, created `now` by `user_id`, of moving `workload_id` onto `candidate_artifact_id`;
    /// its id sorts by time like an event's. Callers set the proton ids, config, runtime and message.
    pub fn new(
        name: String,
        workload_id: &str,
        candidate_artifact_id: &str,
        status: ReplacementStatus,
        user_id: &str,
        tenant_id: &str,
        now: DateTime<Utc>,
    ) -> Replacement {
        Replacement {
            id: crate::event::event_id(now),
            name,
            workload_id: workload_id.to_owned(),
            candidate_artifact_id: candidate_artifact_id.to_owned(),
            candidate_proton_ids: Vec::new(),
            previous_proton_ids: Vec::new(),
            status,
            strategy: ReplacementStrategy::Rolling,
            config: ReplacementConfig::default(),
            runtime: None,
            message: None,
            switched_at: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
            is_deleted: false,
            tenant_id: tenant_id.to_owned(),
            user_id: user_id.to_owned(),
        }
    }
}

impl ReplacementStatus {
    /// Finished: another replacement may start. (`errored` stays visible on the workload.)
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Errored)
    }
}

impl crate::Workload {
    /// The replacement recorded on the workload (under way, or the last one that errored).
    pub fn replacement_record(&self) -> Option<Replacement> {
        self.replacement.clone()
    }

    /// The replacement under way, if any.
    pub fn active_replacement(&self) -> Option<Replacement> {
        self.replacement_record().filter(|r| !r.status.is_terminal())
    }
}

/// `POST /workloads/{id}/replacement`. `strategy` is read as text so that a wrong value is a 422
/// naming the field rather than a parse error.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartReplacementRequest {
    pub artifact_id: String,
    pub strategy: String,
    #[serde(default)]
    pub config: Option<ReplacementConfig>,
    #[serde(default)]
    pub runtime: Option<WorkloadRuntime>,
}

/// `PATCH /workloads/{id}/settings`: a rolling replacement onto the same artifact.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateSettingsRequest {
    pub runtime: WorkloadRuntime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_reads_and_writes_the_spec_field_names() {
        let json = serde_json::json!({
            "id": "r1", "name": "promote", "workloadId": "w1", "candidateArtifactId": "a1",
            "status": "completed", "strategy": "rolling", "config": {"warmupDurationMinutes": 2},
            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
            "tenantId": "00000000-0000-4000-8000-000000000000", "userId": "u1"
        });
        let parsed: Replacement = serde_json::from_value(json).unwrap();
        assert_eq!(
            (parsed.status, parsed.config.warmup_duration_minutes, parsed.config.keep_old_version_minutes),
            (ReplacementStatus::Completed, 2, 0)
        );
        let back = serde_json::to_value(&parsed).unwrap();
        assert_eq!(back["candidateArtifactId"], "a1");
        assert_eq!(back["isDeleted"], false);
        assert_eq!(back["candidateProtonIds"], serde_json::json!([]));
    }
}
