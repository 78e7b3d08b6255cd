//! openraft's network over the `nucleus.raft.v1.Raft` gRPC service: requests and responses are
//! openraft's own types encoded as JSON, the response being the remote `Result`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nucleus_proto::raft::v1::RaftMessage;
use nucleus_proto::raft::v1::raft_client::RaftClient;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::transport::{Channel, Endpoint};

use crate::types::{NodeId, TypeConfig};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Creates one [`Network`] per target node of the group `group_id`. openraft asks for a new
/// client for every linearizable read, so channels (one HTTP/2 connection per peer) are shared.
pub struct NetworkFactory {
    group_id: u64,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl NetworkFactory {
    pub fn new(group_id: u64) -> NetworkFactory {
        NetworkFactory { group_id, channels: Arc::default() }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Network;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Network {
        Network { group_id: self.group_id, target, addr: node.addr.clone(), channels: self.channels.clone() }
    }
}

pub struct Network {
    group_id: u64,
    target: NodeId,
    addr: String,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

#[derive(Clone, Copy, Debug)]
enum Rpc {
    AppendEntries,
    Vote,
    InstallSnapshot,
}

impl Network {
    fn client(&mut self) -> Result<RaftClient<Channel>, Unreachable> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(channel) = channels.get(&self.addr) {
            return Ok(RaftClient::new(channel.clone()));
        }
        let endpoint = Endpoint::from_shared(format!("http://{}", self.addr))
            .map_err(|e| Unreachable::new(&e))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        let channel = endpoint.connect_lazy();
        channels.insert(self.addr.clone(), channel.clone());
        Ok(RaftClient::new(channel))
    }

    async fn call<Req, Resp, E>(
        &mut self,
        rpc: Rpc,
        req: &Req,
        timeout: Duration,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let payload = serde_json::to_vec(req).map_err(|e| NetworkError::new(&e))?;
        let mut request = tonic::Request::new(RaftMessage { group_id: self.group_id, payload });
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
        let result: Result<Resp, E> =
            serde_json::from_slice(&response.into_inner().payload).map_err(|e| NetworkError::new(&e))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Network {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::AppendEntries, &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call(Rpc::InstallSnapshot, &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call(Rpc::Vote, &rpc, option.hard_ttl()).await
    }
}
