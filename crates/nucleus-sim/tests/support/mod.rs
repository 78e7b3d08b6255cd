//! Shared test helpers: building operations by hand, and generating concurrent histories whose
//! outputs come from a reference map run in a known linearization order.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::collections::BTreeMap;

use nucleus_sim::{Budget, Input, Operation, Outcome, Output, Verdict, check_history};

/// A budget no test history should exhaust.
pub const BUDGET: Budget = Budget::Steps(20_000_000);

/// An operation that returned `output` at `ret`.
pub fn done(client: u64, key: &str, input: Input, call: u64, ret: u64, output: Output) -> Operation {
    let outcome = Outcome::Returned { output, at: ret };
    Operation { client, key: key.to_owned(), input, call, outcome }
}

/// An operation whose outcome is unknown.
pub fn lost(client: u64, key: &str, input: Input, call: u64) -> Operation {
    Operation { client, key: key.to_owned(), input, call, outcome: Outcome::Unknown }
}

/// Checks a well-formed history.
pub fn verdict(ops: &[Operation]) -> Verdict {
    check_history(ops, BUDGET).expect("test histories are well formed")
}

/// Asserts that `ops` is linearizable.
pub fn assert_linearizable(ops: &[Operation]) {
    let verdict = verdict(ops);
    assert_eq!(verdict, Verdict::Linearizable, "history: {ops:#?}");
}

/// Asserts that `ops` is not linearizable because of `key`; returns the explanation.
pub fn assert_violation(ops: &[Operation], key: &str) -> String {
    match verdict(ops) {
        Verdict::NotLinearizable { key: found, explanation } => {
            assert_eq!(found, key, "{explanation}");
            explanation
        }
        other => panic!("expected a violation on {key:?}, got {other:?} for {ops:#?}"),
    }
}

/// What a generated operation does, before its value and output are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Read,
    Put,
    Create,
    /// A compare-and-swap whose expected value is the current one when `hits`, another one
    /// otherwise.
    Cas {
        hits: bool,
    },
    Delete,
}

/// A generated operation with its timing and the instant it takes effect.
#[derive(Debug, Clone)]
pub struct Planned {
    pub client: u64,
    pub key: u8,
    pub kind: Kind,
    pub call: u64,
    /// When it takes effect (`call <= at`, and `at <= ret` when it returns); `None`: never.
    pub at: Option<u64>,
    /// When it returns; `None`: its outcome is unknown.
    pub ret: Option<u64>,
}

/// The key name of key number `key`.
pub fn key_name(key: u8) -> String {
    format!("key-{key}")
}

/// Runs the planned operations against a plain map in the order of their effect instants and
/// returns the history the clients observe. Every written value is unique (`1 + position`).
pub fn realize(plan: &[Planned]) -> Vec<Operation> {
    let mut order: Vec<usize> = (0..plan.len()).filter(|&i| plan[i].at.is_some()).collect();
    order.sort_by_key(|&i| (plan[i].at, i));

    let mut map: BTreeMap<u8, u64> = BTreeMap::new();
    let mut done: Vec<Option<(Input, Output)>> = vec![None; plan.len()];
    for i in order {
        let p = &plan[i];
        let value = 1 + i as u64;
        let current = map.get(&p.key).copied();
        done[i] = Some(match p.kind {
            Kind::Read => (Input::Read, Output::Read(current)),
            Kind::Put => {
                map.insert(p.key, value);
                (Input::Put(value), Output::Ok)
            }
            Kind::Create if current.is_none() => {
                map.insert(p.key, value);
                (Input::Create(value), Output::Ok)
            }
            Kind::Create => (Input::Create(value), Output::Conflict),
            Kind::Cas { hits: true } => {
                map.insert(p.key, value);
                (Input::Cas { expected: current, new: value }, Output::Ok)
            }
            Kind::Cas { hits: false } => {
                // Expect a value that is never written; or absent when the key is present.
                let expected = if current.is_some() { None } else { Some(u64::MAX - 1) };
                (Input::Cas { expected, new: value }, Output::Conflict)
            }
            Kind::Delete => {
                map.remove(&p.key);
                (Input::Delete, Output::Ok)
            }
        });
    }

    plan.iter()
        .zip(done)
        .enumerate()
        .map(|(i, (p, done))| {
            // Operations that never took effect never returned: give them an arbitrary input.
            let (input, output) = done.unwrap_or((Input::Put(1 + i as u64), Output::Ok));
            let key = key_name(p.key);
            match p.ret {
                Some(ret) => self::done(p.client, &key, input, p.call, ret, output),
                None => lost(p.client, &key, input, p.call),
            }
        })
        .collect()
}

/// Replaces the output of the `n`th (modulo their number) returned read by a value never
/// written; returns its key, or `None` if there is no returned read.
pub fn corrupt_a_read(ops: &mut [Operation], n: usize) -> Option<String> {
    let reads: Vec<usize> = (0..ops.len()).filter(|&i| ops[i].input == Input::Read && ops[i].ret().is_some()).collect();
    let &i = reads.get(n % reads.len().max(1))?;
    let at = ops[i].ret()?;
    ops[i].outcome = Outcome::Returned { output: Output::Read(Some(u64::MAX)), at };
    Some(ops[i].key.clone())
}

/// One client step of a generated workload, chosen by the caller (proptest or a PRNG).
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub client: u64,
    pub key: u8,
    pub kind: Kind,
    /// Idle time before the call.
    pub gap: u64,
    /// Time from call to return.
    pub duration: u64,
    /// Where in `[call, ret]` it takes effect, in percent.
    pub effect_percent: u64,
    /// Whether the client never hears back.
    pub lost: bool,
    /// For a lost operation: whether it takes effect at all.
    pub lost_applies: bool,
}

/// How long a client waits before giving up on a lost operation.
const CLIENT_TIMEOUT: u64 = 30;

/// Lays steps out in time: each client issues its steps one after the other, clients run
/// concurrently. A lost step takes effect (if at all) anywhere up to well after its client gave
/// up on it.
pub fn schedule(steps: &[Step]) -> Vec<Planned> {
    let mut free_at: BTreeMap<u64, u64> = BTreeMap::new();
    steps
        .iter()
        .map(|s| {
            let clock = free_at.entry(s.client).or_insert(0);
            let call = *clock + s.gap;
            let (at, ret) = if s.lost {
                *clock = call + CLIENT_TIMEOUT;
                let at = call + s.effect_percent * 3 * CLIENT_TIMEOUT / 100;
                (s.lost_applies.then_some(at), None)
            } else {
                *clock = call + s.duration;
                (Some(call + s.effect_percent * s.duration / 100), Some(call + s.duration))
            };
            Planned { client: s.client, key: s.key, kind: s.kind, call, at, ret }
        })
        .collect()
}
