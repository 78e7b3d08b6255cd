//! The entry points: checking a whole history, or the operations of one key.

use std::collections::BTreeMap;

use crate::budget::{Budget, Meter};
use crate::explain::explain;
use crate::history::{HistoryError, Operation};
use crate::search::{Search, search};

/// The result of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every key's operations can be linearized.
    Linearizable,
    /// The operations on `key` cannot be linearized.
    NotLinearizable {
        /// The first key (in key order) found not linearizable.
        key: String,
        /// What the search found: the longest linearizable prefix, and the operations that
        /// could not be placed after it. Operations are named by their index in the history.
        explanation: String,
    },
    /// The budget ran out while checking `key`, and no key was found not linearizable.
    Timeout {
        /// The first key whose check ran out of budget.
        key: String,
    },
}

impl Verdict {
    /// Whether the verdict is [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Verdict::Linearizable)
    }
}

/// Checks that a history of operations on any number of keys is linearizable, key by key.
///
/// Keys are checked in order, all within one shared `budget`; the first key found not
/// linearizable is reported, otherwise the first that ran out of budget. Errors report a
/// malformed operation (see [`Operation::validate`]).
pub fn check_history(ops: &[Operation], budget: Budget) -> Result<Verdict, HistoryError> {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, op) in ops.iter().enumerate() {
        op.validate(index)?;
        by_key.entry(op.key.as_str()).or_default().push(index);
    }
    let mut meter = Meter::start(budget);
    let mut timed_out = None;
    for (key, indices) in by_key {
        match check_indices(key, ops, &indices, &mut meter) {
            Verdict::Linearizable => {}
            Verdict::Timeout { key } => {
                timed_out.get_or_insert(key);
            }
            violation @ Verdict::NotLinearizable { .. } => return Ok(violation),
        }
    }
    Ok(timed_out.map_or(Verdict::Linearizable, |key| Verdict::Timeout { key }))
}

/// Checks that the operations of a single key are linearizable.
///
/// Errors if the operations are on more than one key, or one is malformed.
pub fn check_key(ops: &[Operation], budget: Budget) -> Result<Verdict, HistoryError> {
    let Some(first) = ops.first() else {
        return Ok(Verdict::Linearizable);
    };
    for (index, op) in ops.iter().enumerate() {
        op.validate(index)?;
        if op.key != first.key {
            return Err(HistoryError::MixedKeys { first: first.key.clone(), other: op.key.clone() });
        }
    }
    let indices: Vec<usize> = (0..ops.len()).collect();
    Ok(check_indices(&first.key, ops, &indices, &mut Meter::start(budget)))
}

/// Checks the (valid) operations `ops[i]` for `i` in `indices`, all on `key`.
fn check_indices(key: &str, ops: &[Operation], indices: &[usize], meter: &mut Meter) -> Verdict {
    // A read with an unknown outcome constrains nothing and changes nothing: leave it out.
    let indices: Vec<usize> = indices.iter().copied().filter(|&i| !(ops[i].input.is_read_only() && ops[i].output().is_none())).collect();
    let key_ops: Vec<&Operation> = indices.iter().map(|&i| &ops[i]).collect();
    match search(&key_ops, meter) {
        Search::Linearizable => Verdict::Linearizable,
        Search::OutOfBudget => Verdict::Timeout { key: key.to_owned() },
        Search::NotLinearizable(stuck) => {
            Verdict::NotLinearizable { key: key.to_owned(), explanation: explain(key, &key_ops, &indices, &stuck) }
        }
    }
}
