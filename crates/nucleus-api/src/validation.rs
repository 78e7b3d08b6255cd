//! Request validation. Errors name the offending field the way FastAPI does (`loc`, `msg`,
//! `type`), so that existing clients show them unchanged.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::artifact::{ArtifactSpec, Container, InputArtifact, ProbeConfig};
use crate::autoscaling::{Autoscaling, ScalingMetric};
use crate::workload::{CreateWorkloadRequest, WorkloadRuntime};

pub const NAME_MAX: usize = 5000;
/// The most replicas one group may ask for.
pub const MAX_REPLICAS: i64 = 1000;

/// One invalid field: `{"loc": ["body", "name"], "msg": "...", "type": "string_too_long"}`.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub loc: Vec<Value>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    pub fn new(loc: &Loc, msg: impl Into<String>, kind: &str) -> FieldError {
        FieldError { loc: loc.0.clone(), msg: msg.into(), kind: kind.to_owned() }
    }
}

/// A JSON path inside a request, starting at `body` or `query`.
#[derive(Debug, Clone, PartialEq)]
pub struct Loc(Vec<Value>);

impl Loc {
    pub fn body() -> Loc {
        Loc(vec!["body".into()])
    }
    pub fn query() -> Loc {
        Loc(vec!["query".into()])
    }
    pub fn path() -> Loc {
        Loc(vec!["path".into()])
    }
    pub fn key(&self, key: &str) -> Loc {
        let mut path = self.0.clone();
        path.push(key.into());
        Loc(path)
    }
    pub fn index(&self, index: usize) -> Loc {
        let mut path = self.0.clone();
        path.push(index.into());
        Loc(path)
    }
}

/// Why a request body was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum BodyError {
    /// Not JSON at all (400).
    Malformed(String),
    /// JSON of the wrong shape (422).
    Invalid(Vec<FieldError>),
}

/// Parses a JSON body, telling malformed JSON (400) from a JSON document of the wrong shape (422,
/// with the path of the first offending field).
pub fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, BodyError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(BodyError::Invalid(vec![FieldError::new(&Loc::body(), "Field required: send a JSON object", "missing")]));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let inner = err.inner();
        if !inner.is_data() {
            return BodyError::Malformed(format!("malformed JSON: {inner}"));
        }
        let mut loc = Loc::body();
        for segment in err.path().iter() {
            loc = match segment {
                serde_path_to_error::Segment::Seq { index } => loc.index(*index),
                serde_path_to_error::Segment::Map { key } => loc.key(key),
                serde_path_to_error::Segment::Enum { variant } => loc.key(variant),
                serde_path_to_error::Segment::Unknown => loc,
            };
        }
        let text = strip_position(&inner.to_string());
        // serde_path_to_error's path already ends at an unknown field, but not at a missing one.
        let (loc, kind) = if text.starts_with("unknown field `") {
            (loc, "extra_forbidden")
        } else if let Some(field) = quoted_after(&text, "missing field `") {
            (loc.key(field), "missing")
        } else {
            (loc, "value_error")
        };
        BodyError::Invalid(vec![FieldError::new(&loc, text, kind)])
    })?;
    de.end().map_err(|e| BodyError::Malformed(format!("malformed JSON: {e}")))?;
    Ok(value)
}

fn quoted_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = text.split_once(prefix)?.1;
    rest.split_once('`').map(|(field, _)| field)
}

/// serde_json appends " at line L column C"; the path already says where.
fn strip_position(text: &str) -> String {
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text.to_owned(),
    }
}

pub fn name(value: &str, loc: &Loc, errors: &mut Vec<FieldError>) {
    let len = value.chars().count();
    if len == 0 {
        errors.push(FieldError::new(loc, "String should have at least 1 character", "string_too_short"));
    } else if len > NAME_MAX {
        errors.push(FieldError::new(loc, format!("String should have at most {NAME_MAX} characters"), "string_too_long"));
    }
}

fn range(value: i64, min: i64, max: i64, loc: &Loc, errors: &mut Vec<FieldError>) {
    if value < min || value > max {
        errors.push(FieldError::new(loc, format!("Input should be between {min} and {max}, got {value}"), "out_of_range"));
    }
}

pub fn input_artifact(artifact: &InputArtifact, loc: &Loc) -> Vec<FieldError> {
    let mut errors = Vec::new();
    name(&artifact.name, &loc.key("name"), &mut errors);
    spec(&artifact.spec, &loc.key("spec"), &mut errors);
    errors
}

pub fn spec(spec: &ArtifactSpec, loc: &Loc, errors: &mut Vec<FieldError>) {
    if let Some(size) = spec.storage.as_ref().and_then(|storage| storage.pvc_size.as_deref())
        && !is_pvc_size(size)
    {
        let message = format!("pvcSize must be a size like 150Gi (digits, then Mi, Gi or Ti), got '{size}'");
        errors.push(FieldError::new(&loc.key("storage").key("pvcSize"), message, "string_pattern_mismatch"));
    }
    let groups_loc = loc.key("containerGroups");
    if spec.container_groups.len() > 1 {
        errors.push(FieldError::new(&groups_loc, "Only one container group is supported", "too_long"));
    }
    for (gi, group) in spec.container_groups.iter().enumerate() {
        let group_loc = groups_loc.index(gi);
        name(&group.name, &group_loc.key("name"), errors);
        let primaries = group.containers.iter().filter(|c| c.primary).count();
        if !group.containers.is_empty() && primaries != 1 {
            errors.push(FieldError::new(
                &group_loc.key("containers"),
                format!("Exactly one container must be primary, found {primaries}"),
                "value_error",
            ));
        }
        for (ci, c) in group.containers.iter().enumerate() {
            container(c, &group_loc.key("containers").index(ci), errors);
        }
    }
}

fn container(c: &Container, loc: &Loc, errors: &mut Vec<FieldError>) {
    match (c.primary, c.port) {
        (true, None) => errors.push(FieldError::new(&loc.key("port"), "The primary container must set a port", "missing")),
        (true, Some(port)) => range(port, 1024, 65535, &loc.key("port"), errors),
        (false, Some(_)) => errors.push(FieldError::new(&loc.key("port"), "Only the primary container may set a port", "value_error")),
        (false, None) => {}
    }
    if c.image_uri.as_deref().is_none_or(str::is_empty) && c.image_build_config.is_none() {
        errors.push(FieldError::new(&loc.key("imageUri"), "Field required: set imageUri (image builds are not supported yet)", "missing"));
    }
    if let Some(entrypoint) = &c.entrypoint
        && (entrypoint.is_empty() || entrypoint[0].trim().is_empty())
    {
        errors.push(FieldError::new(&loc.key("entrypoint"), "entrypoint must name a command", "value_error"));
    }
    for (i, var) in c.environment_vars.iter().enumerate() {
        let var_loc = loc.key("environmentVars").index(i);
        let source = var.source.as_deref().unwrap_or("string");
        match source {
            "string" => {
                if var.name.as_deref().is_none_or(str::is_empty) {
                    errors.push(FieldError::new(&var_loc.key("name"), "Field required", "missing"));
                }
                if var.value.is_none() {
                    errors.push(FieldError::new(&var_loc.key("value"), "Field required", "missing"));
                }
            }
            "dr-credential" => {
                for (field, present) in
                    [("name", var.name.is_some()), ("drCredentialId", var.dr_credential_id.is_some()), ("key", var.key.is_some())]
                {
                    if !present {
                        errors.push(FieldError::new(&var_loc.key(field), "Field required", "missing"));
                    }
                }
            }
            "api-key" => {}
            other => errors.push(FieldError::new(
                &var_loc.key("source"),
                format!("Input should be 'string', 'dr-credential' or 'api-key', got '{other}'"),
                "literal_error",
            )),
        }
    }
    if let Some(crate::container_options::Dockerfile::Generated { entrypoint, .. }) =
        c.image_build_config.as_ref().and_then(|config| config.dockerfile.as_ref())
        && entrypoint.is_empty()
    {
        let loc = loc.key("imageBuildConfig").key("dockerfile").key("entrypoint");
        errors.push(FieldError::new(&loc, "a generated Dockerfile needs an entrypoint", "too_short"));
    }
    if let Some(routes) = &c.routes {
        self::routes(routes, c.primary, &loc.key("routes"), errors);
    }
    if let Some(profile) = c.security_context.as_ref().and_then(|s| s.seccomp_profile.as_ref()) {
        let localhost = profile.profile_type == crate::container_options::SeccompProfileType::Localhost;
        if localhost != profile.localhost_profile.is_some() {
            let message = "localhostProfile is required with type Localhost and only valid with it";
            errors.push(FieldError::new(&loc.key("securityContext").key("seccompProfile").key("localhostProfile"), message, "value_error"));
        }
    }
    for (field, probe) in [("startupProbe", &c.startup_probe), ("readinessProbe", &c.readiness_probe), ("livenessProbe", &c.liveness_probe)]
    {
        if let Some(p) = probe {
            self::probe(p, &loc.key(field), errors);
        }
    }
}

/// `^\d+(\.\d+)?(Gi|Mi|Ti)$`: a PVC size in binary units.
fn is_pvc_size(size: &str) -> bool {
    let Some(number) = ["Gi", "Mi", "Ti"].iter().find_map(|unit| size.strip_suffix(unit)) else {
        return false;
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    match number.split_once('.') {
        Some((whole, fraction)) => digits(whole) && digits(fraction),
        None => digits(number),
    }
}

/// At most 50, on the primary container only, each path absolute, at most 1024 characters and
/// unique.
fn routes(routes: &[crate::container_options::RouteConfig], primary: bool, loc: &Loc, errors: &mut Vec<FieldError>) {
    if !primary && !routes.is_empty() {
        errors.push(FieldError::new(loc, "Only the primary container may set routes", "value_error"));
    }
    if routes.len() > 50 {
        errors.push(FieldError::new(loc, format!("At most 50 routes, got {}", routes.len()), "too_long"));
    }
    for (i, route) in routes.iter().enumerate() {
        let path_loc = loc.index(i).key("path");
        if !route.path.starts_with('/') {
            errors.push(FieldError::new(&path_loc, "path must start with '/'", "value_error"));
        }
        if route.path.chars().count() > 1024 {
            errors.push(FieldError::new(&path_loc, "path must be at most 1024 characters", "string_too_long"));
        }
        if routes[..i].iter().any(|earlier| earlier.path == route.path) {
            errors.push(FieldError::new(&path_loc, format!("route path {} is listed twice", route.path), "value_error"));
        }
    }
}

/// The probe hosts that name the replica being probed; anything else would let a workload make
/// the agent call other hosts (its cloud's metadata service, the control plane) for it.
pub fn is_replica_itself(host: &str) -> bool {
    matches!(host, "" | "localhost" | "127.0.0.1" | "::1" | "[::1]")
}

fn probe(p: &ProbeConfig, loc: &Loc, errors: &mut Vec<FieldError>) {
    if !p.path.starts_with('/') {
        errors.push(FieldError::new(&loc.key("path"), "path must start with '/'", "value_error"));
    }
    range(p.port, 1, 65535, &loc.key("port"), errors);
    if let Some(host) = p.host.as_deref().filter(|h| !is_replica_itself(h)) {
        errors.push(FieldError::new(
            &loc.key("host"),
            format!("A probe checks the replica itself: leave host out (or give localhost), not '{host}'"),
            "value_error",
        ));
    }
    if p.scheme != "HTTP" && p.scheme != "HTTPS" {
        errors.push(FieldError::new(&loc.key("scheme"), format!("Input should be 'HTTP' or 'HTTPS', got '{}'", p.scheme), "literal_error"));
    }
    range(p.initial_delay_seconds, 0, 3600, &loc.key("initialDelaySeconds"), errors);
    range(p.period_seconds, 1, 3600, &loc.key("periodSeconds"), errors);
    range(p.timeout_seconds, 1, 3600, &loc.key("timeoutSeconds"), errors);
    range(p.failure_threshold, 1, 1000, &loc.key("failureThreshold"), errors);
    range(p.success_threshold, 1, 1000, &loc.key("successThreshold"), errors);
}

/// The runtime must fit the artifact it runs.
pub fn runtime(rt: &WorkloadRuntime, spec: &ArtifactSpec, loc: &Loc, errors: &mut Vec<FieldError>) {
    if let Some(seconds) = rt.invoke_timeout_seconds {
        range(seconds, 1, 3600, &loc.key("invokeTimeoutSeconds"), errors);
    }
    for (gi, group) in rt.container_groups.iter().enumerate() {
        let group_loc = loc.key("containerGroups").index(gi);
        let Some(artifact_group) = spec.container_groups.iter().find(|g| g.name == group.name) else {
            errors.push(FieldError::new(
                &group_loc.key("name"),
                format!("The artifact has no container group named '{}'", group.name),
                "value_error",
            ));
            continue;
        };
        let autoscaled = group.autoscaling.as_ref().is_some_and(|a| a.enabled);
        if let Some(count) = group.replica_count {
            range(count, 0, 1000, &group_loc.key("replicaCount"), errors);
            if autoscaled && count > 0 {
                errors.push(FieldError::new(
                    &group_loc.key("replicaCount"),
                    "replicaCount cannot be set together with autoscaling.enabled=true",
                    "value_error",
                ));
            }
        }
        if let Some(a) = &group.autoscaling {
            autoscaling(a, &group_loc.key("autoscaling"), errors);
        }
        for (ci, c) in group.containers.iter().enumerate() {
            if !artifact_group.containers.iter().any(|ac| ac.name.as_deref() == Some(&c.name)) {
                errors.push(FieldError::new(
                    &group_loc.key("containers").index(ci).key("name"),
                    format!("The container group has no container named '{}'", c.name),
                    "value_error",
                ));
            }
        }
    }
}

/// `autoscaling` of one group, in either input shape.
fn autoscaling(a: &Autoscaling, loc: &Loc, errors: &mut Vec<FieldError>) {
    let policies = loc.key("policies");
    if a.enabled && a.policies.is_empty() {
        errors.push(FieldError::new(
            &policies,
            "Give at least one policy (scalingMetric and target) when autoscaling is enabled",
            "missing",
        ));
    }
    // A policy already refused: the object-level rules that follow from it are not repeated.
    let mut policy_refused = false;
    for (pi, policy) in a.policies.iter().enumerate() {
        let at = policies.index(pi);
        if let ScalingMetric::Custom(name) = &policy.scaling_metric {
            let scraped = policy.metrics_path.is_some() || name.contains(':');
            if !scraped || !ScalingMetric::is_prometheus_name(name) {
                policy_refused = true;
                errors.push(FieldError::new(
                    &at.key("scalingMetric"),
                    format!(
                        "Unknown scalingMetric '{name}': use httpRequestsConcurrency, httpRequestsInFlight, httpRequestsPerHour, \
                         cpuAverageUtilization, gpuCacheUtilization, gpuRequestQueueDepth, or a Prometheus metric name the \
                         replica exports (with metricsPath, or a name with ':' such as vllm:num_requests_waiting)"
                    ),
                    "enum",
                ));
            }
        }
        if let Some(path) = &policy.metrics_path
            && !path.starts_with('/')
        {
            errors.push(FieldError::new(&at.key("metricsPath"), "metricsPath must be a path starting with '/'", "value_error"));
        }
        if !(policy.target.is_finite() && policy.target > 0.0) {
            errors.push(FieldError::new(&at.key("target"), "target must be a number greater than 0", "greater_than"));
        }
        for (field, value) in [("minCount", policy.min_count), ("maxCount", policy.max_count)] {
            if let Some(v) = value {
                range(v, 0, MAX_REPLICAS, &at.key(field), errors);
            }
        }
        if let (Some(min), Some(max)) = (policy.min_count, policy.max_count)
            && min > max
        {
            policy_refused = true; // said once, on the policy
            errors.push(FieldError::new(&at.key("minCount"), "minCount must not exceed maxCount", "value_error"));
        }
    }
    // The bounds as stored: either shape hoisted, defaults filled in.
    let hoisted = a.clone().hoisted();
    let (min, max) = (hoisted.min_replica_count.unwrap_or_default(), hoisted.max_replica_count.unwrap_or_default());
    if max < 1 {
        errors.push(FieldError::new(&loc.key("maxReplicaCount"), "maxReplicaCount must be at least 1", "value_error"));
    } else if max > MAX_REPLICAS {
        range(max, 1, MAX_REPLICAS, &loc.key("maxReplicaCount"), errors);
    }
    if min < 0 {
        errors.push(FieldError::new(&loc.key("minReplicaCount"), "minReplicaCount must be 0 or more", "greater_than_equal"));
    }
    if min > max && !policy_refused {
        errors.push(FieldError::new(&loc.key("minReplicaCount"), "minReplicaCount must not exceed maxReplicaCount", "value_error"));
    }
    if a.enabled && min == 0 && !policy_refused {
        if let Some(pi) = a.policies.iter().position(|p| p.scaling_metric == ScalingMetric::CpuAverageUtilization) {
            errors.push(FieldError::new(
                &loc.key("minReplicaCount"),
                format!(
                    "policies[{pi}] scales on cpuAverageUtilization, which cannot scale up from zero: set minReplicaCount to 1 or more"
                ),
                "value_error",
            ));
        } else if !a.policies.is_empty() && !a.policies.iter().any(|p| p.scaling_metric.is_http()) {
            errors.push(FieldError::new(
                &loc.key("minReplicaCount"),
                "Only an HTTP policy (httpRequestsConcurrency, httpRequestsInFlight, httpRequestsPerHour) can wake a group at zero: \
                 add one or set minReplicaCount to 1 or more",
                "value_error",
            ));
        }
    }
}

/// Checks what can be checked without the store: name, exactly one of `artifact`/`artifactId`,
/// the inline artifact, and the runtime against an inline artifact. The gateway checks the runtime
/// against a referenced artifact once it has read it.
pub fn create_workload(req: &CreateWorkloadRequest) -> Vec<FieldError> {
    let body = Loc::body();
    let mut errors = Vec::new();
    name(&req.name, &body.key("name"), &mut errors);
    match (&req.artifact, &req.artifact_id) {
        (Some(_), Some(_)) => {
            errors.push(FieldError::new(&body, "Send exactly one of 'artifact' (inline) or 'artifactId', not both", "value_error"))
        }
        (None, None) => errors.push(FieldError::new(&body, "Send exactly one of 'artifact' (inline) or 'artifactId'", "missing")),
        (Some(artifact), None) => {
            errors.extend(input_artifact(artifact, &body.key("artifact")));
            if artifact.spec.primary().is_none() {
                errors.push(FieldError::new(
                    &body.key("artifact").key("spec").key("containerGroups"),
                    "A workload needs an artifact with a primary container",
                    "value_error",
                ));
            }
            if let Some(rt) = &req.runtime {
                runtime(rt, &artifact.spec, &body.key("runtime"), &mut errors);
            }
        }
        (None, Some(_)) => {}
    }
    errors
}

#[cfg(test)]
mod tests;
