//! Starting a replica's process (its own process group, env, port) and signalling that group.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::process::Stdio;

use tokio::process::{Child, Command};

use super::logs::LogFile;
use super::sandbox::Sandbox;
use crate::Error;

/// Everything that differs between two replicas of a proton.
pub(crate) struct Launch<'a> {
    pub entrypoint: &'a [String],
    pub env: &'a BTreeMap<String, String>,
    pub port: u16,
    pub replica: &'a str,
    pub proton_id: &'a str,
    pub workload_id: &'a str,
    pub artifact_id: &'a str,
    /// The bundle's CPU and memory (0: no limit).
    pub cpu_millis: u32,
    pub memory_bytes: u64,
}

/// Asks the OS for a port that is free right now on `host`.
pub(crate) fn free_port(host: IpAddr) -> io::Result<u16> {
    let listener = TcpListener::bind(SocketAddr::new(host, 0))?;
    Ok(listener.local_addr()?.port())
}

/// Replaces `${PORT}`, and `$PORT` not followed by a name character, in an argument.
pub(crate) fn substitute_port(argument: &str, port: u16) -> String {
    let port = port.to_string();
    let argument = argument.replace("${PORT}", &port);
    let mut result = String::with_capacity(argument.len());
    let mut rest = argument.as_str();
    while let Some(at) = rest.find("$PORT") {
        let after = &rest[at + "$PORT".len()..];
        let longer_name = after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
        result.push_str(&rest[..at]);
        result.push_str(if longer_name { "$PORT" } else { &port });
        rest = after;
    }
    result.push_str(rest);
    result
}

/// Spawns the entrypoint in a new process group, with stdout and stderr appended to `log`'s files. The
/// process is not tied to the agent: it keeps running when the agent dies, for the next agent to
/// adopt. The error is what the replica reports. Also says whether its resources are enforced.
pub(crate) fn spawn(launch: &Launch<'_>, log: &LogFile, sandbox: &Sandbox) -> Result<(Child, bool), Error> {
    let Some((program, arguments)) = launch.entrypoint.split_first() else {
        return Err(Error::EmptyEntrypoint);
    };
    let program = substitute_port(program, launch.port);
    sandbox.check_program(&program)?;
    let (stdout, stderr) = log.open_for_append().map_err(|source| Error::ReplicaLog { path: log.path().to_owned(), source })?;
    let mut command = Command::new(&program);
    sandbox.confine(&mut command, launch.replica).map_err(|source| Error::WorkDir { path: sandbox.work_dir(launch.replica), source })?;
    command
        .args(arguments.iter().map(|argument| substitute_port(argument, launch.port)))
        .envs(launch.env)
        .env("PORT", launch.port.to_string())
        .env("NUCLEUS_REPLICA", launch.replica)
        .env("NUCLEUS_PROTON_ID", launch.proton_id)
        .env("NUCLEUS_WORKLOAD_ID", launch.workload_id)
        .env("NUCLEUS_ARTIFACT_ID", launch.artifact_id)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        // Its own group, so that signals reach the grandchildren of `sh -c` too.
        .process_group(0);
    let enforced = sandbox.enforce(&mut command, launch.replica, launch.cpu_millis, launch.memory_bytes);
    let child = command.spawn().map_err(|source| Error::Spawn { program: program.clone(), source })?;
    Ok((child, enforced))
}

/// Sends `signal` to the whole process group led by `pid`. A group that is gone already is fine.
pub(crate) fn signal_group(pid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pid) else {
        return;
    };
    if let Err(err) = kill(-pgid, signal)
        && err.raw_os_error() != Some(libc::ESRCH)
    {
        tracing::warn!(pgid, signal, error = %err, "cannot signal process group");
    }
}

#[allow(unsafe_code)]
fn kill(pid: libc::pid_t, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let result = unsafe { libc::kill(pid, signal) };
    if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_is_substituted_in_both_forms() {
        assert_eq!(substitute_port("--port=$PORT", 8081), "--port=8081");
        assert_eq!(substitute_port("${PORT}:${PORT}", 8081), "8081:8081");
        assert_eq!(substitute_port("$PORTS $PORT_X", 1), "$PORTS $PORT_X");
        assert_eq!(substitute_port("a$PORT/b", 1), "a1/b");
        assert_eq!(substitute_port("plain", 1), "plain");
    }

    #[test]
    fn empty_entrypoint_is_an_error() {
        let env = BTreeMap::new();
        let launch = Launch {
            entrypoint: &[],
            env: &env,
            port: 1,
            replica: "p-0",
            proton_id: "p",
            workload_id: "w",
            artifact_id: "a",
            cpu_millis: 0,
            memory_bytes: 0,
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let sandbox =
            Sandbox::new(IpAddr::from([127, 0, 0, 1]), dir.path().join("work"), None, nucleus_api::exec_policy::ExecPolicy::Anyone);
        let err = spawn(&launch, &LogFile::new(dir.path(), "p", 0), &sandbox).expect_err("nothing to run");
        assert!(matches!(err, Error::EmptyEntrypoint), "{err}");
        assert!(err.to_string().contains("empty entrypoint"), "{err}");
    }
}
