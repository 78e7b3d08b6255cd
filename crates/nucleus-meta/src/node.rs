//! A running metadata node: RocksDB + Raft + the gRPC server, started and stopped as one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use nucleus_proto::meta::v1::meta_server::MetaServer;
use nucleus_proto::raft::v1::raft_server::RaftServer;
use openraft::{BasicNode, RaftMetrics, ServerState};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tonic::transport::Server;

use crate::config::MetaConfig;
use crate::error::Error;
use crate::joiner::{self, JoinRequest};
use crate::meta_service::MetaService;
use crate::network::NetworkFactory;
use crate::raft_service::RaftService;
use crate::startup::{self, StartPlan};
use crate::transport::{TokioTransport, Transport};
use crate::store::{Db, KvReader, LogStore, StateMachine};
use crate::types::{NodeId, Raft};

/// The only Raft group for now; kept in every Raft message for later sharding.
pub const GROUP_ID: u64 = 0;
const LEADER_WAIT: Duration = Duration::from_secs(10);
/// How long a joining node keeps asking members to add it.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
const SERVER_STOP_WAIT: Duration = Duration::from_secs(5);
const DB_RELEASE_WAIT: Duration = Duration::from_secs(5);
/// Applied change sets kept for slow watchers before they are told to re-list.
const EVENT_BUFFER: usize = 4096;

pub struct MetaNode {
    node_id: NodeId,
    addr: SocketAddr,
    advertise: String,
    raft: Raft,
    db: Db,
    reader: KvReader,
    stop: watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl MetaNode {
    /// Opens RocksDB under `data_dir`, starts the Raft node and serves Meta + Raft gRPC on `listen`
    /// (port 0 allowed). Then, by what is stored and configured:
    /// - no Raft state, `join` empty: initializes a one-member group and returns once leader;
    /// - no Raft state, `join` given: asks those members to add it (following leader hints, for up
    ///   to ~30 s) and returns once it is a voter that has caught up;
    /// - Raft state: never re-initializes; re-joins only if its advertised address changed (or a
    ///   join stopped at learner). Returns once a leader is known (a sole voter: once leader).
    pub async fn start(config: MetaConfig) -> Result<MetaNode, Error> {
        MetaNode::start_with(config, TokioTransport).await
    }

    /// [`MetaNode::start`] over another network: the server accepts the connections of
    /// `transport`'s listener, and Raft and Join calls dial through it.
    pub async fn start_with<T: Transport>(config: MetaConfig, transport: T) -> Result<MetaNode, Error> {
        let raft_config = Arc::new(config.raft_config()?);
        let db = Db::open(&config.data_dir.join("meta").join("db"))?;
        let (incoming, addr) =
            transport.bind(config.listen).await.map_err(|source| Error::Bind { addr: config.listen, source })?;
        let advertise = config.advertise_addr(addr)?;

        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let raft = Raft::new(
            config.node_id,
            raft_config,
            NetworkFactory::new(GROUP_ID, transport.clone()),
            LogStore::new(db.clone()).inline_writes(config.inline_storage_writes),
            StateMachine::new(db.clone(), events.clone()).watch_history(config.watch_history),
        )
        .await
        .map_err(Error::raft)?;

        let (stop, stop_rx) = watch::channel(false);
        let reader = KvReader::new(db.clone());
        let meta = MetaService::new(raft.clone(), reader.clone(), events, stop_rx.clone());
        let mut signal = stop_rx;
        let server = tokio::spawn(
            Server::builder()
                .add_service(MetaServer::new(meta))
                .add_service(RaftServer::new(RaftService::new(raft.clone(), GROUP_ID)))
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = signal.wait_for(|stop| *stop).await;
                }),
        );
        tracing::info!(node_id = config.node_id, %addr, %advertise, "meta node serving");

        let node = MetaNode { node_id: config.node_id, addr, advertise, raft, db, reader, stop, server };
        if let Err(e) = node.take_place(&transport, &config.join).await {
            if let Err(stop_err) = node.shutdown().await {
                tracing::warn!(error = %stop_err, "shutdown after failed start");
            }
            return Err(e);
        }
        Ok(node)
    }

    /// Brings this node into its group according to [`startup::plan`].
    async fn take_place(&self, transport: &impl Transport, join: &[String]) -> Result<(), Error> {
        let initialized = self.raft.is_initialized().await.map_err(Error::raft)?;
        let membership = self
            .raft
            .with_raft_state(|state| state.membership_state.effective().membership().clone())
            .await
            .map_err(Error::raft)?;
        let plan = startup::plan(initialized, &membership, self.node_id, &self.advertise, join);
        tracing::info!(node_id = self.node_id, ?plan, "joining the meta group");
        match plan {
            StartPlan::Bootstrap => {
                let members = BTreeMap::from([(self.node_id, BasicNode::new(self.advertise.clone()))]);
                self.raft.initialize(members).await.map_err(Error::raft)?;
                tracing::info!(node_id = self.node_id, "initialized single-member meta group");
                self.wait_until("become leader", is_leader).await.ok_or(Error::NotLeader(LEADER_WAIT))
            }
            StartPlan::Join { seeds } => {
                let request = JoinRequest { node_id: self.node_id, advertise: &self.advertise, seeds: &seeds };
                joiner::join(transport, &request, JOIN_TIMEOUT).await?;
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
                    "this node has raft state but is not a member of its group (was it removed?); \
                     serving without a role until a member adds it back"
                );
                Ok(())
            }
        }
    }

    /// Waits up to [`LEADER_WAIT`] for `condition` on this node's metrics; `None` if it never held.
    async fn wait_until(
        &self,
        what: &str,
        condition: impl Fn(&RaftMetrics<NodeId, BasicNode>) -> bool + Send,
    ) -> Option<()> {
        match self.raft.wait(Some(LEADER_WAIT)).metrics(condition, what).await {
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

    /// The Raft handle (metrics, membership changes).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Local (not linearizable) read access to the applied state.
    pub fn reader(&self) -> &KvReader {
        &self.reader
    }

    /// Stops gRPC (ending open watches), shuts Raft down and closes RocksDB.
    pub async fn shutdown(self) -> Result<(), Error> {
        let MetaNode { node_id, raft, db, reader, stop, mut server, .. } = self;
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
        raft.shutdown().await.map_err(Error::raft)?;
        drop(raft);
        drop(reader);
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
        Ok(())
    }
}

fn is_leader(m: &RaftMetrics<NodeId, BasicNode>) -> bool {
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
