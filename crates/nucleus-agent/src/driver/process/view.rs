//! What a replica looks like from outside, kept up to date by its supervisor and turned into a
//! `ReplicaStatus` for reports.

use chrono::{DateTime, Utc};
use nucleus_proto::agent::v1::{Condition, ContainerStatus, ReplicaStatus};

use super::logs::{LogFile, REPORTED_LINES};
use super::pid::ProcessId;
use super::state_file::{Failure, ReplicaRecord};
use crate::status::rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Pending,
    Running,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContainerState {
    Waiting,
    Running,
    Terminated,
}

/// A Kubernetes-style condition: whether it holds and since when.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flag {
    met: bool,
    since: DateTime<Utc>,
}

impl Flag {
    fn new(met: bool) -> Flag {
        Flag { met, since: nucleus_api::clock::now() }
    }

    fn set(&mut self, met: bool) {
        if self.met != met {
            *self = Flag::new(met);
        }
    }

    fn to_condition(self, kind: &str) -> Condition {
        Condition { r#type: kind.to_owned(), met: self.met, since: rfc3339(self.since) }
    }
}

pub(crate) struct ReplicaView {
    pub name: String,
    pub port: u16,
    pub container_name: String,
    pub image: String,
    pub created_at: DateTime<Utc>,
    pub phase: Phase,
    pub container: ContainerState,
    /// Why the container is waiting or terminated.
    pub reason: String,
    /// The process that runs now, if any.
    pub process: Option<ProcessId>,
    /// When the current (or last) process started.
    pub process_started_at: Option<DateTime<Utc>>,
    pub restart_count: u32,
    /// Whether any process of this replica was ever ready.
    pub ever_ready: bool,
    pub error: Option<String>,
    initialized: Flag,
    ready: Flag,
    pub logs: LogFile,
    /// Whether the current process is held to its bundle's CPU and memory (a cgroup).
    pub resources_enforced: bool,
}

impl ReplicaView {
    pub(crate) fn new(name: String, port: u16, container_name: String, image: String, logs: LogFile) -> ReplicaView {
        ReplicaView {
            name,
            port,
            container_name,
            image,
            created_at: nucleus_api::clock::now(),
            phase: Phase::Pending,
            container: ContainerState::Waiting,
            reason: "ContainerCreating".into(),
            process: None,
            process_started_at: None,
            restart_count: 0,
            ever_ready: false,
            error: None,
            initialized: Flag::new(false),
            ready: Flag::new(false),
            logs,
            resources_enforced: false,
        }
    }

    /// The view an earlier agent recorded: running if its process was, failed if it had failed,
    /// waiting to be started otherwise.
    pub(crate) fn from_record(record: ReplicaRecord, logs: LogFile, container_name: String, image: String) -> ReplicaView {
        let mut view = ReplicaView::new(record.name, record.port, container_name, image, logs);
        view.created_at = record.created_at;
        view.process_started_at = record.process_started_at;
        view.restart_count = record.restart_count;
        view.ever_ready = record.ever_ready;
        if let Some(failure) = record.failure {
            view.fail(&failure.reason, failure.message);
        } else if record.process.is_some() {
            view.phase = Phase::Running;
            view.container = ContainerState::Running;
            view.reason.clear();
            view.initialized.set(true);
            view.ready.set(record.ready);
            view.process = record.process;
            view.resources_enforced = record.process.is_some_and(|p| super::cgroups::holds(p.pid, &view.name));
        }
        view
    }

    /// What the state file keeps of this replica.
    pub(crate) fn record(&self) -> ReplicaRecord {
        ReplicaRecord {
            name: self.name.clone(),
            port: self.port,
            log: self.logs.path().to_owned(),
            process: self.process,
            created_at: self.created_at,
            process_started_at: self.process_started_at,
            restart_count: self.restart_count,
            ever_ready: self.ever_ready,
            ready: self.ready.met,
            failure: (self.phase == Phase::Failed)
                .then(|| Failure { reason: self.reason.clone(), message: self.error.clone().unwrap_or_default() }),
        }
    }

    /// `process` (None if its start time could not be read) was just spawned.
    pub(crate) fn process_started(&mut self, process: Option<ProcessId>) {
        self.phase = Phase::Running;
        self.container = ContainerState::Running;
        self.reason.clear();
        self.process = process;
        self.process_started_at = Some(nucleus_api::clock::now());
        self.initialized.set(true);
        self.ready.set(false);
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready.met
    }

    pub(crate) fn set_ready(&mut self, ready: bool) {
        self.ever_ready |= ready;
        self.ready.set(ready);
    }

    /// Waiting to be restarted after the process went away.
    pub(crate) fn back_off(&mut self, reason: &str) {
        self.phase = Phase::Pending;
        self.container = ContainerState::Waiting;
        self.reason = reason.to_owned();
        self.process = None;
        self.ready.set(false);
    }

    /// Failed for good; it will not be restarted.
    pub(crate) fn fail(&mut self, reason: &str, error: String) {
        self.phase = Phase::Failed;
        self.container = ContainerState::Terminated;
        self.reason = reason.to_owned();
        self.process = None;
        self.ready.set(false);
        self.error = Some(error);
    }

    /// The process is gone because the replica was stopped.
    pub(crate) fn stopped(&mut self) {
        self.container = ContainerState::Terminated;
        self.reason = "Completed".into();
        self.process = None;
        self.ready.set(false);
    }

    /// `host`: where the agent's replicas listen.
    pub(crate) fn to_status(&self, node_address: &str, host: std::net::IpAddr) -> ReplicaStatus {
        let scheduled = Flag { met: true, since: self.created_at };
        ReplicaStatus {
            name: self.name.clone(),
            address: std::net::SocketAddr::new(host, self.port).to_string(),
            node_address: node_address.to_owned(),
            started_at: rfc3339(self.created_at),
            phase: match self.phase {
                Phase::Pending => "pending",
                Phase::Running => "running",
                Phase::Failed => "failed",
            }
            .into(),
            conditions: vec![
                scheduled.to_condition("PodScheduled"),
                self.initialized.to_condition("Initialized"),
                self.ready.to_condition("ContainersReady"),
                self.ready.to_condition("Ready"),
                Flag { met: self.resources_enforced, since: self.process_started_at.unwrap_or(self.created_at) }
                    .to_condition("ResourcesEnforced"),
            ],
            containers: vec![ContainerStatus {
                name: self.container_name.clone(),
                image: self.image.clone(),
                ready: self.ready.met,
                restart_count: self.restart_count,
                started_at: self.process_started_at.map(rfc3339).unwrap_or_default(),
                status: match self.container {
                    ContainerState::Waiting => "waiting",
                    ContainerState::Running => "running",
                    ContainerState::Terminated => "terminated",
                }
                .into(),
                reason: self.reason.clone(),
            }],
            log_tail: self.logs.tail(REPORTED_LINES),
            error: self.error.clone().unwrap_or_default(),
        }
    }
}
