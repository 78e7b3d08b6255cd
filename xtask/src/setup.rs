//! What a fresh machine with only Rust lacks, found and installed: the C toolchain RocksDB's build
//! needs (clang and libclang for its bindings, a C++ compiler), promtool (Debian's `prometheus`)
//! for the metrics and alert-rule checks, and cargo-deny for the lint gate.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// Debian packages for RocksDB's build, each with what shows it is already there.
const NATIVE: &[(&str, Need)] = &[("clang", Need::Program("clang")), ("libclang-dev", Need::Libclang), ("g++", Need::Program("c++"))];
/// Debian packages the tests need: promtool checks the metrics every role serves and the alert rules.
const TEST_TOOLS: &[(&str, Need)] = &[("prometheus", Need::Program("promtool"))];

enum Need {
    Program(&'static str),
    /// `libclang.so*` where bindgen (clang-sys) looks for it.
    Libclang,
}

impl Need {
    fn present(&self) -> bool {
        match self {
            Need::Program(name) => on_path(name),
            Need::Libclang => libclang_present(),
        }
    }
}

/// Installs what RocksDB's build needs (clang, libclang, a C++ compiler).
pub fn native_build_deps() -> anyhow::Result<()> {
    apt_install(NATIVE, "RocksDB's build")
}

/// Installs what the tests need besides the build (promtool).
pub fn test_tools() -> anyhow::Result<()> {
    apt_install(TEST_TOOLS, "the metrics and alert-rule checks")
}

/// Installs the missing `packages` with apt-get when this is root on a Debian-like system;
/// otherwise stops with the one command to run.
fn apt_install(packages: &[(&str, Need)], needed_by: &str) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages.iter().filter(|(_, need)| !need.present()).map(|(package, _)| *package).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let command = format!("apt-get install -y {}", missing.join(" "));
    if !on_path("apt-get") {
        bail!(
            "{needed_by} needs {}, which this machine lacks; install them with your package manager (on Debian or Ubuntu: `{command}`), then run this again",
            missing.join(", ")
        );
    }
    if !is_root() {
        bail!("{needed_by} needs {}; run `sudo {command}`, then run this again", missing.join(", "));
    }
    println!("setup: installing {} ({needed_by} needs them) ...", missing.join(" "));
    run(Command::new("apt-get").args(["update", "-q"]).env("DEBIAN_FRONTEND", "noninteractive"), "apt-get update")?;
    run(Command::new("apt-get").args(["install", "-y", "-q"]).args(&missing).env("DEBIAN_FRONTEND", "noninteractive"), "apt-get install")?;
    if let Some((package, _)) = packages.iter().find(|(_, need)| !need.present()) {
        bail!("{package} is still missing after apt-get install; install it by hand (`{command}`) and run this again");
    }
    Ok(())
}

/// rustfmt and clippy, added with rustup when the toolchain lacks them (a minimal profile).
pub fn rust_components() -> anyhow::Result<()> {
    let has = |subcommand: &str| Command::new(env!("CARGO")).args([subcommand, "--version"]).output().is_ok_and(|out| out.status.success());
    let missing: Vec<&str> = [("fmt", "rustfmt"), ("clippy", "clippy")].into_iter().filter(|(sub, _)| !has(sub)).map(|(_, c)| c).collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("setup: adding the {} component(s) with rustup ...", missing.join(" and "));
    run(Command::new("rustup").args(["component", "add"]).args(&missing), "rustup component add")
        .with_context(|| format!("the lint gates need {}: run `rustup component add {}`", missing.join(" and "), missing.join(" ")))
}

/// The cargo-deny binary, installed from crates.io into a cache dir on first use.
pub fn cargo_deny() -> anyhow::Result<PathBuf> {
    if let Some(found) = find_on_path("cargo-deny") {
        return Ok(found);
    }
    let root = cache_dir().join("nucleus-tools");
    let binary = root.join("bin/cargo-deny");
    if binary.is_file() {
        return Ok(binary);
    }
    println!("setup: installing cargo-deny {CARGO_DENY_VERSION} from crates.io into {} (once; a few minutes) ...", root.display());
    run(
        Command::new(env!("CARGO"))
            .args(["install", "--locked", "--version", CARGO_DENY_VERSION, "--root"])
            .arg(&root)
            .arg("cargo-deny")
            // Its own build: not into the workspace's target dir, which it would fight over.
            .env_remove("CARGO_TARGET_DIR")
            .env("CARGO_TARGET_DIR", root.join("build")),
        "cargo install cargo-deny",
    )?;
    let _ = std::fs::remove_dir_all(root.join("build"));
    Ok(binary)
}

const CARGO_DENY_VERSION: &str = "0.20.2";

pub enum AdvisoryDb {
    Reachable,
    Cached,
    Missing,
}

/// Whether cargo-deny can fetch the RustSec advisory database, or has a copy from an earlier run
/// (in `$CARGO_HOME/advisory-dbs`).
pub fn advisory_db() -> AdvisoryDb {
    let reachable = Command::new("git")
        .args(["ls-remote", "--exit-code", ADVISORY_DB, "HEAD"])
        .env("GIT_HTTP_LOW_SPEED_LIMIT", "1000")
        .env("GIT_HTTP_LOW_SPEED_TIME", "10")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if reachable {
        return AdvisoryDb::Reachable;
    }
    let cargo_home =
        std::env::var_os("CARGO_HOME").map(PathBuf::from).or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    let cached = cargo_home.is_some_and(|home| std::fs::read_dir(home.join("advisory-dbs")).is_ok_and(|mut dbs| dbs.next().is_some()));
    if cached { AdvisoryDb::Cached } else { AdvisoryDb::Missing }
}

const ADVISORY_DB: &str = "https://github.com/rustsec/advisory-db";

pub fn cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command.status().with_context(|| format!("running {what}"))?;
    anyhow::ensure!(status.success(), "{what} failed ({status})");
    Ok(())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

pub fn on_path(name: &str) -> bool {
    find_on_path(name).is_some()
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file())
}

/// Where clang-sys looks: `LIBCLANG_PATH`, then the usual library dirs and LLVM's own.
fn libclang_present() -> bool {
    let mut dirs: Vec<PathBuf> = std::env::var_os("LIBCLANG_PATH").map(PathBuf::from).into_iter().collect();
    dirs.extend(["/usr/lib", "/usr/lib64", "/usr/local/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu"].map(PathBuf::from));
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        dirs.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("llvm")))
                .map(|p| p.join("lib")),
        );
    }
    dirs.iter().any(|dir| {
        std::fs::read_dir(dir).is_ok_and(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("libclang")
                    && name.contains(".so")
                    && !name.starts_with("libclang_rt")
                    && !name.starts_with("libclang-cpp")
            })
        })
    })
}
