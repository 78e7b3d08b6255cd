use nucleus_proto::meta::v1 as pb;
use serde::Serialize;

use crate::Error;

/// A conditional, atomic write of several keys.
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
        let bytes = serde_json::to_vec(value)
            .map_err(|source| Error::Encode { key: key.to_owned(), source })?;
        self.ops.push(pb::Op {
            op: Some(pb::op::Op::Put(pb::Put { key: key.to_owned(), value: bytes })),
        });
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

    pub(crate) fn into_request(self, request_id: String) -> pb::WriteRequest {
        pb::WriteRequest { request_id, conditions: self.conditions, ops: self.ops }
    }
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    Applied { revision: u64 },
    /// A condition did not hold; nothing changed.
    Conflict { key: String },
}

impl WriteOutcome {
    pub fn applied(&self) -> bool {
        matches!(self, WriteOutcome::Applied { .. })
    }
}
