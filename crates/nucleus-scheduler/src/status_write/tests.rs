use nucleus_api::DesiredState;
use nucleus_api::proton::{Condition, ReplicaPhase, ReplicaStatus};

use super::*;
use crate::test_support::at;

fn proton(status: ProtonStatus, agent: Option<&str>) -> Proton {
    crate::test_support::proton(DesiredState::Running, status, agent)
}

fn workload(active: &str, status: ProtonStatus) -> Workload {
    let mut w: Workload = serde_json::from_value(json!({
        "id": "w", "name": "w", "description": "", "status": "running", "importance": "low", "type": "service",
        "artifactId": "a", "artifact": {"id": "a"}, "runtime": {}, "protonId": active, "creator": null,
        "createdAt": "2027-01-15T08:00:00Z", "updatedAt": "2027-01-15T08:00:00Z", "desiredState": "running"
    }))
    .unwrap();
    w.status = status;
    w
}

fn snapshot(ready: bool, log: &[&str], last_updated: &str) -> ReplicaStatusesSnapshot {
    let replica = ReplicaStatus {
        name: "p-0".into(),
        address: "127.0.0.1:9".into(),
        node_address: "127.0.0.1".into(),
        started_at: None,
        status: ReplicaPhase::Running,
        conditions: vec![Condition { condition_type: "Ready".into(), met: Some(ready), since: String::new() }],
        containers: vec![],
        log_tail: log.iter().map(|l| l.to_string()).collect(),
        error: None,
    };
    let state = nucleus_api::proton::aggregate(std::slice::from_ref(&replica), 1);
    ReplicaStatusesSnapshot {
        overall_status: OverallStatus { state, summary: "1 replica".into(), last_updated: last_updated.into() },
        replicas: vec![replica],
    }
}

fn input<'a>(proton: &'a Proton, workload: Option<&'a Workload>, view: &'a AgentView, status: ProtonStatus) -> StatusInput<'a> {
    StatusInput { proton, workload, view, status, message: None, last_written: None, now: at(60) }
}

#[test]
fn becoming_ready_writes_proton_snapshot_workload_and_one_event() {
    let p = proton(ProtonStatus::Launching, Some("a1"));
    let w = workload("p", ProtonStatus::Launching);
    let view = AgentView::Reported(Report::Running(snapshot(true, &["booted"], "t1")));
    let write = status_write(input(&p, Some(&w), &view, ProtonStatus::Running));

    let proton = write.proton.expect("the proton changed");
    assert_eq!((proton.status, proton.running_since, proton.updated_at), (ProtonStatus::Running, Some(at(60)), at(60)));
    assert_eq!(proton.status_details.log_tail, None, "a serving proton shows no log tail");
    assert_eq!(write.workload.expect("the active proton's workload follows").status, ProtonStatus::Running);
    assert!(write.snapshot.is_some());
    let event = write.event.expect("a status change is an event");
    assert_eq!((event.event_type.as_str(), event.details["previousStatus"].clone()), ("protonStatusChanged", json!("launching")));
}

#[test]
fn a_repeated_report_writes_nothing_and_last_updated_alone_is_not_news() {
    let mut p = proton(ProtonStatus::Running, Some("a1"));
    p.running_since = Some(at(0));
    let w = workload("p", ProtonStatus::Running);
    let before = snapshot(true, &[], "t1");
    let view = AgentView::Reported(Report::Running(snapshot(true, &[], "t2")));
    let write = status_write(StatusInput { last_written: Some(&before), ..input(&p, Some(&w), &view, ProtonStatus::Running) });
    assert!(write.is_empty(), "{write:?}");
}

#[test]
fn a_failing_replica_puts_its_log_tail_on_proton_and_workload_with_the_message() {
    let p = proton(ProtonStatus::Launching, Some("a1"));
    let w = workload("p", ProtonStatus::Launching);
    let lines: Vec<String> = (0..30).map(|i| format!("line {i}")).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let view = AgentView::Reported(Report::Running(snapshot(false, &lines, "t1")));
    let message = Some("the replica exits: see the log".to_owned());
    let write = status_write(StatusInput { message: message.clone(), ..input(&p, Some(&w), &view, ProtonStatus::Errored) });
    let tail = write.proton.expect("changed").status_details.log_tail.expect("a log tail");
    assert_eq!((tail.len(), tail[0].as_str(), tail[19].as_str()), (LOG_TAIL_LINES, "line 10", "line 29"));
    let details = write.workload.expect("changed").status_details.expect("details");
    assert_eq!((details.message, details.log_tail.map(|t| t.len())), (message, Some(LOG_TAIL_LINES)));
}

#[test]
fn stopped_with_nothing_running_gives_up_the_placement_and_says_so_once() {
    let p = proton(ProtonStatus::Stopping, Some("a1"));
    let listed = snapshot(true, &[], "t1");
    let view = AgentView::Reported(Report::Stopped);
    let write = status_write(StatusInput { last_written: Some(&listed), ..input(&p, None, &view, ProtonStatus::Stopped) });
    assert_eq!(write.proton.as_ref().and_then(|p| p.agent.clone()), None, "placement given up");
    let said = write.snapshot.expect("one snapshot saying no replicas");
    assert!(said.replicas.is_empty() && said.overall_status.state == ProtonStatus::Stopped, "{said:?}");
    assert!(write.workload.is_none(), "no workload given: nothing to write there");

    let again = status_write(StatusInput { last_written: Some(&said), ..input(&p, None, &view, ProtonStatus::Stopped) });
    assert!(again.snapshot.is_none(), "said once");
}

#[test]
fn a_candidate_proton_does_not_touch_the_workload_and_an_unreachable_agent_keeps_the_snapshot() {
    let p = proton(ProtonStatus::Running, Some("a1"));
    let w = workload("other", ProtonStatus::Running);
    let view = AgentView::Unreachable("agent a1 is gone".into());
    let write = status_write(input(&p, Some(&w), &view, ProtonStatus::Unknown));
    assert!(write.workload.is_none(), "the workload shows its active proton only");
    assert!(write.snapshot.is_none(), "nothing new is known about the replicas");
    assert_eq!(write.proton.expect("changed").status, ProtonStatus::Unknown);
}
