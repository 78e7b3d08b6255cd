//! `cargo xtask cluster up --meta N` / `cluster down`: a local multi-process cluster on loopback
//! (N meta nodes, one scheduler, one agent, one gateway), each a separate `nucleus` process with
//! its log in `.nucleus-cluster/`, all speaking mutual TLS with certificates of a CA made in
//! `.nucleus-cluster/tls/`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const DIR: &str = ".nucleus-cluster";
const FIRST_META_PORT: u16 = 7001;
const AGENT_PORT: u16 = 7101;
const GATEWAY: &str = "127.0.0.1:8080";

pub fn up(args: &[&str]) -> anyhow::Result<()> {
    let meta_count: u16 = match args {
        [] => 3,
        ["--meta", n] => n.parse().context("--meta takes a number")?,
        _ => bail!(super::USAGE),
    };
    anyhow::ensure!((1..=7).contains(&meta_count), "--meta must be between 1 and 7");
    let dir = PathBuf::from(DIR);
    if dir.join("pids").exists() {
        bail!("a cluster seems to be up already ({DIR}/pids exists); run `cargo xtask cluster down` first");
    }
    fs::create_dir_all(&dir)?;
    println!("building nucleus ...");
    let status = Command::new(env!("CARGO")).args(["build", "--bin", "nucleus"]).status()?;
    anyhow::ensure!(status.success(), "building nucleus failed");
    let nucleus = target_dir()?.join("debug/nucleus");
    let random = urandom(16)?;
    let token = format!("nuc_local_{}", random.iter().map(|b| format!("{b:02x}")).collect::<String>());
    fs::write(dir.join("token"), &token)?;
    let certs = certificates(&nucleus, &dir.join("tls"))?;
    let tls = |role: &str| tls_flags(&certs, role);

    let meta_addrs: Vec<String> = (0..meta_count).map(|i| format!("127.0.0.1:{}", FIRST_META_PORT + i)).collect();
    let mut pids = Vec::new();
    for (i, addr) in meta_addrs.iter().enumerate() {
        let id = (i + 1).to_string();
        let data = dir.join(format!("meta-{id}"));
        let mut args = vec!["meta", "--id", &id, "--listen", addr, "--data-dir"];
        let data = data.to_string_lossy().into_owned();
        args.push(&data);
        args.extend(tls("meta"));
        if i > 0 {
            args.extend(["--join", &meta_addrs[0]]);
        }
        pids.push(spawn(&nucleus, &args, &dir, &format!("meta-{id}"))?);
        wait_for_log(&dir.join(format!("meta-{id}.log")), "serving on", Duration::from_secs(60))?;
        println!("meta {id} up at {addr}");
    }
    let meta = meta_addrs.join(",");
    let agent_listen = format!("127.0.0.1:{AGENT_PORT}");
    let agent_data = dir.join("agent").to_string_lossy().into_owned();
    let scheduler = [vec!["scheduler", "--meta", &meta], tls("scheduler")].concat();
    pids.push(spawn(&nucleus, &scheduler, &dir, "scheduler")?);
    let agent = [vec!["agent", "--meta", &meta, "--listen", &agent_listen, "--data-dir", &agent_data], tls("agent")].concat();
    pids.push(spawn(&nucleus, &agent, &dir, "agent")?);
    let gateway = [vec!["gateway", "--meta", &meta, "--listen", GATEWAY, "--token", &token], tls("gateway")].concat();
    pids.push(spawn(&nucleus, &gateway, &dir, "gateway")?);
    fs::write(dir.join("pids"), pids.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))?;
    wait_for_log(&dir.join("gateway.log"), "listening on", Duration::from_secs(30))?;
    println!("cluster up: REST API at http://{GATEWAY}/api/v2, token {token} (also in {DIR}/token), logs in {DIR}/*.log");
    println!("status: nucleus meta status --meta {meta}; stop: cargo xtask cluster down");
    Ok(())
}

/// A CA for the cluster (made once) and a certificate per role, issued at every `up`; returns
/// each role's `--tls-*` flags.
fn certificates(nucleus: &Path, dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let output = Command::new(nucleus).args(args).output()?;
        anyhow::ensure!(output.status.success(), "nucleus {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
        Ok(())
    };
    let dir_arg = dir.to_string_lossy().into_owned();
    if !dir.join("ca.pem").exists() {
        run(&["certs", "init", "--dir", &dir_arg])?;
    }
    let mut flags = BTreeMap::new();
    for role in ["meta", "scheduler", "gateway", "agent"] {
        // The agent's certificate is bound to its name (`<cluster>-<region>`, here the defaults).
        let mut issue = vec![
            "certs",
            "issue",
            "--ca-dir",
            &dir_arg,
            "--name",
            role,
            "--role",
            role,
            "--host",
            "localhost,127.0.0.1",
            "--out",
            &dir_arg,
        ];
        if role == "agent" {
            issue.extend(["--agent", "local-local"]);
        }
        run(&issue)?;
        let file = |name: String| dir.join(name).to_string_lossy().into_owned();
        let role_flags = vec![
            "--tls-ca".to_owned(),
            file("ca.pem".to_owned()),
            "--tls-cert".to_owned(),
            file(format!("{role}.pem")),
            "--tls-key".to_owned(),
            file(format!("{role}-key.pem")),
        ];
        flags.insert(role.to_owned(), role_flags);
    }
    Ok(flags)
}

fn tls_flags<'a>(certs: &'a BTreeMap<String, Vec<String>>, role: &str) -> Vec<&'a str> {
    certs.get(role).map(|flags| flags.iter().map(String::as_str).collect()).unwrap_or_default()
}

pub fn down() -> anyhow::Result<()> {
    let dir = Path::new(DIR);
    let pids = fs::read_to_string(dir.join("pids")).context("no cluster is up (no .nucleus-cluster/pids)")?;
    // Reverse order: gateway, agent, scheduler, then meta nodes.
    for pid in pids.lines().rev().filter(|l| !l.is_empty()) {
        let _ = Command::new("kill").args(["-TERM", pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("kill").args(["-KILL", pid]).status();
        }
    }
    fs::remove_file(dir.join("pids"))?;
    println!("cluster down (data kept in {DIR}; delete it for a fresh start)");
    Ok(())
}

fn spawn(nucleus: &Path, args: &[&str], dir: &Path, name: &str) -> anyhow::Result<u32> {
    let log = fs::File::create(dir.join(format!("{name}.log")))?;
    let child = Command::new(nucleus)
        .args(args)
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    Ok(child.id())
}

fn wait_for_log(path: &Path, marker: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if fs::read_to_string(path).is_ok_and(|text| text.contains(marker)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{} did not say {marker:?} within {within:?}; see the log", path.display())
}

pub(crate) fn target_dir() -> anyhow::Result<PathBuf> {
    let output = Command::new(env!("CARGO")).args(["metadata", "--format-version", "1", "--no-deps"]).output()?;
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    Ok(PathBuf::from(metadata["target_directory"].as_str().context("cargo metadata has no target_directory")?))
}

/// `n` random bytes from the kernel.
fn urandom(n: usize) -> anyhow::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = vec![0; n];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}
