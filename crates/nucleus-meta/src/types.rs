//! The Raft type configuration and the commands replicated through the log.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// Raft types of the metadata group.
    pub TypeConfig:
        D = WriteCommand,
        R = WriteOutcome,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = Cursor<Vec<u8>>,
);

pub type NodeId = u64;
/// A Raft group: 0 is the root, 1..=shard_count the shards.
pub type GroupId = u64;
pub type Raft = openraft::Raft<TypeConfig>;

/// One `Meta.Write`: replicated as a single log entry and applied atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteCommand {
    /// Empty means "no idempotency tracking".
    pub request_id: String,
    pub conditions: Vec<Condition>,
    pub ops: Vec<Op>,
}

/// Holds iff the key's mod_revision equals `mod_revision` (0: the key must not exist).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub key: String,
    pub mod_revision: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Put {
        key: String,
        #[serde(with = "crate::base64_bytes")]
        value: Vec<u8>,
    },
    Delete {
        key: String,
    },
    DeletePrefix {
        prefix: String,
    },
}

/// What applying a log entry answered; for a `WriteCommand` this is what the client sees.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteOutcome {
    pub succeeded: bool,
    /// Revision after the write (the current revision if it failed).
    pub revision: u64,
    /// The key whose condition failed, empty otherwise.
    pub failed_key: String,
}

/// A stored key: its value and revisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    #[serde(with = "crate::base64_bytes")]
    pub value: Vec<u8>,
    pub create_revision: u64,
    pub mod_revision: u64,
}

/// One change made by an applied write, as published to watchers and kept in the change log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    Put(KeyValue),
    /// The key that was deleted.
    Delete(String),
}

/// Every change of one successful write; all share `revision`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSet {
    pub revision: u64,
    pub changes: Vec<Change>,
}

/// What the state machine publishes to watchers after each applied entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmEvent {
    Applied(ChangeSet),
    /// The whole state was replaced by an installed snapshot: watchers must re-list.
    Reset,
}
