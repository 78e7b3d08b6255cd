//! At create: refuses a workload whose entrypoint no process-driver agent would run for this
//! caller (`--allow-exec` on the agents), naming the rules, instead of letting it fail on launch.

use nucleus_api::exec_policy::ExecPolicy;
use nucleus_api::validation::Loc;
use nucleus_api::{ArtifactSpec, FieldError};
use nucleus_client::{AgentRecord, keys};

use crate::auth::Caller;
use crate::{ApiError, AppState};

/// `inline`: the artifact came in the request (`body.artifact`), else by `body.artifactId`.
pub async fn check(state: &AppState, caller: &Caller, spec: &ArtifactSpec, inline: bool) -> Result<(), ApiError> {
    let Some((group, container)) = spec.primary() else { return Ok(()) };
    let Some(program) = container.entrypoint.as_ref().and_then(|e| e.first()) else { return Ok(()) };
    let agents = state.meta.list_json::<AgentRecord>(keys::AGENTS).await?;
    let process: Vec<&AgentRecord> = agents.iter().map(|a| &a.value).filter(|a| a.driver == "process").collect();
    let by_admin = matches!(caller, Caller::Admin);
    let refusals: Vec<(String, &ExecPolicy)> = process
        .iter()
        .filter_map(|agent| agent.exec.allows(program, by_admin).err().map(|rule| (format!("agent {}: {rule}", agent.name), &agent.exec)))
        .collect();
    // Runs somewhere (or there is no process agent to ask; Kubernetes runs it in its container).
    if process.is_empty() || refusals.len() < process.len() {
        return Ok(());
    }
    let rules: Vec<String> = refusals.iter().map(|(rule, _)| rule.clone()).collect();
    let message = format!("No agent runs `{program}` for this caller: {}", rules.join("; "));
    if refusals.iter().all(|(_, policy)| matches!(policy, ExecPolicy::Administrators)) {
        return Err(ApiError::Forbidden(message));
    }
    let at = if inline {
        let gi = spec.container_groups.iter().position(|g| g.name == group.name).unwrap_or(0);
        let ci = group.containers.iter().position(|c| c.primary).unwrap_or(0);
        Loc::body().key("artifact").key("spec").key("containerGroups").index(gi).key("containers").index(ci).key("entrypoint")
    } else {
        Loc::body().key("artifactId")
    };
    Err(ApiError::Validation(vec![FieldError::new(&at, message, "value_error")]))
}
