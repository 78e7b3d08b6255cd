//! One replica: a supervisor task that runs its process (or follows the one an earlier agent
//! left running), follows its probes, restarts it when it crashes or stops being live, and stops
//! it on request.

use std::future::Future;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::incarnation::Incarnation;
use super::logs::{COLLECT_EVERY, LogFile};
use super::pid::ProcessId;
use super::prober::{ProbeEvent, Prober};
use super::sandbox::Sandbox;
use super::spawn;
use super::state_file::ReplicaRecord;
use super::view::{Phase, ReplicaView};
use crate::Error;
use crate::driver::ProtonSpec;

/// How often a running replica's log files are checked against [`MAX_LOG_BYTES`] (their new
/// lines are read every [`COLLECT_EVERY`]).
const LOG_CHECK: Duration = Duration::from_secs(10);
/// A replica's log file is rotated past this size: its older half of the output goes to `<file>.1`
/// (replacing the one before), so a chatty replica keeps at most about twice this on disk.
pub(crate) const MAX_LOG_BYTES: u64 = 64 * 1024 * 1024;

/// Grace given to a process killed because it failed a probe.
const FAILURE_GRACE: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A process that ran this long before crashing starts the backoff over.
const STABLE_RUN: Duration = Duration::from_secs(60);

/// Called after every change of a replica's view, to publish its proton's report (and keep it
/// in the state file).
pub(crate) type Publish = Arc<dyn Fn() + Send + Sync>;

/// The driver's handle on a running replica.
pub(crate) struct ReplicaHandle {
    view: Arc<Mutex<ReplicaView>>,
    stop: Arc<watch::Sender<Option<Duration>>>,
    /// Its sender lives as long as the supervisor task: closed means every process is gone.
    done: watch::Receiver<()>,
}

impl ReplicaHandle {
    /// Starts the supervisor of replica `index` of `spec`, listening on `port`, writing to `log`.
    pub(crate) fn start(
        spec: Arc<ProtonSpec>,
        index: u32,
        port: io::Result<u16>,
        log: LogFile,
        client: reqwest::Client,
        sandbox: Arc<Sandbox>,
        publish: Publish,
    ) -> ReplicaHandle {
        let name = format!("{}-{index}", spec.proton_id);
        let (container_name, image) = container_of(&spec);
        let mut view = ReplicaView::new(name, *port.as_ref().unwrap_or(&0), container_name, image, log);
        let supervised = match port {
            Ok(_) => true,
            Err(err) => {
                view.fail("Error", format!("cannot choose a port: {err}"));
                false
            }
        };
        let supervised = supervised.then_some(None);
        ReplicaHandle::supervise(spec, view, supervised, None, client, sandbox, publish)
    }

    /// Resumes a replica an earlier agent recorded: follows its process if that still runs,
    /// handles it as a crash if not, and reports a failed replica as failed. With `stopping`,
    /// the replica was being stopped: it is stopped with that grace and nothing is restarted.
    pub(crate) fn adopt(
        spec: Arc<ProtonSpec>,
        record: ReplicaRecord,
        log: LogFile,
        stopping: Option<Duration>,
        client: reqwest::Client,
        sandbox: Arc<Sandbox>,
        publish: Publish,
    ) -> ReplicaHandle {
        let process = record.process;
        let (container_name, image) = container_of(&spec);
        let view = ReplicaView::from_record(record, log, container_name, image);
        let supervised = (view.phase != Phase::Failed).then_some(process);
        ReplicaHandle::supervise(spec, view, supervised, stopping, client, sandbox, publish)
    }

    /// Without `supervised` the replica is over (failed) and no task is started; with it, the
    /// supervisor starts with the given process, or spawns one unless `stopping` already.
    fn supervise(
        spec: Arc<ProtonSpec>,
        view: ReplicaView,
        supervised: Option<Option<ProcessId>>,
        stopping: Option<Duration>,
        client: reqwest::Client,
        sandbox: Arc<Sandbox>,
        publish: Publish,
    ) -> ReplicaHandle {
        let port = view.port;
        let view = Arc::new(Mutex::new(view));
        let (stop, stop_rx) = watch::channel(stopping);
        let (done_tx, done) = watch::channel(());
        if let Some(process) = supervised {
            let launched_by = Mutex::new(Some(tracing::Span::current()));
            let supervisor =
                Supervisor { spec, port, view: view.clone(), stop: stop_rx, client, sandbox, publish, launched_by, _done: done_tx };
            tokio::spawn(supervisor.run(process));
        }
        ReplicaHandle { view, stop: Arc::new(stop), done }
    }

    pub(crate) fn view(&self) -> MutexGuard<'_, ReplicaView> {
        lock(&self.view)
    }

    /// Asks the replica to stop: SIGTERM, then SIGKILL after `grace` (the shortest grace asked).
    pub(crate) fn stop(&self, grace: Duration) {
        ask_stop(&self.stop, grace);
    }

    /// Stops it after `drain`: time for the gateways to stop routing to it (it is no longer
    /// reported) before it is signalled. An earlier [`Self::stop`] still wins.
    pub(crate) fn stop_after(&self, drain: Duration, grace: Duration) {
        let stop = self.stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(drain).await;
            ask_stop(&stop, grace);
        });
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

/// The container's reported name ("main" when it has none) and image.
fn container_of(spec: &ProtonSpec) -> (String, String) {
    let name = match spec.container.name.as_str() {
        "" => "main".to_owned(),
        name => name.to_owned(),
    };
    (name, spec.container.image_uri.clone())
}

fn ask_stop(stop: &watch::Sender<Option<Duration>>, grace: Duration) {
    stop.send_modify(|asked| *asked = Some(asked.map_or(grace, |earlier| earlier.min(grace))));
}

fn lock<T>(view: &Mutex<T>) -> MutexGuard<'_, T> {
    // A view stays consistent even if a holder panicked: every update is a few plain assignments.
    view.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Supervisor {
    spec: Arc<ProtonSpec>,
    port: u16,
    view: Arc<Mutex<ReplicaView>>,
    stop: watch::Receiver<Option<Duration>>,
    client: reqwest::Client,
    sandbox: Arc<Sandbox>,
    publish: Publish,
    /// The Launch this replica was started by, taken by the first spawn: its span continues
    /// that trace (a restart later is not part of the create).
    launched_by: Mutex<Option<tracing::Span>>,
    _done: watch::Sender<()>,
}

/// What the supervisor does next.
enum Next {
    Spawn,
    Follow(Incarnation),
    /// A process an earlier agent recorded is gone: it ended while no agent watched it.
    Lost(ProcessId),
}

/// Why a process incarnation ended.
enum Outcome {
    /// With the exit status when the process was our child.
    Exited(Option<io::Result<ExitStatus>>),
    StopRequested,
    Failed {
        reason: &'static str,
        message: String,
    },
    NotLive(String),
}

impl Supervisor {
    /// Runs the replica: first the process an earlier agent recorded (`adopted`), if any, then
    /// processes of its own for as long as the restart policy wants them.
    async fn run(mut self, adopted: Option<ProcessId>) {
        let name = lock(&self.view).name.clone();
        let mut crash_streak = 0;
        let mut next = match adopted {
            None => Next::Spawn,
            Some(process) if process.is_running() => {
                tracing::info!(
                    replica = %name, pid = process.pid, port = self.port,
                    "adopted a running replica process"
                );
                Next::Follow(Incarnation::adopted(process))
            }
            Some(process) => Next::Lost(process),
        };
        loop {
            let (outcome, ran) = match next {
                Next::Spawn => {
                    if self.stop_requested() {
                        return self.update(ReplicaView::stopped);
                    }
                    match self.spawn(&name) {
                        Ok(process) => self.follow(process).await,
                        Err(error) => {
                            tracing::warn!(replica = %name, %error, "replica failed");
                            return self.update(|view| view.fail("Error", error.to_string()));
                        }
                    }
                }
                Next::Follow(process) => self.follow(process).await,
                Next::Lost(process) => {
                    tracing::warn!(
                        replica = %name, pid = process.pid,
                        "the replica's process ended while the agent was down"
                    );
                    // Whatever it left in its group goes with it.
                    Incarnation::adopted(process).signal_group(libc::SIGKILL);
                    if self.stop_requested() {
                        return self.update(ReplicaView::stopped);
                    }
                    (Outcome::Exited(None), Duration::ZERO)
                }
            };
            next = Next::Spawn;
            match outcome {
                Outcome::Exited(status) => {
                    let status = describe(status.as_ref());
                    if !lock(&self.view).ever_ready {
                        let message = format!("process {status} before becoming ready");
                        tracing::warn!(replica = %name, error = %message, "replica failed");
                        return self.update(|view| view.fail("Error", message));
                    }
                    crash_streak = if ran >= STABLE_RUN { 1 } else { crash_streak + 1 };
                    let backoff = backoff(crash_streak);
                    tracing::warn!(replica = %name, %status, ?backoff, "replica process exited; restarting after a backoff");
                    crate::metrics::metrics().restarts.with(&["process"]).inc();
                    self.update(|view| {
                        view.back_off("CrashLoopBackOff");
                        view.restart_count += 1;
                    });
                    self.sleep_unless_stopped(backoff).await;
                }
                Outcome::StopRequested => {
                    tracing::info!(replica = %name, "replica stopped");
                    return self.update(ReplicaView::stopped);
                }
                Outcome::Failed { reason, message } => {
                    tracing::warn!(replica = %name, error = %message, "replica failed");
                    return self.update(|view| view.fail(reason, message));
                }
                Outcome::NotLive(message) => {
                    tracing::warn!(replica = %name, error = %message, "replica is not live; restarting it");
                    crate::metrics::metrics().restarts.with(&["process"]).inc();
                    self.update(|view| {
                        view.back_off("Unhealthy");
                        view.restart_count += 1;
                    });
                }
            }
        }
    }

    /// Spawns a process and records it in the view.
    fn spawn(&self, name: &str) -> Result<Incarnation, Error> {
        let span = match lock(&self.launched_by).take() {
            Some(launch) => tracing::info_span!(parent: &launch, "replica spawn", replica = %name, pid = tracing::field::Empty),
            None => tracing::info_span!("replica spawn", replica = %name, pid = tracing::field::Empty),
        };
        let _entered = span.enter();
        let log = lock(&self.view).logs.clone();
        let launch = spawn::Launch {
            entrypoint: &self.spec.container.entrypoint,
            env: &self.spec.container.env,
            port: self.port,
            replica: name,
            proton_id: &self.spec.proton_id,
            workload_id: &self.spec.workload_id,
            artifact_id: &self.spec.artifact_id,
            cpu_millis: self.spec.resources.cpu_millis,
            memory_bytes: self.spec.resources.memory_bytes,
        };
        let (child, enforced) = spawn::spawn(&launch, &log, &self.sandbox)?;
        let process = Incarnation::spawned(child);
        lock(&self.view).resources_enforced = enforced;
        let pid = process.pid();
        span.record("pid", pid);
        let id = ProcessId::of(pid);
        if id.is_none() {
            tracing::warn!(
                replica = %name, pid,
                "cannot read the new process's start time: a restarted agent will not adopt it"
            );
        }
        self.update(|view| view.process_started(id));
        tracing::info!(replica = %name, pid, port = self.port, "replica process started");
        Ok(process)
    }

    /// Follows one incarnation until it exits, is asked to stop, or a probe ends it, and makes
    /// sure its process group is gone before returning. Also returns how long it was followed.
    async fn follow(&mut self, mut process: Incarnation) -> (Outcome, Duration) {
        let started = Instant::now();
        let outcome = if self.stop_requested() {
            Outcome::StopRequested
        } else {
            let (ever_ready, ready) = {
                let view = lock(&self.view);
                (view.ever_ready, view.is_ready())
            };
            let (events_tx, mut events) = mpsc::channel(8);
            let prober = Prober::new(self.client.clone(), &self.spec.container, self.sandbox.address(self.port), ever_ready, ready);
            let prober = tokio::spawn(prober.run(events_tx));
            let outcome = self.supervise(&mut process, &mut events).await;
            prober.abort();
            outcome
        };
        match &outcome {
            // Whatever the process left behind in its group goes with it.
            Outcome::Exited(_) => process.signal_group(libc::SIGKILL),
            Outcome::StopRequested => self.terminate(&mut process).await,
            Outcome::Failed { .. } | Outcome::NotLive(_) => self.kill_after(&mut process, FAILURE_GRACE).await,
        }
        (outcome, started.elapsed())
    }

    /// Follows one incarnation until it exits, is asked to stop, or a probe ends it.
    async fn supervise(&mut self, process: &mut Incarnation, events: &mut mpsc::Receiver<ProbeEvent>) -> Outcome {
        let mut collect = tokio::time::interval(COLLECT_EVERY);
        collect.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_check = Instant::now();
        loop {
            tokio::select! {
                status = process.wait() => return Outcome::Exited(status),
                _ = collect.tick() => {
                    let log = lock(&self.view).logs.clone();
                    let check = last_check.elapsed() >= LOG_CHECK;
                    if check {
                        last_check = Instant::now();
                    }
                    // File reads (up to 4 MiB) and a rotation's copy (up to 64 MiB) stay off the
                    // async workers.
                    let read = tokio::task::spawn_blocking(move || if check { log.rotate_if_over(MAX_LOG_BYTES) } else { log.collect(false) });
                    if let Err(err) = read.await {
                        tracing::warn!(error = %err, "reading a replica's log failed; will retry");
                    }
                }
                _ = self.stop.changed() => return Outcome::StopRequested,
                Some(event) = events.recv() => match event {
                    ProbeEvent::Ready(ready) => {
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
    async fn terminate(&mut self, process: &mut Incarnation) {
        process.signal_group(libc::SIGTERM);
        let asked = |stop: &watch::Receiver<Option<Duration>>| stop.borrow().unwrap_or(FAILURE_GRACE);
        let began = Instant::now();
        let deadline = tokio::time::sleep(asked(&self.stop));
        tokio::pin!(deadline);
        let mut stop_open = true;
        loop {
            tokio::select! {
                _ = process.wait() => break,
                () = &mut deadline => {
                    tracing::info!(pid = process.pid(), "grace period over: killing the process group");
                    break;
                }
                changed = self.stop.changed(), if stop_open => match changed {
                    Ok(()) => deadline.as_mut().reset(began + asked(&self.stop)),
                    Err(_) => stop_open = false,
                },
            }
        }
        process.signal_group(libc::SIGKILL);
        let _ = process.wait().await;
    }

    async fn kill_after(&mut self, process: &mut Incarnation, grace: Duration) {
        process.signal_group(libc::SIGTERM);
        if tokio::time::timeout(grace, process.wait()).await.is_err() {
            tracing::info!(pid = process.pid(), "grace period over: killing the process group");
        }
        process.signal_group(libc::SIGKILL);
        let _ = process.wait().await;
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

/// 1 s, 2 s, 4 s … capped at 30 s, for the n-th crash in a row (n ≥ 1).
fn backoff(crash_streak: u32) -> Duration {
    let doublings = crash_streak.saturating_sub(1).min(5);
    (FIRST_BACKOFF * 2u32.pow(doublings)).min(MAX_BACKOFF)
}

/// "exited with status 3" / "was killed by signal 9"; for a process that was not our child the
/// status is unknown.
fn describe(status: Option<&io::Result<ExitStatus>>) -> String {
    let Some(status) = status else {
        return "exited (its exit status is unknown: an earlier agent started it)".to_owned();
    };
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
