//! Where one Raft group's data sits in the node's column families: every key starts with the
//! group id (8 bytes, big-endian), so a group's log, vote and state machine are contiguous ranges
//! that can be scanned, replaced by a snapshot or dropped on their own.

use crate::types::GroupId;

/// The group id of node-local records (not replicated: which shard count this node was created
/// or joined with).
const NODE_LOCAL: GroupId = GroupId::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyspace {
    group: GroupId,
    prefix: [u8; 8],
}

impl Keyspace {
    pub fn of(group: GroupId) -> Keyspace {
        Keyspace { group, prefix: group.to_be_bytes() }
    }

    pub(crate) fn node_local() -> Keyspace {
        Keyspace::of(NODE_LOCAL)
    }

    pub fn group(&self) -> GroupId {
        self.group
    }

    /// `key` inside this group.
    pub(crate) fn key(&self, key: &[u8]) -> Vec<u8> {
        [self.prefix.as_slice(), key].concat()
    }

    /// The group-local part of a stored key, or None if it belongs to another group.
    pub(crate) fn strip<'k>(&self, stored: &'k [u8]) -> Option<&'k [u8]> {
        stored.strip_prefix(self.prefix.as_slice())
    }

    /// The first stored key of the group and the first key past it (for the node-local records,
    /// which are never scanned, the end is only a bound on short keys).
    pub(crate) fn bounds(&self) -> (Vec<u8>, Vec<u8>) {
        let end = match self.group.checked_add(1) {
            Some(next) => next.to_be_bytes().to_vec(),
            None => vec![0xff; 9],
        };
        (self.prefix.to_vec(), end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_disjoint_ordered_ranges() {
        let (a, b) = (Keyspace::of(1), Keyspace::of(2));
        let stored = a.key(b"workloads/x");
        assert_eq!(a.strip(&stored), Some(b"workloads/x".as_slice()));
        assert_eq!(b.strip(&stored), None);
        let (start, end) = a.bounds();
        assert!(start.as_slice() <= stored.as_slice() && stored.as_slice() < end.as_slice());
        assert!(end.as_slice() <= b.key(b"").as_slice());
        assert!(b.key(b"\xff\xff").as_slice() < Keyspace::node_local().key(b"").as_slice());
    }
}
