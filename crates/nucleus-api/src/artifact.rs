//! Artifacts: the container spec a workload runs.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::container_options::{ContainerBuildInfo, ImageBuildConfig, NimStorageConfig, RouteConfig, SecurityContext, TagInfo};
use crate::{Timestamp, UserData};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactType {
    #[default]
    Service,
    Nim,
    Agent,
    Mcp,
    Generic,
    Model,
    Graph,
}

/// `registered` is the legacy spelling of `locked`; it is accepted on input, `locked` is emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactStatus {
    #[default]
    Draft,
    #[serde(alias = "registered")]
    Locked,
}

/// `POST /artifacts`, `PUT /artifacts/{id}` and the inline `artifact` of a workload create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InputArtifact {
    #[schema(min_length = 1, max_length = 5000)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default, rename = "type")]
    pub artifact_type: ArtifactType,
    #[serde(default)]
    pub status: ArtifactStatus,
    #[serde(default)]
    pub artifact_repository_id: Option<String>,
    pub spec: ArtifactSpec,
}

/// `PATCH /artifacts/{id}`: every field optional; `spec` replaces the whole containerGroups array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateArtifactRequest {
    pub name: Option<String>,
    pub description: Option<String>,
    pub spec: Option<ArtifactSpec>,
    pub status: Option<ArtifactStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArtifactSpec {
    /// Injected by the server from the artifact's top-level `type`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub spec_type: Option<ArtifactType>,
    #[serde(default)]
    #[schema(max_items = 1)]
    pub container_groups: Vec<ContainerGroup>,
    /// NIM artifacts: where the model weights live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<NimStorageConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub a2a_enabled: Option<bool>,
}

impl ArtifactSpec {
    /// Drops what only the server sets (a container's `build`) from a spec a client sent.
    pub fn clear_server_fields(&mut self) {
        for container in self.container_groups.iter_mut().flat_map(|g| g.containers.iter_mut()) {
            container.build = None;
        }
    }

    /// The security settings that loosen the platform's defaults, as `(container name, field)`.
    pub fn elevated_security(&self) -> Vec<(String, &'static str)> {
        let containers = self.container_groups.iter().flat_map(|g| g.containers.iter());
        containers
            .filter_map(|c| c.security_context.as_ref().map(|s| (c.name.clone().unwrap_or_default(), s.elevated())))
            .flat_map(|(name, fields)| fields.into_iter().map(move |field| (name.clone(), field)))
            .collect()
    }

    /// The primary container of the first group that has one.
    pub fn primary(&self) -> Option<(&ContainerGroup, &Container)> {
        self.container_groups.iter().find_map(|g| g.containers.iter().find(|c| c.primary).map(|c| (g, c)))
    }
}

fn default_group_name() -> String {
    "default".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerGroup {
    #[serde(default = "default_group_name")]
    #[schema(min_length = 1, max_length = 5000)]
    pub name: String,
    #[serde(default)]
    pub containers: Vec<Container>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Container {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub image_uri: Option<String>,
    #[serde(default)]
    pub primary: bool,
    /// Required on the primary container, absent on the others.
    #[serde(default)]
    #[schema(minimum = 1024, maximum = 65535)]
    pub port: Option<i64>,
    #[serde(default, alias = "entrypoints")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub environment_vars: Vec<EnvVar>,
    #[serde(default)]
    pub startup_probe: Option<ProbeConfig>,
    #[serde(default)]
    pub readiness_probe: Option<ProbeConfig>,
    #[serde(default)]
    pub liveness_probe: Option<ProbeConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_build_config: Option<ImageBuildConfig>,
    /// Set by the server when a build is triggered; cleared from what clients send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<ContainerBuildInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(max_items = 50)]
    pub routes: Option<Vec<RouteConfig>>,
    /// Legacy (v2.41) resources on the container; accepted, kept, not enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_request: Option<Value>,
}

/// Environment variable, discriminated by `source` (`string` when omitted, `dr-credential`, `api-key`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dr_credential_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

fn d_port() -> i64 {
    8080
}
fn d_scheme() -> String {
    "HTTP".to_owned()
}
fn d_thirty() -> i64 {
    30
}
fn d_three() -> i64 {
    3
}
fn d_one() -> i64 {
    1
}

/// Probe settings with the spec's defaults (Kubernetes semantics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProbeConfig {
    pub path: String,
    #[serde(default = "d_port")]
    pub port: i64,
    #[serde(default = "d_scheme")]
    pub scheme: String,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub http_headers: BTreeMap<String, String>,
    #[serde(default = "d_thirty")]
    pub initial_delay_seconds: i64,
    #[serde(default = "d_thirty")]
    pub period_seconds: i64,
    #[serde(default = "d_thirty")]
    pub timeout_seconds: i64,
    #[serde(default = "d_three")]
    pub failure_threshold: i64,
    #[serde(default = "d_one")]
    pub success_threshold: i64,
}

/// An artifact as stored and as returned (`ArtifactFormatted`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    pub id: String,
    pub name: String,
    pub description: String,
    #[serde(rename = "type")]
    pub artifact_type: ArtifactType,
    pub status: ArtifactStatus,
    pub version: Option<u32>,
    pub artifact_repository_id: Option<String>,
    pub spec: ArtifactSpec,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub creator: Option<UserData>,
    #[serde(default)]
    pub permissions: Vec<String>,
    #[serde(default)]
    pub tags: Vec<TagInfo>,
    /// Who it is shared with (read through `.../sharedRoles`; kept out of the formatted object).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_roles: Vec<crate::identity::SharedRole>,
}

/// The summary of its artifact a workload carries (`artifact`), as of the last create, update
/// or lock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactInfo {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub status: Option<ArtifactStatus>,
    #[serde(default, rename = "type")]
    pub artifact_type: Option<ArtifactType>,
    #[serde(default)]
    pub version: Option<u32>,
    #[serde(default)]
    pub artifact_repository_id: Option<String>,
}

impl Artifact {
    /// Builds the stored document of a new artifact. The caller checked `input` with
    /// [`crate::validation::input_artifact`].
    pub fn from_input(
        id: String,
        input: InputArtifact,
        repository_id: String,
        version: Option<u32>,
        now: Timestamp,
        creator: Option<UserData>,
    ) -> Artifact {
        let mut spec = input.spec;
        spec.spec_type = Some(input.artifact_type);
        spec.clear_server_fields();
        Artifact {
            id,
            name: input.name,
            description: input.description,
            artifact_type: input.artifact_type,
            status: input.status,
            version,
            artifact_repository_id: Some(repository_id),
            spec,
            created_at: now,
            updated_at: now,
            creator,
            permissions: vec!["*".to_owned()],
            tags: Vec::new(),
            shared_roles: Vec::new(),
        }
    }

    /// The `artifact` summary embedded in a workload.
    pub fn info(&self) -> ArtifactInfo {
        ArtifactInfo {
            id: self.id.clone(),
            name: Some(self.name.clone()),
            status: Some(self.status),
            artifact_type: Some(self.artifact_type),
            version: self.version,
            artifact_repository_id: self.artifact_repository_id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_defaults_follow_the_spec() {
        let p: ProbeConfig = serde_json::from_str(r#"{"path":"/ready"}"#).unwrap();
        assert_eq!((p.port, p.scheme.as_str(), p.initial_delay_seconds, p.period_seconds), (8080, "HTTP", 30, 30));
        assert_eq!((p.timeout_seconds, p.failure_threshold, p.success_threshold), (30, 3, 1));
    }

    #[test]
    fn registered_is_read_as_locked() {
        let s: ArtifactStatus = serde_json::from_str("\"registered\"").unwrap();
        assert_eq!(s, ArtifactStatus::Locked);
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"locked\"");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<Container>(r#"{"imageUri":"x","bogus":1}"#).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }
}
