use nucleus_api::replacement::{GateReading, ReplacementConfig, ReplacementStrategy, RollbackGate};
use nucleus_api::{Container, WorkloadRuntime};

use super::*;

type Now = chrono::DateTime<chrono::Utc>;

fn now() -> Now {
    "2026-11-23T10:00:00Z".parse().unwrap()
}

fn artifact_info(id: &str) -> nucleus_api::artifact::ArtifactInfo {
    serde_json::from_value(serde_json::json!({"id": id})).unwrap()
}

fn proton(id: &str, role: Option<ProtonRole>, status: ProtonStatus) -> Proton {
    Proton {
        id: id.into(),
        name: id.into(),
        workload_id: "w".into(),
        artifact_id: if id == "new" { "a2".into() } else { "a1".into() },
        role,
        status,
        status_details: Default::default(),
        endpoint: None,
        runtime: WorkloadRuntime::default(),
        running_since: (status == ProtonStatus::Running).then(now),
        replica_count: 1,
        created_at: now(),
        updated_at: now(),
        desired_state: DesiredState::Running,
        generation: 1,
        container: Container::default(),
        agent: None,
        message: None,
        traceparent: None,
    }
}

fn workload(status: ReplacementStatus, warmup_minutes: u32, switched_at: Option<Now>) -> Workload {
    let record = Replacement {
        id: "r".into(),
        name: "r".into(),
        workload_id: "w".into(),
        candidate_artifact_id: "a2".into(),
        candidate_proton_ids: vec!["new".into()],
        previous_proton_ids: vec!["old".into()],
        status,
        strategy: ReplacementStrategy::Rolling,
        config: ReplacementConfig { warmup_duration_minutes: warmup_minutes, keep_old_version_minutes: 0, rollback: None },
        runtime: None,
        message: None,
        switched_at,
        canary_started_at: None,
        created_at: now(),
        updated_at: now(),
        deleted_at: None,
        is_deleted: false,
        tenant_id: String::new(),
        user_id: String::new(),
    };
    let mut w: Workload = serde_json::from_value(serde_json::json!({
        "id": "w", "name": "w", "description": "", "status": "running", "importance": "low", "type": "service",
        "artifactId": "a1", "artifact": {"id": "a1"}, "runtime": {}, "protonId": "old", "creator": null,
        "createdAt": "2026-11-23T09:00:00Z", "updatedAt": "2026-11-23T09:00:00Z", "desiredState": "running"
    }))
    .unwrap();
    w.replacement = Some(record.clone());
    w
}

fn run(w: &Workload, protons: &[Proton], at: Now) -> Option<Step> {
    step(w, |id| protons.iter().find(|p| p.id == id), Some(artifact_info("a2")), None, at)
}

fn run_gated(w: &Workload, protons: &[Proton], reading: GateReading, at: Now) -> Option<Step> {
    step(w, |id| protons.iter().find(|p| p.id == id), Some(artifact_info("a1")), Some(reading), at)
}

fn gated(status: ReplacementStatus) -> Workload {
    let mut w = workload(status, 0, None);
    let record = w.replacement.as_mut().unwrap();
    record.config.rollback =
        Some(RollbackGate { max_error_rate: 0.05, max_p95_latency_ms: None, window: "PT1M".into(), canary_percent: 10, min_requests: 20 });
    w
}

/// Applies a step's writes, as the worker does.
fn apply(step: &Step, protons: &mut Vec<Proton>) -> Workload {
    for written in &step.protons {
        protons.retain(|p| p.id != written.id);
        protons.push(written.clone());
    }
    step.workload.clone().expect("the workload is written")
}

#[test]
fn a_gated_candidate_is_a_canary_for_a_window_then_takes_all_traffic_with_the_old_proton_kept_for_another() {
    let mut protons = vec![
        proton("old", Some(ProtonRole::Active), ProtonStatus::Running),
        proton("new", Some(ProtonRole::Candidate), ProtonStatus::Running),
    ];
    let healthy = GateReading { requests: 100, server_errors: 1, p95_ms: 20.0 };
    let canary = run_gated(&gated(ReplacementStatus::Initializing), &protons, healthy, now()).expect("the canary starts");
    let w = apply(&canary, &mut protons);
    let record = w.replacement.clone().unwrap();
    assert_eq!((record.status, record.canary_started_at), (ReplacementStatus::Promoting, Some(now())));
    assert_eq!(w.proton_id.as_deref(), Some("old"), "the canary does not move the workload");
    assert!(canary.event.as_ref().is_some_and(|(kind, text)| *kind == "replacementCanary" && text.contains("10%")), "{:?}", canary.event);

    let half = now() + chrono::Duration::seconds(30);
    assert!(run_gated(&w, &protons, healthy, half).is_none(), "the canary window is not over");
    let after = now() + chrono::Duration::seconds(61);
    let switch = run_gated(&w, &protons, healthy, after).expect("the switch");
    let w = apply(&switch, &mut protons);
    assert_eq!((w.proton_id.as_deref(), w.replacement.as_ref().unwrap().status), (Some("new"), ReplacementStatus::Finalizing));
    assert!(switch.event.as_ref().is_some_and(|(_, text)| text.contains("held the gate (100 requests")), "{:?}", switch.event);

    // The old proton is kept for the second window (longer than the drain), then stopped.
    assert!(run_gated(&w, &protons, healthy, after + chrono::Duration::seconds(30)).is_none());
    let drained = run_gated(&w, &protons, healthy, after + chrono::Duration::seconds(61)).expect("drained");
    assert_eq!(drained.protons[0].id, "old");
    assert_eq!(drained.protons[0].desired_state, DesiredState::Stopped);
}

#[test]
fn a_canary_that_breaks_the_gate_is_stopped_and_the_replacement_errs_with_the_measurements() {
    let protons = vec![
        proton("old", Some(ProtonRole::Active), ProtonStatus::Running),
        proton("new", Some(ProtonRole::Candidate), ProtonStatus::Running),
    ];
    let mut w = gated(ReplacementStatus::Promoting);
    w.replacement.as_mut().unwrap().canary_started_at = Some(now());
    let few = GateReading { requests: 5, server_errors: 5, p95_ms: 1.0 };
    assert!(run_gated(&w, &protons, few, now() + chrono::Duration::seconds(5)).is_none(), "too few requests to judge");
    let failing = GateReading { requests: 25, server_errors: 25, p95_ms: 1.0 };
    let step = run_gated(&w, &protons, failing, now() + chrono::Duration::seconds(10)).expect("rolled back");
    let record = step.workload.as_ref().unwrap().replacement.clone().unwrap();
    assert_eq!(record.status, ReplacementStatus::Errored);
    assert_eq!(step.workload.as_ref().unwrap().proton_id.as_deref(), Some("old"));
    assert_eq!((step.protons[0].id.as_str(), step.protons[0].desired_state), ("new", DesiredState::Stopped));
    let (kind, text) = step.event.clone().unwrap();
    assert_eq!(kind, "replacementRolledBack");
    assert!(text.contains("error rate 100.0% > 5.0%") && text.contains("25 requests, 25 server errors"), "{text}");
    assert!(step.history.is_some());
}

#[test]
fn a_breach_after_the_switch_gives_the_traffic_back_to_the_old_proton() {
    let protons = vec![proton("old", None, ProtonStatus::Running), proton("new", Some(ProtonRole::Active), ProtonStatus::Running)];
    let mut w = gated(ReplacementStatus::Finalizing);
    w.replacement.as_mut().unwrap().switched_at = Some(now());
    w.proton_id = Some("new".into());
    w.artifact_id = Some("a2".into());
    let failing = GateReading { requests: 50, server_errors: 10, p95_ms: 1.0 };
    let step = run_gated(&w, &protons, failing, now() + chrono::Duration::seconds(20)).expect("rolled back");
    let back = step.workload.clone().unwrap();
    assert_eq!((back.proton_id.as_deref(), back.artifact_id.as_deref()), (Some("old"), Some("a1")));
    assert_eq!(back.artifact, Some(artifact_info("a1")));
    assert_eq!(back.replacement.unwrap().status, ReplacementStatus::Errored);
    let old = step.protons.iter().find(|p| p.id == "old").unwrap();
    let new = step.protons.iter().find(|p| p.id == "new").unwrap();
    assert_eq!((old.role, old.desired_state), (Some(ProtonRole::Active), DesiredState::Running));
    assert_eq!((new.role, new.desired_state), (None, DesiredState::Stopped));
    // Past the second window the gate no longer judges: the old proton drains as usual.
    let late = run_gated(&w, &protons, failing, now() + chrono::Duration::seconds(61)).expect("drain");
    assert_eq!((late.protons[0].id.as_str(), late.protons[0].desired_state), ("old", DesiredState::Stopped));
}

fn status_after(step: &Step) -> Option<ReplacementStatus> {
    step.workload.as_ref().and_then(Workload::replacement_record).map(|r| r.status)
}

#[test]
fn a_ready_candidate_takes_the_traffic_after_its_warm_up_in_one_write() {
    let old = proton("old", Some(ProtonRole::Active), ProtonStatus::Running);
    let starting = proton("new", Some(ProtonRole::Candidate), ProtonStatus::Launching);
    let w = workload(ReplacementStatus::Submitted, 2, None);
    let s = run(&w, &[old.clone(), starting], now()).unwrap();
    assert_eq!(status_after(&s), Some(ReplacementStatus::Initializing));

    let ready = proton("new", Some(ProtonRole::Candidate), ProtonStatus::Running);
    let w = workload(ReplacementStatus::Initializing, 2, None);
    let s = run(&w, &[old.clone(), ready.clone()], now()).unwrap();
    assert_eq!(status_after(&s), Some(ReplacementStatus::Promoting), "warming up first");
    assert_eq!(s.workload.unwrap().proton_id.as_deref(), Some("old"), "no traffic before the warm-up");
    let w = workload(ReplacementStatus::Promoting, 2, None);
    assert!(run(&w, &[old.clone(), ready.clone()], now() + chrono::Duration::seconds(60)).is_none());
    assert_eq!(shown_status(&w, &ready, ProtonStatus::Running), ProtonStatus::Warming);

    let s = run(&w, &[old.clone(), ready], now() + chrono::Duration::minutes(2)).unwrap();
    let switched = s.workload.clone().unwrap();
    assert_eq!((switched.proton_id.as_deref(), switched.artifact_id.as_deref()), (Some("new"), Some("a2")));
    assert_eq!(switched.artifact.unwrap().id, "a2");
    assert_eq!(status_after(&s), Some(ReplacementStatus::Finalizing));
    let roles: Vec<(&str, Option<ProtonRole>)> = s.protons.iter().map(|p| (p.id.as_str(), p.role)).collect();
    assert_eq!(roles, [("new", Some(ProtonRole::Active)), ("old", None)]);
}

#[test]
fn the_old_proton_drains_then_stops_and_the_record_goes_to_the_history() {
    let switched_at = now();
    let w = workload(ReplacementStatus::Finalizing, 0, Some(switched_at));
    let new = proton("new", Some(ProtonRole::Active), ProtonStatus::Running);
    let old = proton("old", None, ProtonStatus::Running);
    assert_eq!(shown_status(&w, &old, ProtonStatus::Running), ProtonStatus::Draining);
    assert!(run(&w, &[old.clone(), new.clone()], switched_at + chrono::Duration::seconds(2)).is_none(), "draining");
    let s = run(&w, &[old.clone(), new.clone()], switched_at + chrono::Duration::seconds(6)).unwrap();
    assert_eq!(s.protons.len(), 1);
    assert_eq!((s.protons[0].id.as_str(), s.protons[0].desired_state), ("old", DesiredState::Stopped));
    let mut stopping = old.clone();
    stopping.desired_state = DesiredState::Stopped;
    stopping.status = ProtonStatus::Stopping;
    assert!(run(&w, &[stopping.clone(), new.clone()], switched_at + chrono::Duration::seconds(8)).is_none());
    stopping.status = ProtonStatus::Stopped;
    let s = run(&w, &[stopping, new], switched_at + chrono::Duration::seconds(9)).unwrap();
    assert_eq!(s.forget, ["old"]);
    assert!(s.workload.unwrap().replacement.is_none());
    assert_eq!(s.history.unwrap().status, ReplacementStatus::Completed);
}

#[test]
fn a_failed_candidate_ends_it_errored_and_the_old_proton_keeps_serving() {
    let old = proton("old", Some(ProtonRole::Active), ProtonStatus::Running);
    let mut failed = proton("new", Some(ProtonRole::Candidate), ProtonStatus::Errored);
    failed.message = Some("replica exited with code 3".into());
    let w = workload(ReplacementStatus::Initializing, 0, None);
    let s = run(&w, &[old, failed], now()).unwrap();
    let after = s.workload.clone().unwrap();
    assert_eq!(after.proton_id.as_deref(), Some("old"));
    let record = after.replacement_record().unwrap();
    assert_eq!(record.status, ReplacementStatus::Errored);
    assert!(record.message.unwrap().contains("exited with code 3"));
    assert_eq!(s.protons[0].desired_state, DesiredState::Stopped, "the candidate is stopped");
    assert!(run(&after, &[], now()).is_none(), "errored is final");
}

#[test]
fn a_cancel_stops_and_forgets_the_candidate() {
    let w = workload(ReplacementStatus::Deleting, 0, None);
    let candidate = proton("new", Some(ProtonRole::Candidate), ProtonStatus::Running);
    let s = run(&w, std::slice::from_ref(&candidate), now()).unwrap();
    assert_eq!(s.protons[0].desired_state, DesiredState::Stopped);
    assert!(s.workload.is_none());
    let mut gone = candidate;
    gone.desired_state = DesiredState::Stopped;
    gone.status = ProtonStatus::Stopped;
    let s = run(&w, &[gone], now()).unwrap();
    assert_eq!(s.forget, ["new"]);
    assert!(s.workload.unwrap().replacement.is_none());
    assert!(s.history.unwrap().is_deleted);
}
