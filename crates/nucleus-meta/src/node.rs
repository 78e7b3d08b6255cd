//! A running metadata node: RocksDB + Raft + the gRPC server, started and stopped as one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nucleus_proto::meta::v1::meta_server::MetaServer;
use nucleus_proto::raft::v1::raft_server::RaftServer;
use openraft::{BasicNode, Config, ServerState, SnapshotPolicy};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::error::Error;
use crate::meta_service::MetaService;
use crate::network::NetworkFactory;
use crate::raft_service::RaftService;
use crate::store::{Db, KvReader, LogStore, StateMachine};
use crate::types::{NodeId, Raft};

/// The only Raft group for now; kept in every Raft message for later sharding.
pub const GROUP_ID: u64 = 0;
const LEADER_WAIT: Duration = Duration::from_secs(10);
const SERVER_STOP_WAIT: Duration = Duration::from_secs(5);
const DB_RELEASE_WAIT: Duration = Duration::from_secs(5);
/// Applied change sets kept for slow watchers before they are told to re-list.
const EVENT_BUFFER: usize = 4096;

#[derive(Debug, Clone)]
pub struct MetaConfig {
    pub node_id: u64,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
}

pub struct MetaNode {
    node_id: NodeId,
    addr: SocketAddr,
    raft: Raft,
    db: Db,
    reader: KvReader,
    stop: watch::Sender<bool>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
}

fn raft_config() -> Result<Config, Error> {
    let config = Config {
        cluster_name: "nucleus-meta".to_owned(),
        heartbeat_interval: 150,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(5000),
        max_in_snapshot_log_to_keep: 1000,
        ..Default::default()
    };
    config.validate().map_err(|e| Error::RaftConfig(e.to_string()))
}

impl MetaNode {
    /// Opens RocksDB under `data_dir`, starts the Raft node, serves Meta + Raft gRPC on `listen`
    /// (port 0 allowed), and, on first start only, initializes a one-member cluster with itself.
    /// Returns once this node is leader (error after ~10 s). On restart it does not re-initialize.
    pub async fn start(config: MetaConfig) -> Result<MetaNode, Error> {
        let db = Db::open(&config.data_dir.join("meta").join("db"))?;
        let listener =
            TcpListener::bind(config.listen).await.map_err(|source| Error::Bind { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind { addr: config.listen, source })?;

        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let raft = Raft::new(
            config.node_id,
            Arc::new(raft_config()?),
            NetworkFactory { group_id: GROUP_ID },
            LogStore::new(db.clone()),
            StateMachine::new(db.clone(), events.clone()),
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
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
                    let _ = signal.wait_for(|stop| *stop).await;
                }),
        );
        tracing::info!(node_id = config.node_id, %addr, "meta node serving");

        let node = MetaNode { node_id: config.node_id, addr, raft, db, reader, stop, server };
        if let Err(e) = node.init_and_wait_leader().await {
            if let Err(stop_err) = node.shutdown().await {
                tracing::warn!(error = %stop_err, "shutdown after failed start");
            }
            return Err(e);
        }
        Ok(node)
    }

    async fn init_and_wait_leader(&self) -> Result<(), Error> {
        if self.raft.is_initialized().await.map_err(Error::raft)? {
            tracing::info!(node_id = self.node_id, "existing raft state found, not initializing");
        } else {
            let members = BTreeMap::from([(self.node_id, BasicNode::new(self.addr.to_string()))]);
            self.raft.initialize(members).await.map_err(Error::raft)?;
            tracing::info!(node_id = self.node_id, "initialized single-member meta cluster");
        }
        let id = self.node_id;
        self.raft
            .wait(Some(LEADER_WAIT))
            .metrics(|m| m.state == ServerState::Leader && m.current_leader == Some(id), "become leader")
            .await
            .map_err(|_| Error::NotLeader(LEADER_WAIT))?;
        Ok(())
    }

    /// The bound gRPC address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
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
