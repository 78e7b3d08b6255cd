//! Child processes of a benchmark: started with their output in a log file, and killed when the
//! [`Processes`] that owns them is dropped (at the end, on error and on panic alike).

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The processes of one cluster, and the temporary directory holding their data and logs.
pub struct Processes {
    children: Vec<(String, Child)>,
    dir: tempfile::TempDir,
}

impl Processes {
    pub fn new(what: &str) -> anyhow::Result<Processes> {
        let dir = tempfile::Builder::new().prefix(&format!("nucleus-bench-{what}-")).tempdir().context("creating a temporary directory")?;
        Ok(Processes { children: Vec::new(), dir })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir().join(format!("{name}.log"))
    }

    /// Starts `program args` with stdout and stderr in `<dir>/<name>.log`.
    pub fn spawn(&mut self, name: &str, program: &Path, args: &[String]) -> anyhow::Result<()> {
        let log = fs::File::create(self.log_path(name))?;
        let child = Command::new(program)
            .args(args)
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        self.children.push((name.to_owned(), child));
        Ok(())
    }

    /// Waits until `<name>.log` contains `marker`; fails early if the process exits, with the
    /// log's tail in the error.
    pub fn wait_for_log(&mut self, name: &str, marker: &str, within: Duration) -> anyhow::Result<()> {
        let path = self.log_path(name);
        let deadline = Instant::now() + within;
        loop {
            let text = fs::read_to_string(&path).unwrap_or_default();
            if text.contains(marker) {
                return Ok(());
            }
            if let Some((_, child)) = self.children.iter_mut().find(|(n, _)| n == name)
                && let Some(status) = child.try_wait()?
            {
                bail!("{name} exited ({status}) before saying {marker:?}; its log ends:\n{}", tail(&text));
            }
            if Instant::now() > deadline {
                bail!("{name} did not say {marker:?} within {within:?}; its log ends:\n{}", tail(&text));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id of the child started as `name`.
    pub fn pid(&self, name: &str) -> anyhow::Result<u32> {
        self.children.iter().find(|(n, _)| n == name).map(|(_, child)| child.id()).with_context(|| format!("no process named {name}"))
    }

    /// Fails if any process has exited (a crash during a run would otherwise look like slowness).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        for (name, child) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                let text = fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default();
                bail!("{name} exited ({status}); its log ends:\n{}", tail(&text));
            }
        }
        Ok(())
    }
}

impl Drop for Processes {
    /// SIGTERM first, so that each process stops what it started (`nucleus dev` its replicas,
    /// nginx its workers); SIGKILL what is still there after 10 s.
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (_, child) in &mut self.children {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last lines of a log, for error messages.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// `n` distinct loopback ports that were free a moment ago (the OS picks them; racy in principle,
/// fine for a benchmark).
pub fn free_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    // Hold every listener until all are picked, so the OS cannot hand out the same port twice.
    let listeners: Vec<TcpListener> = (0..n).map(|_| TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
    listeners.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

/// Finds `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let ports = free_ports(6).unwrap();
        let mut sorted = ports.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 6);
    }

    #[test]
    fn a_process_that_exits_early_is_reported_with_its_log() {
        let mut procs = Processes::new("test").unwrap();
        let sh = which("sh").expect("sh on PATH");
        procs.spawn("early", &sh, &["-c".into(), "echo boom; exit 3".into()]).unwrap();
        let err = procs.wait_for_log("early", "serving on", Duration::from_secs(10)).unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("early exited"), "{message}");
        assert!(message.contains("boom"), "{message}");
    }

    #[test]
    fn processes_are_killed_and_their_directory_removed_on_drop() {
        let mut procs = Processes::new("test").unwrap();
        let sh = which("sh").expect("sh on PATH");
        procs.spawn("sleeper", &sh, &["-c".into(), "echo ready; exec sleep 600".into()]).unwrap();
        procs.wait_for_log("sleeper", "ready", Duration::from_secs(10)).unwrap();
        procs.check_alive().unwrap();
        let pid = procs.children[0].1.id();
        let dir = procs.dir().to_owned();
        drop(procs);
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "child {pid} still running");
        assert!(!dir.exists());
    }
}
