//! `cargo xtask bench meta [--against etcd] [--seconds N]`, `cargo xtask bench placement`, `replacement` and `invoke`: builds the release `nucleus` and
//! `nucleus-bench` binaries and runs `nucleus-bench meta ...`, which starts the clusters, drives the
//! load and prints the table (see docs/benchmarks.md). xtask itself only spawns cargo.

use std::process::Command;

use anyhow::{Context, bail};

use crate::setup::on_path;

pub fn run(args: &[&str]) -> anyhow::Result<()> {
    let (bench, rest) = match args.split_first() {
        Some((&"meta", rest)) => ("meta", rest),
        Some((&"placement", rest)) => ("placement", rest),
        Some((&"replacement", rest)) => ("replacement", rest),
        Some((&"invoke", rest)) => ("invoke", rest),
        Some((&"autoscale", rest)) => ("autoscale", rest),
        _ => bail!(super::USAGE),
    };
    if bench == "meta" {
        check_meta_args(rest)?;
    }
    if bench == "meta" && rest.windows(2).any(|w| w == ["--against", "etcd"]) && !on_path("etcd") {
        // Fail before a long release build; the benchmark installs nothing itself.
        bail!("etcd is not installed: run `apt-get install -y etcd-server` (Debian bookworm ships 3.4.23)");
    }
    if bench == "invoke"
        && let Some(missing) = ["nginx", "wrk"].into_iter().find(|tool| !on_path(tool))
    {
        bail!("{missing} is not installed: run `apt-get install -y nginx wrk`");
    }
    let cargo = env!("CARGO");
    println!("bench: building release binaries (nucleus, nucleus-bench, nucleus-whoami) ...");
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "nucleus-server", "-p", "nucleus-bench", "-p", "nucleus-whoami"])
        .status()
        .context("running cargo build")?;
    anyhow::ensure!(status.success(), "building the release binaries failed");
    let status = Command::new(cargo)
        .args(["run", "--release", "-q", "-p", "nucleus-bench", "--", bench])
        .args(rest)
        .env("NUCLEUS_BENCH_COMMAND", format!("cargo xtask bench {}", args.join(" ")))
        .status()
        .context("running nucleus-bench")?;
    anyhow::ensure!(status.success(), "nucleus-bench {bench} failed");
    Ok(())
}

/// The options xtask documents; nucleus-bench parses them (and its other options, which are let
/// through) properly. This only catches a misspelled flag before the build.
fn check_meta_args(rest: &[&str]) -> anyhow::Result<()> {
    let mut it = rest.iter();
    while let Some(&arg) = it.next() {
        match arg {
            "--against" => match it.next() {
                Some(&"etcd") => {}
                other => bail!("--against takes `etcd`, not {:?}", other.copied().unwrap_or_default()),
            },
            "--seconds" => {
                let n = it.next().context("--seconds takes a number")?;
                n.parse::<u64>().ok().filter(|&n| n > 0).with_context(|| format!("--seconds takes a positive number, not {n:?}"))?;
            }
            other if other.starts_with("--") => {
                // Further nucleus-bench options (--clients, --warmup, --nodes, ...) with a value.
                it.next();
            }
            other => bail!("unexpected argument {other:?}; {}", super::USAGE),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_options_are_accepted() {
        check_meta_args(&[]).unwrap();
        check_meta_args(&["--against", "etcd", "--seconds", "30"]).unwrap();
        check_meta_args(&["--seconds", "5", "--clients", "1,8"]).unwrap();
    }

    #[test]
    fn bad_options_are_refused_before_building() {
        assert!(check_meta_args(&["--against", "zookeeper"]).is_err());
        assert!(check_meta_args(&["--against"]).is_err());
        assert!(check_meta_args(&["--seconds", "0"]).is_err());
        assert!(check_meta_args(&["--seconds"]).is_err());
        assert!(check_meta_args(&["fast"]).is_err());
    }
}
