//! One replica: a supervisor task that runs its process, follows its probes, restarts it when
//! it crashes or stops being live, and stops it on request.

use std::future::Future;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::process::Child;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::logs;
use super::prober::{ProbeEvent, Prober};
use super::spawn::{self, signal_group};
use super::view::ReplicaView;
use crate::driver::ProtonSpec;

/// Grace given to a process killed because it failed a probe.
const FAILURE_GRACE: Duration = Duration::from_secs(2);
/// How long to wait, once a process is gone, for the last of its output.
const LOG_DRAIN: Duration = Duration::from_secs(1);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A process that ran this long before crashing starts the backoff over.
const STABLE_RUN: Duration = Duration::from_secs(60);

/// Called after every change of a replica's view, to publish its proton's report.
pub(crate) type Publish = Arc<dyn Fn() + Send + Sync>;

/// The driver's handle on a running replica.
pub(crate) struct ReplicaHandle {
    view: Arc<Mutex<ReplicaView>>,
    stop: watch::Sender<Option<Duration>>,
    /// Its sender lives as long as the supervisor task: closed means every process is gone.
    done: watch::Receiver<()>,
}

impl ReplicaHandle {
    /// Starts the supervisor of replica `index` of `spec`, listening on `port`.
    pub(crate) fn start(
        spec: Arc<ProtonSpec>,
        index: u32,
        port: io::Result<u16>,
        client: reqwest::Client,
        publish: Publish,
    ) -> ReplicaHandle {
        let name = format!("{}-{index}", spec.proton_id);
        let container_name = match spec.container.name.as_str() {
            "" => "main".to_owned(),
            name => name.to_owned(),
        };
        let view = ReplicaView::new(
            name,
            *port.as_ref().unwrap_or(&0),
            container_name,
            spec.container.image_uri.clone(),
        );
        let view = Arc::new(Mutex::new(view));
        let (stop, stop_rx) = watch::channel(None);
        let (done_tx, done) = watch::channel(());
        match port {
            Ok(port) => {
                let supervisor = Supervisor {
                    spec,
                    port,
                    view: view.clone(),
                    stop: stop_rx,
                    client,
                    publish,
                    _done: done_tx,
                };
                tokio::spawn(supervisor.run());
            }
            Err(err) => {
                lock(&view).fail("Error", format!("cannot choose a port: {err}"));
                drop(done_tx);
            }
        }
        ReplicaHandle { view, stop, done }
    }

    pub(crate) fn view(&self) -> MutexGuard<'_, ReplicaView> {
        lock(&self.view)
    }

    /// Asks the replica to stop: SIGTERM, then SIGKILL after `grace` (the shortest grace asked).
    pub(crate) fn stop(&self, grace: Duration) {
        self.stop
            .send_modify(|asked| *asked = Some(asked.map_or(grace, |earlier| earlier.min(grace))));
    }

    pub(crate) fn is_done(&self) -> bool {
        self.done.has_changed().is_err()
    }

    /// Resolves once the supervisor has ended, i.e. its process is gone.
    pub(crate) fn done(&self) -> impl Future<Output = ()> + Send + use<> {
        let mut done = self.done.clone();
        async move { while done.changed().await.is_ok() {} }
    }
}

fn lock(view: &Mutex<ReplicaView>) -> MutexGuard<'_, ReplicaView> {
    // A view stays consistent even if a holder panicked: every update is a few plain assignments.
    view.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Supervisor {
    spec: Arc<ProtonSpec>,
    port: u16,
    view: Arc<Mutex<ReplicaView>>,
    stop: watch::Receiver<Option<Duration>>,
    client: reqwest::Client,
    publish: Publish,
    _done: watch::Sender<()>,
}

/// Why a process incarnation ended.
enum Outcome {
    Exited(io::Result<ExitStatus>),
    StopRequested,
    Failed {
        reason: &'static str,
        message: String,
    },
    NotLive(String),
}

impl Supervisor {
    async fn run(mut self) {
        let name = lock(&self.view).name.clone();
        let mut ever_ready = false;
        let mut crash_streak = 0;
        loop {
            if self.stop_requested() {
                return self.update(ReplicaView::stopped);
            }
            let entrypoint = &self.spec.container.entrypoint;
            let launch = spawn::Launch {
                entrypoint,
                env: &self.spec.container.env,
                port: self.port,
                replica: &name,
                proton_id: &self.spec.proton_id,
                workload_id: &self.spec.workload_id,
                artifact_id: &self.spec.artifact_id,
            };
            let mut child = match spawn::spawn(&launch) {
                Ok(child) => child,
                Err(message) => {
                    tracing::warn!(replica = %name, error = %message, "replica failed");
                    return self.update(|view| view.fail("Error", message));
                }
            };
            let pid = child.id().unwrap_or_default();
            let logs = lock(&self.view).logs.clone();
            let mut pumps = Vec::new();
            if let Some(stdout) = child.stdout.take() {
                pumps.push(logs::pump(stdout, logs.clone(), name.clone(), "stdout"));
            }
            if let Some(stderr) = child.stderr.take() {
                pumps.push(logs::pump(stderr, logs, name.clone(), "stderr"));
            }
            let started = Instant::now();
            self.update(ReplicaView::process_started);
            tracing::info!(replica = %name, pid, port = self.port, "replica process started");

            let (events_tx, mut events) = mpsc::channel(8);
            let prober = Prober::new(
                self.client.clone(),
                &self.spec.container,
                self.port,
                ever_ready,
            );
            let prober = tokio::spawn(prober.run(events_tx));
            let outcome = self
                .supervise(&mut child, &mut events, &mut ever_ready)
                .await;
            prober.abort();

            match outcome {
                Outcome::Exited(status) => {
                    // Whatever the process left behind in its group goes with it.
                    signal_group(pid, libc::SIGKILL);
                    drain(pumps).await;
                    let status = describe(&status);
                    if !ever_ready {
                        let message = format!("process {status} before becoming ready");
                        tracing::warn!(replica = %name, error = %message, "replica failed");
                        return self.update(|view| view.fail("Error", message));
                    }
                    crash_streak = if started.elapsed() >= STABLE_RUN {
                        1
                    } else {
                        crash_streak + 1
                    };
                    let backoff = backoff(crash_streak);
                    tracing::warn!(replica = %name, %status, ?backoff, "replica process exited; restarting after a backoff");
                    self.update(|view| {
                        view.back_off("CrashLoopBackOff");
                        view.restart_count += 1;
                    });
                    self.sleep_unless_stopped(backoff).await;
                }
                Outcome::StopRequested => {
                    self.terminate(&mut child, pid).await;
                    drain(pumps).await;
                    tracing::info!(replica = %name, "replica stopped");
                    return self.update(ReplicaView::stopped);
                }
                Outcome::Failed { reason, message } => {
                    tracing::warn!(replica = %name, error = %message, "replica failed");
                    self.kill_after(&mut child, pid, FAILURE_GRACE).await;
                    drain(pumps).await;
                    return self.update(|view| view.fail(reason, message));
                }
                Outcome::NotLive(message) => {
                    tracing::warn!(replica = %name, error = %message, "replica is not live; restarting it");
                    self.kill_after(&mut child, pid, FAILURE_GRACE).await;
                    drain(pumps).await;
                    self.update(|view| {
                        view.back_off("Unhealthy");
                        view.restart_count += 1;
                    });
                }
            }
        }
    }

    /// Follows one incarnation until it exits, is asked to stop, or a probe ends it.
    async fn supervise(
        &mut self,
        child: &mut Child,
        events: &mut mpsc::Receiver<ProbeEvent>,
        ever_ready: &mut bool,
    ) -> Outcome {
        loop {
            tokio::select! {
                status = child.wait() => return Outcome::Exited(status),
                _ = self.stop.changed() => return Outcome::StopRequested,
                Some(event) = events.recv() => match event {
                    ProbeEvent::Ready(ready) => {
                        *ever_ready |= ready;
                        tracing::info!(replica = %lock(&self.view).name, ready, "replica readiness changed");
                        self.update(|view| view.set_ready(ready));
                    }
                    ProbeEvent::Failed { reason, message } => return Outcome::Failed { reason, message },
                    ProbeEvent::NotLive(message) => return Outcome::NotLive(message),
                },
            }
        }
    }

    /// SIGTERM to the process group, SIGKILL once the grace asked for by Stop runs out. A later,
    /// shorter grace (e.g. from a shutdown) cuts the wait short.
    async fn terminate(&mut self, child: &mut Child, pid: u32) {
        signal_group(pid, libc::SIGTERM);
        let asked =
            |stop: &watch::Receiver<Option<Duration>>| stop.borrow().unwrap_or(FAILURE_GRACE);
        let began = Instant::now();
        let deadline = tokio::time::sleep(asked(&self.stop));
        tokio::pin!(deadline);
        let mut stop_open = true;
        loop {
            tokio::select! {
                _ = child.wait() => break,
                () = &mut deadline => {
                    tracing::info!(pid, "grace period over: killing the process group");
                    break;
                }
                changed = self.stop.changed(), if stop_open => match changed {
                    Ok(()) => deadline.as_mut().reset(began + asked(&self.stop)),
                    Err(_) => stop_open = false,
                },
            }
        }
        signal_group(pid, libc::SIGKILL);
        let _ = child.wait().await;
    }

    async fn kill_after(&mut self, child: &mut Child, pid: u32, grace: Duration) {
        signal_group(pid, libc::SIGTERM);
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            tracing::info!(pid, "grace period over: killing the process group");
        }
        signal_group(pid, libc::SIGKILL);
        let _ = child.wait().await;
    }

    fn stop_requested(&mut self) -> bool {
        self.stop.borrow_and_update().is_some() || self.stop.has_changed().is_err()
    }

    async fn sleep_unless_stopped(&mut self, duration: Duration) {
        tokio::select! {
            () = tokio::time::sleep(duration) => {}
            _ = self.stop.changed() => {}
        }
    }

    fn update(&self, change: impl FnOnce(&mut ReplicaView)) {
        change(&mut lock(&self.view));
        (self.publish)();
    }
}

async fn drain(pumps: Vec<JoinHandle<()>>) {
    let _ = tokio::time::timeout(LOG_DRAIN, futures::future::join_all(pumps)).await;
}

/// 1 s, 2 s, 4 s … capped at 30 s, for the n-th crash in a row (n ≥ 1).
fn backoff(crash_streak: u32) -> Duration {
    let doublings = crash_streak.saturating_sub(1).min(5);
    (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

/// "exited with status 3" / "was killed by signal 9".
fn describe(status: &io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(signal)) => format!("was killed by signal {signal}"),
            (None, None) => format!("exited ({status})"),
        },
        Err(err) => format!("exited with an unknown status ({err})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        let secs: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
