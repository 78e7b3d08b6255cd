//! `cargo xtask schemathesis`: starts `nucleus dev` on a fresh data dir (or takes a running
//! gateway, `--against URL --token T`, e.g. a `cargo xtask cluster up`) and runs schemathesis
//! (from PyPI, in a cached virtualenv) against the gateway's own OpenAPI document. It fails on any
//! 5xx and on any answer the document does not describe (status code, content type, body).

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

mod seed;

/// Pinned, so that a new schemathesis release cannot turn CI red on its own.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";
const DEV_TOKEN: &str = "schemathesis-admin-token-0123456789";
const USAGE: &str = "usage: cargo xtask schemathesis [--max-examples N] [--against http://HOST:PORT --token ADMIN_TOKEN]";
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance";

pub fn run(args: &[&str]) -> anyhow::Result<()> {
    let mut max_examples = "20";
    let (mut against, mut token) = (None, None);
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match *arg {
            "--max-examples" => max_examples = rest.next().context(USAGE)?,
            "--against" => against = Some(rest.next().context(USAGE)?.trim_end_matches('/').to_owned()),
            "--token" => token = Some(rest.next().context(USAGE)?.to_string()),
            other => bail!("unknown argument {other}; {USAGE}"),
        }
    }
    if against.is_some() != token.is_some() {
        bail!("--against and --token go together; {USAGE}");
    }
    let st = install()?;
    println!("schemathesis: building nucleus");
    let status = Command::new(env!("CARGO")).args(["build", "--bin", "nucleus", "--bin", "nucleus-whoami"]).status()?;
    if !status.success() {
        bail!("cargo build --bin nucleus --bin nucleus-whoami failed");
    }
    let binaries = crate::cluster::target_dir()?.join("debug");
    let nucleus = binaries.join("nucleus");
    let work = std::env::temp_dir().join(format!("nucleus-schemathesis-{}", std::process::id()));
    fs::create_dir_all(&work)?;
    let (base, token, stack) = match (against, token) {
        (Some(base), Some(token)) => (base, token, None),
        _ => {
            let port = free_port()?;
            let base = format!("http://127.0.0.1:{port}");
            let stack = Stack::start(&nucleus, &work, port)?;
            wait_until_up(&base, &work.join("dev.log"))?;
            (base, DEV_TOKEN.to_owned(), Some(stack))
        }
    };
    println!("schemathesis: testing {base} with {SCHEMATHESIS} ({CHECKS})");
    let schema = format!("{base}/api/v2/openapi.json");
    let st_run = |config: Option<&Path>, extra: &[&str]| -> anyhow::Result<bool> {
        let mut command = Command::new(&st);
        if let Some(config) = config {
            command.arg("--config-file").arg(config);
        }
        let status = command
            .args(["--no-color", "run", &schema])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args(["--checks", CHECKS])
            // The invoke URLs answer with whatever the workload's own application says.
            .args(["--exclude-path-regex", "^/api/v2/endpoints/"])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(["--max-examples", max_examples])
            // One worker: with two threads, hypothesis' `ast.parse` of lambda sources trips a
            // CPython 3.11 race ("SystemError: AST constructor recursion depth mismatch") now and
            // then, failing the gate for nothing the server did.
            .args(["--workers", "1", "--request-timeout", "30"])
            .args(extra)
            .current_dir(&work)
            .status()
            .context("running schemathesis")?;
        Ok(status.success())
    };
    println!("schemathesis: pass 1 of 2, made-up ids");
    let mut passed = st_run(None, &[])?;
    println!("schemathesis: pass 2 of 2, the ids of real objects (everything but DELETE)");
    let seeded = seed::objects(&base, &token, &binaries.join("nucleus-whoami"))?;
    let config = work.join("schemathesis.toml");
    fs::write(&config, seeded.config())?;
    passed &= st_run(Some(&config), &["--exclude-method", "DELETE"])?;
    drop(stack);
    if !passed {
        bail!(
            "schemathesis found answers that break the OpenAPI document (or 5xx); see the report above and the gateway's log ({})",
            work.join("dev.log").display()
        );
    }
    let _ = fs::remove_dir_all(&work);
    println!("schemathesis: no failures");
    Ok(())
}

/// The `st` of a virtualenv under ~/.cache, made once.
fn install() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let venv = PathBuf::from(home).join(".cache/nucleus-schemathesis");
    let st = venv.join("bin/st");
    let stamp = venv.join("installed");
    if fs::read_to_string(&stamp).is_ok_and(|s| s == SCHEMATHESIS) && st.exists() {
        return Ok(st);
    }
    println!("schemathesis: installing {SCHEMATHESIS} into {}", venv.display());
    let python = if Command::new("python3").arg("--version").output().is_ok() { "python3" } else { "python" };
    let status =
        Command::new(python).args(["-m", "venv"]).arg(&venv).status().context("python3 -m venv (install python3 and its venv module)")?;
    if !status.success() {
        bail!("could not make a virtualenv at {}", venv.display());
    }
    let status = Command::new(venv.join("bin/pip")).args(["install", "--quiet", SCHEMATHESIS]).status()?;
    if !status.success() {
        bail!("pip install {SCHEMATHESIS} failed (it needs PyPI)");
    }
    fs::write(&stamp, SCHEMATHESIS)?;
    Ok(st)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `nucleus dev`, stopped (with its protons) when dropped.
struct Stack {
    child: Child,
}

impl Stack {
    fn start(nucleus: &Path, work: &Path, port: u16) -> anyhow::Result<Stack> {
        let log = fs::File::create(work.join("dev.log"))?;
        let child = Command::new(nucleus)
            .args(["dev", "--listen", &format!("127.0.0.1:{port}"), "--token", DEV_TOKEN])
            .arg("--data-dir")
            .arg(work.join("data"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {}", nucleus.display()))?;
        Ok(Stack { child })
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

fn wait_until_up(base: &str, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if fs::read_to_string(log).is_ok_and(|text| text.contains("nucleus dev is up")) {
            let reachable = std::net::TcpStream::connect(base.trim_start_matches("http://")).is_ok();
            if reachable {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("nucleus dev did not come up within 60 s; see {}", log.display())
}
