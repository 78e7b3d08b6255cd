//! Where invoke requests go: for each workload, who may call it and the ready replicas of its
//! active proton. Fed by a meta watch on workloads and replica snapshots, so the invoke path does
//! not read meta.
//!
//! Routing is per replica: a workload whose summary status is `restarting`, `unknown` or
//! `launching` is still served by whichever of its replicas are ready. The status is for people.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use nucleus_api::identity::SharedRole;
use nucleus_api::{DesiredState, ProtonStatus, ReplicaStatusesSnapshot, UserData, Workload};
use nucleus_client::{MetaClient, WatchEvent, keys};
use tokio::time::Instant;

use crate::invoke::backends::Backend;
use crate::invoke::budget::RetryBudget;
use crate::stats::recorder::{ProtonStats, Recorder};

/// What the invoke proxy needs to know about one workload.
#[derive(Debug)]
pub struct Route {
    /// `/api/v2/endpoints/workloads/{id}`, as replicas see it in `X-Forwarded-Prefix`.
    pub prefix: http::HeaderValue,
    pub status: ProtonStatus,
    pub desired: DesiredState,
    /// The active proton, whose replicas the backends are.
    pub proton: Option<String>,
    /// Its ready replicas.
    pub backends: Vec<Arc<Backend>>,
    /// How long a replica may take to send response headers (`runtime.invokeTimeoutSeconds`);
    /// `None`: the gateway's default.
    pub timeout: Option<Duration>,
    /// Who may invoke it: its creator and its sharing list.
    pub creator: Option<UserData>,
    pub shared: Vec<SharedRole>,
    /// Requests in flight and the retry budget, kept across changes of the route.
    pub load: Arc<Load>,
    /// It may rest at zero replicas (autoscaling with `minReplicaCount: 0`): a request that finds
    /// no ready replica is held while one starts, instead of refused.
    pub wakes: bool,
    pub stats: Option<Arc<ProtonStats>>,
    /// A gated replacement's candidate, while it takes a canary share of the traffic.
    pub canary: Option<Canary>,
}

/// The canary lane of a route: its candidate proton's ready replicas and counters.
#[derive(Debug)]
pub struct Canary {
    /// Percent of the requests it gets.
    pub percent: u8,
    pub route: Arc<Route>,
}

impl Route {
    /// The lane one request takes: the canary for its share of requests (spread evenly: in every
    /// 100, `percent` go to it), while it has ready replicas; else this route.
    pub fn lane(self: &Arc<Self>) -> Arc<Route> {
        if let Some(canary) = self.canary.as_ref().filter(|c| !c.route.backends.is_empty()) {
            let n = self.load.turns.fetch_add(1, Ordering::Relaxed);
            let share = u64::from(canary.percent);
            if (n + 1) * share / 100 > n * share / 100 {
                return canary.route.clone();
            }
        }
        self.clone()
    }
}

/// A workload's traffic at this gateway.
#[derive(Debug, Default)]
pub struct Load {
    in_flight: AtomicU32,
    /// Requests admitted since the gateway started (the autoscaler's request rate).
    arrived: AtomicU64,
    /// Requests the activator holds until a replica is ready.
    queued: AtomicU32,
    /// Told whenever the route is rebuilt with ready replicas: held requests go then.
    pub ready: tokio::sync::Notify,
    pub budget: RetryBudget,
    /// When meta last confirmed that the workload had no ready replica (ms since `since`, 0: never).
    confirmed_empty_ms: AtomicU64,
    /// Requests that chose a lane (canary or not) so far.
    turns: AtomicU64,
}

/// A request counted in its workload's in-flight total until dropped.
#[derive(Debug)]
pub struct Admitted(Arc<Load>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Load {
    /// Counts one more request in flight, unless `limit` are already.
    pub fn admit(self: &Arc<Self>, limit: u32) -> Option<Admitted> {
        let before = self.in_flight.fetch_add(1, Ordering::Relaxed);
        let admitted = Admitted(self.clone());
        let ok = before < limit;
        if ok {
            self.arrived.fetch_add(1, Ordering::Relaxed);
        }
        ok.then_some(admitted)
    }

    /// Counts one more held request, unless `limit` are already held.
    pub fn hold(self: &Arc<Self>, limit: u32) -> Option<Held> {
        let before = self.queued.fetch_add(1, Ordering::Relaxed);
        let held = Held(self.clone());
        (before < limit).then_some(held)
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn queued(&self) -> u32 {
        self.queued.load(Ordering::Relaxed)
    }

    pub fn arrived(&self) -> u64 {
        self.arrived.load(Ordering::Relaxed)
    }
}

/// A request held by the activator, counted in its workload's queue until dropped.
#[derive(Debug)]
pub struct Held(Arc<Load>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long a "no ready replica" answer confirmed against meta is trusted.
const EMPTY_CONFIRMED_FOR: Duration = Duration::from_millis(500);

/// What the table keeps of a workload.
#[derive(Debug, Clone)]
struct Entry {
    status: ProtonStatus,
    desired: DesiredState,
    proton: Option<String>,
    timeout: Option<Duration>,
    creator: Option<UserData>,
    shared: Vec<SharedRole>,
    wakes: bool,
    /// (candidate proton, percent) while a gated replacement's canary runs.
    canary: Option<(String, u8)>,
}

impl Entry {
    fn of(w: Workload) -> Entry {
        let canary = w.active_replacement().and_then(|r| {
            let gate = r.config.rollback.as_ref()?;
            let canary_runs = r.status == nucleus_api::replacement::ReplacementStatus::Promoting && r.canary_started_at.is_some();
            canary_runs.then(|| Some((r.candidate_proton_ids.first()?.clone(), gate.canary_percent))).flatten()
        });
        Entry {
            status: w.status,
            desired: w.desired_state,
            proton: w.proton_id,
            timeout: w.runtime.invoke_timeout_seconds.map(|s| Duration::from_secs(s.max(1) as u64)),
            creator: w.creator,
            shared: w.shared_roles,
            wakes: w.runtime.container_groups.iter().any(|g| g.autoscaling.as_ref().is_some_and(|a| a.scales_to_zero())),
            canary,
        }
    }
}

#[derive(Debug, Default)]
struct Tables {
    /// workload id → what routing needs of it
    workloads: HashMap<String, Entry>,
    /// (workload id, proton id) → ready replicas
    ready: HashMap<(String, String), Vec<Arc<Backend>>>,
    loads: HashMap<String, Arc<Load>>,
    /// workload id → its route, rebuilt whenever one of the above changes for it
    routes: HashMap<String, Arc<Route>>,
}

#[derive(Clone)]
pub struct RouteTable {
    tables: Arc<RwLock<Tables>>,
    meta: MetaClient,
    stats: Recorder,
    since: Instant,
}

impl RouteTable {
    pub fn start(meta: MetaClient, stats: Recorder) -> RouteTable {
        let table = RouteTable { tables: Arc::default(), meta, stats, since: Instant::now() };
        for prefix in [keys::WORKLOADS, keys::SNAPSHOTS] {
            let table = table.clone();
            tokio::spawn(async move { table.follow(prefix).await });
        }
        table
    }

    pub fn route(&self, workload_id: &str) -> Option<Arc<Route>> {
        self.tables.read().unwrap_or_else(|p| p.into_inner()).routes.get(workload_id).cloned()
    }

    /// The route to serve a request with. The cache is trusted when it has ready replicas;
    /// "none" is confirmed against meta (the watch may lag a moment behind a replica that just
    /// became ready), at most every half second per workload.
    pub async fn serving(&self, workload_id: &str) -> Result<Option<Arc<Route>>, nucleus_client::Error> {
        let cached = self.route(workload_id);
        if let Some(route) = &cached {
            let confirmed = route.load.confirmed_empty_ms.load(Ordering::Relaxed);
            let recently = confirmed != 0 && self.millis() < confirmed + EMPTY_CONFIRMED_FOR.as_millis() as u64;
            if !route.backends.is_empty() || recently {
                return Ok(cached);
            }
        }
        // Boxed: the meta reads would otherwise size every invoke's future.
        let fresh = Box::pin(self.route_from_meta(workload_id)).await?;
        if let Some(route) = fresh.as_ref().filter(|r| r.backends.is_empty()) {
            route.load.confirmed_empty_ms.store(self.millis().max(1), Ordering::Relaxed);
        }
        Ok(fresh)
    }

    /// Reads the route from meta directly.
    async fn route_from_meta(&self, workload_id: &str) -> Result<Option<Arc<Route>>, nucleus_client::Error> {
        let Some(workload) = self.meta.get_json::<Workload>(&keys::workload(workload_id)).await? else {
            return Ok(None);
        };
        let snapshot = match &workload.value.proton_id {
            Some(p) => self.meta.get_json::<ReplicaStatusesSnapshot>(&keys::snapshot(workload_id, p)).await?.map(|s| s.value),
            None => None,
        };
        let load = self.tables.read().unwrap_or_else(|p| p.into_inner()).loads.get(workload_id).cloned().unwrap_or_default();
        let backends = snapshot.map(|s| ready_backends(&s, &[])).unwrap_or_default();
        // The canary lane comes with the watch; until then the current proton takes every request.
        Ok(Some(self.build(workload_id, Entry::of(workload.value), backends, Vec::new(), load)))
    }

    fn build(
        &self,
        workload_id: &str,
        mut entry: Entry,
        backends: Vec<Arc<Backend>>,
        canary_backends: Vec<Arc<Backend>>,
        load: Arc<Load>,
    ) -> Arc<Route> {
        let canary = entry.canary.take().map(|(proton, percent)| {
            let lane = Entry { proton: Some(proton), ..entry.clone() };
            Canary { percent, route: self.build(workload_id, lane, canary_backends, Vec::new(), load.clone()) }
        });
        let stats = entry.proton.as_deref().map(|p| self.stats.proton(workload_id, p));
        let prefix = http::HeaderValue::try_from(format!("{}{workload_id}", crate::invoke::PREFIX))
            .unwrap_or_else(|_| http::HeaderValue::from_static(crate::invoke::PREFIX));
        Arc::new(Route {
            canary,
            prefix,
            status: entry.status,
            desired: entry.desired,
            proton: entry.proton,
            backends,
            timeout: entry.timeout,
            creator: entry.creator,
            shared: entry.shared,
            wakes: entry.wakes,
            load,
            stats,
        })
    }

    fn millis(&self) -> u64 {
        Instant::now().saturating_duration_since(self.since).as_millis() as u64
    }

    async fn follow(&self, prefix: &'static str) {
        let mut watch = self.meta.watch_resumable(prefix);
        loop {
            let event = watch.next().await;
            self.apply(prefix, event);
        }
    }

    fn apply(&self, prefix: &str, event: WatchEvent) {
        let mut tables = self.tables.write().unwrap_or_else(|p| p.into_inner());
        let is_workloads = prefix == keys::WORKLOADS;
        let mut touched = Vec::new();
        match event {
            WatchEvent::Reset(kvs) => {
                if is_workloads {
                    touched.extend(tables.workloads.drain().map(|(id, _)| id));
                } else {
                    touched.extend(tables.ready.drain().map(|((id, _), _)| id));
                }
                for kv in kvs {
                    touched.extend(upsert(&mut tables, is_workloads, kv));
                }
            }
            WatchEvent::Put(kv) => touched.extend(upsert(&mut tables, is_workloads, kv)),
            WatchEvent::Delete { key, .. } => {
                if is_workloads {
                    let id = keys::id_of(&key).to_owned();
                    tables.workloads.remove(&id);
                    tables.loads.remove(&id);
                    touched.push(id);
                } else if let Some(ids) = snapshot_ids(&key) {
                    tables.ready.remove(&ids);
                    touched.push(ids.0);
                }
            }
        }
        touched.sort_unstable();
        touched.dedup();
        for id in touched {
            self.rebuild(&mut tables, &id);
        }
    }

    fn rebuild(&self, tables: &mut Tables, workload_id: &str) {
        let Some(entry) = tables.workloads.get(workload_id).cloned() else {
            tables.routes.remove(workload_id);
            return;
        };
        let ready_of = |proton: Option<&String>| {
            proton.and_then(|p| tables.ready.get(&(workload_id.to_owned(), p.clone()))).cloned().unwrap_or_default()
        };
        let backends = ready_of(entry.proton.as_ref());
        let canary_backends = ready_of(entry.canary.as_ref().map(|(proton, _)| proton));
        let load = tables.loads.entry(workload_id.to_owned()).or_default().clone();
        let route = self.build(workload_id, entry, backends, canary_backends, load);
        if !route.backends.is_empty() {
            route.load.ready.notify_waiters();
        }
        tables.routes.insert(workload_id.to_owned(), route);
    }

    /// Every routed workload's active proton and load, for the autoscaler's signals.
    pub fn loads(&self) -> Vec<(String, String, Arc<Load>)> {
        let tables = self.tables.read().unwrap_or_else(|p| p.into_inner());
        tables.routes.iter().filter_map(|(id, route)| Some((id.clone(), route.proton.clone()?, route.load.clone()))).collect()
    }
}

/// Applies one document; returns the workload it concerns.
fn upsert(tables: &mut Tables, is_workloads: bool, kv: nucleus_client::KeyValue) -> Option<String> {
    if is_workloads {
        match serde_json::from_slice::<Workload>(&kv.value) {
            Ok(w) => {
                let id = w.id.clone();
                tables.workloads.insert(id.clone(), Entry::of(w));
                Some(id)
            }
            Err(err) => {
                tracing::warn!(key = kv.key, error = %err, "unreadable workload document");
                None
            }
        }
    } else {
        let ids = snapshot_ids(&kv.key)?;
        match serde_json::from_slice::<ReplicaStatusesSnapshot>(&kv.value) {
            Ok(s) => {
                let previous = tables.ready.get(&ids).map(Vec::as_slice).unwrap_or_default();
                let backends = ready_backends(&s, previous);
                let workload = ids.0.clone();
                tables.ready.insert(ids, backends);
                Some(workload)
            }
            Err(err) => {
                tracing::warn!(key = kv.key, error = %err, "unreadable replica snapshot");
                None
            }
        }
    }
}

/// The snapshot's ready replicas; one that was ready before keeps its backend (its connections,
/// load and ejection), one that was not is a new backend with a clean record.
fn ready_backends(snapshot: &ReplicaStatusesSnapshot, previous: &[Arc<Backend>]) -> Vec<Arc<Backend>> {
    snapshot
        .replicas
        .iter()
        .filter(|r| r.is_ready())
        .filter_map(|r| {
            previous.iter().find(|b| b.address == r.address && b.name == r.name).cloned().or_else(|| {
                match Backend::new(&r.name, &r.address) {
                    Some(b) => Some(Arc::new(b)),
                    None => {
                        tracing::warn!(replica = r.name, address = r.address, "replica address is not host:port; not routed to");
                        None
                    }
                }
            })
        })
        .collect()
}

/// `snapshots/<workload>/<proton>` → (workload, proton)
fn snapshot_ids(key: &str) -> Option<(String, String)> {
    let rest = key.strip_prefix(keys::SNAPSHOTS)?;
    let (workload, proton) = rest.split_once('/')?;
    Some((workload.to_owned(), proton.to_owned()))
}

#[cfg(test)]
mod tests {
    use nucleus_api::proton::{Condition, OverallStatus, ReplicaPhase, ReplicaStatus};

    use super::*;

    fn replica(name: &str, address: &str, ready: bool) -> ReplicaStatus {
        ReplicaStatus {
            name: name.into(),
            address: address.into(),
            node_address: "127.0.0.1".into(),
            started_at: None,
            status: ReplicaPhase::Running,
            conditions: vec![Condition { condition_type: "Ready".into(), met: Some(ready), since: String::new() }],
            containers: vec![],
            log_tail: vec![],
            error: None,
        }
    }

    fn snapshot(replicas: Vec<ReplicaStatus>) -> ReplicaStatusesSnapshot {
        ReplicaStatusesSnapshot {
            overall_status: OverallStatus { state: ProtonStatus::Restarting, summary: String::new(), last_updated: String::new() },
            replicas,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ready_replicas_are_routed_to_whatever_the_summary_says_and_keep_their_record() {
        let first = ready_backends(
            &snapshot(vec![replica("a", "127.0.0.1:1", true), replica("b", "127.0.0.1:2", true), replica("c", "127.0.0.1:3", false)]),
            &[],
        );
        assert_eq!(first.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(), ["a", "b"], "only ready ones");
        first[1].eject(Instant::now());
        // b dies: the next snapshot lists it not ready; then it is back.
        let second = ready_backends(&snapshot(vec![replica("a", "127.0.0.1:1", true), replica("b", "127.0.0.1:2", false)]), &first);
        assert!(Arc::ptr_eq(&second[0], &first[0]), "a keeps its backend");
        assert_eq!(second.len(), 1);
        let third = ready_backends(&snapshot(vec![replica("a", "127.0.0.1:1", true), replica("b", "127.0.0.1:2", true)]), &second);
        assert!(!third[1].is_ejected(Instant::now()), "back after a successful probe: a clean record");
        // Still ejected while it was never reported unready.
        let unchanged = ready_backends(&snapshot(vec![replica("a", "127.0.0.1:1", true), replica("b", "127.0.0.1:2", true)]), &first);
        assert!(unchanged[1].is_ejected(Instant::now()));
    }

    fn route(proton: &str, backends: Vec<Arc<Backend>>, canary: Option<Canary>, load: Arc<Load>) -> Arc<Route> {
        Arc::new(Route {
            prefix: http::HeaderValue::from_static("/p"),
            status: ProtonStatus::Running,
            desired: DesiredState::Running,
            proton: Some(proton.into()),
            backends,
            timeout: None,
            creator: None,
            shared: Vec::new(),
            load,
            wakes: false,
            stats: None,
            canary,
        })
    }

    #[test]
    fn a_canary_takes_its_share_evenly_while_it_has_ready_replicas() {
        let load = Arc::new(Load::default());
        let backend = || vec![Arc::new(Backend::new("r", "127.0.0.1:1").expect("backend"))];
        let lane = route("new", backend(), None, load.clone());
        let main = route("old", backend(), Some(Canary { percent: 10, route: lane }), load.clone());
        let picks: Vec<bool> = (0..1000).map(|_| main.lane().proton.as_deref() == Some("new")).collect();
        assert_eq!(picks.iter().filter(|c| **c).count(), 100);
        assert!(picks.chunks(10).all(|ten| ten.iter().filter(|c| **c).count() == 1), "one in every ten, not a burst of ten in a hundred");
        let unready = route("new", Vec::new(), None, load.clone());
        let main = route("old", backend(), Some(Canary { percent: 50, route: unready }), load);
        assert!((0..100).all(|_| main.lane().proton.as_deref() == Some("old")), "a canary with no ready replica takes nothing");
    }

    #[test]
    fn the_in_flight_limit_admits_up_to_it_and_counts_down_on_drop() {
        let load = Arc::new(Load::default());
        let first = load.admit(2).unwrap();
        let _second = load.admit(2).unwrap();
        assert!(load.admit(2).is_none(), "a third is over the limit");
        drop(first);
        assert!(load.admit(2).is_some(), "room again once one ends");
    }
}
