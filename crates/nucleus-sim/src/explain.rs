//! Human-readable explanations of linearizability violations.

use std::fmt::Write;

use crate::history::Operation;
use crate::model::{ShowState, State, step};
use crate::search::Stuck;

/// Explains why no linearization of `ops` (the operations of `key`, whose indices in the
/// checked history are `indices`) exists, from where the search got stuck.
pub(crate) fn explain(key: &str, ops: &[&Operation], indices: &[usize], stuck: &Stuck) -> String {
    let show = |op: usize| format!("#{} {}", indices[op], ops[op]);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(out, "no linearization of the {} operations on key {key:?} exists.", ops.len());
    let _ = writeln!(out, "longest linearizable prefix found ({} operations):", stuck.prefix.len());
    let mut state: State = None;
    for (position, &op) in stuck.prefix.iter().enumerate() {
        state = step(state, ops[op].input, ops[op].output()).unwrap_or(state);
        let _ = writeln!(out, "  {}. {}  => {}", position + 1, show(op), ShowState(state));
    }
    let _ = writeln!(out, "state after the prefix: {}", ShowState(state));
    if let Some(op) = stuck.blocking {
        let _ = writeln!(out, "{} must take effect before its return, but cannot.", show(op));
    }
    let _ = writeln!(out, "candidates for the next position, none of which leads anywhere:");
    for &op in &stuck.candidates {
        let reason = match step(state, ops[op].input, ops[op].output()) {
            Some(_) => "fits here, but no linearization continues from it".to_owned(),
            None => format!("would output {}", ops[op].input.apply(state).1),
        };
        let _ = writeln!(out, "  {}: {reason}", show(op));
    }
    out
}
