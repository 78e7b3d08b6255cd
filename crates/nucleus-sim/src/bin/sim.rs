//! `nucleus-sim`: runs the deterministic simulation of the meta group (or, with `--scheduling`, of
//! schedulers and agents on it) over a range of seeds.
//!
//! ```text
//! nucleus-sim [--scheduling] [--seeds N] [--first S] [--seed S] [--chaos-secs T] [--clients C] [--keys K] [--threads J] [--verbose]
//! ```

use std::process::ExitCode;
use std::time::{Duration, Instant};

use nucleus_sim::harness::{Options, sweep, sweep_runs};
use nucleus_sim::scheduling;

const USAGE: &str = "usage: nucleus-sim [--scheduling] [--seeds N] [--first S] [--seed S] [--chaos-secs T] [--clients C] \
                     [--keys K] [--threads J] [--verbose]\n\
  --scheduling    simulate 2 schedulers and 2 agents (fake driver) on the meta group instead of\n\
                  meta clients: fencing, GPU booking and convergence checked\n\
  --seeds N       run seeds first..first+N (default 100)\n\
  --first S       first seed of the sweep (default 0)\n\
  --seed S        replay one seed (verbose)\n\
  --chaos-secs T  simulated seconds of faults per seed (default 8; 10 with --scheduling)\n\
  --threads J     seeds run in parallel (default: available cores)\n\
  RUST_LOG=...    meta node logs (e.g. RUST_LOG=nucleus_meta=debug with --seed)";

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<ExitCode, String> {
    let mut options = Options::default();
    let mut scheduling = false;
    let mut chaos = None;
    let mut first = 0u64;
    let mut count = 100u64;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |name: &str, v: String| v.parse::<u64>().map_err(|e| format!("{name} {v}: {e}"));
        match arg.as_str() {
            "--seeds" => count = number("--seeds", value("--seeds")?)?,
            "--first" => first = number("--first", value("--first")?)?,
            "--seed" => {
                first = number("--seed", value("--seed")?)?;
                count = 1;
                options.verbose = true;
                threads = 1;
            }
            "--chaos-secs" => chaos = Some(Duration::from_secs(number("--chaos-secs", value("--chaos-secs")?)?)),
            "--scheduling" => scheduling = true,
            "--clients" => options.clients = number("--clients", value("--clients")?)?,
            "--keys" => options.keys = number("--keys", value("--keys")?)? as usize,
            "--threads" => threads = number("--threads", value("--threads")?)? as usize,
            "--verbose" | "-v" => options.verbose = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(ExitCode::SUCCESS);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    }
    let started = Instant::now();
    let seeds = first..first + count;
    let failures = if scheduling {
        let options = scheduling::Options {
            chaos: chaos.unwrap_or(scheduling::Options::default().chaos),
            verbose: options.verbose,
            ..scheduling::Options::default()
        };
        sweep_runs(
            seeds,
            threads,
            options.verbose,
            |seed| scheduling::replay_command(seed, &options),
            |seed| scheduling::run_seed(seed, &options),
        )
    } else {
        options.chaos = chaos.unwrap_or(options.chaos);
        sweep(seeds, &options, threads)
    };
    let elapsed = started.elapsed();
    if failures.is_empty() {
        println!("{count} seeds from {first} passed in {:.1}s", elapsed.as_secs_f64());
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} of {count} seeds failed in {:.1}s:", failures.len(), elapsed.as_secs_f64());
    for failure in &failures {
        println!("  seed {}: {} (replay: {})", failure.seed, failure.invariant, failure.replay);
    }
    Ok(ExitCode::FAILURE)
}
