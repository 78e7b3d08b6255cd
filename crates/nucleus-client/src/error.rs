#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach {service} at {addr}: {message}; is the process running and the address right?")]
    Connect { service: &'static str, addr: String, message: String },
    #[error("{service} call failed: {status}")]
    Rpc { service: &'static str, status: tonic::Status },
    #[error("stored document {key} is not valid JSON for its type: {source}")]
    Decode { key: String, source: serde_json::Error },
    #[error("cannot encode document {key}: {source}")]
    Encode { key: String, source: serde_json::Error },
    /// Nothing was sent: meta applies a transaction within one Raft group only.
    #[error(
        "transaction spans several metadata groups (keys {keys:?}); a transaction must stay within one \
         workload (its workload/proton/snapshot/event keys) or within cluster-wide documents"
    )]
    CrossGroup { keys: Vec<String> },
    /// A single watch stream covers one group; [`crate::MetaClient::watch_resumable`] merges several.
    #[error("prefix {prefix:?} spans {groups} metadata groups; watch it with watch_resumable, which merges them")]
    MultiGroupWatch { prefix: String, groups: usize },
}

impl Error {
    /// Worth retrying with the same request id: the service may not have seen the call, or may be
    /// electing a leader.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Connect { .. } => true,
            // Cancelled: the connection closed under the call (the node died mid-request). Safe
            // to retry: writes carry a request id, so one that did apply is not applied again.
            Error::Rpc { status, .. } => matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Unknown | tonic::Code::Cancelled
            ),
            _ => false,
        }
    }

    /// A watch asked for changes older than meta still keeps: re-list instead.
    pub fn is_compacted(&self) -> bool {
        matches!(self, Error::Rpc { status, .. } if status.code() == tonic::Code::OutOfRange)
    }
}
