//! Placement only on agents that would run the proton's entrypoint (`--allow-exec`).

use nucleus_api::Proton;
use nucleus_client::AgentRecord;

/// False when `agent`'s process driver would refuse the proton's program: placing it there would
/// only fail the replica. Who created the workload is the gateway's to check (it refused at create
/// what no agent runs for its creator), so the administrators-only rule passes here.
pub fn runs(agent: &AgentRecord, proton: &Proton) -> bool {
    let program = proton.container.entrypoint.as_ref().and_then(|e| e.first());
    agent.driver != "process" || program.is_none_or(|p| agent.exec.allows(p, true).is_ok())
}

#[cfg(test)]
mod tests {
    use nucleus_api::exec_policy::ExecPolicy;

    use super::*;

    #[test]
    fn an_agent_that_does_not_list_the_program_is_passed_over() {
        let mut proton = crate::test_support::proton(nucleus_api::DesiredState::Running, nucleus_api::ProtonStatus::Submitted, None);
        proton.container.entrypoint = Some(vec!["/usr/bin/python3".into(), "serve.py".into()]);
        let agent = |driver: &str, exec: ExecPolicy| AgentRecord {
            name: "a".into(),
            address: "127.0.0.1:1".into(),
            driver: driver.into(),
            cluster: "c".into(),
            region: "r".into(),
            heartbeat_at: String::new(),
            nodes: Vec::new(),
            exec,
        };
        assert!(runs(&agent("process", ExecPolicy::Anyone), &proton));
        assert!(runs(&agent("process", ExecPolicy::Programs(vec!["python3".into()])), &proton));
        assert!(!runs(&agent("process", ExecPolicy::Programs(vec!["node".into()])), &proton));
        assert!(runs(&agent("kubernetes", ExecPolicy::Programs(vec!["node".into()])), &proton), "a container is not the host");
        assert!(runs(&agent("process", ExecPolicy::Administrators), &proton), "the gateway checks who created it");
    }
}
