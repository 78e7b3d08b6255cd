//! What a starting node does about its group, decided from its stored Raft state and its config.

use openraft::{BasicNode, Membership};

use crate::types::NodeId;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StartPlan {
    /// No Raft state, nothing to join: form a one-member group.
    Bootstrap,
    /// Ask these members (in order) to add this node at its advertised address: on first start,
    /// when the node moved to another address, or to finish a join that stopped at learner.
    Join { seeds: Vec<String> },
    /// A member at its known address: just run. A sole voter waits to lead, others for a leader.
    Resume { sole_voter: bool },
    /// Has Raft state but the group no longer lists it (it was removed): run, wait for nothing.
    Detached,
}

/// `membership` is the stored effective membership (empty when `initialized` is false).
pub(crate) fn plan(
    initialized: bool,
    membership: &Membership<NodeId, BasicNode>,
    node_id: NodeId,
    advertise: &str,
    join: &[String],
) -> StartPlan {
    let voters: Vec<NodeId> = membership.voter_ids().collect();
    let fresh = !initialized || (membership.nodes().next().is_none() && voters.is_empty());
    if fresh {
        return if join.is_empty() { StartPlan::Bootstrap } else { StartPlan::Join { seeds: join.to_vec() } };
    }
    let Some(stored) = membership.get_node(&node_id) else {
        return StartPlan::Detached;
    };
    let is_voter = voters.contains(&node_id);
    if stored.addr == advertise && is_voter {
        return StartPlan::Resume { sole_voter: voters == [node_id] };
    }
    // The configured seeds first, then every other member; ourselves last, which only helps a
    // sole voter that moved (it becomes leader and serves its own Join).
    let mut seeds = join.to_vec();
    let others = membership.nodes().filter(|(id, _)| **id != node_id).map(|(_, node)| node.addr.clone());
    for addr in others.chain([advertise.to_owned()]) {
        if !seeds.contains(&addr) {
            seeds.push(addr);
        }
    }
    StartPlan::Join { seeds }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn membership(voters: &[NodeId], nodes: &[(NodeId, &str)]) -> Membership<NodeId, BasicNode> {
        let voters: BTreeSet<NodeId> = voters.iter().copied().collect();
        let nodes: BTreeMap<NodeId, BasicNode> = nodes.iter().map(|(id, addr)| (*id, BasicNode::new(*addr))).collect();
        Membership::new(vec![voters], nodes)
    }

    #[test]
    fn fresh_node_bootstraps_or_joins() {
        let empty = Membership::default();
        assert_eq!(plan(false, &empty, 1, "a:1", &[]), StartPlan::Bootstrap);
        let seeds = vec!["b:1".to_owned()];
        assert_eq!(plan(false, &empty, 1, "a:1", &seeds), StartPlan::Join { seeds: seeds.clone() });
        // A vote was stored but no log arrived: still fresh.
        assert_eq!(plan(true, &empty, 1, "a:1", &seeds), StartPlan::Join { seeds });
    }

    #[test]
    fn member_at_its_address_resumes() {
        let one = membership(&[1], &[(1, "a:1")]);
        assert_eq!(plan(true, &one, 1, "a:1", &[]), StartPlan::Resume { sole_voter: true });
        let three = membership(&[1, 2, 3], &[(1, "a:1"), (2, "b:1"), (3, "c:1")]);
        // The join list is ignored once the node is a member.
        assert_eq!(plan(true, &three, 2, "b:1", &["a:1".to_owned()]), StartPlan::Resume { sole_voter: false });
    }

    #[test]
    fn moved_or_learner_member_joins_again_through_the_others() {
        let three = membership(&[1, 2, 3], &[(1, "a:1"), (2, "b:1"), (3, "c:1")]);
        let plan_moved = plan(true, &three, 2, "b:2", &["c:1".to_owned()]);
        assert_eq!(plan_moved, StartPlan::Join { seeds: vec!["c:1".into(), "a:1".into(), "b:2".into()] });

        let with_learner = membership(&[1], &[(1, "a:1"), (2, "b:1")]);
        assert_eq!(plan(true, &with_learner, 2, "b:1", &[]), StartPlan::Join { seeds: vec!["a:1".into(), "b:1".into()] });
    }

    #[test]
    fn removed_member_is_detached() {
        let two = membership(&[1, 3], &[(1, "a:1"), (3, "c:1")]);
        assert_eq!(plan(true, &two, 2, "b:1", &["a:1".to_owned()]), StartPlan::Detached);
    }
}
