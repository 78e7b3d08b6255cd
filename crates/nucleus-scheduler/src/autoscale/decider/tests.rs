use proptest::prelude::*;

use super::*;

fn settings() -> Settings {
    Settings { stable_window: Duration::from_secs(60), panic_window: Duration::from_secs(6), ..Settings::default() }
}

#[derive(Debug, Clone, Copy)]
struct Step {
    second: u64,
    load: f64,
    desired: u32,
    panicking: bool,
}

/// Runs a concurrency trace (total requests in flight per second) through one scaler, with
/// replicas ready `ready_after` seconds after they are asked for; target 10 per replica.
fn simulate(trace: impl Fn(u64) -> f64, seconds: u64, min: u32, max: u32, ready_after: u64, settings: &Settings) -> Vec<Step> {
    let start = Instant::now();
    let mut scaler = Scaler::new(start);
    let mut current = min.max(1);
    let mut asked_at: Vec<(u64, u32)> = vec![(0, current)];
    let mut steps = Vec::new();
    for second in 0..seconds {
        let now = start + Duration::from_secs(second);
        let load = trace(second);
        let ready = asked_at.iter().rev().find(|(at, _)| at + ready_after <= second).map_or(0, |(_, n)| *n).min(current);
        let observation = Observation { values: vec![Some(load)], queued: 0, active: load > 0.0 };
        scaler.observe(now, &observation, settings);
        let decision = scaler.decide(now, &[10.0], Group { current, ready, min, max }, 0, settings);
        if decision.desired != current {
            asked_at.push((second, decision.desired));
            current = decision.desired;
        }
        steps.push(Step { second, load, desired: current, panicking: decision.panicking });
    }
    steps
}

#[test]
fn a_step_scales_up_within_the_panic_window_and_back_down_after_the_stable_window() {
    let trace = |s: u64| if (100..400).contains(&s) { 100.0 } else { 0.0 };
    let steps = simulate(trace, 700, 1, 20, 2, &settings());
    let up = steps.iter().find(|s| s.second >= 100 && s.desired >= 10).expect("never reached 10 replicas");
    assert!(up.second <= 106, "reached 10 replicas only at {}s", up.second);
    assert!(steps.iter().all(|s| s.desired <= 10), "overshot: {:?}", steps.iter().map(|s| s.desired).max());
    // Holds while the load lasts, is at the floor a stable window (and a little) after it ends.
    assert!(steps[150..400].iter().all(|s| s.desired == 10));
    assert_eq!(steps[470].desired, 1);
}

#[test]
fn a_ramp_is_followed_closely_and_never_goes_down_while_rising() {
    let trace = |s: u64| (s as f64) * 0.5; // +1 replica's worth every 20 s
    let steps = simulate(trace, 400, 1, 100, 1, &settings());
    for pair in steps.windows(2) {
        assert!(pair[1].desired >= pair[0].desired, "scaled down during a ramp at {}s", pair[1].second);
    }
    let last = steps.last().unwrap();
    let exact = wanted(last.load, 10.0);
    // The stable window lags a rising ramp by half a window at most.
    assert!(last.desired + 3 >= exact && last.desired <= exact + 1, "at {} wanted {exact}, got {}", last.second, last.desired);
}

#[test]
fn a_short_spike_panics_up_and_does_not_scale_down_while_panicking() {
    let trace = |s: u64| if (120..128).contains(&s) { 200.0 } else { 10.0 };
    let steps = simulate(trace, 400, 1, 50, 1, &settings());
    let peak = steps.iter().map(|s| s.desired).max().unwrap();
    assert!(peak >= 20, "the spike asked for 20 replicas, got {peak}");
    let panic: Vec<&Step> = steps.iter().filter(|s| s.panicking).collect();
    assert!(!panic.is_empty(), "a 20x spike did not panic");
    for pair in steps.windows(2).filter(|p| p[1].panicking) {
        assert!(pair[1].desired >= pair[0].desired, "scaled down while panicking at {}s", pair[1].second);
    }
    // After the panic (a stable window after the last trigger) it comes back to what 10 needs.
    assert_eq!(steps[399].desired, 1);
}

#[test]
fn a_sawtooth_does_not_flap_within_a_period() {
    // 30 s at 80, 30 s at 20, repeated: the stable average is 50 → 5 replicas.
    let trace = |s: u64| if (s / 30).is_multiple_of(2) { 80.0 } else { 20.0 };
    let steps = simulate(trace, 600, 1, 20, 1, &settings());
    let tail = &steps[300..];
    let changes = tail.windows(2).filter(|p| p[0].desired != p[1].desired).count();
    assert!(changes <= 10, "{changes} changes in 300 s of sawtooth");
    assert!(tail.iter().all(|s| (4..=8).contains(&s.desired)), "{:?}", tail.iter().map(|s| s.desired).collect::<Vec<_>>());
}

#[test]
fn idle_groups_go_to_zero_only_after_the_stable_window_and_the_grace() {
    let settings = settings();
    let trace = |s: u64| if s < 10 { 5.0 } else { 0.0 };
    let steps = simulate(trace, 200, 0, 3, 1, &settings);
    let zero = steps.iter().find(|s| s.desired == 0).expect("never scaled to zero");
    let idle_from = 10;
    let earliest = idle_from + (settings.stable_window + settings.scale_to_zero_grace).as_secs() - 1;
    assert!(zero.second >= earliest, "at zero at {}s, before {earliest}s", zero.second);
    assert!(zero.second <= earliest + 2, "at zero only at {}s", zero.second);
}

#[test]
fn a_request_held_at_zero_wakes_the_group_at_once() {
    let settings = settings();
    let start = Instant::now();
    let mut scaler = Scaler::new(start);
    let later = start + Duration::from_secs(600);
    scaler.observe(later, &Observation { values: vec![Some(0.0)], queued: 0, active: false }, &settings);
    let idle = scaler.decide(later, &[1.0], Group { current: 0, ready: 0, min: 0, max: 5 }, 0, &settings);
    assert_eq!(idle.desired, 0);
    let woken = scaler.decide(later, &[1.0], Group { current: 0, ready: 0, min: 0, max: 5 }, 3, &settings);
    assert_eq!(woken.desired, 1, "{}", woken.reason);
}

#[test]
fn several_policies_take_the_largest_and_unmeasured_ones_hold() {
    let settings = settings();
    let start = Instant::now();
    let mut scaler = Scaler::new(start);
    let group = Group { current: 2, ready: 2, min: 1, max: 10 };
    for s in 0..70 {
        let now = start + Duration::from_secs(s);
        scaler.observe(now, &Observation { values: vec![Some(10.0), Some(280.0)], queued: 0, active: true }, &settings);
    }
    let now = start + Duration::from_secs(69);
    // 10 in flight at target 10 → 1; 280 % CPU at target 70 → 4.
    assert_eq!(scaler.decide(now, &[10.0, 70.0], group, 0, &settings).desired, 4);
    let mut blind = Scaler::new(start);
    blind.observe(now, &Observation { values: vec![None], queued: 0, active: true }, &settings);
    assert_eq!(blind.decide(now, &[10.0], group, 0, &settings).desired, 2);
}

#[test]
fn the_scale_down_delay_keeps_the_highest_recent_recommendation() {
    let settings = Settings { scale_down_delay: Duration::from_secs(30), ..settings() };
    let trace = |s: u64| if s < 100 { 50.0 } else { 10.0 };
    let steps = simulate(trace, 300, 1, 10, 1, &settings);
    let down = steps.iter().find(|s| s.second >= 100 && s.desired < 5).expect("never scaled down");
    // Not before the stable window no longer asks for 5 plus the delay.
    assert!(down.second >= 100 + 30, "scaled down at {}s", down.second);
}

#[test]
fn wanted_rounds_up_but_not_for_dust() {
    assert_eq!(wanted(0.0, 1.0), 0);
    assert_eq!(wanted(10.0, 10.0), 1);
    assert_eq!(wanted(10.000_000_000_1, 10.0), 1);
    assert_eq!(wanted(10.1, 10.0), 2);
    assert_eq!(wanted(f64::NAN, 10.0), 0);
}

proptest! {
    /// Whatever the load: the bounds hold, no step scales down while panicking, each step down
    /// respects the scale-down rate, and zero is reached only after a stable window and the grace
    /// without traffic.
    #[test]
    fn invariants_hold_on_any_trace(
        loads in proptest::collection::vec(prop_oneof![Just(0.0), 0.0..300.0f64], 1..40),
        min in 0u32..3,
        spread in 1u32..30,
        hold in 1u64..40,
    ) {
        let settings = Settings { stable_window: Duration::from_secs(20), panic_window: Duration::from_secs(4),
            scale_to_zero_grace: Duration::from_secs(5), ..Settings::default() };
        let max = min + spread;
        let trace = |s: u64| loads[((s / hold) as usize) % loads.len()];
        let steps = simulate(trace, 400, min, max, 2, &settings);
        let mut last_active: i64 = -1;
        let mut previous = min.max(1);
        for step in &steps {
            if step.load > 0.0 { last_active = step.second as i64; }
            prop_assert!(step.desired >= min && step.desired <= max, "{step:?} outside {min}..={max}");
            if step.panicking {
                prop_assert!(step.desired >= previous, "scaled down while panicking: {step:?}");
            }
            prop_assert!(f64::from(step.desired) >= (f64::from(previous) / settings.max_scale_down_rate).floor(), "{step:?}");
            if step.desired == 0 && previous > 0 {
                let idle = step.second as i64 - last_active;
                prop_assert!(idle >= (settings.stable_window + settings.scale_to_zero_grace).as_secs() as i64 - 1, "to zero after {idle}s idle");
            }
            previous = step.desired;
        }
    }
}
