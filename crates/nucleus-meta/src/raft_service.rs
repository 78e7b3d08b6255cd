//! Server side of the Raft transport: one gRPC service for every group the node hosts; each
//! message is decoded and handed to the group it names.

use nucleus_proto::raft::v1::RaftMessage;
use nucleus_proto::raft::v1::raft_server;
use openraft::raft::InstallSnapshotRequest;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};

use crate::Error;
use crate::groups::Groups;
use crate::types::{GroupId, Raft, TypeConfig};

pub struct RaftService {
    groups: Groups,
}

impl RaftService {
    pub fn new(groups: Groups) -> Self {
        RaftService { groups }
    }

    fn decode<T: DeserializeOwned>(&self, msg: RaftMessage) -> Result<(Raft, GroupId, T), Error> {
        // Not an error of the sender's making: this node has not opened the group yet (it is
        // joining) and the leader retries.
        let group = self.groups.get(msg.group_id).ok_or(Error::RaftGroupNotOpen(msg.group_id))?;
        let rpc = serde_json::from_slice(&msg.payload).map_err(|e| Error::InvalidRequest(format!("bad raft payload: {e}")))?;
        Ok((group.raft.clone(), group.id, rpc))
    }

    fn encode<T: Serialize>(group_id: GroupId, result: &T) -> Result<Response<RaftMessage>, Status> {
        let payload = serde_json::to_vec(result).map_err(|e| Error::Encoding(e.to_string()))?;
        Ok(Response::new(RaftMessage { group_id, payload, data: Vec::new() }))
    }
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let (raft, group, rpc) = self.decode(request.into_inner())?;
        Self::encode(group, &raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let (raft, group, rpc) = self.decode(request.into_inner())?;
        Self::encode(group, &raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let mut message = request.into_inner();
        let data = std::mem::take(&mut message.data);
        let (raft, group, mut rpc): (_, _, InstallSnapshotRequest<TypeConfig>) = self.decode(message)?;
        rpc.data = data;
        Self::encode(group, &raft.install_snapshot(rpc).await)
    }
}
