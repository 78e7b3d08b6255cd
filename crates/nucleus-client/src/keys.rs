//! Where each document lives in meta. Keys sort so that a prefix lists one kind (or one
//! workload's children).

pub const ARTIFACTS: &str = "artifacts/";
pub const WORKLOADS: &str = "workloads/";
pub const PROTONS: &str = "protons/";
pub const SNAPSHOTS: &str = "snapshots/";
pub const EVENTS: &str = "events/";
pub const AGENTS: &str = "agents/";

pub fn artifact(id: &str) -> String {
    format!("{ARTIFACTS}{id}")
}

pub fn workload(id: &str) -> String {
    format!("{WORKLOADS}{id}")
}

pub fn protons_of(workload_id: &str) -> String {
    format!("{PROTONS}{workload_id}/")
}

pub fn proton(workload_id: &str, proton_id: &str) -> String {
    format!("{PROTONS}{workload_id}/{proton_id}")
}

pub fn snapshots_of(workload_id: &str) -> String {
    format!("{SNAPSHOTS}{workload_id}/")
}

/// The replica status snapshot of a proton, written by the scheduler from agent reports.
pub fn snapshot(workload_id: &str, proton_id: &str) -> String {
    format!("{SNAPSHOTS}{workload_id}/{proton_id}")
}

pub fn events_of(workload_id: &str) -> String {
    format!("{EVENTS}{workload_id}/")
}

/// `event_id` must sort by time (see the gateway's and scheduler's id makers).
pub fn event(workload_id: &str, event_id: &str) -> String {
    format!("{EVENTS}{workload_id}/{event_id}")
}

pub fn agent(name: &str) -> String {
    format!("{AGENTS}{name}")
}

/// The last path segment of a key.
pub fn id_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}
