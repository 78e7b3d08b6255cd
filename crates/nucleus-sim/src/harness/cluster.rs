//! The meta hosts: the real [`MetaNode`] code in turmoil hosts, each with its own RocksDB
//! directory that outlives crashes, and what the harness observes of them while they run.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use futures::FutureExt;
use nucleus_meta::{MetaConfig, MetaNode};

use super::net::TurmoilTransport;

/// Shard groups of the simulated cluster: with the root, every run exercises three Raft groups
/// per node (and the rebalancer's leader hand-overs between them).
pub const SHARDS: u64 = 2;

/// The group key `i` of the clients lives in (root included), spreading keys over all groups.
pub fn group_of_key(i: usize) -> u64 {
    i as u64 % (SHARDS + 1)
}

/// Port every meta host serves on.
pub const META_PORT: u16 = 7000;
/// How often each host records its applied state for the convergence check.
const SNAPSHOT_EVERY: Duration = Duration::from_millis(100);
/// How long a host whose start failed (no leader within the node's own wait) waits before
/// starting again, like a supervisor would.
const RESTART_DELAY: Duration = Duration::from_millis(500);

pub fn host_name(id: u64) -> String {
    format!("meta-{id}")
}

pub fn host_addr(id: u64) -> String {
    format!("{}:{META_PORT}", host_name(id))
}

/// One node's applied state as last sampled: (applied log index, revision, key -> (value, mod_revision)).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Replica {
    pub applied_index: u64,
    pub revision: u64,
    pub kvs: BTreeMap<String, (Vec<u8>, u64)>,
}

/// What the hosts report while the simulation runs; shared with the driver (one thread).
#[derive(Debug, Default)]
pub struct Observed {
    /// (group, term) -> the nodes seen leading it in that term (more than one is a violation).
    pub leaders: BTreeMap<(u64, u64), BTreeSet<u64>>,
    /// The latest root leader seen, for the nemesis' leader isolation.
    pub latest_leader: Option<(u64, u64)>,
    /// Per (node, group), its latest sampled applied state (cleared when the host crashes).
    pub replicas: BTreeMap<(u64, u64), Replica>,
    /// Voters each (node, group) last reported, to know when the cluster has formed.
    pub voters: BTreeMap<(u64, u64), BTreeSet<u64>>,
    /// Starts that failed and were retried (informational).
    pub failed_starts: u64,
}

pub type Shared = Rc<RefCell<Observed>>;

pub fn config(id: u64, data_root: &Path) -> MetaConfig {
    let listen = format!("0.0.0.0:{META_PORT}").parse().expect("listen address");
    MetaConfig {
        advertise: Some(host_addr(id)),
        join: if id == 1 { Vec::new() } else { vec![host_addr(1)] },
        inline_storage_writes: true,
        shards: SHARDS,
        ..MetaConfig::new(id, data_dir(data_root, id), listen)
    }
}

fn data_dir(root: &Path, id: u64) -> PathBuf {
    root.join(host_name(id))
}

/// The software of meta host `id`: start the node (again, after a failed start) and report on it
/// until the host is crashed.
pub async fn software(id: u64, data_root: PathBuf, observed: Shared) -> turmoil::Result {
    let node = loop {
        match MetaNode::start_with(config(id, &data_root), TurmoilTransport).await {
            Ok(node) => break node,
            Err(e) => {
                tracing::info!(node_id = id, error = %e, "meta start failed, starting again");
                observed.borrow_mut().failed_starts += 1;
                tokio::time::sleep(RESTART_DELAY).await;
            }
        }
    };
    let groups: Vec<_> = (0..=SHARDS).filter_map(|group| node.group(group)).collect();
    let mut metrics: Vec<_> = groups.iter().map(|g| g.raft.metrics()).collect();
    let mut sample = tokio::time::interval(SNAPSHOT_EVERY);
    loop {
        for (group, metrics) in groups.iter().zip(metrics.iter_mut()) {
            let m = metrics.borrow_and_update().clone();
            let mut seen = observed.borrow_mut();
            // Only a leader names itself as the current leader.
            if m.current_leader == Some(m.id) {
                let term = m.current_term;
                seen.leaders.entry((group.id, term)).or_default().insert(id);
                if group.id == 0 && seen.latest_leader.is_none_or(|(t, _)| t <= term) {
                    seen.latest_leader = Some((term, id));
                }
            }
            seen.voters.insert((id, group.id), m.membership_config.membership().voter_ids().collect());
        }
        // Every change of any group's metrics is looked at, so no leadership goes unseen.
        let changed = futures::future::select_all(metrics.iter_mut().map(|m| m.changed().boxed()));
        tokio::select! {
            (changed, _, _) = changed => {
                if changed.is_err() {
                    return Err("raft metrics channel closed".into());
                }
            }
            _ = sample.tick() => {
                let mut replicas = Vec::new();
                for group in &groups {
                    replicas.push((group.id, snapshot(&group.reader)?));
                }
                let mut seen = observed.borrow_mut();
                for (group, replica) in replicas {
                    seen.replicas.insert((id, group), replica);
                }
            }
        }
    }
}

fn snapshot(reader: &nucleus_meta::store::KvReader) -> Result<Replica, Box<dyn std::error::Error>> {
    let view = reader.view();
    let applied_index = view.last_applied()?.map_or(0, |id| id.index);
    let revision = view.revision()?;
    let kvs = view.list("")?.into_iter().map(|kv| (kv.key, (kv.value, kv.mod_revision))).collect();
    Ok(Replica { applied_index, revision, kvs })
}
