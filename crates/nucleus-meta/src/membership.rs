//! Leader-side membership changes: Join (learner, then voter) and Leave, both idempotent.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use nucleus_proto::meta::v1 as pb;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ChangeMembers, Membership};

use crate::types::{NodeId, Raft};
use crate::{Error, leader};

/// How long a Join waits for the new learner to catch up before answering UNAVAILABLE; the
/// joiner retries and replication carries on in between.
const CATCH_UP_WAIT: Duration = Duration::from_secs(10);

/// Voters and learners, in id order.
pub(crate) fn members(membership: &Membership<NodeId, BasicNode>) -> Vec<pb::Member> {
    membership.nodes().map(|(id, node)| pb::Member { id: *id, addr: node.addr.clone() }).collect()
}

fn is_voter(membership: &Membership<NodeId, BasicNode>, id: NodeId) -> bool {
    membership.voter_ids().any(|voter| voter == id)
}

fn current(raft: &Raft) -> Membership<NodeId, BasicNode> {
    raft.metrics().borrow().membership_config.membership().clone()
}

fn ensure_leader(raft: &Raft) -> Result<(), Error> {
    let metrics = raft.metrics().borrow().clone();
    if metrics.current_leader == Some(metrics.id) { Ok(()) } else { Err(leader::from_metrics(raft)) }
}

/// Makes `id` a voter reachable at `addr`. Returns the membership afterwards.
pub(crate) async fn join(raft: &Raft, id: NodeId, addr: &str) -> Result<Vec<pb::Member>, Error> {
    if addr.trim().is_empty() {
        return Err(Error::InvalidRequest("join needs the joining node's address".into()));
    }
    ensure_leader(raft)?;
    let membership = current(raft);
    let known_addr = membership.get_node(&id).map(|node| node.addr.clone());
    if known_addr.as_deref() == Some(addr) && is_voter(&membership, id) {
        tracing::debug!(node_id = id, addr, "join of a voter at its address: nothing to do");
        return Ok(members(&membership));
    }
    let node = BasicNode::new(addr);
    let mut latest = match known_addr {
        Some(old) if old != addr => {
            tracing::info!(node_id = id, %old, new = addr, "member moved, updating its address");
            change(raft, ChangeMembers::SetNodes(BTreeMap::from([(id, node)])), true).await?
        }
        _ => {
            tracing::info!(node_id = id, addr, "adding learner");
            match tokio::time::timeout(CATCH_UP_WAIT, raft.add_learner(id, node, true)).await {
                Ok(result) => written(raft, result)?,
                Err(_) => return Err(Error::CatchUpTimeout { node: id, addr: addr.to_owned(), within: CATCH_UP_WAIT }),
            }
        }
    };
    if !is_voter(&latest, id) {
        tracing::info!(node_id = id, "promoting learner to voter");
        latest = change(raft, ChangeMembers::AddVoterIds(BTreeSet::from([id])), true).await?;
    }
    Ok(members(&latest))
}

/// Removes `id` from the voters and the learners. Returns the membership afterwards.
pub(crate) async fn leave(raft: &Raft, id: NodeId) -> Result<Vec<pb::Member>, Error> {
    ensure_leader(raft)?;
    let membership = current(raft);
    let latest = if is_voter(&membership, id) {
        tracing::info!(node_id = id, "removing voter");
        change(raft, ChangeMembers::RemoveVoters(BTreeSet::from([id])), false).await?
    } else if membership.get_node(&id).is_some() {
        tracing::info!(node_id = id, "removing learner");
        change(raft, ChangeMembers::RemoveNodes(BTreeSet::from([id])), false).await?
    } else {
        membership
    };
    Ok(members(&latest))
}

async fn change(raft: &Raft, changes: ChangeMembers<NodeId, BasicNode>, retain: bool) -> Result<Membership<NodeId, BasicNode>, Error> {
    written(raft, raft.change_membership(changes, retain).await)
}

type WriteResult =
    Result<openraft::raft::ClientWriteResponse<crate::types::TypeConfig>, RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>>;

/// The membership a change produced.
fn written(raft: &Raft, result: WriteResult) -> Result<Membership<NodeId, BasicNode>, Error> {
    match result {
        Ok(resp) => Ok(resp.membership.unwrap_or_else(|| current(raft))),
        Err(e) => Err(leader::write_refused(raft, e)),
    }
}
