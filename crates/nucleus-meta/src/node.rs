//! A running metadata node: RocksDB, the Raft groups it hosts (root and shards), the gRPC server
//! and the shard rebalancer, started and stopped as one.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use nucleus_proto::meta::v1::meta_server::MetaServer;
use nucleus_proto::raft::v1::raft_server::RaftServer;
use nucleus_tls::RoleGuardLayer;
use openraft::{BasicNode, RaftMetrics, ServerState};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Server;

use crate::config::MetaConfig;
use crate::error::Error;
use crate::groups::{Group, GroupOpener, Groups, ROOT_GROUP};
use crate::joiner::{self, JoinRequest};
use crate::meta_service::MetaService;
use crate::raft_service::RaftService;
use crate::rebalancer::Rebalancer;
use crate::startup::{self, StartPlan};
use crate::store::{Db, KvReader};
use crate::transport::{TlsTransport, TokioTransport, Transport};
use crate::types::{GroupId, NodeId, Raft};

const LEADER_WAIT: Duration = Duration::from_secs(10);
/// How long a joining node keeps asking members to add it.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
const SERVER_STOP_WAIT: Duration = Duration::from_secs(5);
const DB_RELEASE_WAIT: Duration = Duration::from_secs(5);
/// How often the groups are checked for a storage failure.
const FAILURE_POLL: Duration = Duration::from_millis(250);

pub struct MetaNode {
    node_id: NodeId,
    addr: SocketAddr,
    advertise: String,
    groups: Groups,
    root: Arc<Group>,
    db: Db,
    stop: watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    rebalancer: Option<JoinHandle<()>>,
}

impl MetaNode {
    /// Opens RocksDB under `data_dir`, starts the Raft groups it holds and serves Meta + Raft gRPC
    /// on `listen` (port 0 allowed). Then, by what is stored and configured:
    /// - no Raft state, `join` empty: creates a cluster of `shards` shard groups plus the root, all
    ///   with this node as the only member, and returns once it leads them;
    /// - no Raft state, `join` given: asks those members to add it to the root group (following
    ///   leader hints, for up to ~30 s), opens the cluster's shard groups (their leaders add this
    ///   node as placement says) and returns once it is a caught-up root voter;
    /// - Raft state: never re-initializes; re-joins only if its advertised address changed (or a
    ///   join stopped at learner). Returns once a root leader is known (a sole voter: once leader).
    pub async fn start(config: MetaConfig) -> Result<MetaNode, Error> {
        match config.tls.clone() {
            Some(tls) => MetaNode::start_with(config, TlsTransport::new(tls)).await,
            None => MetaNode::start_with(config, TokioTransport).await,
        }
    }

    /// [`MetaNode::start`] over another network: the server accepts the connections of
    /// `transport`'s listener, and Raft and Join calls dial through it.
    pub async fn start_with<T: Transport>(config: MetaConfig, transport: T) -> Result<MetaNode, Error> {
        let raft_config = Arc::new(config.raft_config()?);
        let leader_lease = Duration::from_millis(raft_config.election_timeout_max);
        let db = Db::open(&config.data_dir.join("meta").join("db"))?;
        let (incoming, addr) = transport.bind(config.listen).await.map_err(|source| Error::Bind { addr: config.listen, source })?;
        let advertise = config.advertise_addr(addr)?;

        let groups = Groups::default();
        let opener = GroupOpener {
            node_id: config.node_id,
            db: db.clone(),
            transport: transport.clone(),
            raft_config,
            inline_storage_writes: config.inline_storage_writes,
            watch_history: config.watch_history,
        };
        let root = opener.open(ROOT_GROUP, &groups).await?;
        if let Some(count) = db.shard_count()? {
            open_shards(&opener, &groups, count).await?;
        }

        let (stop, stop_rx) = watch::channel(false);
        let meta = MetaService::new(groups.clone(), stop_rx.clone(), leader_lease);
        let mut signal = stop_rx;
        let server = tokio::spawn(
            Server::builder()
                .layer(RoleGuardLayer::new(nucleus_tls::policy::meta_server, transport.authenticates()))
                .add_service(MetaServer::new(meta))
                .add_service(
                    RaftServer::new(RaftService::new(groups.clone()))
                        .max_decoding_message_size(crate::network::RAFT_MESSAGE_LIMIT)
                        .max_encoding_message_size(crate::network::RAFT_MESSAGE_LIMIT),
                )
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = signal.wait_for(|stop| *stop).await;
                }),
        );
        tracing::info!(node_id = config.node_id, %addr, %advertise, "meta node serving");

        let mut node = MetaNode { node_id: config.node_id, addr, advertise, groups, root, db, stop, server, rebalancer: None };
        if let Err(e) = node.take_place(&opener, &config).await {
            if let Err(stop_err) = node.shutdown().await {
                tracing::warn!(error = %stop_err, "shutdown after failed start");
            }
            return Err(e);
        }
        let rebalancer = Rebalancer::new(node.node_id, node.groups.clone(), transport);
        node.rebalancer = Some(tokio::spawn(rebalancer.run(node.stop.subscribe())));
        Ok(node)
    }

    /// Brings this node into its cluster according to [`startup::plan`] of the root group.
    async fn take_place<T: Transport>(&self, opener: &GroupOpener<T>, config: &MetaConfig) -> Result<(), Error> {
        let raft = &self.root.raft;
        let initialized = raft.is_initialized().await.map_err(Error::raft)?;
        let membership =
            raft.with_raft_state(|state| state.membership_state.effective().membership().clone()).await.map_err(Error::raft)?;
        let plan = startup::plan(initialized, &membership, self.node_id, &self.advertise, &config.join);
        tracing::info!(node_id = self.node_id, ?plan, "taking a place in the meta cluster");
        if !matches!(plan, StartPlan::Bootstrap | StartPlan::Join { .. }) && self.groups.shard_count() == 0 {
            return Err(Error::Config(format!(
                "{} has Raft state but no record of the cluster's shard count; it was not written by this \
                 version of Nucleus, or a join was cut short: move it away and join the node again",
                config.data_dir.display()
            )));
        }
        match plan {
            StartPlan::Bootstrap => self.bootstrap(opener, config.shards).await,
            StartPlan::Join { seeds } => {
                let request = JoinRequest { node_id: self.node_id, advertise: &self.advertise, seeds: &seeds };
                let joined = joiner::join(&opener.transport, &request, JOIN_TIMEOUT).await?;
                self.adopt_shard_count(opener, joined.shard_count, &seeds).await?;
                let advertise = self.advertise.clone();
                let caught_up = self.wait_until("be a caught-up voter", move |m| caught_up_voter(m, &advertise)).await;
                caught_up.ok_or_else(|| Error::Join {
                    seeds: seeds.join(", "),
                    node_id: self.node_id,
                    advertise: self.advertise.clone(),
                    detail: format!("joined, but not a caught-up voter after {LEADER_WAIT:?}"),
                })
            }
            StartPlan::Resume { sole_voter: true } => {
                self.wait_until("become leader", is_leader).await.ok_or(Error::NotLeader(LEADER_WAIT))
            }
            StartPlan::Resume { sole_voter: false } => {
                let known = self.wait_until("know the leader", |m| m.current_leader.is_some()).await;
                known.ok_or(Error::NoLeader(LEADER_WAIT))
            }
            StartPlan::Detached => {
                tracing::warn!(
                    node_id = self.node_id,
                    "this node has raft state but is not a member of its cluster (was it removed?); \
                     serving without a role until a member adds it back"
                );
                Ok(())
            }
        }
    }

    /// A new cluster: every shard group, then the root, initialized with this node alone. Safe to
    /// repeat after a crash part-way (initialized groups are left as they are).
    async fn bootstrap<T: Transport>(&self, opener: &GroupOpener<T>, shards: u64) -> Result<(), Error> {
        let shards = match self.db.shard_count()? {
            Some(stored) => stored,
            None => {
                self.db.set_shard_count(shards)?;
                shards
            }
        };
        open_shards(opener, &self.groups, shards).await?;
        let members = BTreeMap::from([(self.node_id, BasicNode::new(self.advertise.clone()))]);
        let mut ordered = self.groups.all();
        ordered.rotate_left(1); // root last: an initialized root means the whole cluster exists
        for group in &ordered {
            if !group.raft.is_initialized().await.map_err(Error::raft)? {
                group.raft.initialize(members.clone()).await.map_err(Error::raft)?;
            }
        }
        tracing::info!(node_id = self.node_id, shards, "initialized a new meta cluster");
        for group in &ordered {
            let led = group.raft.wait(Some(LEADER_WAIT)).metrics(is_leader, "lead a new group").await;
            led.map_err(|_| Error::NotLeader(LEADER_WAIT))?;
        }
        Ok(())
    }

    /// Records and opens the shard groups of the cluster this node joined.
    async fn adopt_shard_count<T: Transport>(&self, opener: &GroupOpener<T>, count: u64, seeds: &[String]) -> Result<(), Error> {
        let join_error =
            |detail: String| Error::Join { seeds: seeds.join(", "), node_id: self.node_id, advertise: self.advertise.clone(), detail };
        if count == 0 {
            return Err(join_error("the member that accepted the join did not say how many shards the cluster has".into()));
        }
        match self.db.shard_count()? {
            Some(stored) if stored != count => {
                return Err(join_error(format!("this node's data dir belongs to a cluster with {stored} shards, the cluster has {count}")));
            }
            Some(_) => {}
            None => self.db.set_shard_count(count)?,
        }
        open_shards(opener, &self.groups, count).await
    }

    /// Waits up to [`LEADER_WAIT`] for `condition` on this node's metrics; `None` if it never held.
    async fn wait_until(&self, what: &str, condition: impl Fn(&RaftMetrics<NodeId, BasicNode>) -> bool + Send) -> Option<()> {
        match self.root.raft.wait(Some(LEADER_WAIT)).metrics(condition, what).await {
            Ok(_) => Some(()),
            Err(e) => {
                tracing::warn!(node_id = self.node_id, error = %e, "gave up waiting to {what}");
                None
            }
        }
    }

    /// The bound gRPC address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address this node is listed at in the group's membership.
    pub fn advertise(&self) -> &str {
        &self.advertise
    }

    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The root group's Raft handle (metrics, membership changes).
    pub fn raft(&self) -> &Raft {
        &self.root.raft
    }

    /// Local (not linearizable) read access to the root group's applied state.
    pub fn reader(&self) -> &KvReader {
        &self.root.reader
    }

    /// A group this node hosts (0: root, 1..=shard_count: shards).
    pub fn group(&self, id: GroupId) -> Option<Arc<Group>> {
        self.groups.get(id)
    }

    /// The cluster's number of shard groups.
    pub fn shard_count(&self) -> u64 {
        self.groups.shard_count()
    }

    /// Resolves when a Raft group of this node has stopped on a storage error (a full disk, a
    /// corrupt file), with that error: the node cannot serve any more, and should stop at once
    /// rather than answer "raft stopped" to every call.
    pub fn storage_failure(&self) -> impl Future<Output = String> + Send + 'static + use<> {
        let groups = self.groups.clone();
        async move {
            let mut every = tokio::time::interval(FAILURE_POLL);
            loop {
                every.tick().await;
                for group in groups.all() {
                    let failed = match &group.raft.metrics().borrow().running_state {
                        Err(fatal @ (openraft::error::Fatal::StorageError(_) | openraft::error::Fatal::Panicked)) => {
                            Some(format!("group {}: {fatal}", group.id))
                        }
                        _ => None,
                    };
                    if let Some(failure) = failed {
                        return failure;
                    }
                }
            }
        }
    }

    /// Stops gRPC (ending open watches) and the rebalancer, shuts every Raft group down and closes
    /// RocksDB.
    pub async fn shutdown(self) -> Result<(), Error> {
        let MetaNode { node_id, groups, root, db, stop, mut server, rebalancer, .. } = self;
        let _ = stop.send(true);
        match tokio::time::timeout(SERVER_STOP_WAIT, &mut server).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "grpc server ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "grpc server task failed"),
            Err(_) => {
                tracing::warn!("grpc server did not stop in time, aborting it");
                server.abort();
                let _ = server.await;
            }
        }
        if let Some(rebalancer) = rebalancer {
            rebalancer.abort();
            let _ = rebalancer.await;
        }
        drop(root);
        let mut first_error = None;
        for group in groups.drain() {
            if let Err(e) = group.raft.shutdown().await {
                tracing::warn!(group = group.id, error = %e, "raft group did not shut down cleanly");
                first_error.get_or_insert(Error::raft(e));
            }
        }
        // Raft's storage tasks end shortly after shutdown; RocksDB closes when the last handle goes.
        let deadline = tokio::time::Instant::now() + DB_RELEASE_WAIT;
        while db.handles() > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if db.handles() > 1 {
            tracing::warn!(handles = db.handles(), "rocksdb still in use after shutdown");
        }
        drop(db);
        tracing::info!(node_id, "meta node stopped");
        first_error.map_or(Ok(()), Err)
    }
}

/// Opens shard groups 1..=count (already open ones are kept).
async fn open_shards<T: Transport>(opener: &GroupOpener<T>, groups: &Groups, count: u64) -> Result<(), Error> {
    groups.set_shard_count(count);
    for id in 1..=count {
        opener.open(id, groups).await?;
    }
    Ok(())
}

pub(crate) fn is_leader(m: &RaftMetrics<NodeId, BasicNode>) -> bool {
    m.state == ServerState::Leader && m.current_leader == Some(m.id)
}

/// A voter at `advertise` that knows the leader and has applied the membership that made it one.
fn caught_up_voter(m: &RaftMetrics<NodeId, BasicNode>, advertise: &str) -> bool {
    let membership = m.membership_config.membership();
    let listed = membership.get_node(&m.id).is_some_and(|node| node.addr == advertise);
    let voter = membership.voter_ids().any(|id| id == m.id);
    let applied = m.last_applied.map(|id| id.index) >= m.membership_config.log_id().map(|id| id.index);
    listed && voter && m.current_leader.is_some() && applied
}
