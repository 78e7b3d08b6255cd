//! One process of a replica: a child this agent spawned, or one that an earlier agent spawned and
//! this one adopted. An adopted process is not our child, so its exit is noticed by polling /proc
//! and its exit status is unknown.

use std::io;
use std::process::ExitStatus;
use std::time::Duration;

use tokio::process::Child;

use super::pid::ProcessId;
use super::spawn::signal_group;

/// How often an adopted process is checked for having exited.
const ADOPTED_POLL: Duration = Duration::from_millis(250);

pub(crate) struct Incarnation {
    /// Kept: a child that has been waited for no longer tells its pid.
    pid: u32,
    kind: Kind,
}

enum Kind {
    Child(Child),
    Adopted(ProcessId),
}

impl Incarnation {
    pub(crate) fn spawned(child: Child) -> Incarnation {
        Incarnation { pid: child.id().unwrap_or_default(), kind: Kind::Child(child) }
    }

    pub(crate) fn adopted(process: ProcessId) -> Incarnation {
        Incarnation { pid: process.pid, kind: Kind::Adopted(process) }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Resolves once the process has exited, with its status when it is our child. Cancel-safe.
    pub(crate) async fn wait(&mut self) -> Option<io::Result<ExitStatus>> {
        match &mut self.kind {
            Kind::Child(child) => Some(child.wait().await),
            Kind::Adopted(process) => {
                while process.is_running() {
                    tokio::time::sleep(ADOPTED_POLL).await;
                }
                None
            }
        }
    }

    /// Sends `signal` to the process group the process leads (which may outlive it). For an
    /// adopted process, nothing is sent once its pid belongs to another process.
    pub(crate) fn signal_group(&self, signal: libc::c_int) {
        match &self.kind {
            Kind::Child(_) => signal_group(self.pid, signal),
            Kind::Adopted(process) if process.owns_its_group() => signal_group(self.pid, signal),
            Kind::Adopted(_) => {
                tracing::debug!(pid = self.pid, "the pid is another process's now: not signalling it");
            }
        }
    }
}
