//! Hand-written histories with a known answer, mostly adapted from Porcupine's test suite and
//! the classic examples of the literature. Every violation test has a linearizable twin (or the
//! other way round) that differs in one detail, so neither an always-yes nor an always-no
//! checker passes.

mod support;

use nucleus_sim::{Budget, HistoryError, Input, Output, Verdict, check_history, check_key};
use support::{assert_linearizable, assert_violation, done, lost};

const READ: Input = Input::Read;
const OK: Output = Output::Ok;
const CONFLICT: Output = Output::Conflict;

fn read(v: Option<u64>) -> Output {
    Output::Read(v)
}

fn cas(expected: Option<u64>, new: u64) -> Input {
    Input::Cas { expected, new }
}

// ---- linearizable ---------------------------------------------------------------------------

#[test]
fn empty_history_is_linearizable() {
    assert_linearizable(&[]);
}

#[test]
fn sequential_history_using_every_operation() {
    assert_linearizable(&[
        done(1, "k", READ, 0, 1, read(None)),
        done(1, "k", Input::Put(1), 2, 3, OK),
        done(2, "k", READ, 4, 5, read(Some(1))),
        done(2, "k", cas(Some(1), 2), 6, 7, OK),
        done(1, "k", cas(Some(1), 3), 8, 9, CONFLICT),
        done(3, "k", Input::Create(4), 10, 11, CONFLICT),
        done(3, "k", READ, 12, 13, read(Some(2))),
        done(1, "k", Input::Delete, 14, 15, OK),
        done(2, "k", cas(Some(2), 5), 16, 17, CONFLICT),
        done(2, "k", Input::Create(6), 18, 19, OK),
        done(1, "k", cas(None, 7), 20, 21, CONFLICT),
        done(1, "k", READ, 22, 23, read(Some(6))),
    ]);
}

#[test]
fn same_sequential_history_with_one_wrong_output_is_not() {
    assert_violation(
        &[
            done(1, "k", Input::Put(1), 2, 3, OK),
            done(2, "k", cas(Some(1), 2), 6, 7, OK),
            // Create on a present key cannot succeed.
            done(3, "k", Input::Create(4), 10, 11, OK),
        ],
        "k",
    );
}

#[test]
fn read_concurrent_with_a_put_may_see_either_value() {
    for seen in [None, Some(1)] {
        assert_linearizable(&[done(1, "k", Input::Put(1), 0, 100, OK), done(2, "k", READ, 10, 90, read(seen))]);
    }
}

#[test]
fn porcupine_register_example_one() {
    // Porcupine's first register example (initial value 0 replaced by "absent"): the read of
    // the old value is linearized before the put, the read of the new one after it.
    assert_linearizable(&[
        done(0, "k", Input::Put(100), 0, 100, OK),
        done(1, "k", READ, 25, 75, read(Some(100))),
        done(2, "k", READ, 30, 60, read(None)),
    ]);
}

#[test]
fn read_sees_a_concurrent_write_that_has_not_returned() {
    assert_linearizable(&[
        done(1, "k", Input::Put(1), 0, 10, OK),
        done(2, "k", Input::Put(2), 20, 50, OK),
        done(3, "k", READ, 30, 40, read(Some(2))),
        done(3, "k", READ, 45, 48, read(Some(2))),
    ]);
}

#[test]
fn operations_touching_at_an_instant_are_concurrent() {
    // The read is called at the instant the put returns: either order is allowed.
    assert_linearizable(&[done(1, "k", Input::Put(1), 0, 10, OK), done(2, "k", READ, 10, 20, read(None))]);
}

#[test]
fn concurrent_creates_one_wins() {
    assert_linearizable(&[
        done(1, "k", Input::Create(1), 0, 10, CONFLICT),
        done(2, "k", Input::Create(2), 2, 8, OK),
        done(3, "k", READ, 11, 12, read(Some(2))),
    ]);
}

#[test]
fn unknown_write_that_took_effect() {
    assert_linearizable(&[
        done(1, "k", Input::Put(1), 0, 10, OK),
        lost(2, "k", Input::Put(2), 15),
        done(3, "k", READ, 100, 110, read(Some(2))),
    ]);
}

#[test]
fn unknown_write_that_did_not_take_effect() {
    assert_linearizable(&[
        done(1, "k", Input::Put(1), 0, 10, OK),
        lost(2, "k", Input::Put(2), 15),
        done(3, "k", READ, 100, 110, read(Some(1))),
    ]);
}

#[test]
fn unknown_write_takes_effect_at_most_once_and_only_after_its_call() {
    // Seen, then overwritten, then seen again: it cannot have happened twice.
    assert_violation(
        &[
            lost(2, "k", Input::Put(2), 0),
            done(3, "k", READ, 10, 11, read(Some(2))),
            done(1, "k", Input::Put(1), 20, 21, OK),
            done(3, "k", READ, 30, 31, read(Some(2))),
        ],
        "k",
    );
    // Seen before it was called.
    assert_violation(&[done(3, "k", READ, 0, 10, read(Some(2))), lost(2, "k", Input::Put(2), 15)], "k");
}

#[test]
fn unknown_conditional_writes_apply_only_when_their_condition_holds() {
    // The lost Cas applied (1 -> 2) ...
    assert_linearizable(&[
        done(1, "k", Input::Put(1), 0, 10, OK),
        lost(2, "k", cas(Some(1), 2), 20),
        done(3, "k", READ, 100, 110, read(Some(2))),
    ]);
    // ... but it cannot have applied from the wrong state.
    assert_violation(
        &[done(1, "k", Input::Put(1), 0, 10, OK), lost(2, "k", cas(Some(7), 2), 20), done(3, "k", READ, 100, 110, read(Some(2)))],
        "k",
    );
}

#[test]
fn unknown_reads_are_ignored() {
    assert_linearizable(&[lost(9, "k", READ, 0), done(1, "k", Input::Put(1), 0, 10, OK), lost(9, "k", READ, 11)]);
}

#[test]
fn unknown_delete_may_explain_a_missing_write() {
    assert_linearizable(&[done(1, "k", Input::Put(1), 0, 10, OK), lost(2, "k", Input::Delete, 15), done(3, "k", READ, 20, 30, read(None))]);
}

// ---- not linearizable -----------------------------------------------------------------------

#[test]
fn stale_read_after_a_completed_write() {
    let explanation = assert_violation(
        &[done(1, "k", Input::Put(1), 0, 10, OK), done(1, "k", Input::Put(2), 20, 30, OK), done(2, "k", READ, 40, 50, read(Some(1)))],
        "k",
    );
    // The prefix is both puts; the stale read (#2) is what cannot be placed.
    assert!(explanation.contains("longest linearizable prefix found (2 operations)"), "{explanation}");
    assert!(explanation.contains("state after the prefix: 2"), "{explanation}");
    assert!(explanation.contains("#2 client 2 \"k\": Read -> 1"), "{explanation}");
    assert!(explanation.contains("would output 2"), "{explanation}");
}

#[test]
fn non_monotonic_reads_porcupine_register_example_two() {
    // Porcupine's second register example: a read sees the new value, a later read the old one.
    assert_violation(
        &[done(0, "k", Input::Put(200), 0, 100, OK), done(1, "k", READ, 10, 30, read(Some(200))), done(2, "k", READ, 40, 90, read(None))],
        "k",
    );
}

#[test]
fn second_create_succeeds_on_a_created_key() {
    assert_violation(&[done(1, "k", Input::Create(1), 0, 10, OK), done(2, "k", Input::Create(2), 20, 30, OK)], "k");
    // Concurrent, both successful: still only one can have found the key absent.
    assert_violation(&[done(1, "k", Input::Create(1), 0, 30, OK), done(2, "k", Input::Create(2), 5, 25, OK)], "k");
}

#[test]
fn create_reports_conflict_on_an_absent_key() {
    assert_violation(&[done(1, "k", Input::Create(1), 0, 10, CONFLICT)], "k");
}

#[test]
fn cas_succeeds_although_its_expected_value_was_overwritten() {
    assert_violation(
        &[done(1, "k", Input::Put(1), 0, 10, OK), done(1, "k", Input::Put(2), 20, 30, OK), done(2, "k", cas(Some(1), 3), 40, 50, OK)],
        "k",
    );
    // Twin: concurrent with the overwrite, it may have come first.
    assert_linearizable(&[
        done(1, "k", Input::Put(1), 0, 10, OK),
        done(1, "k", Input::Put(2), 20, 30, OK),
        done(2, "k", cas(Some(1), 3), 25, 50, OK),
    ]);
}

#[test]
fn lost_acknowledged_write() {
    assert_violation(
        &[
            done(1, "k", Input::Put(1), 0, 10, OK),
            // A concurrent lost write cannot remove the value either.
            lost(3, "k", Input::Put(2), 5),
            done(2, "k", READ, 20, 30, read(None)),
            done(2, "k", READ, 40, 50, read(None)),
        ],
        "k",
    );
}

#[test]
fn read_of_a_value_never_written() {
    assert_violation(&[done(1, "k", READ, 0, 10, read(Some(5)))], "k");
}

// ---- keys are independent -------------------------------------------------------------------

#[test]
fn violation_is_reported_with_its_key() {
    let ops = [
        done(1, "a", Input::Put(1), 0, 10, OK),
        done(2, "b", Input::Put(2), 0, 10, OK),
        done(1, "a", READ, 20, 30, read(Some(1))),
        // Correct for "a", but this read is on "b".
        done(2, "b", READ, 20, 30, read(Some(1))),
    ];
    let explanation = assert_violation(&ops, "b");
    assert!(explanation.contains("key \"b\""), "{explanation}");
    // The same operations with the last read on "a" are fine.
    let mut fixed = ops.clone();
    fixed[3].key = "a".to_owned();
    assert_linearizable(&fixed);
}

#[test]
fn check_key_checks_one_key_and_rejects_mixed_keys() {
    let ops = [done(1, "a", Input::Put(1), 0, 10, OK), done(2, "a", READ, 20, 30, read(None))];
    let verdict = check_key(&ops, Budget::Unlimited).expect("one key");
    assert!(matches!(verdict, Verdict::NotLinearizable { ref key, .. } if key == "a"), "{verdict:?}");
    assert_eq!(check_key(&ops[..1], Budget::Unlimited), Ok(Verdict::Linearizable));

    let mixed = [ops[0].clone(), done(2, "b", READ, 20, 30, read(None))];
    assert!(matches!(check_key(&mixed, Budget::Unlimited), Err(HistoryError::MixedKeys { .. })));
}

// ---- malformed histories and budgets --------------------------------------------------------

#[test]
fn malformed_operations_are_errors() {
    let backwards = [done(1, "k", Input::Put(1), 10, 5, OK)];
    assert_eq!(check_history(&backwards, Budget::Unlimited), Err(HistoryError::ReturnBeforeCall { op: 0, call: 10, ret: 5 }));
    let wrong_kind = [done(1, "k", Input::Put(1), 0, 5, OK), done(1, "k", READ, 6, 7, OK)];
    assert!(matches!(check_history(&wrong_kind, Budget::Unlimited), Err(HistoryError::OutputMismatch { op: 1, .. })));
}

/// Many fully concurrent puts followed by a read of a value nobody wrote: the search must
/// explore every subset of the puts before it can say no.
fn hard_history(puts: u64) -> Vec<nucleus_sim::Operation> {
    let mut ops: Vec<_> = (0..puts).map(|v| done(v, "k", Input::Put(v), 0, 100, OK)).collect();
    ops.push(done(99, "k", READ, 200, 210, read(Some(1000))));
    ops
}

#[test]
fn exhausted_budget_is_a_timeout_not_a_verdict() {
    let ops = hard_history(10);
    assert_eq!(check_history(&ops, Budget::Steps(1000)), Ok(Verdict::Timeout { key: "k".into() }));
    assert!(matches!(check_history(&ops, Budget::Time(std::time::Duration::ZERO)), Ok(Verdict::Timeout { .. })));
    assert!(matches!(check_history(&ops, Budget::Unlimited), Ok(Verdict::NotLinearizable { .. })));
}

#[test]
fn memoization_keeps_exhaustive_search_tractable() {
    // Without pruning, refuting this history takes 12! orders of the puts; with it, one visit
    // per (set of puts done, last value) pair. A step budget keeps the test machine-independent.
    let verdict = check_history(&hard_history(12), Budget::Steps(5_000_000));
    assert!(matches!(verdict, Ok(Verdict::NotLinearizable { .. })), "{verdict:?}");
}
