use std::time::Duration;

use crate::types::{GroupId, NodeId};

/// Errors of the metadata node: starting and running it, and every answer its gRPC services give
/// (each becomes a `tonic::Status` in one place, `status.rs`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("i/o error on {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rocksdb: {0}")]
    RocksDb(#[from] rocksdb::Error),
    #[error("rocksdb column family {0} is missing")]
    MissingColumnFamily(&'static str),
    #[error("corrupt data in {what}: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("configuration: {0}")]
    Config(String),
    #[error("raft: {0}")]
    Raft(String),
    #[error("could not bind {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error(transparent)]
    Tls(#[from] nucleus_tls::Error),
    #[error("node did not become leader within {0:?}")]
    NotLeader(Duration),
    #[error(
        "no meta leader known within {0:?}; check that a majority of the group's members are running \
         and can reach each other"
    )]
    NoLeader(Duration),
    #[error(
        "could not join the meta group via {seeds} as node {node_id} at {advertise}: {detail}; check that \
         those are gRPC addresses of running members, that a majority of the group is up, and that \
         {advertise} is reachable from the leader"
    )]
    Join { seeds: String, node_id: u64, advertise: String, detail: String },

    #[error("meta group {group} is not open on this node (the cluster has {shards} shard groups); try another member")]
    GroupNotOpen { group: GroupId, shards: u64 },
    /// A Raft message for a group this node has not opened yet (it is joining): the leader retries.
    #[error("raft group {0} is not open on this node yet")]
    RaftGroupNotOpen(GroupId),
    #[error("{}", not_leader_message(*.leader_id, .leader_addr.as_deref()))]
    Forward { leader_id: Option<NodeId>, leader_addr: Option<String> },
    #[error("{0}; retry shortly")]
    NoQuorum(String),
    #[error("raft stopped: {0}; restart this meta node (its log says why it stopped)")]
    RaftStopped(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("node {node} is not a voter of group {group}")]
    NotVoter { node: NodeId, group: GroupId },
    #[error("group {group}: did not win an election within {within:?}")]
    ElectionLost { group: GroupId, within: Duration },
    #[error(
        "node {node} was added as a learner but has not caught up within {within:?}; retry, and check that \
         {addr} is reachable from the leader"
    )]
    CatchUpTimeout { node: NodeId, addr: String, within: Duration },
    #[error("another membership change is in progress, retry: {0}")]
    MembershipBusy(String),
    #[error("membership change refused: {0}")]
    MembershipRefused(String),
    #[error(
        "revision {start} is compacted: this node keeps changes after revision {compacted} only \
         (oldest start revision {}); re-list",
        compacted + 1
    )]
    Compacted { start: u64, compacted: u64 },
    #[error("meta node shutting down")]
    ShuttingDown,
    #[error("state replaced by a snapshot; re-list")]
    SnapshotInstalled,
    #[error("watch fell behind; re-list")]
    FellBehind,
    #[error("encoding a raft message: {0}")]
    Encoding(String),
    #[error("node {0} is a member but has no address in the root group")]
    MemberWithoutAddress(NodeId),
    #[error("meta node at {addr} answered {code:?}: {message}")]
    PeerCall { addr: String, code: tonic::Code, message: String },
}

fn not_leader_message(leader_id: Option<NodeId>, leader_addr: Option<&str>) -> String {
    match (leader_id, leader_addr) {
        (Some(id), Some(addr)) => format!("not the meta leader; leader is node {id} at {addr}"),
        (Some(id), None) => format!("not the meta leader; leader is node {id}"),
        (None, _) => "not the meta leader; no leader known yet, retry shortly".to_owned(),
    }
}

impl Error {
    pub(crate) fn raft(e: impl std::fmt::Display) -> Self {
        Error::Raft(e.to_string())
    }

    pub(crate) fn corrupt(what: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Error::Corrupt { what: what.into(), detail: detail.to_string() }
    }
}
