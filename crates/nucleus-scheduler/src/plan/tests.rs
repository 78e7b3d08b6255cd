use nucleus_api::proton::{Condition, OverallStatus, ReplicaPhase, ReplicaStatus};
use nucleus_api::{DesiredState, ProtonStatus, ReplicaStatusesSnapshot};

use super::*;
use crate::test_support::proton;

fn snapshot(phase: ReplicaPhase, ready: bool, error: Option<&str>) -> ReplicaStatusesSnapshot {
    let replica = ReplicaStatus {
        name: "p-0".into(),
        address: "127.0.0.1:9".into(),
        node_address: "127.0.0.1".into(),
        started_at: None,
        status: phase,
        conditions: vec![Condition { condition_type: "Ready".into(), met: Some(ready), since: String::new() }],
        containers: vec![],
        log_tail: vec![],
        error: error.map(str::to_owned),
    };
    let state = nucleus_api::proton::aggregate(std::slice::from_ref(&replica), 1);
    ReplicaStatusesSnapshot {
        overall_status: OverallStatus { state, summary: String::new(), last_updated: String::new() },
        replicas: vec![replica],
    }
}

fn running(s: ReplicaStatusesSnapshot) -> AgentView {
    AgentView::Reported(Report::Running(s))
}

const LAUNCHED: Done = Done { launched_generation: Some(3), launched_replicas: None, stop_sent_generation: None };

#[test]
fn a_running_proton_is_launched_again_when_its_replica_count_changes_and_says_when_it_idles_at_zero() {
    let mut p = proton(DesiredState::Running, ProtonStatus::Running, Some("a1"));
    p.replica_count = 1;
    let launched = Done { launched_replicas: Some(1), ..LAUNCHED };
    let view = running(snapshot(ReplicaPhase::Running, true, None));
    assert_eq!(plan(&p, true, &view, launched, Some("a1")).action, None);
    p.replica_count = 3;
    assert_eq!(plan(&p, true, &view, launched, Some("a1")).action, Some(Action::Launch), "scaled up");
    let mut growing = snapshot(ReplicaPhase::Running, true, None);
    let starting = ReplicaStatus { name: "p-1".into(), ..snapshot(ReplicaPhase::Running, false, None).replicas[0].clone() };
    growing.replicas.push(starting);
    growing.overall_status.state = nucleus_api::proton::aggregate(&growing.replicas, 3);
    let aggregated = growing.overall_status.state;
    assert_ne!(aggregated, ProtonStatus::Running, "a replica short: the aggregate alone says it is starting");
    let shown = plan(&p, true, &running(growing.clone()), Done { launched_replicas: Some(3), ..LAUNCHED }, Some("a1"));
    assert_eq!(shown.status, ProtonStatus::Running, "a scale-up's new replicas do not make a serving proton 'launching'");
    let mut fresh = p.clone();
    fresh.status = ProtonStatus::Launching;
    assert_eq!(plan(&fresh, true, &running(growing), Done { launched_replicas: Some(3), ..LAUNCHED }, Some("a1")).status, aggregated);
    p.replica_count = 0;
    let idle = ReplicaStatusesSnapshot {
        overall_status: OverallStatus {
            state: nucleus_api::proton::aggregate(&[], 0),
            summary: String::new(),
            last_updated: String::new(),
        },
        replicas: vec![],
    };
    let at_zero = plan(&p, true, &running(idle), Done { launched_replicas: Some(0), ..LAUNCHED }, Some("a1"));
    assert_eq!((at_zero.action, at_zero.status), (None, ProtonStatus::Running));
    assert_eq!(at_zero.message.as_deref(), Some(nucleus_api::proton::IDLE_AT_ZERO));
}

#[test]
fn unplaced_protons_are_placed_or_wait_for_an_agent() {
    let p = proton(DesiredState::Running, ProtonStatus::Submitted, None);
    let placed = plan(&p, true, &AgentView::Reported(Report::Absent), Done::default(), Some("a1"));
    assert_eq!(placed.action, Some(Action::Place("a1".into())));
    let waiting = plan(&p, true, &AgentView::Reported(Report::Absent), Done::default(), None);
    assert_eq!((waiting.action, waiting.status), (None, ProtonStatus::Submitted));
    assert!(waiting.message.unwrap().contains("agent"));
}

#[test]
fn a_preempted_proton_stays_interrupted_until_it_is_placed_again() {
    let p = proton(DesiredState::Running, ProtonStatus::Interrupted, None);
    let waiting = plan(&p, true, &AgentView::Reported(Report::Absent), Done::default(), None);
    assert_eq!((waiting.action, waiting.status), (None, ProtonStatus::Interrupted));
    let placed = plan(&p, true, &AgentView::Reported(Report::Absent), Done::default(), Some("a1"));
    assert_eq!((placed.action, placed.status), (Some(Action::Place("a1".into())), ProtonStatus::Submitted));
}

#[test]
fn placed_protons_are_launched_once_per_generation() {
    let p = proton(DesiredState::Running, ProtonStatus::Submitted, Some("a1"));
    let first = plan(&p, true, &AgentView::Reported(Report::Absent), Done::default(), Some("a1"));
    assert_eq!((first.action, first.status), (Some(Action::Launch), ProtonStatus::Provisioning));
    let again = plan(&p, true, &AgentView::Reported(Report::Absent), LAUNCHED, Some("a1"));
    assert_eq!(again.action, None);
}

#[test]
fn status_follows_the_replicas() {
    let p = proton(DesiredState::Running, ProtonStatus::Provisioning, Some("a1"));
    let starting = running(snapshot(ReplicaPhase::Running, false, None));
    assert_eq!(plan(&p, true, &starting, LAUNCHED, None).status, ProtonStatus::Launching);
    let up = running(snapshot(ReplicaPhase::Running, true, None));
    assert_eq!(plan(&p, true, &up, LAUNCHED, None).status, ProtonStatus::Running);
    let failed = running(snapshot(ReplicaPhase::Failed, false, Some("process exited with status 3")));
    let errored = plan(&p, true, &failed, LAUNCHED, None);
    assert_eq!(errored.status, ProtonStatus::Errored);
    assert!(errored.message.unwrap().contains("exited with status 3"));
}

#[test]
fn errored_is_sticky() {
    let p = proton(DesiredState::Running, ProtonStatus::Errored, Some("a1"));
    let up = running(snapshot(ReplicaPhase::Running, true, None));
    let decision = plan(&p, true, &up, Done::default(), None);
    assert_eq!((decision.action, decision.status), (None, ProtonStatus::Errored));
}

#[test]
fn a_restart_after_failure_stops_the_old_run_first() {
    let p = proton(DesiredState::Running, ProtonStatus::Submitted, Some("a1"));
    let failed = running(snapshot(ReplicaPhase::Failed, false, Some("boom")));
    let old = Done { launched_generation: Some(2), launched_replicas: None, stop_sent_generation: None };
    assert_eq!(plan(&p, true, &failed, old, None).action, Some(Action::Stop));
    assert_eq!(plan(&p, true, &AgentView::Reported(Report::Stopped), old, None).action, Some(Action::Launch));
}

#[test]
fn stopping_and_forgetting() {
    let p = proton(DesiredState::Stopped, ProtonStatus::Stopping, Some("a1"));
    let up = running(snapshot(ReplicaPhase::Running, true, None));
    let stop = plan(&p, true, &up, LAUNCHED, None);
    assert_eq!((stop.action, stop.status), (Some(Action::Stop), ProtonStatus::Stopping));
    let sent = Done { stop_sent_generation: Some(3), ..LAUNCHED };
    assert_eq!(plan(&p, true, &up, sent, None).action, None);
    assert_eq!(plan(&p, true, &AgentView::Reported(Report::Stopped), sent, None).status, ProtonStatus::Stopped);
    // Deleted workload: stop, then forget once nothing runs.
    let orphan = proton(DesiredState::Running, ProtonStatus::Running, Some("a1"));
    assert_eq!(plan(&orphan, false, &up, LAUNCHED, None).action, Some(Action::Stop));
    assert_eq!(plan(&orphan, false, &AgentView::Reported(Report::Stopped), LAUNCHED, None).action, Some(Action::Forget));
    assert_eq!(plan(&orphan, false, &AgentView::Reported(Report::Absent), LAUNCHED, None).action, Some(Action::Forget));
}

#[test]
fn an_unreachable_agent_makes_status_unknown_not_running() {
    let p = proton(DesiredState::Running, ProtonStatus::Running, Some("a1"));
    let gone = plan(&p, true, &AgentView::Unreachable("a1".into()), LAUNCHED, None);
    assert_eq!((gone.action, gone.status), (None, ProtonStatus::Unknown));
    assert!(gone.message.unwrap().contains("a1"));
    let waiting = plan(&p, true, &AgentView::Pending, LAUNCHED, None);
    assert_eq!((waiting.action, waiting.status), (None, ProtonStatus::Running));
    let stopping = proton(DesiredState::Stopped, ProtonStatus::Stopping, Some("a1"));
    let decision = plan(&stopping, true, &AgentView::Unreachable("a1".into()), LAUNCHED, None);
    assert_eq!((decision.action, decision.status), (None, ProtonStatus::Stopping));
}
