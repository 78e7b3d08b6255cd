//! The legacy `Deployment` (docs/api/README.md, "Legacy deployments"): a stable name and invoke URL in front of one workload
//! whose artifact is locked.

use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};

use crate::Importance;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub workload_id: String,
    #[serde(default)]
    pub importance: Importance,
    /// Filled in by the gateway: the deployment's invoke URL (ends with `/`).
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub permissions: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateDeploymentRequest {
    pub name: String,
    pub workload_id: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub importance: Option<Importance>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateDeploymentRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub importance: Option<Importance>,
}
