//! The `nucleus.meta.v1.Meta` gRPC service.

use std::sync::Arc;

use nucleus_proto::meta::v1 as pb;
use nucleus_proto::meta::v1::meta_server;
use openraft::ServerState;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use tokio::sync::{broadcast, watch};
use tonic::{Request, Response, Status};

use crate::store::KvReader;
use crate::types::{Condition, Op, Raft, SmEvent, WriteCommand};
use crate::{leader, membership};
use crate::watch::{self as watch_stream, WatchStream, to_pb};

pub struct MetaService {
    raft: Raft,
    reader: KvReader,
    events: broadcast::Sender<Arc<SmEvent>>,
    shutdown: watch::Receiver<bool>,
}

impl MetaService {
    pub fn new(
        raft: Raft,
        reader: KvReader,
        events: broadcast::Sender<Arc<SmEvent>>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        MetaService { raft, reader, events, shutdown }
    }

    /// Waits until this node, as leader, has applied everything committed before the call.
    async fn linearizable(&self) -> Result<(), Status> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(fwd))) => {
                Err(leader::forward(&self.raft, &fwd))
            }
            Err(RaftError::APIError(e @ CheckIsLeaderError::QuorumNotEnough(_))) => {
                Err(Status::unavailable(e.to_string()))
            }
            Err(RaftError::Fatal(e)) => Err(Status::unavailable(format!("raft stopped: {e}"))),
        }
    }
}

fn state_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

fn to_command(req: pb::WriteRequest) -> Result<WriteCommand, Status> {
    let conditions = req
        .conditions
        .into_iter()
        .map(|c| Condition { key: c.key, mod_revision: c.mod_revision })
        .collect();
    let ops = req
        .ops
        .into_iter()
        .map(|op| match op.op {
            Some(pb::op::Op::Put(put)) if !put.key.is_empty() => Ok(Op::Put { key: put.key, value: put.value }),
            Some(pb::op::Op::Delete(del)) if !del.key.is_empty() => Ok(Op::Delete { key: del.key }),
            Some(pb::op::Op::DeletePrefix(prefix)) => Ok(Op::DeletePrefix { prefix }),
            Some(_) => Err(Status::invalid_argument("empty key")),
            None => Err(Status::invalid_argument("op without a kind")),
        })
        .collect::<Result<_, _>>()?;
    Ok(WriteCommand { request_id: req.request_id, conditions, ops })
}

#[tonic::async_trait]
impl meta_server::Meta for MetaService {
    async fn get(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        self.linearizable().await?;
        let view = self.reader.view();
        let kv = view.get(&request.get_ref().key).map_err(internal)?;
        let revision = view.revision().map_err(internal)?;
        Ok(Response::new(pb::GetResponse { kv: kv.map(to_pb), revision }))
    }

    async fn list(&self, request: Request<pb::ListRequest>) -> Result<Response<pb::ListResponse>, Status> {
        self.linearizable().await?;
        let view = self.reader.view();
        let kvs = view.list(&request.get_ref().prefix).map_err(internal)?;
        let revision = view.revision().map_err(internal)?;
        Ok(Response::new(pb::ListResponse { kvs: kvs.into_iter().map(to_pb).collect(), revision }))
    }

    async fn write(&self, request: Request<pb::WriteRequest>) -> Result<Response<pb::WriteResponse>, Status> {
        let command = to_command(request.into_inner())?;
        match self.raft.client_write(command).await {
            Ok(resp) => Ok(Response::new(pb::WriteResponse {
                succeeded: resp.data.succeeded,
                revision: resp.data.revision,
                failed_key: resp.data.failed_key,
            })),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(fwd))) => Err(leader::forward(&self.raft, &fwd)),
            Err(RaftError::APIError(e)) => Err(internal(e)),
            Err(RaftError::Fatal(e)) => Err(Status::unavailable(format!("raft stopped: {e}"))),
        }
    }

    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<pb::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        // Subscribe before reading the snapshot or history so that no change is missed in between.
        let events = self.events.subscribe();
        self.linearizable().await?;
        let pb::WatchRequest { prefix, start_revision } = request.into_inner();
        let stream = watch_stream::start(prefix, start_revision, &self.reader, events, self.shutdown.clone())?;
        Ok(Response::new(stream))
    }

    async fn status(&self, _request: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        let metrics = self.raft.metrics().borrow().clone();
        let revision = self.reader.view().revision().map_err(internal)?;
        let membership = metrics.membership_config.membership();
        let leader_addr =
            metrics.current_leader.and_then(|id| membership.get_node(&id)).map(|node| node.addr.clone());
        Ok(Response::new(pb::StatusResponse {
            node_id: metrics.id,
            leader_id: metrics.current_leader,
            term: metrics.current_term,
            applied_index: metrics.last_applied.map_or(0, |id| id.index),
            revision,
            members: membership::members(membership),
            leader_addr,
            last_log_index: metrics.last_log_index.unwrap_or(0),
            state: state_name(metrics.state).to_owned(),
            voter_ids: membership.voter_ids().collect(),
        }))
    }

    async fn join(&self, request: Request<pb::JoinRequest>) -> Result<Response<pb::JoinResponse>, Status> {
        let pb::JoinRequest { node_id, addr } = request.into_inner();
        let members = membership::join(&self.raft, node_id, &addr).await?;
        Ok(Response::new(pb::JoinResponse { members }))
    }

    async fn leave(&self, request: Request<pb::LeaveRequest>) -> Result<Response<pb::LeaveResponse>, Status> {
        let members = membership::leave(&self.raft, request.into_inner().node_id).await?;
        Ok(Response::new(pb::LeaveResponse { members }))
    }
}
