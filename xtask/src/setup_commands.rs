//! The README's two set-up commands: `cargo xtask dev [ARGS]` (build and run `nucleus dev`) and
//! `cargo xtask test` (everything CI runs). Each installs what a fresh machine lacks first.

use std::process::Command;
use std::time::Instant;

use anyhow::Context;

use crate::setup;

/// `cargo xtask dev [ARGS]`: `cargo run --release --bin nucleus -- dev ARGS`, after the set-up.
pub fn dev(args: &[&str]) -> anyhow::Result<()> {
    setup::native_build_deps()?;
    println!("dev: building and starting `nucleus dev` (the first build compiles RocksDB: about 20 minutes on 2 cores) ...");
    let status =
        command(env!("CARGO"), &["run", "--release", "--bin", "nucleus", "--", "dev"]).args(args).status().context("running cargo run")?;
    std::process::exit(status.code().unwrap_or(1));
}

/// `cargo xtask test`: every gate CI runs, in order, stopping at the first that fails.
pub fn test(args: &[&str]) -> anyhow::Result<()> {
    anyhow::ensure!(args.is_empty(), "cargo xtask test takes no arguments (CI and you run the same thing)");
    setup::native_build_deps()?;
    setup::test_tools()?;
    setup::rust_components()?;
    let cargo = env!("CARGO");
    let deny = setup::cargo_deny()?;
    let gates: Vec<(&str, Command)> = vec![
        ("layering", command(cargo, &["xtask", "check-deps"])),
        ("formatting", command(cargo, &["fmt", "--all", "--check"])),
        ("clippy", command(cargo, &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])),
        ("cargo deny", deny_command(&deny)),
        ("alert rules", command("promtool", &["check", "rules", "deploy/observability/alerts.yml"])),
        ("tests", command(cargo, &["test", "--workspace"])),
        ("schemathesis", command(cargo, &["xtask", "schemathesis"])),
    ];
    let total = gates.len();
    for (n, (name, mut command)) in gates.into_iter().enumerate() {
        println!("\ntest: [{}/{total}] {name}: {}", n + 1, describe(&command));
        let started = Instant::now();
        let status = command.status().with_context(|| format!("running {name}"))?;
        anyhow::ensure!(status.success(), "{name} failed ({status}); the output above says what; fix it and run `cargo xtask test` again");
        println!("test: {name} passed in {:.0} s", started.elapsed().as_secs_f64());
    }
    println!("\ntest: all {total} gates passed");
    Ok(())
}

/// `program args`, without the package variables `cargo run` set for xtask itself: build scripts
/// that watch them (ring's) would rebuild whenever a gate runs from here rather than by hand.
fn command(program: &str, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command.args(args);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let from_cargo_run = name.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_MANIFEST_LINKS",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
            ]
            .contains(&name.as_ref());
        if from_cargo_run {
            command.env_remove(name.as_ref());
        }
    }
    command
}

/// `cargo deny check`: licences, bans and sources always; advisories too when the RustSec
/// database can be fetched or is cached from an earlier run (some machines reach only the registries).
fn deny_command(deny: &std::path::Path) -> Command {
    let mut command = Command::new(deny);
    command.args(["--log-level", "error"]);
    match setup::advisory_db() {
        setup::AdvisoryDb::Reachable => {
            command.arg("check");
        }
        setup::AdvisoryDb::Cached => {
            println!("test: the RustSec advisory database is not reachable; checking advisories against the cached copy");
            command.args(["--offline", "check"]);
        }
        setup::AdvisoryDb::Missing => {
            println!("test: the RustSec advisory database is not reachable and none is cached; checking licences, bans and sources only");
            command.args(["check", "bans", "licenses", "sources"]);
        }
    }
    command
}

fn describe(command: &Command) -> String {
    let program = command.get_program().to_string_lossy().into_owned();
    let program = program.rsplit('/').next().unwrap_or(&program).to_owned();
    std::iter::once(program).chain(command.get_args().map(|a| a.to_string_lossy().into_owned())).collect::<Vec<_>>().join(" ")
}
