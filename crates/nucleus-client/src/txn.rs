use nucleus_proto::meta::v1 as pb;
use serde::Serialize;

use crate::Error;
use crate::keys::{self, Scope};

/// A conditional, atomic write of several keys. Meta applies it within one Raft group, so every
/// key it reads or writes must belong to one workload or be cluster-wide (see [`keys::Scope`]);
/// [`crate::MetaClient::write`] refuses anything else with [`Error::CrossGroup`].
#[derive(Debug, Clone, Default)]
pub struct Txn {
    conditions: Vec<pb::Condition>,
    ops: Vec<pb::Op>,
}

impl Txn {
    pub fn new() -> Txn {
        Txn::default()
    }

    /// Applies only if `key` is still at `mod_revision` (0: only if it does not exist).
    pub fn require(mut self, key: &str, mod_revision: u64) -> Txn {
        self.conditions.push(pb::Condition { key: key.to_owned(), mod_revision });
        self
    }

    pub fn put_json<T: Serialize>(mut self, key: &str, value: &T) -> Result<Txn, Error> {
        let bytes = serde_json::to_vec(value).map_err(|source| Error::Encode { key: key.to_owned(), source })?;
        self.ops.push(pb::Op { op: Some(pb::op::Op::Put(pb::Put { key: key.to_owned(), value: bytes })) });
        Ok(self)
    }

    pub fn delete(mut self, key: &str) -> Txn {
        self.ops.push(pb::Op { op: Some(pb::op::Op::Delete(pb::Delete { key: key.to_owned() })) });
        self
    }

    pub fn delete_prefix(mut self, prefix: &str) -> Txn {
        self.ops.push(pb::Op { op: Some(pb::op::Op::DeletePrefix(prefix.to_owned())) });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The one scope of every key and prefix the transaction touches (root if none).
    ///
    /// Checked per workload rather than per group: two workloads that happen to share a shard at
    /// one shard count would not at another, so such a transaction is refused everywhere.
    pub(crate) fn scope(&self) -> Result<Scope<'_>, Error> {
        let touched = self.touched();
        // Shard documents (leases) may join the transactions of one workload in their shard: the
        // scope is decided without them, and `group` checks that they are in its group.
        let (pins, scoped): (Vec<_>, Vec<_>) =
            touched.iter().map(|(_, scope)| *scope).partition(|scope| matches!(scope, Some(Scope::Shard(_))));
        let pins_agree = pins.windows(2).all(|pair| pair[0] == pair[1]);
        let scope = match (scoped.first(), pins.first()) {
            (None, None) => Some(Scope::Root),
            (None, Some(pin)) => *pin,
            (Some(first), _) if scoped.iter().all(|s| s == first) => *first,
            _ => None,
        };
        match scope {
            Some(scope) if pins_agree && (pins.is_empty() || matches!(scope, Scope::Workload(_) | Scope::Shard(_))) => Ok(scope),
            _ => Err(self.cross_group()),
        }
    }

    /// The group the transaction goes to in a cluster of `shard_count` shards; refuses one whose
    /// shard documents are not in the group of its workload.
    pub(crate) fn group(&self, shard_count: u64) -> Result<u64, Error> {
        let group = self.scope()?.group(shard_count);
        let pins = self.touched().into_iter().filter_map(|(_, scope)| match scope {
            Some(Scope::Shard(pinned)) => Some(Scope::Shard(pinned).group(shard_count)),
            _ => None,
        });
        for pinned in pins {
            if pinned != group {
                return Err(self.cross_group());
            }
        }
        Ok(group)
    }

    fn touched(&self) -> Vec<(&str, Option<Scope<'_>>)> {
        let conditions = self.conditions.iter().map(|c| (c.key.as_str(), Some(keys::scope_of_key(&c.key))));
        let ops = self.ops.iter().filter_map(|op| match op.op.as_ref()? {
            pb::op::Op::Put(put) => Some((put.key.as_str(), Some(keys::scope_of_key(&put.key)))),
            pb::op::Op::Delete(delete) => Some((delete.key.as_str(), Some(keys::scope_of_key(&delete.key)))),
            pb::op::Op::DeletePrefix(prefix) => Some((prefix.as_str(), keys::scope_of_prefix(prefix))),
        });
        conditions.chain(ops).collect()
    }

    fn cross_group(&self) -> Error {
        let mut keys: Vec<String> = Vec::new();
        for (key, _) in self.touched() {
            if !keys.iter().any(|k| k == key) {
                keys.push(key.to_owned());
            }
        }
        Error::CrossGroup { keys }
    }

    pub(crate) fn into_request(self, request_id: String, group_id: u64) -> pb::WriteRequest {
        pb::WriteRequest { request_id, conditions: self.conditions, ops: self.ops, group_id }
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    Applied {
        revision: u64,
    },
    /// A condition did not hold; nothing changed.
    Conflict {
        key: String,
    },
}

impl WriteOutcome {
    pub fn applied(&self) -> bool {
        matches!(self, WriteOutcome::Applied { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(txn: &Txn) -> Result<Scope<'_>, Vec<String>> {
        txn.scope().map_err(|err| match err {
            Error::CrossGroup { keys } => keys,
            other => panic!("{other}"),
        })
    }

    #[test]
    fn a_transaction_stays_within_one_workload_or_the_root() {
        let one_workload = Txn::new()
            .require(&keys::workload("w"), 3)
            .put_json(&keys::proton("w", "p"), &1)
            .unwrap()
            .delete(&keys::snapshot("w", "p"))
            .delete_prefix(&keys::events_of("w"));
        assert_eq!(scope(&one_workload), Ok(Scope::Workload("w")));
        let root = Txn::new().require(&keys::artifact("a"), 0).put_json(&keys::agent("n"), &1).unwrap();
        assert_eq!(scope(&root), Ok(Scope::Root));
        assert_eq!(scope(&Txn::new()), Ok(Scope::Root));
    }

    #[test]
    fn a_transaction_across_groups_is_refused_naming_its_keys() {
        let mixed = Txn::new()
            .require(&keys::artifact("a"), 7)
            .put_json(&keys::artifact("a"), &1)
            .unwrap()
            .put_json(&keys::workload("w"), &1)
            .unwrap();
        assert_eq!(scope(&mixed), Err(vec![keys::artifact("a"), keys::workload("w")]));
        let two_workloads = Txn::new().delete(&keys::workload("w1")).delete(&keys::proton("w2", "p"));
        assert!(scope(&two_workloads).is_err(), "even where both land in the same shard");
        let all_protons = Txn::new().delete_prefix(keys::PROTONS);
        assert_eq!(scope(&all_protons), Err(vec![keys::PROTONS.to_owned()]));
    }

    #[test]
    fn a_shard_lease_joins_writes_of_a_workload_in_that_shard_only() {
        let shards = 16;
        let home = keys::Scope::Workload("w").group(shards);
        let other = if home == 1 { 2 } else { 1 };
        let fenced =
            |lease_group: u64| Txn::new().require(&keys::shard_lease(lease_group), 5).put_json(&keys::proton("w", "p"), &1).unwrap();
        assert_eq!(fenced(home).group(shards).unwrap(), home);
        assert!(matches!(fenced(other).group(shards), Err(Error::CrossGroup { .. })), "lease of another shard");
        let lease_only = Txn::new().require(&keys::shard_lease(other), 0).put_json(&keys::shard_lease(other), &1).unwrap();
        assert_eq!(lease_only.group(shards).unwrap(), other);
        let with_root = Txn::new().require(&keys::shard_lease(home), 5).put_json(&keys::artifact("a"), &1).unwrap();
        assert!(with_root.scope().is_err(), "a lease never joins a cluster-wide write");
        let two_leases = Txn::new().require(&keys::shard_lease(1), 5).require(&keys::shard_lease(2), 5);
        assert!(two_leases.scope().is_err());
    }
}
