use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};

/// One step of a workload's story (`GET /workloads/{id}/events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEvent {
    pub id: String,
    pub workload_id: String,
    /// e.g. `workloadCreated`, `protonStatusChanged`, `workloadStopRequested`.
    pub event_type: String,
    pub timestamp: DateTime<Utc>,
    #[serde(default)]
    pub actor_id: Option<String>,
    /// `message` (human text) plus event-specific fields.
    #[serde(default)]
    pub details: serde_json::Map<String, serde_json::Value>,
}
