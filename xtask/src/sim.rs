//! `cargo xtask sim [--scheduling] [--seeds N] [--seed S] [--release] [nucleus-sim options]`: the
//! deterministic simulation (crates/nucleus-sim) of the meta group, or with `--scheduling` of
//! schedulers and agents on it, over many seeds, or one seed replayed.
//!
//! Debug by default: it reuses the build `cargo test` already made (a first release build
//! compiles RocksDB's C++ again, minutes on two cores), and a seed replays the same either way
//! since the simulation's outcome does not depend on how fast the code runs. `--release` pays that
//! build once for sweeps of thousands of seeds.

use std::process::Command;

use anyhow::bail;

pub fn run(args: &[&str]) -> anyhow::Result<()> {
    let release = args.contains(&"--release");
    let forwarded: Vec<&str> = args.iter().copied().filter(|a| *a != "--release").collect();
    let mut command = Command::new(env!("CARGO"));
    command.args(["run", "-p", "nucleus-sim", "--bin", "nucleus-sim"]);
    if release {
        command.arg("--release");
    }
    let status = command.arg("--").args(&forwarded).status()?;
    if !status.success() {
        bail!("simulation failed (replay a failing seed with the `replay:` command printed above)");
    }
    Ok(())
}
