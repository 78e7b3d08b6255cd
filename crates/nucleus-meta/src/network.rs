//! openraft's network over the `nucleus.raft.v1.Raft` gRPC service: requests and responses are
//! openraft's own types encoded as JSON, the response being the remote `Result`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nucleus_proto::raft::v1::RaftMessage;
use nucleus_proto::raft::v1::raft_client::RaftClient;
use openraft::BasicNode;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use crate::transport::Transport;
use crate::types::{NodeId, TypeConfig};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP/2 pings on every peer connection: one that stops answering (peer host gone without a
/// FIN, or a network that dropped bytes for good) is closed and the channel reconnects, instead
/// of every RPC timing out on it forever.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(1);

/// Creates one [`Network`] per target node of the group `group_id`. openraft asks for a new
/// client for every linearizable read, so channels (one HTTP/2 connection per peer) are shared.
pub struct NetworkFactory<T> {
    group_id: u64,
    transport: T,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl<T: Transport> NetworkFactory<T> {
    pub fn new(group_id: u64, transport: T) -> NetworkFactory<T> {
        NetworkFactory { group_id, transport, channels: Arc::default() }
    }
}

impl<T: Transport> RaftNetworkFactory<TypeConfig> for NetworkFactory<T> {
    type Network = Network<T>;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Network<T> {
        Network {
            group_id: self.group_id,
            target,
            addr: node.addr.clone(),
            transport: self.transport.clone(),
            channels: self.channels.clone(),
        }
    }
}

pub struct Network<T> {
    group_id: u64,
    target: NodeId,
    addr: String,
    transport: T,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

#[derive(Clone, Copy, Debug)]
enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

/// Raft messages between meta nodes may exceed gRPC's default 4 MiB: a batch of entries that
/// carry large documents, or a snapshot chunk (JSON-encoded).
pub(crate) const RAFT_MESSAGE_LIMIT: usize = 256 * 1024 * 1024;

fn raft_client(channel: Channel) -> RaftClient<Channel> {
    RaftClient::new(channel).max_decoding_message_size(RAFT_MESSAGE_LIMIT).max_encoding_message_size(RAFT_MESSAGE_LIMIT)
}

impl<T: Transport> Network<T> {
    fn client(&mut self) -> Result<RaftClient<Channel>, Unreachable> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get(&self.addr) {
            return Ok(raft_client(channel.clone()));
        }
        let endpoint = self
            .transport
            .endpoint(&self.addr)
            .map_err(|e| Unreachable::new(&e))?
            .connect_timeout(CONNECT_TIMEOUT)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true);
        let channel = self.transport.channel(endpoint);
        channels.insert(self.addr.clone(), channel.clone());
        Ok(raft_client(channel))
    }

    /// `data`: bytes sent beside the JSON payload (a snapshot chunk's), empty otherwise.
    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        req: &Req,
        data: Vec<u8>,
        timeout: Duration,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let payload = serde_json::to_vec(req).map_err(|e| NetworkError::new(&e))?;
        let mut request = tonic::Request::new(RaftMessage { group_id: self.group_id, payload, data });
        request.set_timeout(timeout);
        let mut client = self.client()?;
        // openraft sets the budget per kind: heartbeat_interval for append entries, the election
        // timeout for votes, install_snapshot_timeout per snapshot chunk. Enforce it here as well so
        // a stalled connection is given up rather than left to linger in the transport.
        let call = async {
            match rpc {
                Rpc::AppendEntries => client.append_entries(request).await,
                Rpc::Vote => client.vote(request).await,
                Rpc::InstallSnapshot => client.install_snapshot(request).await,
            }
        };
        let response = tokio::time::timeout(timeout, call).await.map_err(|_| {
            tracing::debug!(target = self.target, addr = %self.addr, ?rpc, ?timeout, "raft rpc timed out");
            let message = format!("{rpc:?} timed out after {timeout:?}");
            let elapsed = std::io::Error::new(std::io::ErrorKind::TimedOut, message);
            NetworkError::new(&elapsed)
        })?;
        let response = response.map_err(|status| {
            tracing::debug!(target = self.target, addr = %self.addr, ?rpc, %status, "raft rpc failed");
            match status.code() {
                tonic::Code::Unavailable => RPCError::Unreachable(Unreachable::new(&status)),
                _ => RPCError::Network(NetworkError::new(&status)),
            }
        })?;
        let result: Result<Resp, E> = serde_json::from_slice(&response.into_inner().payload).map_err(|e| NetworkError::new(&e))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl<T: Transport> RaftNetwork<TypeConfig> for Network<T> {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::AppendEntries, &rpc, Vec::new(), option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        mut rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>> {
        // The chunk goes as bytes: in JSON it would be an array of numbers, four times its size.
        let data = std::mem::take(&mut rpc.data);
        self.call(Rpc::InstallSnapshot, &rpc, data, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::Vote, &rpc, Vec::new(), option.hard_ttl()).await
    }
}
