//! Keeps every shard group on the nodes [`placement`] assigns it, and its leader on the replica
//! placement prefers. Runs on every node and acts only for the shards that node leads: their
//! membership changes go through their own leader, one step per tick (learner, catch-up, voters).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use nucleus_proto::meta::v1 as pb;
use nucleus_proto::meta::v1::meta_client::MetaClient;
use openraft::{BasicNode, ChangeMembers, RaftMetrics, ServerState};
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::config::SHARD_REPLICAS;
use crate::groups::{Group, Groups, ROOT_GROUP};
use crate::transport::Transport;
use crate::types::{GroupId, NodeId};
use crate::{Error, leader, placement};

const TICK: Duration = Duration::from_millis(500);
/// How long a new replica may take to catch up before the change is retried on a later tick.
const CATCH_UP_WAIT: Duration = Duration::from_secs(10);
/// Pause between two leadership hand-overs of the same shard (successful or not).
const TRANSFER_COOLDOWN: Duration = Duration::from_secs(10);
/// A replica this many entries behind the leader is not handed leadership.
const MAX_LAG_FOR_TRANSFER: u64 = 16;
const CAMPAIGN_TIMEOUT: Duration = Duration::from_secs(6);
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);

type Metrics = RaftMetrics<NodeId, BasicNode>;

pub(crate) struct Rebalancer<T> {
    node_id: NodeId,
    groups: Groups,
    transport: T,
    last_transfer: Mutex<HashMap<GroupId, Instant>>,
}

/// What one look at a shard found.
enum Shape {
    /// Voters and learners are exactly the placement, at the members' addresses.
    Settled,
    /// A change was made or is under way; look again next tick.
    Changing,
}

impl<T: Transport> Rebalancer<T> {
    pub(crate) fn new(node_id: NodeId, groups: Groups, transport: T) -> Self {
        Rebalancer { node_id, groups, transport, last_transfer: Mutex::default() }
    }

    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = stop.wait_for(|stop| *stop) => return,
            }
            self.tick().await;
        }
    }

    /// The root group's voters and their addresses, as its leader knows them. A node that is not
    /// the root leader asks it: a node removed from the root is not told so by Raft, and its own
    /// view would keep placing shards on itself. Such a node may also have lost track of who leads
    /// (its election timer runs with no one left to answer), so it asks every root node it knows
    /// and believes the leader with the highest term.
    async fn root_members(&self) -> Option<BTreeMap<NodeId, BasicNode>> {
        let root = self.groups.get(ROOT_GROUP)?;
        let metrics = root.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        if metrics.state == ServerState::Leader && metrics.current_leader == Some(self.node_id) {
            if membership.get_joint_config().len() != 1 {
                return None; // changing: place against the settled membership
            }
            let voters = membership.voter_ids().filter_map(|id| Some((id, membership.get_node(&id)?.clone())));
            return Some(voters.collect());
        }
        let known_leader = metrics.current_leader.and_then(|id| membership.get_node(&id)).map(|node| node.addr.clone());
        let asked_leader = match known_leader {
            Some(addr) => root_status(&self.transport, &addr).await.ok().filter(|s| s.state == "leader"),
            None => None,
        };
        let status = match asked_leader {
            Some(status) => status,
            None => {
                let others = membership.nodes().filter(|(id, _)| **id != self.node_id);
                let answers = futures::future::join_all(others.map(|(_, node)| root_status(&self.transport, &node.addr))).await;
                answers.into_iter().filter_map(Result::ok).filter(|s| s.state == "leader").max_by_key(|s| s.term)?
            }
        };
        let addrs: BTreeMap<NodeId, String> = status.members.into_iter().map(|m| (m.id, m.addr)).collect();
        Some(status.voter_ids.into_iter().filter_map(|id| Some((id, BasicNode::new(addrs.get(&id)?)))).collect())
    }

    async fn tick(&self) {
        let led: Vec<_> = self.groups.all().into_iter().filter(|g| g.id != ROOT_GROUP && self.leads(g)).collect();
        if led.is_empty() {
            return;
        }
        let Some(members) = self.root_members().await else { return };
        let node_ids: BTreeSet<NodeId> = members.keys().copied().collect();
        // Groups are independent: a slow catch-up or hand-over in one must not hold up the others.
        let steps = led.iter().map(|group| self.step(group, &node_ids, &members));
        futures::future::join_all(steps).await;
    }

    async fn step(&self, group: &Group, node_ids: &BTreeSet<NodeId>, members: &BTreeMap<NodeId, BasicNode>) {
        let metrics = group.raft.metrics().borrow().clone();
        if !self.leads(group) {
            return;
        }
        let target = placement::replicas(group.id, node_ids, SHARD_REPLICAS);
        if target.is_empty() {
            return;
        }
        match reconcile(group, &metrics, &target, members).await {
            Ok(Shape::Settled) => self.spread_leader(group, &metrics, &target, members).await,
            Ok(Shape::Changing) => {}
            Err(detail) => tracing::info!(group = group.id, %detail, "shard rebalancing step failed; retrying"),
        }
    }

    fn leads(&self, group: &Group) -> bool {
        let metrics = group.raft.metrics();
        let metrics = metrics.borrow();
        metrics.state == ServerState::Leader && metrics.current_leader == Some(self.node_id)
    }

    /// Hands leadership of a settled shard to its preferred replica if that is another, caught-up node.
    async fn spread_leader(&self, group: &Group, metrics: &Metrics, target: &BTreeSet<NodeId>, members: &BTreeMap<NodeId, BasicNode>) {
        let Some(preferred) = placement::preferred_leader(group.id, target) else { return };
        if preferred == self.node_id {
            return;
        }
        let last = self.last_transfer.lock().unwrap_or_else(|p| p.into_inner()).get(&group.id).copied();
        if last.is_some_and(|at| at.elapsed() < TRANSFER_COOLDOWN) {
            return;
        }
        let last_index = metrics.last_log_index.unwrap_or(0);
        let matched = metrics
            .replication
            .as_ref()
            .and_then(|replication| replication.get(&preferred).cloned().flatten())
            .map_or(0, |log_id| log_id.index);
        if matched + MAX_LAG_FOR_TRANSFER < last_index {
            return;
        }
        let Some(node) = members.get(&preferred) else { return };
        self.last_transfer.lock().unwrap_or_else(|p| p.into_inner()).insert(group.id, Instant::now());
        tracing::info!(group = group.id, from = self.node_id, to = preferred, "handing shard leadership over");
        // Without heartbeats the followers' leader lease runs out, so the preferred replica's
        // election can win; heartbeats resume whatever the outcome.
        group.raft.runtime_config().heartbeat(false);
        let outcome = campaign(&self.transport, &node.addr, group.id).await;
        group.raft.runtime_config().heartbeat(true);
        match outcome {
            Ok(term) => tracing::info!(group = group.id, leader = preferred, term, "shard leadership handed over"),
            Err(detail) => tracing::info!(group = group.id, to = preferred, %detail, "leadership hand-over failed"),
        }
    }
}

/// One step towards the placement: add missing replicas as learners (waiting for them to catch
/// up), then make the voters exactly the target, then drop learners that are not in it.
async fn reconcile(
    group: &Group,
    metrics: &Metrics,
    target: &BTreeSet<NodeId>,
    members: &BTreeMap<NodeId, BasicNode>,
) -> Result<Shape, Error> {
    let membership = metrics.membership_config.membership();
    if membership.get_joint_config().len() != 1 {
        return Ok(Shape::Changing);
    }
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let nodes: BTreeSet<NodeId> = membership.nodes().map(|(id, _)| *id).collect();
    let moved: BTreeMap<NodeId, BasicNode> = target
        .iter()
        .filter_map(|id| {
            let wanted = members.get(id)?;
            let known = membership.get_node(id)?;
            (known.addr != wanted.addr).then(|| (*id, wanted.clone()))
        })
        .collect();
    if voters == *target && nodes == *target && moved.is_empty() {
        return Ok(Shape::Settled);
    }
    let raft = &group.raft;
    if !moved.is_empty() {
        tracing::info!(group = group.id, ?moved, "updating shard member addresses");
        raft.change_membership(ChangeMembers::SetNodes(moved), true).await.map_err(|e| leader::write_refused(raft, e))?;
        return Ok(Shape::Changing);
    }
    for id in target.difference(&voters) {
        let node = members.get(id).cloned().ok_or(Error::MemberWithoutAddress(*id))?;
        tracing::info!(group = group.id, node = id, addr = %node.addr, "adding shard replica");
        let addr = node.addr.clone();
        match tokio::time::timeout(CATCH_UP_WAIT, raft.add_learner(*id, node, true)).await {
            Ok(result) => {
                result.map_err(|e| leader::write_refused(raft, e))?;
            }
            Err(_) => return Err(Error::CatchUpTimeout { node: *id, addr, within: CATCH_UP_WAIT }),
        }
    }
    if voters != *target {
        tracing::info!(group = group.id, from = ?voters, to = ?target, "changing shard voters");
        raft.change_membership(ChangeMembers::ReplaceAllVoters(target.clone()), false).await.map_err(|e| leader::write_refused(raft, e))?;
        return Ok(Shape::Changing);
    }
    let extra: BTreeSet<NodeId> = nodes.difference(target).copied().collect();
    if !extra.is_empty() {
        tracing::info!(group = group.id, ?extra, "removing shard learners");
        raft.change_membership(ChangeMembers::RemoveNodes(extra), false).await.map_err(|e| leader::write_refused(raft, e))?;
    }
    Ok(Shape::Changing)
}

fn meta_client(transport: &impl Transport, addr: &str, timeout: Duration) -> Result<MetaClient<Channel>, Error> {
    let endpoint = transport.endpoint(addr)?.connect_timeout(Duration::from_secs(2)).timeout(timeout);
    Ok(MetaClient::new(transport.channel(endpoint)))
}

fn peer_error(addr: &str, status: tonic::Status) -> Error {
    Error::PeerCall { addr: addr.to_owned(), code: status.code(), message: status.message().to_owned() }
}

async fn root_status(transport: &impl Transport, addr: &str) -> Result<pb::StatusResponse, Error> {
    let mut client = meta_client(transport, addr, STATUS_TIMEOUT)?;
    let response = client.status(pb::StatusRequest { group_id: ROOT_GROUP }).await.map_err(|s| peer_error(addr, s))?;
    Ok(response.into_inner())
}

/// Asks the node at `addr` to take over leadership of `group`; its new term on success.
async fn campaign(transport: &impl Transport, addr: &str, group: GroupId) -> Result<u64, Error> {
    let mut client = meta_client(transport, addr, CAMPAIGN_TIMEOUT)?;
    let response = client.campaign(pb::CampaignRequest { group_id: group }).await.map_err(|s| peer_error(addr, s))?;
    Ok(response.into_inner().term)
}
