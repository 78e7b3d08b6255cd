//! Repository automation: `cargo xtask <command>`.

use std::collections::BTreeMap;
use std::process::Command;

use anyhow::{Context, bail};

/// Layer of each crate: a crate may depend only on crates of a lower layer (see
/// docs/ARCHITECTURE.md, "Architecture invariants").
const LAYERS: &[(&str, u8)] = &[
    ("nucleus-api", 0),
    ("nucleus-proto", 0),
    ("nucleus-tls", 0),
    ("nucleus-telemetry", 0),
    ("nucleus-client", 1),
    ("nucleus-meta", 2),
    ("nucleus-agent", 2),
    ("nucleus-scheduler", 2),
    ("nucleus-gateway", 2),
    ("nucleus-whoami", 2),
    ("nucleus-server", 3),
    ("nucleus-bench", 3),
    ("nucleus-chaos", 3),
    ("nucleus-sim", 3),
    ("nucleus-testkit", 3),
];

/// Heavy dependencies and the only crates allowed to use them.
const QUARANTINE: &[(&str, &[&str])] = &[
    ("rocksdb", &["nucleus-meta"]),
    ("openraft", &["nucleus-meta"]),
    ("axum", &["nucleus-gateway", "nucleus-whoami"]),
    ("kube", &["nucleus-agent"]),
    ("rcgen", &["nucleus-tls"]),
    ("k8s-openapi", &["nucleus-agent"]),
];

mod bench;
mod chaos;
mod cluster;
mod schemathesis;
mod setup;
mod setup_commands;
mod sim;

const USAGE: &str = "usage: cargo xtask dev [NUCLEUS DEV ARGS] | test | check-deps | cluster up [--meta N] | cluster down | bench meta [--against etcd] [--seconds N] | bench placement [--nodes N] [--replicas N] | bench replacement [--replacements N] [--clients N] | bench invoke [--workers N] [--seconds N] | bench autoscale [--cold-starts N] [--step N] [--overload N] | chaos DRILL...|all|list [--release] | sim [--scheduling] [--seeds N] [--seed S] [--release] | schemathesis [--max-examples N]";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["dev", rest @ ..] => setup_commands::dev(rest),
        ["test", rest @ ..] => setup_commands::test(rest),
        ["check-deps"] => check_deps(),
        ["cluster", "up", rest @ ..] => cluster::up(rest),
        ["cluster", "down"] => cluster::down(),
        ["bench", rest @ ..] => bench::run(rest),
        ["chaos", rest @ ..] => chaos::run(rest),
        ["sim", rest @ ..] => sim::run(rest),
        ["schemathesis", rest @ ..] => schemathesis::run(rest),
        _ => bail!(USAGE),
    }
}

fn check_deps() -> anyhow::Result<()> {
    let output =
        Command::new(env!("CARGO")).args(["metadata", "--format-version", "1", "--no-deps"]).output().context("running cargo metadata")?;
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).context("parsing cargo metadata")?;
    let layers: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let mut problems = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let name = package["name"].as_str().unwrap_or_default();
        let Some(&layer) = layers.get(name) else {
            if name != "xtask" {
                problems.push(format!("{name} has no layer in xtask's LAYERS table"));
            }
            continue;
        };
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            if dep["kind"].as_str() == Some("dev") {
                continue;
            }
            let dep_name = dep["name"].as_str().unwrap_or_default();
            if let Some(&dep_layer) = layers.get(dep_name)
                && dep_layer >= layer
            {
                problems.push(format!("{name} (layer {layer}) depends on {dep_name} (layer {dep_layer})"));
            }
            if let Some((_, allowed)) = QUARANTINE.iter().find(|(heavy, _)| *heavy == dep_name)
                && !allowed.contains(&name)
            {
                problems.push(format!("{name} depends on {dep_name}, which only {allowed:?} may use"));
            }
        }
    }
    if problems.is_empty() {
        println!("check-deps: every dependency points down a layer; heavy dependencies stay quarantined");
        Ok(())
    } else {
        bail!("dependency rules broken:\n  {}", problems.join("\n  "))
    }
}
