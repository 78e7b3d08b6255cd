//! The worker loop: keep a picture of meta and of the agents, and after every change run
//! [`plan`] for each proton and carry out what it says.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use nucleus_api::bundle::ResourceBundle;
use nucleus_api::proton::ReplicaStatusesSnapshot;
use nucleus_api::workload::WorkloadStatusDetails;
use nucleus_api::{DesiredState, Importance, Proton, ProtonStatus, Workload};
use nucleus_client::{AgentClient, AgentRecord, GatewayClient, GatewayRecord, MetaClient, Txn, Versioned, WatchEvent, decode, keys};
use nucleus_proto::agent::v1::{Lifecycle, ProtonReport};
use nucleus_tls::Dialer;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Error;
use crate::allocations::{self, AgentNodes, Ask, Change, Ledgers, Preemptor};
use crate::autoscale::{self, Autoscaler};
use crate::bundles;
use crate::convert;
use crate::inputs::{Input, follow_agent, follow_gateway, poll_usage, watch_prefix};
use crate::lease::{Fence, Held, LeaseKeeper};
use crate::metrics::SchedulerMetrics;
use crate::plan::{Action, AgentView, Done, Report, plan};
use crate::replacement;
use crate::status_write::{StatusInput, status_event, status_write};

mod expiry;
mod failover;
mod replacing;
mod scaling;

/// Re-plan at least this often, so failed calls are retried without a new event.
const TICK: Duration = Duration::from_secs(1);
/// How long an agent may be out of reach (or not yet reached) before its protons become `unknown`.
const AGENT_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub name: String,
    /// How agents and gateways are dialed: mutual TLS with the scheduler's certificate, or plaintext.
    pub dialer: Dialer,
    /// The autoscaler's windows, grace and rates.
    pub autoscale: autoscale::Settings,
}

struct FollowedAgent {
    record: AgentRecord,
    client: AgentClient,
    task: JoinHandle<()>,
    /// What the usage poll asks this agent for, and the poll.
    usage_queries: tokio::sync::watch::Sender<Vec<nucleus_proto::agent::v1::UsageQuery>>,
    usage_task: JoinHandle<()>,
    /// Whether its status stream is open, and since when that is so.
    connected: bool,
    since: tokio::time::Instant,
}

impl FollowedAgent {
    /// Out of reach for longer than the grace period.
    fn unreachable(&self) -> bool {
        !self.connected && self.since.elapsed() >= AGENT_GRACE
    }
}

/// The worker's picture of the world.
#[derive(Default)]
struct World {
    dialer: Dialer,
    protons: BTreeMap<String, Versioned<Proton>>,
    workloads: BTreeMap<String, Versioned<Workload>>,
    agent_records: BTreeMap<String, Versioned<AgentRecord>>,
    /// The allocation ledger (`allocations/`), by key.
    ledgers: Ledgers,
    agents: BTreeMap<String, FollowedAgent>,
    gateway_records: BTreeMap<String, Versioned<GatewayRecord>>,
    /// Gateways whose load is followed: name → (address, task).
    gateways: BTreeMap<String, (String, JoinHandle<()>)>,
    autoscaler: Autoscaler,
    reports: HashMap<String, HashMap<String, ProtonReport>>,
    done: HashMap<String, Done>,
    written: HashMap<String, ReplicaStatusesSnapshot>,
    synced_protons: bool,
    synced_workloads: bool,
    synced_agents: bool,
    synced_ledgers: bool,
    metrics: SchedulerMetrics,
}

/// Where a proton is to be placed.
struct Chosen {
    agent: String,
    bundle: Option<ResourceBundle>,
    /// The reservation to commit to the ledger first (none when it is already there, or when no
    /// bundle is asked for).
    reserve: Option<Change>,
}

/// Commits a ledger change and applies it to the local copy. `false`: the ledger moved since it
/// was planned on, nothing changed.
async fn commit(meta: &MetaClient, change: &Change, ledgers: &mut Ledgers) -> Result<bool, Error> {
    match meta.write(change.txn()?).await? {
        nucleus_client::WriteOutcome::Applied { revision } => {
            change.applied(revision, ledgers);
            Ok(true)
        }
        nucleus_client::WriteOutcome::Conflict { .. } => Ok(false),
    }
}

/// Runs the worker until `shutdown` resolves. It acts only on the shards it holds leases for.
/// `first_pass` is told once it holds shards and has reconciled every proton in them once: from
/// then on, no status there predates this worker (after a restart, replicas that are gone are no
/// longer reported ready).
pub async fn run(
    config: SchedulerConfig,
    meta: MetaClient,
    shutdown: impl std::future::Future<Output = ()>,
    first_pass: tokio::sync::oneshot::Sender<()>,
) -> Result<(), Error> {
    let shard_count = meta.shard_count().await?;
    let (mut held, keeper) = LeaseKeeper::spawn(meta.clone(), &config.name).await?;
    tracing::info!(scheduler = config.name, shard_count, "scheduler started");
    let (tx, mut rx) = mpsc::channel(1024);
    let watches = [keys::PROTONS, keys::WORKLOADS, keys::AGENTS, keys::ALLOCATIONS, keys::GATEWAYS]
        .map(|p| watch_prefix(meta.clone(), p, tx.clone()));
    let metrics = SchedulerMetrics::of(&config.name);
    let mut world = World {
        dialer: config.dialer.clone(),
        autoscaler: Autoscaler::new(config.autoscale.clone()),
        metrics: metrics.clone(),
        ..World::default()
    };
    let mut tick = tokio::time::interval(TICK);
    let mut first_pass = Some(first_pass);
    tokio::pin!(shutdown);
    loop {
        // Inputs that waited for this pass (all handled before it runs).
        let mut waiting = 0;
        tokio::select! {
            _ = &mut shutdown => break,
            Some(input) = rx.recv() => {
                world.apply(input, &tx);
                waiting += 1;
                while let Ok(more) = rx.try_recv() {
                    world.apply(more, &tx);
                    waiting += 1;
                }
            }
            _ = tick.tick() => {}
            Ok(()) = held.changed() => {}
        }
        let leases = held.borrow_and_update().clone();
        if world.synced_protons && world.synced_workloads && world.synced_ledgers {
            metrics.pass_started(waiting);
            // Timed per pass, not per proton: a pass also releases, expires, replaces and autoscales.
            let started = tokio::time::Instant::now();
            world.reconcile(&meta, shard_count, &leases).await;
            metrics.pass_took(started.elapsed());
            if world.agents_settled()
                && !leases.is_empty()
                && let Some(tell) = first_pass.take()
            {
                let _ = tell.send(());
            }
        }
    }
    keeper.abort();
    for watch in watches {
        watch.abort();
    }
    for agent in world.agents.values() {
        agent.task.abort();
        agent.usage_task.abort();
    }
    for (_, task) in world.gateways.values() {
        task.abort();
    }
    Ok(())
}

impl World {
    fn apply(&mut self, input: Input, tx: &mpsc::Sender<Input>) {
        match input {
            Input::Meta { prefix, event } if prefix == keys::PROTONS => {
                if matches!(event, WatchEvent::Reset(_)) {
                    self.synced_protons = true;
                }
                apply_docs(&mut self.protons, event, |p: &Proton| keys::proton(&p.workload_id, &p.id));
            }
            Input::Meta { prefix, event } if prefix == keys::WORKLOADS => {
                if matches!(event, WatchEvent::Reset(_)) {
                    self.synced_workloads = true;
                }
                apply_docs(&mut self.workloads, event, |w: &Workload| w.id.clone());
            }
            Input::Meta { prefix, event } if prefix == keys::ALLOCATIONS => {
                if matches!(event, WatchEvent::Reset(_)) {
                    self.synced_ledgers = true;
                }
                allocations::apply_event(&mut self.ledgers, event);
            }
            Input::Meta { prefix, event } if prefix == keys::GATEWAYS => {
                apply_docs(&mut self.gateway_records, event, |g: &GatewayRecord| g.name.clone());
                self.follow_gateways(tx);
            }
            Input::Load(report) => self.autoscaler.loads.record(report, tokio::time::Instant::now()),
            Input::Usage(protons) => self.autoscaler.usage.record(protons, tokio::time::Instant::now()),
            Input::Meta { event, .. } => {
                if matches!(event, WatchEvent::Reset(_)) {
                    self.synced_agents = true;
                }
                apply_docs(&mut self.agent_records, event, |a: &AgentRecord| a.name.clone());
                self.follow_agents(tx);
            }
            Input::AgentConnected { agent } => {
                if let Some(followed) = self.agents.get_mut(&agent) {
                    followed.connected = true;
                    followed.since = tokio::time::Instant::now();
                }
                // A (re)connected agent may have restarted and lost its processes: what we did
                // before no longer counts, and repeating a launch it still has is harmless.
                let placed_there: Vec<String> = self
                    .protons
                    .values()
                    .filter(|p| p.value.agent.as_deref() == Some(agent.as_str()))
                    .map(|p| p.value.id.clone())
                    .collect();
                for id in placed_there {
                    self.done.remove(&id);
                }
            }
            Input::Report { agent, report } => {
                self.reports.entry(agent).or_default().insert(report.proton_id.clone(), report);
            }
            Input::AgentLost { agent } => {
                self.reports.remove(&agent);
                if let Some(followed) = self.agents.get_mut(&agent).filter(|f| f.connected) {
                    followed.connected = false;
                    followed.since = tokio::time::Instant::now();
                }
            }
        }
    }

    /// Starts following new agents (or agents that moved) and stops following removed ones.
    fn follow_agents(&mut self, tx: &mpsc::Sender<Input>) {
        let current: HashMap<String, AgentRecord> = self.agent_records.values().map(|r| (r.value.name.clone(), r.value.clone())).collect();
        self.agents.retain(|name, followed| {
            let keep = current.get(name).is_some_and(|r| r.address == followed.record.address);
            match current.get(name) {
                // Same agent: keep following, with its latest capacity.
                Some(record) if keep => followed.record = record.clone(),
                _ => {
                    followed.task.abort();
                    followed.usage_task.abort();
                }
            }
            keep
        });
        for (name, record) in current {
            if self.agents.contains_key(&name) {
                continue;
            }
            match AgentClient::new(&record.address, &self.dialer) {
                Ok(client) => {
                    let task = follow_agent(name.clone(), client.clone(), tx.clone());
                    let (usage_queries, asked) = tokio::sync::watch::channel(Vec::new());
                    let usage_task = poll_usage(name.clone(), client.clone(), asked, tx.clone());
                    let since = tokio::time::Instant::now();
                    self.agents.insert(name, FollowedAgent { record, client, task, usage_queries, usage_task, connected: false, since });
                }
                Err(err) => tracing::warn!(agent = name, error = %err, "agent address unusable"),
            }
        }
    }

    /// Follows the load of every gateway that registered lately, and stops following the others.
    fn follow_gateways(&mut self, tx: &mpsc::Sender<Input>) {
        let now = nucleus_api::clock::now();
        let live: HashMap<String, String> = self
            .gateway_records
            .values()
            .filter(|r| {
                chrono::DateTime::parse_from_rfc3339(&r.value.heartbeat_at)
                    .is_ok_and(|at| (now - at.to_utc()).to_std().unwrap_or_default() < GatewayRecord::STALE_AFTER)
            })
            .map(|r| (r.value.name.clone(), r.value.address.clone()))
            .collect();
        let loads = &mut self.autoscaler.loads;
        self.gateways.retain(|name, (address, task)| {
            let keep = live.get(name) == Some(address);
            if !keep {
                task.abort();
                loads.forget(name);
            }
            keep
        });
        for (name, address) in live {
            if self.gateways.contains_key(&name) {
                continue;
            }
            match GatewayClient::new(&address, &self.dialer) {
                Ok(client) => {
                    let task = follow_gateway(name.clone(), client, tx.clone());
                    self.gateways.insert(name, (address, task));
                }
                Err(err) => tracing::warn!(gateway = name, error = %err, "gateway address unusable"),
            }
        }
    }

    /// Every registered agent is either connected or past its grace period.
    fn agents_settled(&self) -> bool {
        self.synced_agents && self.agents.values().all(|a| a.connected || a.unreachable())
    }

    fn view(&self, proton: &Proton) -> AgentView {
        if let Some(name) = &proton.agent {
            match self.agents.get(name) {
                Some(agent) if agent.connected => {}
                Some(agent) if !agent.unreachable() => return AgentView::Pending,
                _ if !self.synced_agents => return AgentView::Pending,
                _ => return AgentView::Unreachable(name.clone()),
            }
        }
        let report = proton.agent.as_ref().and_then(|agent| self.reports.get(agent)).and_then(|reports| reports.get(&proton.id));
        AgentView::Reported(match report {
            None => Report::Absent,
            Some(r) if r.removed => Report::Absent,
            Some(r) => match r.lifecycle() {
                Lifecycle::Stopped => Report::Stopped,
                Lifecycle::Stopping => Report::Stopping(convert::snapshot(r, proton.replica_count)),
                Lifecycle::Running => Report::Running(convert::snapshot(r, proton.replica_count)),
                // An agent that does not say where the proton is in its life is not understood.
                Lifecycle::Unspecified => return AgentView::Unreachable(proton.agent.clone().unwrap_or_default()),
            },
        })
    }

    async fn reconcile(&mut self, meta: &MetaClient, shard_count: u64, leases: &Held) {
        self.fail_over(meta, shard_count, leases).await;
        self.stop_strays(meta, shard_count, leases).await;
        self.release_stale(meta, shard_count, leases).await;
        self.expire_drafts(meta, shard_count, leases).await;
        self.advance_replacements(meta, shard_count, leases).await;
        self.autoscale(meta, shard_count, leases).await;
        let keys = self.queue();
        for key in keys {
            let Some(doc) = self.protons.get(&key).cloned() else { continue };
            let group = keys::group_of_key(&doc.key, shard_count);
            let Some(&token) = leases.get(&group) else { continue }; // another worker's shard
            if let Err(err) = self.reconcile_one(meta, Fence { group, token }, doc).await {
                tracing::warn!(proton = key, error = %err, "reconcile failed; will retry");
            }
        }
    }

    /// Where to place `proton`: the reservation the ledger already holds for it (a worker stopped
    /// between reserving and placing), a new one to commit first, or any connected agent when
    /// the runtime asks for no bundle; or why none can take it.
    fn choose_agent(&self, proton: &Proton, importance: Importance) -> Result<Chosen, Error> {
        let connected = || self.agents.iter().filter(|(_, a)| a.connected && crate::exec::runs(&a.record, proton));
        let groups = &proton.runtime.container_groups;
        let wanted = match (bundles::requesting_group(groups), bundles::explicit_allocation(groups)) {
            (Some(group), _) => bundles::catalogue_entries(group)?,
            (None, Some((_, allocation))) => vec![allocation?],
            (None, None) => {
                return match connected().next() {
                    Some((name, _)) => Ok(Chosen { agent: name.clone(), bundle: None, reserve: None }),
                    None => Err(Error::NoAgent),
                };
            }
        };
        if let Some(held) = allocations::holding(&self.ledgers, &proton.id) {
            return match held.preempted_by {
                None if connected().any(|(name, _)| *name == held.agent) => {
                    Ok(Chosen { agent: held.agent, bundle: Some(held.bundle), reserve: None })
                }
                _ => Err(Error::ReservationHeld(held.agent)),
            };
        }
        let agents: Vec<AgentNodes<'_>> =
            connected().map(|(name, a)| AgentNodes { name, region: &a.record.region, nodes: &a.record.nodes }).collect();
        let ask = Ask { proton: &proton.id, workload: &proton.workload_id, replicas: proton.replica_count, importance, bundles: &wanted };
        let change = allocations::place(&agents, &self.ledgers, &ask)?;
        Ok(Chosen { agent: change.agent.clone(), bundle: change.bundle.clone(), reserve: Some(change) })
    }

    /// Releases reservations in the ledger that no proton of a shard this worker holds needs any
    /// more: the proton is gone, placed elsewhere, stopped, or was preempted and is unplaced.
    async fn release_stale(&mut self, meta: &MetaClient, shard_count: u64, leases: &Held) {
        let mut stale: Vec<String> = Vec::new();
        for doc in self.ledgers.values() {
            for record in &doc.value.allocations {
                let key = keys::proton(&record.workload, &record.proton);
                if !leases.contains_key(&keys::group_of_key(&key, shard_count)) || stale.contains(&record.proton) {
                    continue;
                }
                let connected = self.agents.get(&doc.value.agent).is_some_and(|a| a.connected);
                let needed = self.protons.get(&key).is_some_and(|p| match &p.value.agent {
                    Some(agent) => *agent == doc.value.agent,
                    None => p.value.desired_state != DesiredState::Stopped && record.is_live() && connected,
                });
                if !needed {
                    stale.push(record.proton.clone());
                }
            }
        }
        for proton in stale {
            self.release(meta, &proton).await;
        }
    }

    /// Drops `proton`'s reservations from the ledger (retried by the next pass if it fails).
    async fn release(&mut self, meta: &MetaClient, proton: &str) {
        let change = allocations::release(&self.ledgers, proton);
        if change.is_empty() {
            return;
        }
        match commit(meta, &change, &mut self.ledgers).await {
            Ok(true) => tracing::info!(proton, "reservation released"),
            Ok(false) => {}
            Err(err) => tracing::warn!(proton, error = %err, "cannot release reservation; will retry"),
        }
    }

    /// The protons in the order to reconcile them: most important workload first (critical, high,
    /// moderate, low), so that when capacity is short the important ones are placed first.
    fn queue(&self) -> Vec<String> {
        let protons = self.protons.iter().map(|(key, doc)| (key.as_str(), doc.value.workload_id.as_str()));
        by_importance(protons, |workload| self.workloads.get(workload).map(|w| w.value.importance).unwrap_or_default())
    }

    async fn reconcile_one(&mut self, meta: &MetaClient, fence: Fence, doc: Versioned<Proton>) -> Result<(), Error> {
        let proton = &doc.value;
        let workload = self.workloads.get(&proton.workload_id).cloned();
        let view = self.view(proton);
        let done = self.done.get(&proton.id).copied().unwrap_or_default();
        if let (Some(workload), Some(placed_on)) = (&workload, &proton.agent)
            && let Some(held) = allocations::holding(&self.ledgers, &proton.id)
            && held.agent == *placed_on
            && let Some(preemptor) = held.preempted_by
        {
            return self.interrupt(meta, fence, &doc, workload, preemptor).await;
        }
        let importance = workload.as_ref().map(|w| w.value.importance).unwrap_or_default();
        // Only a proton without an agent (that is to run) is placed: the others skip the search.
        let placing = proton.agent.is_none() && workload.is_some() && proton.desired_state != DesiredState::Stopped;
        let chosen = placing.then(|| self.choose_agent(proton, importance));
        if let Some(Err(_)) = &chosen {
            self.metrics.unplaceable();
        }
        let candidate = chosen.as_ref().and_then(|c| c.as_ref().ok()).map(|c| c.agent.as_str());
        let mut decision = plan(proton, workload.is_some(), &view, done, candidate);
        if let Some(w) = &workload {
            decision.status = replacement::shown_status(&w.value, proton, decision.status);
        }
        if let Some(Err(shortage)) = &chosen
            && decision.action.is_none()
            && decision.status == ProtonStatus::Submitted
        {
            decision.message = Some(shortage.to_string());
        }
        let agent = proton.agent.as_ref().and_then(|a| self.agents.get(a)).map(|a| a.client.clone());
        match &decision.action {
            Some(Action::Place(agent)) => {
                let Some(Ok(chosen)) = chosen else { return Ok(()) };
                if let Some(reserve) = &chosen.reserve {
                    if !commit(meta, reserve, &mut self.ledgers).await? {
                        return Ok(()); // the ledger moved since: plan again on the newer one
                    }
                    if !reserve.interrupted.is_empty() {
                        tracing::info!(proton = proton.id, agent, victims = ?reserve.interrupted, "preempted less important protons");
                    }
                }
                let bundle = chosen.bundle;
                let mut placed = proton.clone();
                placed.agent = Some(agent.clone());
                let mut txn = fence.guard(Txn::new()).require(&doc.key, doc.mod_revision);
                if let Some(bundle) = &bundle {
                    // Report the choice as the group's resolvedBundle, on the proton and the workload.
                    let resolved = Some(bundle.clone());
                    let groups = &proton.runtime.container_groups;
                    let group = bundles::requesting_group(groups)
                        .or_else(|| bundles::explicit_allocation(groups).map(|(g, _)| g))
                        .map(|g| g.name.clone());
                    let resolve = |groups: &mut Vec<nucleus_api::workload::GroupRuntime>| {
                        for g in groups.iter_mut().filter(|g| Some(&g.name) == group.as_ref()) {
                            g.resolved_bundle.clone_from(&resolved);
                        }
                    };
                    resolve(&mut placed.runtime.container_groups);
                    if let Some(w) = workload.as_ref().filter(|w| w.value.proton_id.as_deref() == Some(proton.id.as_str())) {
                        let mut wl = w.value.clone();
                        resolve(&mut wl.runtime.container_groups);
                        txn = txn.require(&w.key, w.mod_revision).put_json(&w.key, &wl)?;
                    }
                }
                if meta.write(txn.put_json(&doc.key, &placed)?).await?.applied() {
                    self.metrics.placed();
                }
                tracing::info!(proton = proton.id, agent, bundle = bundle.as_ref().map(|b| b.id.as_str()), "placed");
                return Ok(());
            }
            Some(Action::Launch) => {
                if !self.still_current(meta, &doc).await? {
                    return Ok(()); // the watch is behind: decide again on what it brings
                }
                if let Some(agent) = agent {
                    let draft = workload.as_ref().is_some_and(|w| w.value.expires_at.is_some());
                    let request = convert::launch_request(proton, fence.token, fence.group, draft);
                    // The trace of the request that made the proton, when there is one.
                    let span = tracing::info_span!("launch", otel.kind = "client", proton = %proton.id, agent = agent.addr());
                    if let Some(traceparent) = &proton.traceparent {
                        nucleus_telemetry::trace::continue_from(&span, traceparent);
                    }
                    match tracing::Instrument::instrument(agent.launch(request), span).await {
                        Ok(()) => {
                            tracing::info!(proton = proton.id, generation = proton.generation, replicas = proton.replica_count, "launched");
                            let done = self.done.entry(proton.id.clone()).or_default();
                            done.launched_generation = Some(proton.generation);
                            done.launched_replicas = Some(proton.replica_count);
                        }
                        Err(err) => tracing::warn!(proton = proton.id, error = %err, "launch failed; will retry"),
                    }
                }
            }
            Some(Action::Stop) => {
                if workload.is_none() && workload_exists(meta, &proton.workload_id).await? {
                    return Ok(()); // the workload watch is behind
                }
                if let Some(agent) = agent {
                    let request = fence.stop(&proton.id);
                    match agent.stop(request).await {
                        Ok(()) => {
                            tracing::info!(proton = proton.id, "stop sent");
                            self.done.entry(proton.id.clone()).or_default().stop_sent_generation = Some(proton.generation);
                        }
                        Err(err) => tracing::warn!(proton = proton.id, error = %err, "stop failed; will retry"),
                    }
                }
            }
            Some(Action::Forget) => {
                if workload_exists(meta, &proton.workload_id).await? {
                    return Ok(());
                }
                let txn = fence
                    .guard(Txn::new())
                    .require(&doc.key, doc.mod_revision)
                    .delete(&doc.key)
                    .delete(&keys::snapshot(&proton.workload_id, &proton.id));
                meta.write(txn).await?;
                self.done.remove(&proton.id);
                self.written.remove(&proton.id);
                tracing::info!(proton = proton.id, "forgot proton of a deleted workload");
                return Ok(());
            }
            None => {}
        }
        if workload.is_some() {
            self.record_status(meta, fence, &doc, workload, &view, decision.status, decision.message).await?;
        }
        Ok(())
    }

    /// A more important proton took this one's room: stop its replicas, then record it unplaced
    /// and `interrupted` (with an event naming the preemptor) and drop its reservations. It is
    /// placed again, like a new proton, when room returns.
    async fn interrupt(
        &mut self,
        meta: &MetaClient,
        fence: Fence,
        doc: &Versioned<Proton>,
        workload: &Versioned<Workload>,
        preemptor: Preemptor,
    ) -> Result<(), Error> {
        let proton = &doc.value;
        let Some(agent_name) = proton.agent.as_deref() else { return Ok(()) };
        match self.agents.get(agent_name) {
            Some(agent) if agent.connected => {
                let request = fence.stop(&proton.id);
                if let Err(err) = agent.client.stop(request).await {
                    tracing::warn!(proton = proton.id, error = %err, "stop of a preempted proton failed; will retry");
                    return Ok(());
                }
            }
            Some(_) => return Ok(()), // cannot stop it while the agent is away: wait for it
            None => {}                // the agent is gone, and its replicas with it
        }
        let message = format!(
            "Preempted by proton {} of workload {} (importance {}); it will be placed again when there is room",
            preemptor.proton,
            preemptor.workload,
            serde_json::to_value(preemptor.importance).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
        );
        let mut updated = proton.clone();
        updated.agent = None;
        updated.status = ProtonStatus::Interrupted;
        updated.message = Some(message.clone());
        updated.running_since = None;
        updated.updated_at = nucleus_api::clock::now();
        let mut event = status_event(&updated, proton.status);
        event.details.insert(
            "preemptedBy".to_owned(),
            json!({"protonId": preemptor.proton, "workloadId": preemptor.workload, "importance": preemptor.importance}),
        );
        let mut txn = fence
            .guard(Txn::new())
            .require(&doc.key, doc.mod_revision)
            .put_json(&doc.key, &updated)?
            .put_json(&keys::event(&proton.workload_id, &event.id), &event)?;
        if workload.value.proton_id.as_deref() == Some(proton.id.as_str()) {
            let mut wl = workload.value.clone();
            wl.status = ProtonStatus::Interrupted;
            wl.status_details = Some(WorkloadStatusDetails { log_tail: None, message: Some(message) });
            wl.updated_at = nucleus_api::clock::now();
            txn = txn.require(&workload.key, workload.mod_revision).put_json(&workload.key, &wl)?;
        }
        if meta.write(txn).await?.applied() {
            tracing::info!(proton = proton.id, preemptor = preemptor.proton, "proton interrupted");
            self.metrics.preempted();
            self.done.remove(&proton.id);
            self.release(meta, &proton.id).await;
        }
        Ok(())
    }

    /// Writes proton status, replica snapshot and workload status when they changed (decided by
    /// [`status_write`]), in one transaction conditional on the documents it read.
    #[allow(clippy::too_many_arguments)]
    async fn record_status(
        &mut self,
        meta: &MetaClient,
        fence: Fence,
        doc: &Versioned<Proton>,
        workload: Option<Versioned<Workload>>,
        view: &AgentView,
        status: ProtonStatus,
        message: Option<String>,
    ) -> Result<(), Error> {
        let proton = &doc.value;
        let write = status_write(StatusInput {
            proton,
            workload: workload.as_ref().map(|w| &w.value),
            view,
            status,
            message,
            last_written: self.written.get(&proton.id),
            now: nucleus_api::clock::now(),
        });
        if write.is_empty() {
            return Ok(());
        }
        // Every write is conditional on the proton read, even one that leaves it as is: the workload
        // status derives from it, and a proton older than the workload (its watch event not applied
        // yet) would write back a status the user has since changed.
        let mut txn = Txn::new().require(&doc.key, doc.mod_revision);
        if let Some(updated) = &write.proton {
            txn = txn.put_json(&doc.key, updated)?;
        }
        if let Some(snapshot) = &write.snapshot {
            txn = txn.put_json(&keys::snapshot(&proton.workload_id, &proton.id), snapshot)?;
        }
        if let (Some(updated), Some(w)) = (&write.workload, &workload) {
            txn = txn.require(&w.key, w.mod_revision).put_json(&w.key, updated)?;
        }
        if let Some(event) = &write.event {
            txn = txn.put_json(&keys::event(&proton.workload_id, &event.id), event)?;
        }
        if meta.write(fence.guard(txn)).await?.applied() {
            if let Some(snapshot) = write.snapshot {
                self.written.insert(proton.id.clone(), snapshot);
            }
            if status != proton.status {
                tracing::info!(proton = proton.id, from = %proton.status, to = %status, "proton status");
            }
        }
        Ok(())
    }
}

impl World {
    /// Whether `doc` is still the proton as stored, read from meta (linearizable) now. A launch
    /// checks this first: a worker that just took a shard over may hold a picture older than what
    /// the previous holder did (a proton it stopped and forgot, a reservation it released), and a
    /// launch is an agent call, which no conditional write in meta guards.
    async fn still_current(&self, meta: &MetaClient, doc: &Versioned<Proton>) -> Result<bool, Error> {
        let stored = meta.get(&doc.key).await?;
        let current = stored.as_ref().is_some_and(|kv| kv.mod_revision == doc.mod_revision);
        if !current {
            tracing::debug!(key = doc.key, "proton changed since the watch delivered it; not launching on the old copy");
        }
        Ok(current)
    }
}

/// The keys of (proton key, workload id) pairs, most important workload first; equal importance
/// keeps the given order.
fn by_importance<'a>(protons: impl Iterator<Item = (&'a str, &'a str)>, importance: impl Fn(&str) -> Importance) -> Vec<String> {
    let mut keyed: Vec<(&str, Importance)> = protons.map(|(key, workload)| (key, importance(workload))).collect();
    keyed.sort_by_key(|(_, importance)| std::cmp::Reverse(*importance));
    keyed.into_iter().map(|(key, _)| key.to_owned()).collect()
}

async fn workload_exists(meta: &MetaClient, workload_id: &str) -> Result<bool, Error> {
    Ok(meta.get(&keys::workload(workload_id)).await?.is_some())
}

/// Applies a watch event to a map of documents keyed by `key_of`.
fn apply_docs<T>(map: &mut BTreeMap<String, Versioned<T>>, event: WatchEvent, key_of: impl Fn(&T) -> String)
where
    T: serde::de::DeserializeOwned,
{
    let put = |map: &mut BTreeMap<String, Versioned<T>>, kv: nucleus_proto::meta::v1::KeyValue| {
        let key = kv.key.clone();
        match decode::<T>(kv) {
            Ok(doc) => {
                map.insert(key_of(&doc.value), doc);
            }
            // Not acted on until it is readable again: say which document, so that it can be fixed.
            Err(err) => tracing::error!(key, error = %err, "unreadable document in meta; the scheduler ignores it until it is rewritten"),
        }
    };
    match event {
        WatchEvent::Reset(kvs) => {
            map.clear();
            for kv in kvs {
                put(map, kv);
            }
        }
        WatchEvent::Put(kv) => put(map, kv),
        // Map keys are ids, not meta keys: find the document by the key it was stored under.
        WatchEvent::Delete { key, .. } => map.retain(|_, doc| doc.key != key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_puts_more_important_workloads_first_and_keeps_order_among_equals() {
        let protons = [("a", "w-low"), ("b", "w-critical"), ("c", "w-high"), ("d", "w-unknown"), ("e", "w-moderate")];
        let importance = |workload: &str| match workload {
            "w-critical" => Importance::Critical,
            "w-high" => Importance::High,
            "w-moderate" => Importance::Moderate,
            _ => Importance::Low,
        };
        assert_eq!(by_importance(protons.into_iter(), importance), ["b", "c", "e", "a", "d"]);
    }
}
