//! Histories: the operations clients issued, when, and what they observed.

use std::fmt;

use crate::budget::Budget;
use crate::check::{Verdict, check_history};
use crate::model::{Input, Output};

/// What a client observed at the end of an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The operation returned `output` at time `at`.
    Returned {
        /// The result the client received.
        output: Output,
        /// When the client received it (same clock as [`Operation::call`]).
        at: u64,
    },
    /// No answer (timeout, lost connection, crashed client): the operation may have taken effect
    /// at any time after its call, or never, and its output is unconstrained.
    Unknown,
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Operation {
    /// The client that issued it (informational: used in explanations).
    pub client: u64,
    /// The key it operated on.
    pub key: String,
    /// What the client asked for.
    pub input: Input,
    /// When the client issued it, in ticks of the simulation clock.
    pub call: u64,
    /// What the client observed.
    pub outcome: Outcome,
}

impl Operation {
    /// The return time, `None` when the outcome is unknown (a return time of +infinity).
    pub fn ret(&self) -> Option<u64> {
        match self.outcome {
            Outcome::Returned { at, .. } => Some(at),
            Outcome::Unknown => None,
        }
    }

    /// The observed output, `None` when the outcome is unknown.
    pub fn output(&self) -> Option<Output> {
        match self.outcome {
            Outcome::Returned { output, .. } => Some(output),
            Outcome::Unknown => None,
        }
    }

    /// Checks that the operation is well formed: it returns no earlier than it was called, with
    /// an output of the right kind for its input. `index` names it in the error.
    pub fn validate(&self, index: usize) -> Result<(), HistoryError> {
        let Outcome::Returned { output, at } = self.outcome else {
            return Ok(());
        };
        if at < self.call {
            return Err(HistoryError::ReturnBeforeCall { op: index, call: self.call, ret: at });
        }
        if !self.input.can_output(output) {
            return Err(HistoryError::OutputMismatch { op: index, input: self.input, output });
        }
        Ok(())
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {} {:?}: {}", self.client, self.key, self.input)?;
        match self.outcome {
            Outcome::Returned { output, at } => {
                write!(f, " -> {output} [call {}, return {at}]", self.call)
            }
            Outcome::Unknown => write!(f, " -> ? [call {}, no return]", self.call),
        }
    }
}

/// The identity of an operation recorded in a [`History`]: its index in
/// [`History::operations`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpId(pub usize);

/// A malformed history, or a misuse of the [`History`] recorder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryError {
    /// No operation has this id.
    NoSuchOp(OpId),
    /// The operation was already completed or marked unknown.
    AlreadyResolved(OpId),
    /// Operation `op` returns before it was called.
    ReturnBeforeCall {
        /// Index of the operation.
        op: usize,
        /// Its call time.
        call: u64,
        /// Its return time.
        ret: u64,
    },
    /// Operation `op` has an output its input cannot produce (e.g. a read returning `Ok`).
    OutputMismatch {
        /// Index of the operation.
        op: usize,
        /// Its input.
        input: Input,
        /// Its output.
        output: Output,
    },
    /// [`check_key`](crate::check_key) was given operations on more than one key.
    MixedKeys {
        /// The key of the first operation.
        first: String,
        /// Another key found.
        other: String,
    },
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HistoryError::NoSuchOp(id) => write!(f, "no operation #{}", id.0),
            HistoryError::AlreadyResolved(id) => {
                write!(f, "operation #{} was already completed or marked unknown", id.0)
            }
            HistoryError::ReturnBeforeCall { op, call, ret } => {
                write!(f, "operation #{op} returns at {ret}, before its call at {call}")
            }
            HistoryError::OutputMismatch { op, input, output } => {
                write!(f, "operation #{op}: {input} cannot output {output}")
            }
            HistoryError::MixedKeys { first, other } => {
                write!(f, "check_key given operations on keys {first:?} and {other:?}")
            }
        }
    }
}

impl std::error::Error for HistoryError {}

/// Records a history as a simulation runs.
///
/// Every operation starts pending with [`History::invoke`] and is resolved with
/// [`History::complete`] or [`History::unknown`]; operations still pending when the history is
/// checked count as unknown (the client never heard back).
#[derive(Debug, Clone, Default)]
pub struct History {
    ops: Vec<Operation>,
    resolved: Vec<bool>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `client` issued `input` on `key` at time `now`.
    pub fn invoke(&mut self, client: u64, key: impl Into<String>, input: Input, now: u64) -> OpId {
        self.ops.push(Operation { client, key: key.into(), input, call: now, outcome: Outcome::Unknown });
        self.resolved.push(false);
        OpId(self.ops.len() - 1)
    }

    /// Records that operation `id` returned `output` at time `now`.
    pub fn complete(&mut self, id: OpId, output: Output, now: u64) -> Result<(), HistoryError> {
        let (op, resolved) = self.pending(id)?;
        let returned = Operation { outcome: Outcome::Returned { output, at: now }, ..op.clone() };
        returned.validate(id.0)?;
        *op = returned;
        *resolved = true;
        Ok(())
    }

    /// Records that the client of operation `id` gave up on it without an answer.
    pub fn unknown(&mut self, id: OpId) -> Result<(), HistoryError> {
        let (_, resolved) = self.pending(id)?;
        *resolved = true;
        Ok(())
    }

    /// The operations recorded so far, indexed by [`OpId`].
    pub fn operations(&self) -> &[Operation] {
        &self.ops
    }

    /// The recorded operations, indexed by [`OpId`].
    pub fn into_operations(self) -> Vec<Operation> {
        self.ops
    }

    /// Checks the recorded history; see [`check_history`].
    pub fn check(&self, budget: Budget) -> Result<Verdict, HistoryError> {
        check_history(&self.ops, budget)
    }

    fn pending(&mut self, id: OpId) -> Result<(&mut Operation, &mut bool), HistoryError> {
        match (self.ops.get_mut(id.0), self.resolved.get_mut(id.0)) {
            (Some(_), Some(true)) => Err(HistoryError::AlreadyResolved(id)),
            (Some(op), Some(resolved)) => Ok((op, resolved)),
            _ => Err(HistoryError::NoSuchOp(id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_tracks_outcomes_and_rejects_misuse() {
        let mut h = History::new();
        let a = h.invoke(1, "k", Input::Put(1), 5);
        let b = h.invoke(2, "k", Input::Read, 6);
        let c = h.invoke(3, "k", Input::Read, 7);
        assert_eq!(h.complete(a, Output::Ok, 9), Ok(()));
        assert_eq!(h.complete(a, Output::Ok, 10), Err(HistoryError::AlreadyResolved(a)));
        assert_eq!(h.unknown(b), Ok(()));
        assert_eq!(h.complete(b, Output::Read(None), 10), Err(HistoryError::AlreadyResolved(b)));
        assert!(matches!(h.complete(c, Output::Read(None), 3), Err(HistoryError::ReturnBeforeCall { .. })));
        assert!(matches!(h.complete(c, Output::Ok, 8), Err(HistoryError::OutputMismatch { .. })));
        assert_eq!(h.complete(OpId(9), Output::Ok, 8), Err(HistoryError::NoSuchOp(OpId(9))));
        let ops = h.operations();
        assert_eq!(ops[0].outcome, Outcome::Returned { output: Output::Ok, at: 9 });
        assert_eq!(ops[1].ret(), None);
        assert_eq!(ops[2].outcome, Outcome::Unknown);
    }
}
