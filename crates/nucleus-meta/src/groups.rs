//! The Raft groups a node hosts (root and shards), each with its storage and watch feed, and how a
//! group is brought up on this node.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use nucleus_telemetry::Histogram;
use openraft::error::{ClientWriteError, RaftError};
use openraft::raft::ClientWriteResponse;
use openraft::{BasicNode, Config};
use tokio::sync::broadcast;

use crate::error::Error;
use crate::metrics;
use crate::network::NetworkFactory;
use crate::store::{Db, Keyspace, KvReader, LogStore, StateMachine};
use crate::transport::Transport;
use crate::types::{GroupId, NodeId, Raft, SmEvent, TypeConfig, WriteCommand};

/// The root group: members, the shard count, and every cluster-wide document.
pub const ROOT_GROUP: GroupId = 0;
/// Applied change sets kept for slow watchers (per group) before they are told to re-list.
const EVENT_BUFFER: usize = 4096;

/// One hosted group: its Raft handle, read access to its state and the feed of applied changes.
pub struct Group {
    pub id: GroupId,
    pub raft: Raft,
    pub reader: KvReader,
    pub events: broadcast::Sender<Arc<SmEvent>>,
    commit_seconds: Histogram,
}

impl Group {
    /// Proposes `command` through the group's Raft log and waits until it is applied (on the
    /// leader; elsewhere openraft refuses it at once).
    pub(crate) async fn write(
        &self,
        command: WriteCommand,
    ) -> Result<ClientWriteResponse<TypeConfig>, RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>> {
        let started = tokio::time::Instant::now();
        let written = self.raft.client_write(command).await;
        // Only commits are timed: a follower's refusal says nothing about commit latency.
        if written.is_ok() {
            self.commit_seconds.observe(started.elapsed().as_secs_f64());
        }
        written
    }
}

/// The groups of this node by id, and the cluster's shard count once known; shared by the gRPC
/// services, the rebalancer and the node.
#[derive(Clone, Default)]
pub struct Groups {
    by_id: Arc<RwLock<BTreeMap<GroupId, Arc<Group>>>>,
    shard_count: Arc<AtomicU64>,
}

impl Groups {
    pub fn get(&self, id: GroupId) -> Option<Arc<Group>> {
        self.by_id.read().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }

    /// Every hosted group, root first.
    pub fn all(&self) -> Vec<Arc<Group>> {
        self.by_id.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect()
    }

    fn insert(&self, group: Group) -> Arc<Group> {
        let group = Arc::new(group);
        self.by_id.write().unwrap_or_else(|p| p.into_inner()).insert(group.id, group.clone());
        group
    }

    /// Takes every group out (for shutdown).
    pub fn drain(&self) -> Vec<Arc<Group>> {
        std::mem::take(&mut *self.by_id.write().unwrap_or_else(|p| p.into_inner())).into_values().collect()
    }

    /// 0 until this node knows it (a joining node learns it from the cluster).
    pub fn shard_count(&self) -> u64 {
        self.shard_count.load(Ordering::Relaxed)
    }

    pub(crate) fn set_shard_count(&self, count: u64) {
        self.shard_count.store(count, Ordering::Relaxed);
    }
}

/// What every group of a node is built from.
pub struct GroupOpener<T> {
    pub node_id: NodeId,
    pub db: Db,
    pub transport: T,
    pub raft_config: Arc<Config>,
    pub inline_storage_writes: bool,
    pub watch_history: u64,
}

impl<T: Transport> GroupOpener<T> {
    /// Starts the Raft node of `id` over its stored state (none: uninitialized, waiting to be
    /// initialized or added by a leader) and registers it in `groups`.
    pub async fn open(&self, id: GroupId, groups: &Groups) -> Result<Arc<Group>, Error> {
        if let Some(group) = groups.get(id) {
            return Ok(group);
        }
        let keys = Keyspace::of(id);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let raft = Raft::new(
            self.node_id,
            self.raft_config.clone(),
            NetworkFactory::new(id, self.transport.clone()),
            LogStore::new(self.db.clone(), keys).inline_writes(self.inline_storage_writes),
            StateMachine::new(self.db.clone(), keys, events.clone()).watch_history(self.watch_history).metered(self.node_id),
        )
        .await
        .map_err(Error::raft)?;
        let reader = KvReader::new(self.db.clone(), keys);
        let group = groups.insert(Group { id, raft, reader, events, commit_seconds: metrics::commit_seconds(id) });
        metrics::watch_group(self.node_id, &group);
        Ok(group)
    }
}
