//! The CI sweep of the deterministic simulation: 100 seeds of the meta group under partitions,
//! crashes and latency, every invariant checked on each. `NUCLEUS_SIM_SEEDS=N` changes the count;
//! longer sweeps: `cargo xtask sim --seeds N`.

use std::time::Duration;

use nucleus_sim::harness::{Options, sweep};

#[test]
fn seeds_sweep_keeps_every_invariant() {
    let seeds: u64 = std::env::var("NUCLEUS_SIM_SEEDS").ok().and_then(|n| n.parse().ok()).unwrap_or(100);
    // Shorter faults than the xtask default, so the sweep fits CI's time on two cores.
    let options = Options { chaos: Duration::from_secs(5), ..Options::default() };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let failures = sweep(0..seeds, &options, threads);
    let lines: Vec<String> = failures.iter().map(|f| format!("seed {}: {} -- replay: {}", f.seed, f.invariant, f.replay)).collect();
    assert!(failures.is_empty(), "{} of {seeds} seeds failed (details above):\n{}", failures.len(), lines.join("\n"));
}
