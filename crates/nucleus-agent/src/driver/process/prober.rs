//! Runs a replica's startup, readiness and liveness probes for one process incarnation and tells
//! the replica what they concluded.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;

use super::probe::{HttpProbe, tcp_listening};
use crate::Error;
use crate::driver::ContainerSpec;

/// Poll period of the TCP check used when there is no readiness probe, and while a replica that is
/// not ready yet does not even listen (probing as soon as it does: a cold start is then its
/// process's start plus milliseconds, not plus a probe period).
const TCP_POLL: Duration = Duration::from_millis(20);
/// How long a replica without a readiness probe may take to listen the first time.
const TCP_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Debug)]
pub(crate) enum ProbeEvent {
    /// The replica became ready (true) or stopped being ready (false).
    Ready(bool),
    /// The replica failed for good.
    Failed { reason: &'static str, message: String },
    /// Liveness failed: the process is to be restarted.
    NotLive(String),
}

pub(crate) struct Prober {
    pub client: reqwest::Client,
    pub startup: Option<HttpProbe>,
    pub readiness: Option<HttpProbe>,
    pub liveness: Option<HttpProbe>,
    /// Where the replica listens: the agent's replica host and its port.
    pub address: SocketAddr,
    /// Whether an earlier incarnation was ever ready: then readiness failures never fail it.
    pub ever_ready: bool,
    /// Whether the replica is reported ready as this incarnation is followed: an adopted process
    /// keeps its readiness until a probe says otherwise.
    pub ready: bool,
}

impl Prober {
    pub(crate) fn new(client: reqwest::Client, container: &ContainerSpec, address: SocketAddr, ever_ready: bool, ready: bool) -> Prober {
        let probe = |kind, spec: &Option<_>| spec.as_ref().map(|spec| HttpProbe::new(kind, spec, container.port, address));
        Prober {
            client,
            startup: probe("startup", &container.startup_probe),
            readiness: probe("readiness", &container.readiness_probe),
            liveness: probe("liveness", &container.liveness_probe),
            address,
            ever_ready,
            ready,
        }
    }

    /// Runs until a conclusion ends the incarnation, or forever; the replica aborts it.
    pub(crate) async fn run(self, events: mpsc::Sender<ProbeEvent>) {
        if let Some(startup) = &self.startup
            && let Err(error) = self.wait_for_startup(startup).await
        {
            let message = error.to_string();
            let _ = events.send(ProbeEvent::Failed { reason: "StartupProbeFailed", message }).await;
            return;
        }
        tokio::join!(self.run_readiness(&events), self.run_liveness(&events));
    }

    async fn wait_for_startup(&self, startup: &HttpProbe) -> Result<(), Error> {
        tokio::time::sleep(startup.spec.initial_delay).await;
        let mut failures = 0;
        loop {
            match startup.check(&self.client).await {
                Ok(()) => return Ok(()),
                Err(err) => {
                    failures += 1;
                    tracing::debug!(probe = startup.kind, failures, error = %err, "probe failed");
                    if failures >= startup.spec.failure_threshold {
                        return Err(Error::StartupProbe { failures, last: Box::new(err) });
                    }
                }
            }
            tokio::time::sleep(startup.spec.period).await;
        }
    }

    async fn run_readiness(&self, events: &mpsc::Sender<ProbeEvent>) {
        let Some(readiness) = &self.readiness else {
            return self.wait_for_listening(events).await;
        };
        tokio::time::sleep(readiness.spec.initial_delay).await;
        let mut ever_ready = self.ever_ready;
        let mut ready = self.ready;
        let (mut successes, mut failures) = (0, 0);
        loop {
            match readiness.check(&self.client).await {
                Ok(()) => {
                    (successes, failures) = (successes + 1, 0);
                    if !ready && successes >= readiness.spec.success_threshold {
                        (ready, ever_ready) = (true, true);
                        if events.send(ProbeEvent::Ready(true)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(err) => {
                    (successes, failures) = (0, failures + 1);
                    tracing::debug!(probe = readiness.kind, failures, error = %err, "probe failed");
                    if failures >= readiness.spec.failure_threshold {
                        if !ever_ready {
                            let message = format!("readiness probe never passed: {err}");
                            let _ = events.send(ProbeEvent::Failed { reason: "ReadinessProbeFailed", message }).await;
                            return;
                        }
                        if ready {
                            ready = false;
                            if events.send(ProbeEvent::Ready(false)).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
            if ready {
                tokio::time::sleep(readiness.spec.period).await;
            } else {
                self.until_listening(readiness.spec.period).await;
            }
        }
    }

    /// Sleeps `period`, or less: until the replica listens, when it does not yet.
    async fn until_listening(&self, period: Duration) {
        let deadline = tokio::time::Instant::now() + period;
        if tcp_listening(self.address).await {
            tokio::time::sleep_until(deadline).await;
            return;
        }
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(TCP_POLL.min(deadline.saturating_duration_since(tokio::time::Instant::now()))).await;
            if tcp_listening(self.address).await {
                return;
            }
        }
    }

    async fn wait_for_listening(&self, events: &mpsc::Sender<ProbeEvent>) {
        let deadline = tokio::time::Instant::now() + TCP_DEADLINE;
        while !tcp_listening(self.address).await {
            if !self.ever_ready && tokio::time::Instant::now() >= deadline {
                let message = format!("not listening on {} after {}s", self.address, TCP_DEADLINE.as_secs());
                let _ = events.send(ProbeEvent::Failed { reason: "NotListening", message }).await;
                return;
            }
            tokio::time::sleep(TCP_POLL).await;
        }
        let _ = events.send(ProbeEvent::Ready(true)).await;
    }

    async fn run_liveness(&self, events: &mpsc::Sender<ProbeEvent>) {
        let Some(liveness) = &self.liveness else {
            return;
        };
        tokio::time::sleep(liveness.spec.initial_delay).await;
        let mut failures = 0;
        loop {
            match liveness.check(&self.client).await {
                Ok(()) => failures = 0,
                Err(err) => {
                    failures += 1;
                    tracing::debug!(probe = liveness.kind, failures, error = %err, "probe failed");
                    if failures >= liveness.spec.failure_threshold {
                        let message = format!("liveness probe failed {failures} times in a row: {err}");
                        let _ = events.send(ProbeEvent::NotLive(message)).await;
                        return;
                    }
                }
            }
            tokio::time::sleep(liveness.spec.period).await;
        }
    }
}
