//! `cargo xtask chaos DRILL...|all|list [--release]`: builds `nucleus`, `nucleus-whoami` and
//! `nucleus-chaos` and runs the drills (see chaos/README.md). Debug builds by default: the drills
//! measure availability and correctness, not speed, and the test build is usually there already.

use std::process::Command;

use anyhow::Context;

pub fn run(args: &[&str]) -> anyhow::Result<()> {
    let release = args.contains(&"--release");
    let drills: Vec<&str> = args.iter().copied().filter(|a| *a != "--release").collect();
    anyhow::ensure!(!drills.is_empty(), "{}", super::USAGE);
    if !std::path::Path::new("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1").exists() {
        // The clock-skew drill runs nodes with libfaketime preloaded.
        println!("chaos: installing libfaketime (apt-get install -y libfaketime) ...");
        let installed = Command::new("apt-get").args(["install", "-y", "-q", "libfaketime"]).status().is_ok_and(|s| s.success());
        anyhow::ensure!(installed, "libfaketime is missing and could not be installed: run `apt-get install -y libfaketime`");
    }
    if !crate::setup::on_path("iptables") {
        // The partition drills cut a node off with iptables rules in its namespace.
        println!("chaos: installing iptables (apt-get install -y iptables) ...");
        let installed = Command::new("apt-get").args(["install", "-y", "-q", "iptables"]).status().is_ok_and(|s| s.success());
        anyhow::ensure!(installed, "iptables is missing and could not be installed: run `apt-get install -y iptables`");
    }
    let cargo = env!("CARGO");
    let mut build = Command::new(cargo);
    build.args(["build", "-p", "nucleus-server", "-p", "nucleus-whoami", "-p", "nucleus-chaos"]);
    if release {
        build.arg("--release");
    }
    println!("chaos: building nucleus, nucleus-whoami and nucleus-chaos ({}) ...", if release { "release" } else { "debug" });
    anyhow::ensure!(build.status().context("running cargo build")?.success(), "building the drill binaries failed");
    let bin = crate::cluster::target_dir()?.join(if release { "release" } else { "debug" });
    let status = Command::new(bin.join("nucleus-chaos"))
        .arg("--nucleus")
        .arg(bin.join("nucleus"))
        .arg("--whoami")
        .arg(bin.join("nucleus-whoami"))
        .args(&drills)
        .status()
        .context("running nucleus-chaos")?;
    anyhow::ensure!(status.success(), "a drill failed (see the table above)");
    Ok(())
}
