//! Which nodes hold each shard group, and which of them should lead it: pure functions of the
//! root group's voters, so every node computes the same answer.
//!
//! Replicas are chosen by rendezvous hashing: a node's rank for a shard depends only on the pair,
//! so adding or removing a node moves only the shards that gain or lose it. Leaders are spread
//! round-robin over a shard's replicas by shard number.

use std::collections::BTreeSet;

use crate::types::{GroupId, NodeId};

/// The `replicas` highest-ranked nodes for `group` (all of them if there are fewer).
pub fn replicas(group: GroupId, nodes: &BTreeSet<NodeId>, replicas: usize) -> BTreeSet<NodeId> {
    let mut ranked: Vec<NodeId> = nodes.iter().copied().collect();
    ranked.sort_by_key(|node| std::cmp::Reverse((score(group, *node), *node)));
    ranked.into_iter().take(replicas).collect()
}

/// The replica that should lead `group`.
pub fn preferred_leader(group: GroupId, replicas: &BTreeSet<NodeId>) -> Option<NodeId> {
    if replicas.is_empty() {
        return None;
    }
    let index = (group as usize).wrapping_sub(1) % replicas.len();
    replicas.iter().nth(index).copied()
}

/// A stable 64-bit mix of the pair (splitmix64 over FNV-1a of both ids).
fn score(group: GroupId, node: NodeId) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in group.to_be_bytes().into_iter().chain(node.to_be_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn nodes(ids: impl IntoIterator<Item = NodeId>) -> BTreeSet<NodeId> {
        ids.into_iter().collect()
    }

    #[test]
    fn three_nodes_hold_every_shard_and_lead_evenly() {
        let all = nodes([1, 2, 3]);
        let mut led: BTreeMap<NodeId, usize> = BTreeMap::new();
        for group in 1..=16 {
            assert_eq!(replicas(group, &all, 3), all);
            *led.entry(preferred_leader(group, &all).unwrap()).or_default() += 1;
        }
        assert_eq!(led.values().copied().collect::<Vec<_>>(), vec![6, 5, 5]);
    }

    #[test]
    fn fewer_nodes_than_replicas_places_on_all() {
        assert_eq!(replicas(4, &nodes([7]), 3), nodes([7]));
        assert_eq!(preferred_leader(4, &nodes([7])), Some(7));
        assert_eq!(preferred_leader(4, &nodes([])), None);
    }

    #[test]
    fn adding_a_node_only_moves_shards_onto_it() {
        let before = nodes([1, 2, 3, 4]);
        let after = nodes([1, 2, 3, 4, 5]);
        let mut moved = 0;
        for group in 1..=64 {
            let (old, new) = (replicas(group, &before, 3), replicas(group, &after, 3));
            assert_eq!(new.len(), 3);
            let gained: Vec<_> = new.difference(&old).collect();
            assert!(gained.is_empty() || gained == [&5], "shard {group}: {old:?} -> {new:?}");
            moved += gained.len();
        }
        // About 3/5 of the shards gain the new node; far from none and far from all.
        assert!((20..=55).contains(&moved), "moved {moved} of 64");
    }

    #[test]
    fn replicas_are_spread_over_nodes() {
        let all = nodes(1..=5);
        let mut held: BTreeMap<NodeId, usize> = BTreeMap::new();
        for group in 1..=100 {
            for node in replicas(group, &all, 3) {
                *held.entry(node).or_default() += 1;
            }
        }
        // 300 replicas over 5 nodes: 60 each on average.
        assert!(held.values().all(|n| (40..=80).contains(n)), "{held:?}");
    }
}
