//! What a replica's process gets from the host, and nothing more: an environment built from
//! scratch (none of the agent's variables, so no credentials or control-plane addresses are
//! inherited), a working directory of its own under the data dir, optionally another user, and
//! resource limits.

use std::ffi::OsString;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use nucleus_api::exec_policy::ExecPolicy;
use tokio::process::Command;

use super::cgroups::Cgroups;

/// PATH given to replicas when the agent has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// Open files a replica may hold (its soft and hard limit, unless the agent's hard limit is lower).
const OPEN_FILES: u64 = 65_536;
/// Processes (threads included) its user may have when a replica forks: a fork bomb stops there.
const PROCESSES: u64 = 16_384;

/// The user replicas run as, instead of the agent's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

impl std::str::FromStr for RunAs {
    type Err = String;

    /// `UID:GID`, `UID` (group = uid), or a user name of /etc/passwd (its primary group).
    fn from_str(text: &str) -> Result<RunAs, String> {
        let number = |n: &str| n.parse::<u32>().map_err(|_| format!("`{n}` is not a numeric id"));
        if let Some((uid, gid)) = text.split_once(':') {
            return Ok(RunAs { uid: number(uid)?, gid: number(gid)? });
        }
        if let Ok(uid) = text.parse::<u32>() {
            return Ok(RunAs { uid, gid: uid });
        }
        let passwd = std::fs::read_to_string("/etc/passwd").map_err(|err| format!("cannot read /etc/passwd to look up `{text}`: {err}"))?;
        passwd
            .lines()
            .map(|line| line.split(':').collect::<Vec<_>>())
            .find(|fields| fields.len() > 3 && fields[0] == text)
            .map(|fields| Ok(RunAs { uid: number(fields[2])?, gid: number(fields[3])? }))
            .unwrap_or_else(|| Err(format!("no user `{text}` in /etc/passwd; give a user name or UID:GID")))
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Sandbox {
    /// The address replicas listen on (their `HOST`) and are reached at by gateways.
    host: IpAddr,
    work_root: PathBuf,
    path: OsString,
    lang: OsString,
    run_as: Option<RunAs>,
    exec: ExecPolicy,
    cgroups: Cgroups,
}

impl Sandbox {
    /// Replicas' working directories go under `work_root`. PATH and LANG are the only variables
    /// taken from the agent: a workload needs its commands found, and neither holds a secret.
    pub(crate) fn new(host: IpAddr, work_root: PathBuf, run_as: Option<RunAs>, exec: ExecPolicy) -> Sandbox {
        Sandbox {
            exec,
            host,
            work_root,
            path: std::env::var_os("PATH").filter(|p| !p.is_empty()).unwrap_or_else(|| DEFAULT_PATH.into()),
            lang: std::env::var_os("LANG").filter(|l| !l.is_empty()).unwrap_or_else(|| "C.UTF-8".into()),
            run_as,
            cgroups: Cgroups::Unavailable("not looked for".to_owned()),
        }
    }

    /// With a cgroup per replica where the host allows it ([`Cgroups::detect`]).
    pub(crate) fn with_cgroups(self, cgroups: Cgroups) -> Sandbox {
        if let Cgroups::Unavailable(why) = &cgroups {
            tracing::warn!(reason = %why, "replicas' CPU and memory are not enforced on this host");
        }
        Sandbox { cgroups, ..self }
    }

    /// Puts the replica's processes in its cgroups with its bundle's limits; false (and the
    /// replica runs unconfined) where cgroups are not available.
    pub(crate) fn enforce(&self, command: &mut Command, replica: &str, cpu_millis: u32, memory_bytes: u64) -> bool {
        match self.cgroups.for_replica(replica, cpu_millis, memory_bytes) {
            Ok(cgroup) => {
                cgroup.join_at_exec(command);
                true
            }
            Err(why) => {
                tracing::debug!(replica, reason = %why, "replica runs without a cgroup");
                false
            }
        }
    }

    /// Removes what the replica had on the host beyond its processes: working directory, cgroups.
    pub(crate) fn release(&self, replica: &str) {
        self.remove_work_dir(replica);
        self.cgroups.remove(replica);
    }

    pub(crate) fn host(&self) -> IpAddr {
        self.host
    }

    /// Where the replica on `port` listens.
    pub(crate) fn address(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.host, port)
    }

    /// Refuses a program `--allow-exec` does not list. Who created the workload is the gateway's
    /// to check (an agent cannot tell), so the administrators-only rule passes here.
    pub(crate) fn check_program(&self, program: &str) -> Result<(), crate::Error> {
        self.exec.allows(program, true).map_err(|rule| crate::Error::ExecNotAllowed { program: program.to_owned(), rule })
    }

    /// The replica's working directory, also its HOME.
    pub(crate) fn work_dir(&self, replica: &str) -> PathBuf {
        self.work_root.join(super::logs::path_segment(replica))
    }

    /// Removes the working directory of a replica that is gone for good.
    pub(crate) fn remove_work_dir(&self, replica: &str) {
        let dir = self.work_dir(replica);
        if let Err(err) = std::fs::remove_dir_all(&dir)
            && err.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %dir.display(), error = %err, "cannot remove a stopped replica's working directory");
        }
    }

    /// Clears the command's environment down to PATH, HOME, LANG and HOST (where to listen), runs it in the replica's own
    /// working directory (created, and handed to the run-as user), as that user, with limits. The
    /// caller adds the replica's own variables afterwards.
    pub(crate) fn confine(&self, command: &mut Command, replica: &str) -> io::Result<()> {
        let dir = self.work_dir(replica);
        std::fs::create_dir_all(&dir)?;
        if let Some(user) = self.run_as {
            std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid))?;
            command.uid(user.uid).gid(user.gid);
        }
        command
            .env_clear()
            .env("PATH", &self.path)
            .env("LANG", &self.lang)
            .env("HOME", &dir)
            .env("HOST", self.host.to_string())
            .current_dir(&dir);
        limit_resources(command);
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn root(&self) -> &std::path::Path {
        &self.work_root
    }
}

/// No core dumps (they would copy the process's memory, secrets included, onto the agent's disk),
/// a bounded number of open files and of processes.
#[allow(unsafe_code)]
fn limit_resources(command: &mut Command) {
    // SAFETY: the closure runs in the child between fork and exec and only calls setrlimit(2) and
    // getrlimit(2), which are async-signal-safe; it allocates nothing.
    unsafe {
        command.pre_exec(|| {
            let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            if libc::setrlimit(libc::RLIMIT_CORE, &no_core) != 0 {
                return Err(io::Error::last_os_error());
            }
            for (resource, most) in [(libc::RLIMIT_NOFILE, OPEN_FILES), (libc::RLIMIT_NPROC, PROCESSES)] {
                let mut current = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
                if libc::getrlimit(resource, &mut current) == 0 {
                    let cap = most.min(current.rlim_max);
                    // Best effort: a replica started under a lower limit keeps it.
                    libc::setrlimit(resource, &libc::rlimit { rlim_cur: cap, rlim_max: cap });
                }
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_as_takes_ids_or_a_user_name() {
        assert_eq!("1000:100".parse::<RunAs>(), Ok(RunAs { uid: 1000, gid: 100 }));
        assert_eq!("65534".parse::<RunAs>(), Ok(RunAs { uid: 65534, gid: 65534 }));
        assert_eq!("root".parse::<RunAs>(), Ok(RunAs { uid: 0, gid: 0 }));
        let err = "no-such-user-here".parse::<RunAs>().expect_err("unknown user");
        assert!(err.contains("no user `no-such-user-here`"), "{err}");
        assert!("1:x".parse::<RunAs>().is_err());
    }

    #[test]
    fn only_listed_programs_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        let listed = ExecPolicy::Programs(vec!["python3".into()]);
        let sandbox = Sandbox::new(IpAddr::from([127, 0, 0, 1]), dir.path().to_owned(), None, listed);
        assert!(sandbox.check_program("/usr/bin/python3").is_ok());
        let err = sandbox.check_program("sh").expect_err("not listed");
        assert!(err.to_string().contains("`sh`") && err.to_string().contains("--allow-exec"), "{err}");
    }

    #[tokio::test]
    async fn replicas_dump_no_core_and_have_bounded_files_and_processes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sandbox = Sandbox::new(IpAddr::from([127, 0, 0, 1]), dir.path().to_owned(), None, ExecPolicy::Anyone);
        let mut command = Command::new("cat");
        command.arg("/proc/self/limits");
        sandbox.confine(&mut command, "r-0").expect("confine");
        let output = command.output().await.expect("cat runs");
        let limits = String::from_utf8_lossy(&output.stdout).into_owned();
        let soft = |name: &str| -> u64 {
            let line = limits.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {limits}"));
            line[name.len()..].split_whitespace().next().and_then(|v| v.parse().ok()).unwrap_or(u64::MAX)
        };
        assert_eq!(soft("Max core file size"), 0, "no core dumps: {limits}");
        assert!(soft("Max open files") <= OPEN_FILES, "{limits}");
        assert!(soft("Max processes") <= PROCESSES, "{limits}");
    }

    #[test]
    fn work_dirs_are_per_replica_and_removable() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sandbox = Sandbox::new(IpAddr::from([127, 0, 0, 1]), dir.path().join("work"), None, ExecPolicy::Anyone);
        let mut command = Command::new("true");
        sandbox.confine(&mut command, "p-0").expect("confine");
        let work = sandbox.work_dir("p-0");
        assert!(work.is_dir() && work.starts_with(sandbox.root()));
        assert_ne!(work, sandbox.work_dir("p-1"));
        assert!(!sandbox.work_dir("../escape").starts_with(dir.path().join("escape")), "a name cannot leave the root");
        sandbox.remove_work_dir("p-0");
        assert!(!work.exists());
    }
}
