//! Where invoke requests go: for each workload, its status and the addresses of the ready
//! replicas of its active proton. Fed by a meta watch on workloads and replica snapshots, so the
//! invoke path does not read meta.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use nucleus_api::identity::SharedRole;
use nucleus_api::{ProtonStatus, ReplicaStatusesSnapshot, UserData, Workload};
use nucleus_client::{keys, MetaClient, WatchEvent};

/// What the invoke proxy needs to know about one workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub status: ProtonStatus,
    /// The active proton, whose replicas the addresses are.
    pub proton: Option<String>,
    pub addresses: Vec<String>,
    /// Who may invoke it: its creator and its sharing list.
    pub creator: Option<UserData>,
    pub shared: Vec<SharedRole>,
}

/// What the table keeps of a workload.
#[derive(Debug, Clone)]
struct Entry {
    status: ProtonStatus,
    proton: Option<String>,
    creator: Option<UserData>,
    shared: Vec<SharedRole>,
}

impl Entry {
    fn of(w: Workload) -> Entry {
        Entry { status: w.status, proton: w.proton_id, creator: w.creator, shared: w.shared_roles }
    }
}

#[derive(Debug, Default)]
struct Tables {
    /// workload id → what routing needs of it
    workloads: HashMap<String, Entry>,
    /// (workload id, proton id) → ready addresses
    ready: HashMap<(String, String), Vec<String>>,
}

#[derive(Clone)]
pub struct RouteTable {
    tables: Arc<RwLock<Tables>>,
    /// Round-robin position per table, shared by all workloads: spreads load without per-workload state.
    next: Arc<AtomicUsize>,
    meta: MetaClient,
}

impl RouteTable {
    pub fn start(meta: MetaClient) -> RouteTable {
        let table = RouteTable { tables: Arc::default(), next: Arc::default(), meta };
        for prefix in [keys::WORKLOADS, keys::SNAPSHOTS] {
            let table = table.clone();
            tokio::spawn(async move { table.follow(prefix).await });
        }
        table
    }

    pub fn route(&self, workload_id: &str) -> Option<Route> {
        let tables = self.tables.read().unwrap_or_else(|p| p.into_inner());
        let entry = tables.workloads.get(workload_id)?.clone();
        let addresses = entry
            .proton
            .as_ref()
            .and_then(|p| tables.ready.get(&(workload_id.to_owned(), p.clone())))
            .cloned()
            .unwrap_or_default();
        Some(Route { status: entry.status, proton: entry.proton, addresses, creator: entry.creator, shared: entry.shared })
    }

    /// Reads the route from meta directly: used when the cache says "not servable", in case the
    /// watch has not delivered the latest change yet.
    pub async fn route_from_meta(&self, workload_id: &str) -> Result<Option<Route>, nucleus_client::Error> {
        let Some(workload) = self.meta.get_json::<Workload>(&keys::workload(workload_id)).await? else {
            return Ok(None);
        };
        let addresses = match &workload.value.proton_id {
            Some(p) => self
                .meta
                .get_json::<ReplicaStatusesSnapshot>(&keys::snapshot(workload_id, p))
                .await?
                .map(|s| s.value.ready_addresses())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let entry = Entry::of(workload.value);
        Ok(Some(Route { status: entry.status, proton: entry.proton, addresses, creator: entry.creator, shared: entry.shared }))
    }

    /// Picks the next replica, round-robin.
    pub fn pick<'a>(&self, addresses: &'a [String]) -> Option<&'a str> {
        if addresses.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % addresses.len();
        Some(&addresses[i])
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
        match event {
            WatchEvent::Reset(kvs) => {
                if is_workloads {
                    tables.workloads.clear();
                } else {
                    tables.ready.clear();
                }
                for kv in kvs {
                    upsert(&mut tables, is_workloads, kv);
                }
            }
            WatchEvent::Put(kv) => upsert(&mut tables, is_workloads, kv),
            WatchEvent::Delete { key, .. } => {
                if is_workloads {
                    tables.workloads.remove(keys::id_of(&key));
                } else if let Some(ids) = snapshot_ids(&key) {
                    tables.ready.remove(&ids);
                }
            }
        }
    }
}

fn upsert(tables: &mut Tables, is_workloads: bool, kv: nucleus_client::KeyValue) {
    if is_workloads {
        match serde_json::from_slice::<Workload>(&kv.value) {
            Ok(w) => {
                tables.workloads.insert(w.id.clone(), Entry::of(w));
            }
            Err(err) => tracing::warn!(key = kv.key, error = %err, "unreadable workload document"),
        }
    } else if let Some(ids) = snapshot_ids(&kv.key) {
        match serde_json::from_slice::<ReplicaStatusesSnapshot>(&kv.value) {
            Ok(s) => {
                tables.ready.insert(ids, s.ready_addresses());
            }
            Err(err) => tracing::warn!(key = kv.key, error = %err, "unreadable replica snapshot"),
        }
    }
}

/// `snapshots/<workload>/<proton>` → (workload, proton)
fn snapshot_ids(key: &str) -> Option<(String, String)> {
    let rest = key.strip_prefix(keys::SNAPSHOTS)?;
    let (workload, proton) = rest.split_once('/')?;
    Some((workload.to_owned(), proton.to_owned()))
}
