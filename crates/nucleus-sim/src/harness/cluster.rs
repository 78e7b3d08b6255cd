//! The meta hosts: the real [`MetaNode`] code in turmoil hosts, each with its own RocksDB
//! directory that outlives crashes, and what the harness observes of them while they run.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use nucleus_meta::{MetaConfig, MetaNode};

use super::net::TurmoilTransport;

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
    /// term -> the nodes seen leading in it (more than one is a violation).
    pub leaders: BTreeMap<u64, BTreeSet<u64>>,
    /// The latest leader seen, for the nemesis' leader isolation.
    pub latest_leader: Option<(u64, u64)>,
    /// Per node, its latest sampled applied state (cleared when the host crashes).
    pub replicas: BTreeMap<u64, Replica>,
    /// Voters each node last reported, to know when the group has formed.
    pub voters: BTreeMap<u64, BTreeSet<u64>>,
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
    let mut metrics = node.raft().metrics();
    let mut sample = tokio::time::interval(SNAPSHOT_EVERY);
    loop {
        {
            let m = metrics.borrow_and_update().clone();
            let mut seen = observed.borrow_mut();
            // Only a leader names itself as the current leader.
            if m.current_leader == Some(m.id) {
                let term = m.current_term;
                seen.leaders.entry(term).or_default().insert(id);
                if seen.latest_leader.is_none_or(|(t, _)| t <= term) {
                    seen.latest_leader = Some((term, id));
                }
            }
            seen.voters.insert(id, m.membership_config.membership().voter_ids().collect());
        }
        tokio::select! {
            changed = metrics.changed() => {
                if changed.is_err() {
                    return Err("raft metrics channel closed".into());
                }
            }
            _ = sample.tick() => {
                let replica = snapshot(&node)?;
                observed.borrow_mut().replicas.insert(id, replica);
            }
        }
    }
}

fn snapshot(node: &MetaNode) -> Result<Replica, Box<dyn std::error::Error>> {
    let view = node.reader().view();
    let applied_index = view.last_applied()?.map_or(0, |id| id.index);
    let revision = view.revision()?;
    let kvs = view.list("")?.into_iter().map(|kv| (kv.key, (kv.value, kv.mod_revision))).collect();
    Ok(Replica { applied_index, revision, kvs })
}
