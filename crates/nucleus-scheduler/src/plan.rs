//! The decision for one proton, as a pure function of what is asked and what is observed.

use nucleus_api::{DesiredState, Proton, ProtonStatus, ReplicaStatusesSnapshot};

/// What is known about the proton's agent.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentView {
    /// Not connected to the agent yet, within the grace period: nothing is known, nothing changes.
    Pending,
    /// The agent is gone (stream down past the grace period, or no longer registered).
    Unreachable(String),
    /// The agent is connected (or none is chosen yet); this is what it says about the proton.
    Reported(Report),
}

/// What a connected agent last said about the proton.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// The agent does not run it (never launched, forgotten, or the agent restarted).
    Absent,
    Running(ReplicaStatusesSnapshot),
    Stopping(ReplicaStatusesSnapshot),
    Stopped,
}

/// What the worker remembers having done for the proton (lost on restart, which only causes a
/// repeated, idempotent call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Done {
    pub launched_generation: Option<u64>,
    /// The replica count of that launch: another count (the autoscaler's) is launched again.
    pub launched_replicas: Option<u32>,
    pub stop_sent_generation: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Record the placement on this agent, then launch.
    Place(String),
    Launch,
    Stop,
    /// The workload is gone and so are the processes: delete the proton's documents.
    Forget,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub action: Option<Action>,
    pub status: ProtonStatus,
    pub message: Option<String>,
}

/// `agent` is the agent to place an unplaced proton on, if any is available.
pub fn plan(proton: &Proton, workload_exists: bool, view: &AgentView, done: Done, agent: Option<&str>) -> Plan {
    let generation = proton.generation;
    let view = match view {
        AgentView::Pending => {
            return Plan { action: None, status: proton.status, message: proton.message.clone() };
        }
        AgentView::Unreachable(agent) => return unreachable(proton, workload_exists, agent),
        AgentView::Reported(report) => report,
    };
    let runs = matches!(view, Report::Running(_) | Report::Stopping(_));
    if !workload_exists || proton.desired_state == DesiredState::Stopped {
        let action = if runs && !matches!(view, Report::Stopping(_)) && done.stop_sent_generation != Some(generation) {
            Some(Action::Stop)
        } else if !runs && !workload_exists {
            Some(Action::Forget)
        } else {
            None
        };
        let status = if runs { ProtonStatus::Stopping } else { ProtonStatus::Stopped };
        return Plan { action, status, message: None };
    }
    if proton.status == ProtonStatus::Errored {
        // Errored is sticky until a user action, which bumps the generation and resets the status.
        return Plan { action: None, status: ProtonStatus::Errored, message: proton.message.clone() };
    }
    let Some(placed_on) = proton.agent.as_deref() else {
        return match agent {
            Some(a) => Plan { action: Some(Action::Place(a.to_owned())), status: ProtonStatus::Submitted, message: None },
            None => Plan {
                action: None,
                // A preempted proton stays `interrupted` until it is placed again.
                status: if proton.status == ProtonStatus::Interrupted { ProtonStatus::Interrupted } else { ProtonStatus::Submitted },
                message: Some("No node agent is registered to run this proton; start one (nucleus agent) or check its logs".to_owned()),
            },
        };
    };
    match view {
        Report::Running(snapshot) => {
            let state = snapshot.overall_status.state;
            let fresh = done.launched_generation == Some(generation);
            if state == ProtonStatus::Errored && fresh {
                return Plan { action: None, status: state, message: Some(failure_message(snapshot)) };
            }
            if state == ProtonStatus::Errored {
                // Failed replicas of an earlier run: stop it all, then launch afresh.
                let action = (done.stop_sent_generation != Some(generation)).then_some(Action::Stop);
                return Plan { action, status: ProtonStatus::Provisioning, message: None };
            }
            let rescaled = done.launched_replicas.is_some_and(|n| n != proton.replica_count);
            // Replicas a scale-up adds are starting while the others serve: still running.
            let growing = proton.status == ProtonStatus::Running
                && matches!(state, ProtonStatus::Provisioning | ProtonStatus::Launching | ProtonStatus::Submitted)
                && snapshot.replicas.iter().any(|r| r.is_ready());
            let state = if growing { ProtonStatus::Running } else { state };
            let message = (snapshot.replicas.is_empty() && proton.replica_count == 0).then(|| nucleus_api::proton::IDLE_AT_ZERO.to_owned());
            Plan { action: (!fresh || rescaled).then_some(Action::Launch), status: state, message }
        }
        Report::Stopping(_) => Plan {
            action: None,
            status: ProtonStatus::Provisioning,
            message: Some(format!("Waiting for agent {placed_on} to finish stopping the previous run")),
        },
        Report::Absent | Report::Stopped => {
            let action = (done.launched_generation != Some(generation)).then_some(Action::Launch);
            Plan { action, status: ProtonStatus::Provisioning, message: None }
        }
    }
}

/// Nothing can be done or known while the agent is away: say so instead of showing the last
/// status as if it were current. (Rescheduling elsewhere comes with multi-agent placement.)
fn unreachable(proton: &Proton, workload_exists: bool, agent: &str) -> Plan {
    if !workload_exists || proton.desired_state == DesiredState::Stopped {
        let status = if proton.status == ProtonStatus::Stopped { ProtonStatus::Stopped } else { ProtonStatus::Stopping };
        return Plan { action: None, status, message: None };
    }
    if proton.status == ProtonStatus::Errored {
        return Plan { action: None, status: ProtonStatus::Errored, message: proton.message.clone() };
    }
    Plan {
        action: None,
        status: ProtonStatus::Unknown,
        message: Some(format!(
            "Agent {agent} does not answer, so the state of this proton's replicas is unknown; check that the agent runs"
        )),
    }
}

fn failure_message(snapshot: &ReplicaStatusesSnapshot) -> String {
    match snapshot.replicas.iter().find_map(|r| r.error.as_deref().map(|e| (r.name.as_str(), e))) {
        Some((replica, error)) => {
            format!("Replica {replica} failed: {error}. Fix the artifact or runtime, then stop and start the workload")
        }
        None => "A replica failed; see statusDetails for its log tail".to_owned(),
    }
}

#[cfg(test)]
mod tests;
