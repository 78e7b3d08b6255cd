//! The agent end to end: gRPC over a real socket, real processes, real ports.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nucleus_proto::agent::v1::InfoRequest;
use support::*;
use tonic::Code;

const READY_TIMEOUT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn two_whoami_replicas_become_ready_scale_and_stop() {
    let mut harness = Harness::start().await;
    let whoami = whoami_binary().display().to_string();
    let mut request = launch_request("web", 2, &[&whoami, "--port", "$PORT"], 1);
    if let Some(container) = request.primary.as_mut() {
        container.readiness_probe = Some(probe("/ready", 3));
    }
    harness.launch(request.clone()).await.expect("launch");

    let report = harness.wait_for("web", READY_TIMEOUT, |report| all_ready(report, 2)).await;
    assert_eq!(report.workload_id, "workload-1");
    let addresses: HashSet<&str> = report.replicas.iter().map(|replica| replica.address.as_str()).collect();
    assert_eq!(addresses.len(), 2, "replicas must get distinct ports: {addresses:?}");
    for replica in &report.replicas {
        assert_eq!(replica.node_address, NODE_ADDRESS);
        assert_eq!(replica.phase, "running");
        let container = &replica.containers[0];
        assert_eq!((container.name.as_str(), container.image.as_str()), ("web", "registry.example/web:1"));
        assert_eq!(container.status, "running");
        let conditions: Vec<&str> = replica.conditions.iter().filter(|c| c.met).map(|c| c.r#type.as_str()).collect();
        assert_eq!(conditions[..4], ["PodScheduled", "Initialized", "ContainersReady", "Ready"]);

        let echo: serde_json::Value =
            http_get(&replica.address, "/hello?x=1").await.expect("replica answers HTTP").json().await.expect("JSON echo");
        assert_eq!(echo["replica"], replica.name.as_str());
        assert_eq!(echo["artifactId"], "artifact-1");
        assert_eq!(echo["path"], "/hello");
    }
    let names: Vec<&str> = report.replicas.iter().map(|replica| replica.name.as_str()).collect();
    assert_eq!(names, ["web-0", "web-1"]);

    // Same spec, one replica: web-1 goes away, web-0 is left as it is.
    let kept = report.replicas[0].clone();
    let removed = report.replicas[1].address.clone();
    request.replica_count = 1;
    harness.launch(request).await.expect("scale down");
    let report = harness.wait_for("web", READY_TIMEOUT, |report| report.replicas.len() == 1).await;
    assert_eq!(report.replicas[0].address, kept.address);
    assert_eq!(report.replicas[0].containers[0].started_at, kept.containers[0].started_at);
    wait_until_closed(&removed, Duration::from_secs(15)).await;

    harness.stop("web", 5, 1).await.expect("stop");
    let report =
        harness.wait_for("web", Duration::from_secs(15), |report| report.lifecycle() == nucleus_proto::agent::v1::Lifecycle::Stopped).await;
    assert!(report.replicas.is_empty());
    wait_until_closed(&kept.address, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn stop_kills_the_process_group_after_the_grace_period_and_relaunch_starts_afresh() {
    let mut harness = Harness::start().await;
    // Ignores SIGTERM (as does its grandchild), so only the SIGKILL after the grace ends it.
    let script = format!(
        "trap '' TERM; sleep 1000 & echo $! > {}; echo $$ > {}; exec python3 -u -m http.server $PORT --bind 127.0.0.1",
        harness.pid_file("grandchild").display(),
        harness.pid_file("leader").display(),
    );
    let request = launch_request("stubborn", 1, &["sh", "-c", &script], 0);
    harness.launch(request.clone()).await.expect("launch");
    let report = harness.wait_for("stubborn", READY_TIMEOUT, |report| all_ready(report, 1)).await;
    let address = report.replicas[0].address.clone();
    let leader = read_pid(&harness.pid_file("leader")).expect("leader pid");
    let grandchild = read_pid(&harness.pid_file("grandchild")).expect("grandchild pid");
    assert!(alive(leader) && alive(grandchild));

    let stop_sent = Instant::now();
    harness.stop("stubborn", 1, 0).await.expect("stop");
    harness
        .wait_for("stubborn", Duration::from_secs(5), |report| report.lifecycle() == nucleus_proto::agent::v1::Lifecycle::Stopping)
        .await;
    let report = harness
        .wait_for("stubborn", Duration::from_secs(10), |report| report.lifecycle() == nucleus_proto::agent::v1::Lifecycle::Stopped)
        .await;
    assert!(stop_sent.elapsed() >= Duration::from_millis(900), "SIGTERM was ignored: the grace must be waited out");
    assert!(report.replicas.is_empty());
    wait_until_gone(leader, Duration::from_secs(2)).await;
    wait_until_gone(grandchild, Duration::from_secs(2)).await;
    wait_until_closed(&address, Duration::from_secs(2)).await;

    harness.launch(request).await.expect("launch again");
    let report = harness.wait_for("stubborn", READY_TIMEOUT, |report| all_ready(report, 1)).await;
    assert_eq!(report.replicas[0].containers[0].restart_count, 0);
    http_get(&report.replicas[0].address, "/").await.expect("relaunched replica answers");
    harness.agent.shutdown().await;
}

#[tokio::test]
async fn a_process_that_exits_at_once_fails_with_its_status_and_log_tail() {
    let mut harness = Harness::start().await;
    let script = "echo starting up; echo 'fatal: no config' >&2; exit 3";
    harness.launch(launch_request("crasher", 1, &["sh", "-c", script], 0)).await.expect("launch");

    let report = harness.wait_for("crasher", READY_TIMEOUT, |report| report.replicas.iter().any(|r| r.phase == "failed")).await;
    let replica = &report.replicas[0];
    assert_eq!(replica.error, "process exited with status 3 before becoming ready");
    assert!(replica.log_tail.iter().any(|line| line == "starting up"), "{:?}", replica.log_tail);
    assert!(replica.log_tail.iter().any(|line| line == "fatal: no config"), "{:?}", replica.log_tail);
    let container = &replica.containers[0];
    assert_eq!((container.status.as_str(), container.reason.as_str()), ("terminated", "Error"));
    assert!(!container.ready);
}

#[tokio::test]
async fn commands_that_cannot_start_fail_with_the_os_error() {
    let mut harness = Harness::start().await;
    harness.launch(launch_request("missing", 1, &["/nonexistent/server", "--port", "$PORT"], 0)).await.expect("launch");
    harness.launch(launch_request("empty", 1, &[], 0)).await.expect("launch");

    let failed = |report: &nucleus_proto::agent::v1::ProtonReport| report.replicas.iter().any(|r| r.phase == "failed");
    let report = harness.wait_for("missing", READY_TIMEOUT, failed).await;
    let error = &report.replicas[0].error;
    assert!(error.starts_with("cannot start `/nonexistent/server`: No such file or directory"), "{error}");
    let report = harness.wait_for("empty", READY_TIMEOUT, failed).await;
    assert!(report.replicas[0].error.contains("empty entrypoint"), "{}", report.replicas[0].error);
}

#[tokio::test]
async fn a_readiness_probe_that_never_passes_fails_the_replica() {
    let mut harness = Harness::start().await;
    let whoami = whoami_binary().display().to_string();
    let mut request = launch_request("unready", 1, &[&whoami, "--fail-readiness"], 0);
    if let Some(container) = request.primary.as_mut() {
        container.readiness_probe = Some(probe("/ready", 2));
    }
    harness.launch(request).await.expect("launch");

    let mut ever_ready = false;
    let report = harness
        .watch_until(
            "unready",
            READY_TIMEOUT,
            |report| ever_ready |= report.replicas.iter().any(replica_ready),
            |report| report.replicas.iter().any(|r| r.phase == "failed"),
        )
        .await;
    assert!(!ever_ready, "a replica whose readiness probe fails must never be ready");
    let replica = &report.replicas[0];
    assert!(replica.error.starts_with("readiness probe never passed: "), "{}", replica.error);
    assert!(replica.error.contains("HTTP status 503"), "{}", replica.error);
    assert_eq!(replica.containers[0].reason, "ReadinessProbeFailed");
    wait_until_closed(&replica.address, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_failing_startup_probe_fails_the_replica() {
    let mut harness = Harness::start().await;
    let server = python_server(&harness.pid_file("server"));
    let mut request = launch_request("slow", 1, &entrypoint(&server), 0);
    if let Some(container) = request.primary.as_mut() {
        container.startup_probe = Some(probe("/missing", 2));
    }
    harness.launch(request).await.expect("launch");

    let report = harness.wait_for("slow", READY_TIMEOUT, |report| report.replicas.iter().any(|r| r.phase == "failed")).await;
    let replica = &report.replicas[0];
    assert!(replica.error.starts_with("startup probe failed 2 times in a row: "), "{}", replica.error);
    assert!(replica.error.contains("HTTP status 404"), "{}", replica.error);
    assert_eq!(replica.containers[0].reason, "StartupProbeFailed");
    let pid = read_pid(&harness.pid_file("server")).expect("server pid");
    wait_until_gone(pid, Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_failing_liveness_probe_restarts_the_process() {
    let mut harness = Harness::start().await;
    let server = python_server(&harness.pid_file("server"));
    let mut request = launch_request("sick", 1, &entrypoint(&server), 0);
    if let Some(container) = request.primary.as_mut() {
        container.liveness_probe = Some(probe("/missing", 2));
    }
    harness.launch(request).await.expect("launch");

    harness.wait_for("sick", READY_TIMEOUT, |report| all_ready(report, 1)).await;
    let first_pid = read_pid(&harness.pid_file("server")).expect("server pid");
    let report =
        harness.wait_for("sick", READY_TIMEOUT, |report| all_ready(report, 1) && report.replicas[0].containers[0].restart_count >= 1).await;
    assert_eq!(report.replicas[0].phase, "running");
    assert!(!alive(first_pid), "the unhealthy process must have been killed");
    harness.agent.shutdown().await;
}

#[tokio::test]
async fn a_process_that_crashes_after_being_ready_is_restarted_with_backoff() {
    let mut harness = Harness::start().await;
    let whoami = whoami_binary().display().to_string();
    harness.launch(launch_request("flaky", 1, &[&whoami, "--crash-after", "1"], 0)).await.expect("launch");
    let report = harness.wait_for("flaky", READY_TIMEOUT, |report| all_ready(report, 1)).await;
    let address = report.replicas[0].address.clone();

    http_get(&address, "/boom").await.expect("last answer before the crash");
    let report =
        harness.wait_for("flaky", Duration::from_secs(10), |report| report.replicas[0].containers[0].reason == "CrashLoopBackOff").await;
    let replica = &report.replicas[0];
    assert_eq!((replica.phase.as_str(), replica.containers[0].status.as_str()), ("pending", "waiting"));
    assert_eq!(replica.containers[0].restart_count, 1);
    assert!(!replica_ready(replica));

    let report = harness.wait_for("flaky", READY_TIMEOUT, |report| all_ready(report, 1)).await;
    assert_eq!(report.replicas[0].address, address, "a restarted replica keeps its port");
    http_get(&address, "/").await.expect("restarted replica answers");
    harness.agent.shutdown().await;
}

#[tokio::test]
async fn stale_fencing_tokens_are_refused() {
    let mut harness = Harness::start().await;
    let server = python_server(&harness.pid_file("server"));
    harness.launch(launch_request("fenced", 1, &entrypoint(&server), 5)).await.expect("launch with token 5");

    let refused = harness.launch(launch_request("fenced", 2, &entrypoint(&server), 4)).await.expect_err("stale launch");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains('4') && refused.message().contains('5'), "{}", refused.message());
    let refused = harness.stop("fenced", 1, 0).await.expect_err("stale stop");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    // Tokens are per meta shard: an older number from another shard's lease is no stale token.
    let mut other_shard = launch_request("other-shard", 1, &entrypoint(&server), 1);
    other_shard.meta_shard = 7;
    harness.launch(other_shard).await.expect("a token of another shard is compared with that shard's only");

    let report = harness.wait_for("fenced", READY_TIMEOUT, |report| all_ready(report, 1)).await;
    assert_eq!(report.replicas.len(), 1, "the refused launch must not have scaled the proton");
    harness.stop("fenced", 1, 6).await.expect("stop with a newer token");
    harness.wait_for("fenced", Duration::from_secs(10), |report| report.lifecycle() == nucleus_proto::agent::v1::Lifecycle::Stopped).await;
    harness.agent.shutdown().await;
}

#[tokio::test]
async fn shutdown_leaves_no_process_behind() {
    let mut harness = Harness::start().await;
    let info = harness.client.info(InfoRequest {}).await.expect("info").into_inner();
    assert_eq!((info.name.as_str(), info.driver.as_str()), ("test-agent", "process"));

    let dir = harness.dir.path().display().to_string();
    let script = format!(
        "trap '' TERM; sleep 1000 & echo $! > {dir}/$NUCLEUS_REPLICA-sleep.pid; echo $$ > {dir}/$NUCLEUS_REPLICA-leader.pid; \
         exec python3 -u -m http.server $PORT --bind 127.0.0.1"
    );
    let mut pid_files = Vec::new();
    for proton in ["a", "b"] {
        harness.launch(launch_request(proton, 2, &["sh", "-c", &script], 0)).await.expect("launch");
        let report = harness.wait_for(proton, READY_TIMEOUT, |report| all_ready(report, 2)).await;
        for replica in &report.replicas {
            pid_files.push(harness.pid_file(&format!("{}-leader", replica.name)));
            pid_files.push(harness.pid_file(&format!("{}-sleep", replica.name)));
        }
    }
    let pids: Vec<i32> = pid_files.iter().map(|file| read_pid(file).expect("pid")).collect();
    assert!(pids.iter().all(|pid| alive(*pid)));

    tokio::time::timeout(Duration::from_secs(15), harness.agent.shutdown()).await.expect("shutdown in time");
    let left: Vec<i32> = pids.into_iter().filter(|pid| alive(*pid)).collect();
    assert!(left.is_empty(), "processes left after shutdown: {left:?}");
    assert!(
        !harness.dir.path().join("process-driver/state.json").exists(),
        "a graceful shutdown leaves nothing for the next agent to adopt"
    );

    let refused = harness.launch(launch_request("late", 1, &["true"], 0)).await.expect_err("launch after shutdown");
    assert_eq!(refused.code(), Code::Unavailable);
}

#[tokio::test]
async fn info_reports_the_location_and_this_host_as_capacity() {
    let mut harness = Harness::start().await;
    let info = harness.client.info(InfoRequest {}).await.expect("info").into_inner();
    assert_eq!((info.cluster.as_str(), info.region.as_str()), ("local", "local"));
    assert_eq!(info.nodes.len(), 1, "{:?}", info.nodes);
    let host = &info.nodes[0];
    let cores = std::thread::available_parallelism().expect("cores").get();
    assert_eq!(host.cpu_millis as usize, cores * 1000);
    assert!(host.memory_bytes > 0);
    assert!(!host.name.is_empty());
    assert_eq!((host.gpu_count, host.gpu_type.as_str()), (0, ""));
}

#[tokio::test]
async fn a_launch_asking_for_gpus_of_no_type_is_refused() {
    let mut harness = Harness::start().await;
    let mut request = launch_request("gpu", 1, &["true"], 0);
    request.resources = Some(nucleus_proto::agent::v1::Resources { gpu_count: 1, ..Default::default() });
    let status = harness.launch(request).await.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("gpu_type"), "{}", status.message());
}

/// What a test needs to see of a replica to tell whether it is still the same process.
fn identity(report: &nucleus_proto::agent::v1::ProtonReport) -> Vec<(String, String, String, u32)> {
    report
        .replicas
        .iter()
        .map(|replica| {
            let container = &replica.containers[0];
            (replica.name.clone(), replica.address.clone(), container.started_at.clone(), container.restart_count)
        })
        .collect()
}

/// Kills the process groups when dropped.
struct KillGroups(Vec<i32>);

impl Drop for KillGroups {
    fn drop(&mut self) {
        self.0.iter().filter(|pid| alive(**pid)).for_each(|pid| kill(-pid, libc::SIGKILL));
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

/// Agent restart adoption: an agent that dies without shutting down leaves its replicas running,
/// and the next agent on the same data dir adopts them instead of starting duplicates. The crash
/// is the first agent's runtime being dropped: none of its tasks runs again, as after a SIGKILL.
#[test]
fn agent_restart_adoption() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let _cleanup = KillLeftovers(dir.clone());
    let script = format!(
        "echo $$ > {}/$NUCLEUS_REPLICA.pid; echo serving $NUCLEUS_REPLICA; \
         exec python3 -u -m http.server $PORT --bind 127.0.0.1",
        dir.path().display()
    );
    let kept = launch_request("kept", 2, &["sh", "-c", &script], 5);
    let lost = launch_request("lost", 1, &["sh", "-c", &script], 5);
    let pid = |replica: &str| read_pid(&dir.path().join(format!("{replica}.pid"))).expect("pid file");

    let first = runtime();
    let before = first.block_on(async {
        let mut harness = Harness::start_in(dir.clone()).await;
        harness.launch(kept.clone()).await.expect("launch kept");
        let report = harness.wait_for("kept", READY_TIMEOUT, |report| all_ready(report, 2)).await;
        harness.launch(lost.clone()).await.expect("launch lost");
        harness.wait_for("lost", READY_TIMEOUT, |report| all_ready(report, 1)).await;
        harness.leave_running();
        report
    });
    drop(first);

    let kept_pids = [pid("kept-0"), pid("kept-1")];
    // Should the next agent lose track of them, the test still kills them.
    let _kill_first = KillGroups(kept_pids.to_vec());
    assert!(kept_pids.iter().all(|pid| alive(*pid)), "the crash must leave the replicas running");
    // One replica ends while no agent runs: the next agent must handle it as crashed.
    let lost_pid = pid("lost-0");
    kill(-lost_pid, libc::SIGKILL);

    runtime().block_on(async {
        wait_until_gone(lost_pid, Duration::from_secs(5)).await;
        let mut harness = Harness::start_in(dir.clone()).await;

        // A scheduler that lost its lease before the restart is still refused, although this agent
        // has not seen the newer token itself.
        let refused = harness.launch(launch_request("kept", 3, &["sh", "-c", &script], 4)).await.expect_err("stale launch");
        assert_eq!(refused.code(), Code::FailedPrecondition, "{}", refused.message());
        let refused = harness.stop("kept", 1, 4).await.expect_err("stale stop");
        assert_eq!(refused.code(), Code::FailedPrecondition, "{}", refused.message());

        let adopted = harness.current("kept").await;
        assert!(all_ready(&adopted, 2), "adopted replicas are reported running and ready: {adopted:#?}");
        assert_eq!(identity(&adopted), identity(&before), "the same replicas, not new ones");
        for (index, replica) in adopted.replicas.iter().enumerate() {
            assert_eq!(replica.node_address, NODE_ADDRESS);
            let line = format!("serving kept-{index}");
            assert!(replica.log_tail.contains(&line), "the log tail is read from the log file: {:?}", replica.log_tail);
            http_get(&replica.address, "/").await.expect("the adopted replica answers");
        }

        // The scheduler may repeat the launch it made before the restart: nothing changes.
        harness.launch(kept.clone()).await.expect("repeated launch");
        let relaunched = harness.current("kept").await;
        assert!(all_ready(&relaunched, 2), "{relaunched:#?}");
        assert_eq!(identity(&relaunched), identity(&before), "a repeated launch must start nothing");

        // The replica that died meanwhile had been ready: it is restarted like any crashed one.
        let restarted = harness
            .wait_for("lost", READY_TIMEOUT, |report| all_ready(report, 1) && report.replicas[0].containers[0].restart_count == 1)
            .await;
        assert_eq!(restarted.replicas[0].containers[0].reason, "");
        let new_pid = pid("lost-0");
        assert!(new_pid != lost_pid && alive(new_pid), "lost-0 runs a new process");

        // Still the processes of the first agent: no duplicate was started behind the reports.
        assert_eq!([pid("kept-0"), pid("kept-1")], kept_pids);
        assert!(kept_pids.iter().all(|pid| alive(*pid)));
        assert_eq!(identity(&harness.current("kept").await), identity(&before));

        harness.stop("kept", 5, 5).await.expect("stop the adopted replicas");
        let stopped = harness
            .wait_for("kept", Duration::from_secs(15), |report| report.lifecycle() == nucleus_proto::agent::v1::Lifecycle::Stopped)
            .await;
        assert!(stopped.replicas.is_empty());
        for pid in kept_pids {
            wait_until_gone(pid, Duration::from_secs(5)).await;
        }
        for replica in &before.replicas {
            wait_until_closed(&replica.address, Duration::from_secs(5)).await;
        }

        tokio::time::timeout(Duration::from_secs(15), harness.agent.shutdown()).await.expect("shutdown in time");
        assert!(!alive(new_pid), "a graceful shutdown stops the replicas");
        assert!(!dir.path().join("process-driver/state.json").exists());
    });
}

/// The agent's own memory cgroup (v1), where the process driver makes replicas' groups.
fn own_memory_cgroup() -> Option<std::path::PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|line| line.split(':').nth(2).filter(|_| line.split(':').nth(1) == Some("memory")))?;
    Some(std::path::Path::new("/sys/fs/cgroup/memory").join(path.trim_start_matches('/')))
}

/// On a host with writable cgroup v1 hierarchies (these machines, as root), every process of a
/// replica is held to its bundle's memory and CPU, and the replica says so.
#[tokio::test]
async fn a_replica_is_held_to_its_bundles_cpu_and_memory() {
    let own = own_memory_cgroup().expect("this test needs cgroup v1's memory hierarchy (run it as root on a cgroup v1 host)");
    let mut harness = Harness::start().await;
    let pid_file = harness.pid_file("limited");
    let mut request = launch_request("limited", 1, &entrypoint(&python_server(&pid_file)), 1);
    request.resources = Some(nucleus_proto::agent::v1::Resources { cpu_millis: 500, memory_bytes: 256 << 20, ..Default::default() });
    harness.launch(request).await.expect("launch");
    let report = harness.wait_for("limited", READY_TIMEOUT, |report| all_ready(report, 1)).await;
    let replica = &report.replicas[0];
    let enforced = replica.conditions.iter().find(|c| c.r#type == "ResourcesEnforced").expect("the condition is reported");
    assert!(enforced.met, "{:?}", replica.conditions);

    let group = own.join("nucleus-replicas").join(&replica.name);
    let limit = std::fs::read_to_string(group.join("memory.limit_in_bytes")).expect("the replica's memory cgroup");
    assert_eq!(limit.trim(), (256u64 << 20).to_string());
    let pid = read_pid(&pid_file).expect("the server wrote its pid");
    let members = std::fs::read_to_string(group.join("cgroup.procs")).expect("members");
    assert!(members.lines().any(|line| line.trim() == pid.to_string()), "pid {pid} is in {}: {members}", group.display());
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).expect("its cgroups");
    assert!(cpu.lines().any(|l| l.contains("cpu") && l.ends_with(&format!("nucleus-replicas/{}", replica.name))), "{cpu}");

    harness.stop("limited", 1, 1).await.expect("stop");
    harness.wait_for("limited", READY_TIMEOUT, |report| report.replicas.is_empty()).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while group.exists() {
        assert!(Instant::now() < deadline, "the cgroup {} is removed with the replica", group.display());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
