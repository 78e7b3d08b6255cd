//! The `nucleus.meta.v1.Meta` gRPC service.

use std::sync::Arc;
use std::time::Duration;

use nucleus_proto::meta::v1 as pb;
use nucleus_proto::meta::v1::meta_server;
use nucleus_tls::Role;
use openraft::ServerState;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::Error;
use crate::groups::{Group, Groups, ROOT_GROUP};
use crate::types::{Condition, GroupId, Op, WriteCommand};
use crate::watch::{self as watch_stream, WatchStream, to_pb};
use crate::{leader, membership};

pub struct MetaService {
    groups: Groups,
    shutdown: watch::Receiver<bool>,
    /// Followers grant a vote only once the leader's lease has run out: a campaign waits this long first.
    leader_lease: Duration,
}

/// How long a campaign keeps trying to win before giving up.
const CAMPAIGN_FOR: Duration = Duration::from_secs(4);
const CAMPAIGN_RETRY: Duration = Duration::from_millis(300);

impl MetaService {
    pub fn new(groups: Groups, shutdown: watch::Receiver<bool>, leader_lease: Duration) -> Self {
        MetaService { groups, shutdown, leader_lease }
    }

    fn group(&self, id: GroupId) -> Result<Arc<Group>, Error> {
        self.groups.get(id).ok_or(Error::GroupNotOpen { group: id, shards: self.groups.shard_count() })
    }

    /// The group, once this node, as its leader, has applied everything committed before the call.
    async fn linearizable(&self, id: GroupId) -> Result<Arc<Group>, Error> {
        let group = self.group(id)?;
        match group.raft.ensure_linearizable().await {
            Ok(_) => Ok(group),
            Err(e) => Err(leader::read_refused(&group.raft, e)),
        }
    }

    fn root(&self) -> Result<Arc<Group>, Error> {
        self.group(ROOT_GROUP)
    }
}

fn group_status(group: &Group) -> Result<pb::GroupStatus, Error> {
    let metrics = group.raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voter_ids: Vec<u64> = membership.voter_ids().collect();
    Ok(pb::GroupStatus {
        group_id: group.id,
        leader_id: metrics.current_leader,
        term: metrics.current_term,
        applied_index: metrics.last_applied.map_or(0, |id| id.index),
        revision: group.reader.view().revision()?,
        last_log_index: metrics.last_log_index.unwrap_or(0),
        state: state_name(metrics.state).to_owned(),
        learner_ids: membership.learner_ids().collect(),
        voter_ids,
    })
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

fn to_command(req: pb::WriteRequest) -> Result<WriteCommand, Error> {
    let conditions = req.conditions.into_iter().map(|c| Condition { key: c.key, mod_revision: c.mod_revision }).collect();
    let ops = req
        .ops
        .into_iter()
        .map(|op| match op.op {
            Some(pb::op::Op::Put(put)) if !put.key.is_empty() => Ok(Op::Put { key: put.key, value: put.value }),
            Some(pb::op::Op::Delete(del)) if !del.key.is_empty() => Ok(Op::Delete { key: del.key }),
            Some(pb::op::Op::DeletePrefix(prefix)) => Ok(Op::DeletePrefix { prefix }),
            Some(_) => Err(Error::InvalidRequest("empty key".into())),
            None => Err(Error::InvalidRequest("op without a kind".into())),
        })
        .collect::<Result<_, _>>()?;
    Ok(WriteCommand { request_id: req.request_id, conditions, ops })
}

/// Keys and values in one `List` answer at most (unless a single one is larger): far below gRPC's
/// 4 MiB message limit, whatever users store.
const LIST_PAGE_BYTES: usize = 1024 * 1024;

/// Where an agent keeps its registration; the only keys an agent's certificate may write.
const AGENT_RECORDS: &str = "agents/";

/// Meta nodes, schedulers and gateways write anything; a caller that is only an agent writes its
/// own registration (`agents/<the agent its certificate names>`) and nothing else: no reach into
/// workloads, tokens, leases or another agent's record.
fn writable_by(roles: &[Role], extensions: &tonic::codegen::http::Extensions, request: &pb::WriteRequest) -> Result<(), Status> {
    if roles.iter().any(|role| matches!(role, Role::Meta | Role::Scheduler | Role::Gateway)) {
        return Ok(());
    }
    let own_record = |op: &pb::Op| match &op.op {
        Some(pb::op::Op::Put(put)) => {
            put.key.strip_prefix(AGENT_RECORDS).is_some_and(|agent| nucleus_tls::peer_is_agent(extensions, agent))
        }
        _ => false,
    };
    if request.conditions.is_empty() && !request.ops.is_empty() && request.ops.iter().all(own_record) {
        return Ok(());
    }
    Err(Status::permission_denied(format!(
        "a caller with an agent certificate may only put its own registration, {AGENT_RECORDS}<NAME> for the agent \
         the certificate was issued for (`nucleus certs issue --role agent --name <cluster>-<region>`); other writes are \
         for scheduler.nucleus and gateway.nucleus certificates"
    )))
}

#[tonic::async_trait]
impl meta_server::Meta for MetaService {
    async fn get(&self, request: Request<pb::GetRequest>) -> Result<Response<pb::GetResponse>, Status> {
        let group = self.linearizable(request.get_ref().group_id).await?;
        let view = group.reader.view();
        let kv = view.get(&request.get_ref().key)?;
        let revision = view.revision()?;
        Ok(Response::new(pb::GetResponse { kv: kv.map(to_pb), revision }))
    }

    async fn list(&self, request: Request<pb::ListRequest>) -> Result<Response<pb::ListResponse>, Status> {
        let group = self.linearizable(request.get_ref().group_id).await?;
        let pb::ListRequest { prefix, start_after, page_bytes, .. } = request.get_ref();
        let budget = match usize::try_from(*page_bytes) {
            Ok(0) | Err(_) => LIST_PAGE_BYTES,
            Ok(asked) => asked.min(LIST_PAGE_BYTES),
        };
        let view = group.reader.view();
        let (kvs, more) = view.list_page(prefix, start_after, budget)?;
        let revision = view.revision()?;
        Ok(Response::new(pb::ListResponse { kvs: kvs.into_iter().map(to_pb).collect(), revision, more }))
    }

    async fn write(&self, request: Request<pb::WriteRequest>) -> Result<Response<pb::WriteResponse>, Status> {
        if let Some(roles) = nucleus_tls::peer_roles(request.extensions()) {
            writable_by(&roles, request.extensions(), request.get_ref())?;
        }
        let group = self.group(request.get_ref().group_id)?;
        let span = tracing::info_span!("meta write", otel.kind = "server", group = request.get_ref().group_id);
        nucleus_telemetry::trace::continue_grpc(&span, request.metadata());
        let command = to_command(request.into_inner())?;
        match tracing::Instrument::instrument(group.write(command), span).await {
            Ok(resp) => Ok(Response::new(pb::WriteResponse {
                succeeded: resp.data.succeeded,
                revision: resp.data.revision,
                failed_key: resp.data.failed_key,
            })),
            Err(e) => Err(leader::write_refused(&group.raft, e).into()),
        }
    }

    type WatchStream = WatchStream;

    async fn watch(&self, request: Request<pb::WatchRequest>) -> Result<Response<WatchStream>, Status> {
        let pb::WatchRequest { prefix, start_revision, group_id } = request.into_inner();
        // Subscribe before reading the snapshot or history so that no change is missed in between.
        let events = self.group(group_id)?.events.subscribe();
        let group = self.linearizable(group_id).await?;
        let stream = watch_stream::start(prefix, start_revision, &group.reader, events, self.shutdown.clone())?;
        Ok(Response::new(stream))
    }

    async fn status(&self, request: Request<pb::StatusRequest>) -> Result<Response<pb::StatusResponse>, Status> {
        let group = self.group(request.get_ref().group_id)?;
        let metrics = group.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let leader_addr = metrics.current_leader.and_then(|id| membership.get_node(&id)).map(|node| node.addr.clone());
        let selected = group_status(&group)?;
        let groups = self.groups.all().iter().map(|g| group_status(g)).collect::<Result<_, _>>()?;
        Ok(Response::new(pb::StatusResponse {
            node_id: metrics.id,
            leader_id: selected.leader_id,
            term: selected.term,
            applied_index: selected.applied_index,
            revision: selected.revision,
            members: membership::members(membership),
            leader_addr,
            last_log_index: selected.last_log_index,
            state: selected.state,
            voter_ids: selected.voter_ids,
            group_id: group.id,
            shard_count: self.groups.shard_count(),
            groups,
        }))
    }

    async fn join(&self, request: Request<pb::JoinRequest>) -> Result<Response<pb::JoinResponse>, Status> {
        let pb::JoinRequest { node_id, addr } = request.into_inner();
        let members = membership::join(&self.root()?.raft, node_id, &addr).await?;
        Ok(Response::new(pb::JoinResponse { members, shard_count: self.groups.shard_count() }))
    }

    async fn leave(&self, request: Request<pb::LeaveRequest>) -> Result<Response<pb::LeaveResponse>, Status> {
        let members = membership::leave(&self.root()?.raft, request.into_inner().node_id).await?;
        Ok(Response::new(pb::LeaveResponse { members }))
    }

    async fn campaign(&self, request: Request<pb::CampaignRequest>) -> Result<Response<pb::CampaignResponse>, Status> {
        let group = self.group(request.get_ref().group_id)?;
        let raft = &group.raft;
        let leads = |m: &openraft::RaftMetrics<u64, openraft::BasicNode>| m.state == ServerState::Leader && m.current_leader == Some(m.id);
        let metrics = raft.metrics().borrow().clone();
        if leads(&metrics) {
            return Ok(Response::new(pb::CampaignResponse { term: metrics.current_term }));
        }
        if !metrics.membership_config.membership().voter_ids().any(|id| id == metrics.id) {
            return Err(Error::NotVoter { node: metrics.id, group: group.id }.into());
        }
        tracing::info!(group = group.id, "campaigning for leadership");
        tokio::time::sleep(self.leader_lease).await;
        let deadline = tokio::time::Instant::now() + CAMPAIGN_FOR;
        while tokio::time::Instant::now() < deadline {
            raft.trigger().elect().await.map_err(|e| Error::RaftStopped(e.to_string()))?;
            if let Ok(metrics) = raft.wait(Some(CAMPAIGN_RETRY)).metrics(leads, "lead after campaigning").await {
                return Ok(Response::new(pb::CampaignResponse { term: metrics.current_term }));
            }
        }
        Err(Error::ElectionLost { group: group.id, within: CAMPAIGN_FOR }.into())
    }
}
