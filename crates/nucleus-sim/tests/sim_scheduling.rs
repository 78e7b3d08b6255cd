//! The CI sweep of the scheduling simulation: 200 seeds of two real schedulers and two real agents
//! (fake driver) on a real meta group, under crashes and partitions of all of them, each seed
//! checked for stale-token launches, GPU double-booking and convergence after healing.
//! `NUCLEUS_SIM_SCHEDULING_SEEDS=N` changes the count; longer sweeps:
//! `cargo xtask sim --scheduling --seeds N`.

use nucleus_sim::harness::sweep_runs;
use nucleus_sim::scheduling::{Options, replay_command, run_seed};

#[test]
fn scheduling_seeds_sweep_keeps_every_invariant() {
    let seeds: u64 = std::env::var("NUCLEUS_SIM_SCHEDULING_SEEDS").ok().and_then(|n| n.parse().ok()).unwrap_or(200);
    let options = Options::default();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let failures = sweep_runs(0..seeds, threads, false, |seed| replay_command(seed, &options), |seed| run_seed(seed, &options));
    let lines: Vec<String> = failures.iter().map(|f| format!("seed {}: {} -- replay: {}", f.seed, f.invariant, f.replay)).collect();
    assert!(failures.is_empty(), "{} of {seeds} seeds failed (details above):\n{}", failures.len(), lines.join("\n"));
}
