//! Answers to calls that only the leader can serve, made on another node: UNAVAILABLE carrying the
//! leader's id and address as metadata when it is known, so that clients can go there directly.

use openraft::BasicNode;
use openraft::error::ForwardToLeader;
use tonic::Status;
use tonic::metadata::MetadataValue;

use crate::types::{NodeId, Raft};

/// Metadata entry with the leader's node id (decimal).
pub const LEADER_ID_METADATA: &str = "nucleus-leader-id";
/// Metadata entry with the leader's `host:port`.
pub const LEADER_ADDR_METADATA: &str = "nucleus-leader-addr";

/// From openraft's forward hint; the address is looked up in the membership when openraft only
/// knows the id.
pub(crate) fn forward(raft: &Raft, fwd: &ForwardToLeader<NodeId, BasicNode>) -> Status {
    let addr = match (&fwd.leader_id, &fwd.leader_node) {
        (_, Some(node)) => Some(node.addr.clone()),
        (Some(id), None) => leader_addr(raft, *id),
        (None, None) => None,
    };
    unavailable(fwd.leader_id, addr)
}

/// From the current metrics, for paths that check leadership themselves.
pub(crate) fn from_metrics(raft: &Raft) -> Status {
    let leader = raft.metrics().borrow().current_leader;
    unavailable(leader, leader.and_then(|id| leader_addr(raft, id)))
}

fn leader_addr(raft: &Raft, id: NodeId) -> Option<String> {
    raft.metrics().borrow().membership_config.membership().get_node(&id).map(|node| node.addr.clone())
}

fn unavailable(leader_id: Option<NodeId>, leader_addr: Option<String>) -> Status {
    let message = match (leader_id, &leader_addr) {
        (Some(id), Some(addr)) => format!("not the meta leader; leader is node {id} at {addr}"),
        (Some(id), None) => format!("not the meta leader; leader is node {id}"),
        (None, _) => "not the meta leader; no leader known yet, retry shortly".to_owned(),
    };
    let mut status = Status::unavailable(message);
    if let Some(id) = leader_id {
        status.metadata_mut().insert(LEADER_ID_METADATA, MetadataValue::from(id));
    }
    if let Some(addr) = leader_addr {
        match MetadataValue::try_from(addr.as_str()) {
            Ok(value) => {
                status.metadata_mut().insert(LEADER_ADDR_METADATA, value);
            }
            Err(_) => tracing::warn!(%addr, "leader address is not valid metadata, answering without it"),
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_carries_id_and_addr_only_when_known() {
        let status = unavailable(Some(3), Some("127.0.0.1:7003".into()));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert_eq!(status.metadata().get(LEADER_ID_METADATA).unwrap(), "3");
        assert_eq!(status.metadata().get(LEADER_ADDR_METADATA).unwrap(), "127.0.0.1:7003");

        let status = unavailable(None, None);
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.metadata().get(LEADER_ID_METADATA).is_none());
        assert!(status.metadata().get(LEADER_ADDR_METADATA).is_none());
    }
}
