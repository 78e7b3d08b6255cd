//! The Wing & Gong depth-first search with Lowe's memoization, over one key's operations.

use std::collections::HashSet;

use crate::bitset::Bitset;
use crate::budget::Meter;
use crate::history::Operation;
use crate::list::{Event, EventList, Node};
use crate::model::{State, step};

/// How far the search got when it had to give up: the data for an explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stuck {
    /// The longest linearizable prefix found, as indices into the searched operations.
    pub(crate) prefix: Vec<usize>,
    /// The operations that could have come next: those called before the first pending return.
    pub(crate) candidates: Vec<usize>,
    /// The operation whose return is the first pending one: it must be among the next ones.
    pub(crate) blocking: Option<usize>,
}

/// The result of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Search {
    /// A linearization exists.
    Linearizable,
    /// None exists; the longest partial one found.
    NotLinearizable(Stuck),
    /// The budget ran out first.
    OutOfBudget,
}

/// Searches for a linearization of `ops` (all on one key) starting from an absent key.
///
/// Operations with an unknown outcome have no return event: they may be linearized anywhere
/// after their call, and those never linearized are taken not to have happened (or to have
/// happened after everything else, which no operation observes). The search succeeds once
/// every operation with a known outcome is linearized.
pub(crate) fn search(ops: &[&Operation], meter: &mut Meter) -> Search {
    let times: Vec<_> = ops.iter().map(|op| (op.call, op.ret())).collect();
    let mut list = EventList::new(&times);
    let mut pending_returns = times.iter().filter(|(_, ret)| ret.is_some()).count();

    let mut state: State = None;
    let mut linearized = Bitset::new(ops.len());
    let mut seen: HashSet<(Bitset, State)> = HashSet::new();
    // The linearized calls, with the state before each.
    let mut stack: Vec<(Node, usize, State)> = Vec::new();
    let mut best = stuck_at(&list, &stack);

    let mut node = list.first();
    while pending_returns > 0 {
        if !meter.tick() {
            return Search::OutOfBudget;
        }
        match list.event(node) {
            Some(Event::Call { op, ret }) => match step(state, ops[op].input, ops[op].output()) {
                Some(next) if first_visit(&mut seen, &mut linearized, op, next) => {
                    stack.push((node, op, state));
                    state = next;
                    list.lift(node);
                    pending_returns -= usize::from(ret.is_some());
                    if stack.len() > best.prefix.len() {
                        best = stuck_at(&list, &stack);
                    }
                    node = list.first();
                }
                _ => node = list.next(node),
            },
            // The first pending return (or, defensively, the end of the list): nothing before
            // it can be linearized next, so undo the last choice and try the one after it.
            Some(Event::Return { .. }) | None => {
                let Some((call, op, before)) = stack.pop() else {
                    return Search::NotLinearizable(best);
                };
                state = before;
                linearized.remove(op);
                list.unlift(call);
                if let Some(Event::Call { ret: Some(_), .. }) = list.event(call) {
                    pending_returns += 1;
                }
                node = list.next(call);
            }
        }
    }
    Search::Linearizable
}

/// Adds `op` to `linearized` and returns true if that, with `state`, is a configuration not
/// explored before (Lowe's memoization); otherwise leaves `linearized` as it was.
fn first_visit(seen: &mut HashSet<(Bitset, State)>, linearized: &mut Bitset, op: usize, state: State) -> bool {
    linearized.insert(op);
    let fresh = seen.insert((linearized.clone(), state));
    if !fresh {
        linearized.remove(op);
    }
    fresh
}

/// Records the current partial linearization and the operations that could come next.
fn stuck_at(list: &EventList, stack: &[(Node, usize, State)]) -> Stuck {
    let mut candidates = Vec::new();
    let mut blocking = None;
    let mut node = list.first();
    while let Some(event) = list.event(node) {
        match event {
            Event::Call { op, .. } => candidates.push(op),
            Event::Return { op } => {
                blocking = Some(op);
                break;
            }
        }
        node = list.next(node);
    }
    Stuck { prefix: stack.iter().map(|&(_, op, _)| op).collect(), candidates, blocking }
}
