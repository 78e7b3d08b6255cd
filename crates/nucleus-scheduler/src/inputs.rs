//! Everything the worker reacts to, as one stream of [`Input`]s: meta watches and agent status
//! streams, each re-established when it breaks.

use std::time::Duration;

use nucleus_client::{AgentClient, GatewayClient, MetaClient, WatchEvent};
use nucleus_proto::agent::v1::{ProtonReport, ProtonUsage, UsageQuery};
use nucleus_proto::gateway::v1::LoadReport;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const RETRY_AFTER: Duration = Duration::from_millis(300);

#[derive(Debug)]
pub enum Input {
    Meta {
        prefix: &'static str,
        event: WatchEvent,
    },
    /// The agent's status stream is open: what it reports (or does not) is current.
    AgentConnected {
        agent: String,
    },
    Report {
        agent: String,
        report: ProtonReport,
    },
    /// The agent's status stream broke: what it said is no longer known to be true.
    AgentLost {
        agent: String,
    },
    /// A gateway's request load (every second, or at once when it holds requests at zero).
    Load(LoadReport),
    /// An agent's answer to the usage poll: CPU use and scraped metrics of replicas.
    Usage(Vec<ProtonUsage>),
}

/// Asks the agent every second for the usage `queries` name (nothing while they are empty).
pub fn poll_usage(
    name: String,
    client: AgentClient,
    queries: tokio::sync::watch::Receiver<Vec<UsageQuery>>,
    tx: mpsc::Sender<Input>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let asked = queries.borrow().clone();
            if asked.is_empty() {
                continue;
            }
            match client.usage(asked).await {
                Ok(protons) => {
                    if tx.send(Input::Usage(protons)).await.is_err() {
                        return;
                    }
                }
                Err(err) => tracing::debug!(agent = name, error = %err, "usage poll failed"),
            }
        }
    })
}

pub fn watch_prefix(meta: MetaClient, prefix: &'static str, tx: mpsc::Sender<Input>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut watch = meta.watch_resumable(prefix);
        loop {
            let event = watch.next().await;
            if tx.send(Input::Meta { prefix, event }).await.is_err() {
                return;
            }
        }
    })
}

pub fn follow_agent(name: String, client: AgentClient, tx: mpsc::Sender<Input>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match client.watch().await {
                Ok(mut stream) => {
                    tracing::info!(agent = name, addr = client.addr(), "following agent");
                    if tx.send(Input::AgentConnected { agent: name.clone() }).await.is_err() {
                        return;
                    }
                    loop {
                        match stream.message().await {
                            Ok(Some(report)) => {
                                if tx.send(Input::Report { agent: name.clone(), report }).await.is_err() {
                                    return;
                                }
                            }
                            Ok(None) => break,
                            Err(status) => {
                                tracing::debug!(agent = name, %status, "agent stream broke");
                                break;
                            }
                        }
                    }
                }
                Err(err) => tracing::debug!(agent = name, error = %err, "cannot reach agent"),
            }
            if tx.send(Input::AgentLost { agent: name.clone() }).await.is_err() {
                return;
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    })
}

/// Streams a gateway's load reports into the worker, reconnecting while the task lives.
pub fn follow_gateway(name: String, client: GatewayClient, tx: mpsc::Sender<Input>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match client.watch_load().await {
                Ok(mut stream) => {
                    tracing::info!(gateway = name, addr = client.addr(), "following gateway load");
                    loop {
                        match stream.message().await {
                            Ok(Some(report)) => {
                                if tx.send(Input::Load(report)).await.is_err() {
                                    return;
                                }
                            }
                            Ok(None) => break,
                            Err(status) => {
                                tracing::debug!(gateway = name, %status, "gateway load stream broke");
                                break;
                            }
                        }
                    }
                }
                Err(err) => tracing::debug!(gateway = name, error = %err, "cannot reach gateway"),
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    })
}
