use std::time::Duration;

/// Errors of the metadata node.
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
}

impl Error {
    pub(crate) fn raft(e: impl std::fmt::Display) -> Self {
        Error::Raft(e.to_string())
    }

    pub(crate) fn corrupt(what: impl Into<String>, detail: impl std::fmt::Display) -> Self {
        Error::Corrupt { what: what.into(), detail: detail.to_string() }
    }
}
