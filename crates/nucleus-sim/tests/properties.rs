//! Generated histories: concurrent clients run random operations against a plain map, with
//! outputs computed in a known linearization order, so every such history is linearizable;
//! corrupting one read makes it not linearizable. Plus a performance sanity check.

mod support;

use std::time::Instant;

use nucleus_sim::Verdict;
use proptest::prelude::*;
use support::{Kind, Step, assert_linearizable, corrupt_a_read, realize, schedule, verdict};

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        3 => Just(Kind::Read),
        2 => Just(Kind::Put),
        1 => Just(Kind::Create),
        2 => any::<bool>().prop_map(|hits| Kind::Cas { hits }),
        1 => Just(Kind::Delete),
    ]
}

/// A step of one of `clients` clients on one of 3 keys, lost one time in ten.
fn step(clients: u64) -> impl Strategy<Value = Step> {
    (0..clients, 0..3u8, kind(), 0..10u64, 0..25u64, 0..=100u64, 0..10u8, any::<bool>()).prop_map(
        |(client, key, kind, gap, duration, effect_percent, lost, lost_applies)| Step {
            client,
            key,
            kind,
            gap,
            duration,
            effect_percent,
            lost: lost == 0,
            lost_applies,
        },
    )
}

/// Between 1 (a sequential history) and 5 concurrent clients.
fn steps() -> impl Strategy<Value = Vec<Step>> {
    (1..=5u64).prop_flat_map(|clients| prop::collection::vec(step(clients), 0..60))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn histories_of_a_real_map_are_linearizable(steps in steps()) {
        assert_linearizable(&realize(&schedule(&steps)));
    }

    #[test]
    fn a_read_of_a_value_never_written_is_caught(steps in steps(), pick in any::<usize>()) {
        let mut ops = realize(&schedule(&steps));
        let key = corrupt_a_read(&mut ops, pick);
        prop_assume!(key.is_some());
        match verdict(&ops) {
            Verdict::NotLinearizable { key: found, .. } => prop_assert_eq!(Some(found), key),
            other => prop_assert!(false, "expected a violation, got {:?}", other),
        }
    }
}

/// A deterministic workload: ~200 operations of 5 clients over 3 keys, some lost.
fn workload(seed: u64) -> Vec<Step> {
    // A small xorshift generator: the workload must not depend on anything but the seed.
    let mut state = seed | 1;
    let mut next = move |bound: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % bound
    };
    (0..200)
        .map(|_| {
            let kind = match next(9) {
                0..=2 => Kind::Read,
                3 | 4 => Kind::Put,
                5 => Kind::Create,
                6 | 7 => Kind::Cas { hits: next(2) == 0 },
                _ => Kind::Delete,
            };
            Step {
                client: next(5),
                key: next(3) as u8,
                kind,
                gap: next(10),
                duration: next(25),
                effect_percent: next(101),
                lost: next(20) == 0,
                lost_applies: next(2) == 0,
            }
        })
        .collect()
}

#[test]
fn two_hundred_concurrent_operations_check_quickly() {
    for seed in 1..=5 {
        let mut ops = realize(&schedule(&workload(seed)));
        let started = Instant::now();
        assert_linearizable(&ops);
        let ok_time = started.elapsed();

        let key = corrupt_a_read(&mut ops, seed as usize * 7);
        let started = Instant::now();
        let verdict = verdict(&ops);
        let bad_time = started.elapsed();
        assert!(matches!(verdict, Verdict::NotLinearizable { key: ref found, .. } if Some(found) == key.as_ref()), "{verdict:?}");
        println!("seed {seed}: {} ops, linearizable in {ok_time:?}, violation found in {bad_time:?}", ops.len());
    }
}
