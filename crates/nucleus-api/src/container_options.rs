//! The optional parts of a container and of an artifact spec, typed as the spec defines them:
//! security context, source builds, the build reference the server sets, routes, NIM storage, and
//! the tags of listed resources.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Container-level security context (`SecurityContext`). Users may only tighten the platform's
/// defaults; the elevated settings ([`SecurityContext::elevated`]) need the administrator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_privilege_escalation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<SeccompProfile>,
}

impl SecurityContext {
    /// The settings that loosen the defaults, by field path (empty: only tightening).
    pub fn elevated(&self) -> Vec<&'static str> {
        let mut elevated = Vec::new();
        if self.capabilities.as_ref().is_some_and(|c| c.add.as_ref().is_some_and(|add| !add.is_empty())) {
            elevated.push("capabilities.add");
        }
        if self.allow_privilege_escalation == Some(true) {
            elevated.push("allowPrivilegeEscalation");
        }
        if self.seccomp_profile.as_ref().is_some_and(|p| p.profile_type == SeccompProfileType::Unconfined) {
            elevated.push("seccompProfile.type");
        }
        elevated
    }
}

/// Linux capabilities to add or drop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeccompProfile {
    #[serde(rename = "type")]
    pub profile_type: SeccompProfileType,
    /// Path to a profile on the node; only with `Localhost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub localhost_profile: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub enum SeccompProfileType {
    RuntimeDefault,
    Unconfined,
    Localhost,
}

impl SeccompProfileType {
    /// The name the spec and Kubernetes give it.
    pub fn as_str(self) -> &'static str {
        match self {
            SeccompProfileType::RuntimeDefault => "RuntimeDefault",
            SeccompProfileType::Unconfined => "Unconfined",
            SeccompProfileType::Localhost => "Localhost",
        }
    }
}

/// Server-side image build from source (`ImageBuildConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageBuildConfig {
    /// Required before a build or lock; optional at create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_ref: Option<CodeRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<Dockerfile>,
}

/// Where the source code is: a DataRobot catalog item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CodeRef {
    pub datarobot: DataRobotCodeRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<CodeRefProvider>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub code_ref_type: Option<CodeRefProvider>,
}

/// The one code provider there is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CodeRefProvider {
    Datarobot,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataRobotCodeRef {
    pub catalog_id: String,
    pub catalog_version_id: String,
}

/// How the Dockerfile is obtained, by `source`: `provided` in the code (at `path`, default
/// `./Dockerfile`), or `generated` from an execution environment with an entrypoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "source", rename_all = "camelCase", deny_unknown_fields)]
pub enum Dockerfile {
    #[serde(rename_all = "camelCase")]
    Provided {
        #[serde(default = "default_dockerfile_path")]
        path: String,
    },
    #[serde(rename_all = "camelCase")]
    Generated {
        #[schema(min_items = 1)]
        entrypoint: Vec<String>,
        execution_environment_id: String,
        execution_environment_version_id: String,
    },
}

fn default_dockerfile_path() -> String {
    "./Dockerfile".to_owned()
}

/// The build reference the server embeds in a container when a build is triggered
/// (`ContainerBuildInfo`); cleared from what clients send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerBuildInfo {
    pub artifact_image_build_id: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
}

/// A path of the primary container and who may call it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Starts with `/`, at most 1024 characters, unique within the container.
    #[schema(max_length = 1024)]
    pub path: String,
    pub auth: RouteAuth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RouteAuth {
    Required,
    Optional,
    Disabled,
}

/// Where a NIM artifact's model weights live (`NimStorageConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NimStorageConfig {
    #[serde(default)]
    pub mode: NimStorageMode,
    /// e.g. `150Gi`; only with `dedicatedPvc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^\d+(\.\d+)?(Gi|Mi|Ti)$")]
    pub pvc_size: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum NimStorageMode {
    #[default]
    DedicatedPvc,
    NimCache,
}

/// A tag of a listed resource (`TagInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TagInfo {
    pub id: String,
    pub name: String,
    pub value: String,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_loosening_settings_are_elevated() {
        let tighten: SecurityContext = serde_json::from_value(json!({
            "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}
        }))
        .unwrap();
        assert!(tighten.elevated().is_empty());
        let loosen: SecurityContext = serde_json::from_value(json!({
            "allowPrivilegeEscalation": true, "capabilities": {"add": ["NET_ADMIN"]}, "seccompProfile": {"type": "Unconfined"}
        }))
        .unwrap();
        assert_eq!(loosen.elevated(), ["capabilities.add", "allowPrivilegeEscalation", "seccompProfile.type"]);
    }

    #[test]
    fn a_seccomp_profile_types_name_is_its_json_name() {
        for t in [SeccompProfileType::RuntimeDefault, SeccompProfileType::Unconfined, SeccompProfileType::Localhost] {
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
    }

    #[test]
    fn dockerfiles_are_told_apart_by_source_and_unknown_fields_are_refused() {
        let provided: Dockerfile = serde_json::from_value(json!({"source": "provided"})).unwrap();
        assert_eq!(provided, Dockerfile::Provided { path: "./Dockerfile".into() });
        let generated: Dockerfile = serde_json::from_value(json!({
            "source": "generated", "entrypoint": ["python", "app.py"],
            "executionEnvironmentId": "e", "executionEnvironmentVersionId": "v"
        }))
        .unwrap();
        assert!(matches!(generated, Dockerfile::Generated { ref entrypoint, .. } if entrypoint.len() == 2));
        assert!(serde_json::from_value::<Dockerfile>(json!({"source": "provided", "paht": "x"})).is_err());
        assert!(serde_json::from_value::<RouteConfig>(json!({"path": "/a", "auth": "sometimes"})).is_err());
    }
}
