//! Answers to calls that only the leader can serve, made on another node: [`Error::Forward`] with
//! the leader's id and address when known (sent as metadata, so that clients go there directly),
//! and openraft's errors of leader-only calls as the node's errors.

use openraft::BasicNode;
use openraft::error::{CheckIsLeaderError, ClientWriteError, ForwardToLeader, RaftError};

use crate::Error;
use crate::types::{NodeId, Raft};

/// From openraft's forward hint; the address is looked up in the membership when openraft only
/// knows the id.
pub(crate) fn forward(raft: &Raft, fwd: &ForwardToLeader<NodeId, BasicNode>) -> Error {
    let leader_addr = match (&fwd.leader_id, &fwd.leader_node) {
        (_, Some(node)) => Some(node.addr.clone()),
        (Some(id), None) => leader_addr(raft, *id),
        (None, None) => None,
    };
    Error::Forward { leader_id: fwd.leader_id, leader_addr }
}

/// From the current metrics, for paths that check leadership themselves.
pub(crate) fn from_metrics(raft: &Raft) -> Error {
    let leader_id = raft.metrics().borrow().current_leader;
    Error::Forward { leader_id, leader_addr: leader_id.and_then(|id| leader_addr(raft, id)) }
}

fn leader_addr(raft: &Raft, id: NodeId) -> Option<String> {
    raft.metrics().borrow().membership_config.membership().get_node(&id).map(|node| node.addr.clone())
}

/// A failed `ensure_linearizable`.
pub(crate) fn read_refused(raft: &Raft, error: RaftError<NodeId, CheckIsLeaderError<NodeId, BasicNode>>) -> Error {
    match error {
        RaftError::APIError(CheckIsLeaderError::ForwardToLeader(fwd)) => forward(raft, &fwd),
        RaftError::APIError(e @ CheckIsLeaderError::QuorumNotEnough(_)) => Error::NoQuorum(e.to_string()),
        RaftError::Fatal(e) => Error::RaftStopped(e.to_string()),
    }
}

/// A failed `client_write` or membership change.
pub(crate) fn write_refused(raft: &Raft, error: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> Error {
    use openraft::error::ChangeMembershipError;
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(fwd)) => forward(raft, &fwd),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e @ ChangeMembershipError::InProgress(_))) => {
            Error::MembershipBusy(e.to_string())
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => Error::MembershipRefused(e.to_string()),
        RaftError::Fatal(e) => Error::RaftStopped(e.to_string()),
    }
}
