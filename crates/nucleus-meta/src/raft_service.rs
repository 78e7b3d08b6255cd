//! Server side of the Raft transport: decodes openraft requests and hands them to the local node.

use nucleus_proto::raft::v1::RaftMessage;
use nucleus_proto::raft::v1::raft_server;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tonic::{Request, Response, Status};

use crate::types::Raft;

pub struct RaftService {
    raft: Raft,
    group_id: u64,
}

impl RaftService {
    pub fn new(raft: Raft, group_id: u64) -> Self {
        RaftService { raft, group_id }
    }

    fn decode<T: DeserializeOwned>(&self, msg: RaftMessage) -> Result<T, Status> {
        if msg.group_id != self.group_id {
            return Err(Status::not_found(format!("raft group {} is not served here", msg.group_id)));
        }
        serde_json::from_slice(&msg.payload).map_err(|e| Status::invalid_argument(format!("bad raft payload: {e}")))
    }

    fn encode<T: Serialize>(&self, result: &T) -> Result<Response<RaftMessage>, Status> {
        let payload = serde_json::to_vec(result).map_err(|e| Status::internal(format!("encoding raft response: {e}")))?;
        Ok(Response::new(RaftMessage { group_id: self.group_id, payload }))
    }
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(request.into_inner())?;
        self.encode(&self.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(request.into_inner())?;
        self.encode(&self.raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, request: Request<RaftMessage>) -> Result<Response<RaftMessage>, Status> {
        let rpc = self.decode(request.into_inner())?;
        self.encode(&self.raft.install_snapshot(rpc).await)
    }
}
