//! `nucleus-bench meta`: committed metadata writes on a local multi-node meta group (real `nucleus
//! meta` processes on loopback), optionally against a local etcd cluster under the same load.
//! Usually run as `cargo xtask bench meta [--against etcd] [--seconds N]`; see docs/benchmarks.md.
//!
//! It prints figures and never asserts timings. It exits non-zero if a cluster fails to start, a
//! process dies, or a put fails (figures with failed puts in them are not comparable).

mod autoscale;
mod etcd;
mod invoke;
mod load;
mod nucleus;
mod placement;
mod placement_meta;
mod procs;
mod replacement;
mod report;
mod rest;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use crate::load::{LoadSpec, Putter, Summary};

#[derive(Debug, Parser)]
#[command(name = "nucleus-bench", about = "Nucleus benchmarks (figures only; no assertions on timings)")]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Debug, Subcommand)]
enum Bench {
    /// Committed single-key puts per second and their latency, for each client count.
    Meta(MetaArgs),
    /// Placements per second of the pure placement code on a large simulated fleet, and end to
    /// end through meta with 2 workers.
    Placement(placement::PlacementArgs),
    /// Successive rolling replacements of a workload under steady load: errors and latency.
    Replacement(replacement::ReplacementArgs),
    /// The invoke URL against direct access and an nginx reverse proxy: throughput, latency, CPU.
    Invoke(invoke::InvokeArgs),
    /// Cold starts from zero, scale-up reaction, the overload case and errors during scale-down.
    Autoscale(autoscale::AutoscaleArgs),
}

#[derive(Debug, Clone, PartialEq, clap::Args)]
struct MetaArgs {
    /// Also run the same load against this system (started locally with the same node count).
    #[arg(long)]
    against: Option<Against>,
    /// Measured seconds per run (one run per client count and system).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Warm-up seconds before each measured run (puts made then are not counted).
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Concurrent clients, one run each (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    clients: Vec<usize>,
    /// Nodes per cluster.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Shard groups of the Nucleus cluster (`nucleus meta --shards`).
    #[arg(long, default_value_t = 16)]
    shards: u64,
    /// Bytes written per put.
    #[arg(long, default_value_t = 256)]
    value_size: usize,
    /// The `nucleus` binary (default: the one beside this binary, i.e. the same target dir).
    #[arg(long)]
    nucleus: Option<PathBuf>,
    /// The `etcd` binary (default: `etcd` on PATH).
    #[arg(long)]
    etcd: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Against {
    Etcd,
}

/// Progress goes to stderr, so that stdout is the command, the machine and the table.
pub fn progress(message: &str) {
    eprintln!("[bench] {message}");
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Bench::Meta(args) = &cli.command {
        validate(args)?;
    }
    // Printed as the xtask ran it when it did (it says so in NUCLEUS_BENCH_COMMAND).
    let command = std::env::var("NUCLEUS_BENCH_COMMAND").unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" "));
    println!("command: {command}");
    println!("machine: {}", machine());
    match cli.command {
        Bench::Meta(args) => tokio::runtime::Runtime::new()?.block_on(meta(args)),
        Bench::Placement(args) => {
            progress(&format!("placing {} replicas on {} simulated nodes ...", args.replicas, args.nodes));
            let summary = placement::run(&args)?;
            placement::print(&args, &summary);
            if args.pure_only {
                return Ok(());
            }
            let nucleus_bin = nucleus_binary(args.nucleus.as_deref())?;
            let nodes = placement::fleet(args.nodes);
            let requests = placement::requests(args.replicas, &nucleus_scheduler::placement::default_bundles());
            let through_meta =
                tokio::runtime::Runtime::new()?.block_on(placement_meta::run(&nucleus_bin, &nodes, &requests, args.nodes_per_agent))?;
            placement_meta::print(&through_meta);
            Ok(())
        }
        Bench::Replacement(args) => {
            let nucleus_bin = nucleus_binary(args.nucleus.as_deref())?;
            tokio::runtime::Runtime::new()?.block_on(replacement::run(&args, &nucleus_bin))
        }
        Bench::Invoke(args) => {
            let nucleus_bin = nucleus_binary(args.nucleus.as_deref())?;
            tokio::runtime::Runtime::new()?.block_on(invoke::run(&args, &nucleus_bin))
        }
        Bench::Autoscale(args) => {
            let nucleus_bin = nucleus_binary(args.nucleus.as_deref())?;
            tokio::runtime::Runtime::new()?.block_on(autoscale::run(&args, &nucleus_bin))
        }
    }
}

fn validate(args: &MetaArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.seconds > 0, "--seconds must be at least 1");
    anyhow::ensure!(!args.clients.is_empty() && !args.clients.contains(&0), "--clients must be positive numbers");
    anyhow::ensure!(args.nodes >= 1, "--nodes must be at least 1");
    anyhow::ensure!(args.value_size >= 2, "--value-size must be at least 2 (a JSON string)");
    Ok(())
}

/// The `nucleus` binary: the given one, or the one beside this binary (the same target dir).
fn nucleus_binary(given: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    let nucleus_bin = match given {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()?.with_file_name("nucleus"),
    };
    anyhow::ensure!(
        nucleus_bin.is_file(),
        "{} not found: build it first (`cargo build --release -p nucleus-server`) or pass --nucleus",
        nucleus_bin.display()
    );
    Ok(nucleus_bin)
}

async fn meta(args: MetaArgs) -> anyhow::Result<()> {
    let nucleus_bin = nucleus_binary(args.nucleus.as_deref())?;
    // Find etcd before spending minutes on Nucleus.
    let etcd_bin = match args.against {
        Some(Against::Etcd) => Some(etcd::find_etcd(args.etcd.as_deref())?),
        None => None,
    };
    let (json_value, value) = load::json_string_value(args.value_size);
    let mut results: Vec<(&str, Summary)> = Vec::new();

    progress(&format!("nucleus: starting {} meta node(s) from {}", args.nodes, nucleus_bin.display()));
    {
        let mut cluster = nucleus::Cluster::start(&nucleus_bin, args.nodes, args.shards)?;
        progress(&format!("nucleus: data and logs in {}", cluster.data_dir().display()));
        cluster.settled(Duration::from_secs(120)).await?;
        progress("nucleus: every shard has its replicas and leaders are spread");
        let status = cluster.status(&nucleus_bin)?;
        println!("nucleus meta status --meta {}:\n{}", cluster.addrs.join(","), status.trim_end());
        let putter = Arc::new(nucleus::NucleusPutter::new(&cluster.addrs, json_value)?);
        putter.put("bench/ready".into(), value.clone()).await.context("first write to the nucleus cluster")?;
        for &clients in &args.clients {
            let summary = run_one("nucleus", &putter, &args, clients, &value).await;
            cluster.check_alive()?;
            results.push(("nucleus", summary));
        }
        progress("nucleus: stopping the cluster");
    }

    if let Some(etcd_bin) = etcd_bin {
        progress(&format!("etcd: starting {} member(s) from {} ({})", args.nodes, etcd_bin.display(), etcd_version(&etcd_bin)));
        let mut cluster = etcd::Cluster::start(&etcd_bin, args.nodes)?;
        let leader = cluster.wait_for_leader(Duration::from_secs(60)).await?;
        progress(&format!("etcd: healthy, leader at {leader}; all puts go to it"));
        let putter = Arc::new(etcd::EtcdPutter::connect(&leader).await?);
        putter.put("bench/ready".into(), value.clone()).await.context("first write to the etcd cluster")?;
        for &clients in &args.clients {
            let summary = run_one("etcd", &putter, &args, clients, &value).await;
            cluster.check_alive()?;
            results.push(("etcd", summary));
        }
        progress("etcd: stopping the cluster");
    }

    let rows: Vec<report::Row<'_>> = results.iter().map(|(system, summary)| report::Row { system, summary }).collect();
    let baseline = args.against.map(|_| "etcd");
    println!();
    println!(
        "{} node(s) per cluster on loopback, {}-byte values, unconditional single-key puts to distinct keys, {}s measured after {}s warm-up",
        args.nodes, args.value_size, args.seconds, args.warmup
    );
    print!("{}", report::table(&rows, baseline));
    let failed: u64 = results.iter().map(|(_, s)| s.errors).sum();
    anyhow::ensure!(failed == 0, "{failed} put(s) failed (see the progress lines); the figures above are not comparable");
    Ok(())
}

async fn run_one<P: Putter>(system: &str, putter: &Arc<P>, args: &MetaArgs, clients: usize, value: &[u8]) -> Summary {
    progress(&format!("{system}: {clients} client(s), {}s warm-up + {}s measured ...", args.warmup, args.seconds));
    let spec = LoadSpec {
        clients,
        warmup: Duration::from_secs(args.warmup),
        measure: Duration::from_secs(args.seconds),
        // Workload keys, as the gateway writes them: Nucleus spreads them over its shard groups
        // (etcd has one group whatever the key).
        key_prefix: format!("workloads/bench-{clients}c"),
        value: value.to_vec(),
    };
    let summary = load::run(Arc::clone(putter), &spec).await;
    progress(&report::one_line(system, &summary));
    summary
}

fn etcd_version(etcd: &Path) -> String {
    std::process::Command::new(etcd)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_owned))
        .unwrap_or_else(|| "version unknown".into())
}

/// Cores and CPU model, for the record.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split_once(':')).map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} core(s), {model}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<MetaArgs, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("nucleus-bench").chain(args.iter().copied()))?;
        match cli.command {
            Bench::Meta(meta) => Ok(meta),
            Bench::Placement(_) | Bench::Replacement(_) | Bench::Invoke(_) | Bench::Autoscale(_) => panic!("parsed another command"),
        }
    }

    #[test]
    fn defaults_are_three_nodes_one_and_sixty_four_clients_ten_seconds() {
        let args = parse(&["meta"]).unwrap();
        assert_eq!(args.against, None);
        assert_eq!(args.seconds, 10);
        assert_eq!(args.warmup, 2);
        assert_eq!(args.clients, vec![1, 64]);
        assert_eq!(args.nodes, 3);
        assert_eq!(args.value_size, 256);
        validate(&args).unwrap();
    }

    #[test]
    fn against_etcd_seconds_and_clients_are_parsed() {
        let args = parse(&["meta", "--against", "etcd", "--seconds", "30", "--clients", "1,8,64"]).unwrap();
        assert_eq!(args.against, Some(Against::Etcd));
        assert_eq!(args.seconds, 30);
        assert_eq!(args.clients, vec![1, 8, 64]);
    }

    #[test]
    fn unknown_systems_and_bad_numbers_are_refused() {
        assert!(parse(&["meta", "--against", "zookeeper"]).is_err());
        assert!(parse(&["meta", "--seconds", "ten"]).is_err());
        assert!(parse(&[]).is_err());
        assert!(validate(&parse(&["meta", "--seconds", "0"]).unwrap()).is_err());
        assert!(validate(&parse(&["meta", "--clients", "0,4"]).unwrap()).is_err());
    }

    #[test]
    fn machine_names_cores() {
        assert!(machine().contains("core(s)"));
    }
}
