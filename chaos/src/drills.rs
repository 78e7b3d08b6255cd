//! The drills: each injects one fault into a running cluster under load and says when it was
//! injected and when it was removed. Thresholds are part of each drill (see chaos/README.md).

use std::time::Duration;

use anyhow::Context;
use reqwest::Method;
use serde_json::json;

use crate::cluster::Cluster;
use crate::load::{Load, Target, whoami_artifact};
use crate::report::Thresholds;

pub struct Drill {
    pub name: &'static str,
    pub what: &'static str,
    pub thresholds: Thresholds,
}

const fn thresholds(writes: f64, invokes: f64, recovery_s: u64) -> Thresholds {
    Thresholds { min_write_availability: writes, min_invoke_availability: invokes, max_recovery: Duration::from_secs(recovery_s) }
}

pub const DRILLS: &[Drill] = &[
    Drill {
        name: "kill-root-leader",
        what: "SIGKILL the meta node leading the root group; restart it 10 s later",
        thresholds: thresholds(0.95, 0.99, 10),
    },
    Drill {
        name: "kill-shard-leader",
        what: "SIGKILL the meta node leading shard 1; restart it 10 s later",
        thresholds: thresholds(0.95, 0.99, 10),
    },
    Drill {
        name: "gray-failure",
        what: "SIGSTOP the root leader for 8 s (past the election timeout), then SIGCONT",
        thresholds: thresholds(0.90, 0.99, 10),
    },
    Drill {
        name: "partition-leader",
        what: "cut the root leader's meta node off from the other processes (iptables in its namespace) for 10 s, then heal",
        thresholds: thresholds(0.90, 0.99, 10),
    },
    Drill {
        name: "partition-follower",
        what: "cut a meta node that leads no group off from the other processes for 10 s, then heal",
        thresholds: thresholds(0.95, 0.99, 10),
    },
    Drill {
        name: "partition-region",
        what: "cut region us-east (the root leader, the us-east agent, gateway 1) off from the rest for 10 s; clients reach both sides",
        thresholds: thresholds(0.90, 0.90, 10),
    },
    Drill {
        name: "kill-scheduler",
        what: "start a replacement, SIGKILL each scheduler in turn while it runs, restart them",
        thresholds: thresholds(0.99, 0.99, 10),
    },
    Drill { name: "kill-agent", what: "SIGKILL the us-east agent; restart it 10 s later", thresholds: thresholds(0.99, 0.98, 10) },
    Drill {
        name: "agent-away",
        what: "SIGKILL the us-east agent (its replicas keep running) for 25 s, past the 15 s after which its protons are placed elsewhere, then restart it",
        thresholds: thresholds(0.99, 0.95, 10),
    },
    Drill {
        name: "lose-region",
        what: "SIGKILL the us-east agent and every replica it ran (the region is gone) for 30 s, then bring the agent back",
        thresholds: thresholds(0.99, 0.50, 15),
    },
    Drill {
        name: "full-disk",
        what: "fill the root leader's disk (a 256 MiB tmpfs) until it stops; free it and restart the node",
        thresholds: thresholds(0.95, 0.99, 10),
    },
    Drill {
        name: "clock-skew",
        what: "restart the root leader and scheduler s1 with their wall clocks 90 s ahead (libfaketime), for 15 s",
        thresholds: thresholds(0.95, 0.99, 10),
    },
    Drill {
        name: "restart-all",
        what: "SIGKILL every process at once, then start them all again from disk",
        thresholds: thresholds(0.60, 0.80, 15),
    },
];

/// What a drill did: when the fault began and ended (times of the load's clock) and what it
/// wants the report to say.
pub struct Done {
    pub fault: Duration,
    pub healed: Duration,
    pub notes: Vec<String>,
}

const OUTAGE: Duration = Duration::from_secs(10);

pub async fn run(
    name: &str,
    cluster: &mut Cluster,
    load: &Load,
    target: &Target,
    serving: &[String],
    whoami: &str,
) -> anyhow::Result<Done> {
    let mut notes = Vec::new();
    let (fault, healed) = match name {
        "kill-root-leader" | "kill-shard-leader" => {
            let group = if name == "kill-root-leader" { 0 } else { 1 };
            let leader = cluster.leader_of(group).await?;
            notes.push(format!("killed {leader}, the leader of group {group}"));
            let fault = load.now();
            cluster.signal(&leader, "KILL")?;
            tokio::time::sleep(OUTAGE).await;
            cluster.restart(&leader)?;
            (fault, load.now())
        }
        "gray-failure" => {
            let leader = cluster.leader_of(0).await?;
            notes.push(format!("stopped {leader} (root leader) for 8 s"));
            let fault = load.now();
            cluster.signal(&leader, "STOP")?;
            tokio::time::sleep(Duration::from_secs(8)).await;
            cluster.signal(&leader, "CONT")?;
            (fault, load.now())
        }
        "partition-leader" | "partition-follower" => {
            let leader = cluster.leader_of(0).await?;
            let node = if name == "partition-leader" {
                leader
            } else {
                let mut leaders = vec![leader];
                for group in 1..=2 {
                    leaders.push(cluster.leader_of(group).await?);
                }
                let followers: Vec<String> = cluster.names("meta-").into_iter().filter(|n| !leaders.contains(n)).collect();
                match followers.first() {
                    Some(follower) => follower.clone(),
                    None => {
                        notes.push("every meta node led a group; cut the last one".to_owned());
                        cluster.names("meta-").pop().context("meta nodes")?
                    }
                }
            };
            notes.push(format!("cut {node} off from the other processes for 10 s"));
            let minority = [node];
            let fault = load.now();
            cluster.split(&minority)?;
            tokio::time::sleep(OUTAGE).await;
            cluster.heal(&minority)?;
            (fault, load.now())
        }
        "partition-region" => {
            let leader = cluster.leader_of(0).await?;
            let minority = [leader.clone(), "agent-us-east".to_owned(), "gateway-1".to_owned()];
            notes.push(format!("cut region us-east ({}) off from the rest for 10 s", minority.join(", ")));
            let fault = load.now();
            cluster.split(&minority)?;
            tokio::time::sleep(OUTAGE).await;
            cluster.heal(&minority)?;
            (fault, load.now())
        }
        "kill-scheduler" => {
            let (status, artifact) = target.call(0, Method::POST, "/artifacts", Some(&whoami_artifact("chaos-v2", whoami))).await;
            anyhow::ensure!(status.is_some_and(|s| s.is_success()), "cannot create the replacement artifact: {artifact}");
            let body = json!({"artifactId": artifact["id"], "strategy": "rolling"});
            // The load rewrites the workload's description meanwhile: a conflict is retried.
            let mut started = (None, serde_json::Value::Null);
            for _ in 0..20 {
                started = target.call(0, Method::POST, &format!("/workloads/{}/replacement", serving[0]), Some(&body)).await;
                if started.0.is_some_and(|s| s.is_success()) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            anyhow::ensure!(started.0.is_some_and(|s| s.is_success()), "cannot start the replacement: {}", started.1);
            let fault = load.now();
            for scheduler in cluster.names("scheduler-") {
                tokio::time::sleep(Duration::from_secs(1)).await;
                cluster.signal(&scheduler, "KILL")?;
                tokio::time::sleep(Duration::from_secs(4)).await;
                cluster.restart(&scheduler)?;
            }
            let healed = load.now();
            let done = wait_until(Duration::from_secs(60), || async {
                let (_, w) = target.call(0, Method::GET, &format!("/workloads/{}", serving[0]), None).await;
                w["replacement"].is_null() && w["artifactId"] == artifact["id"]
            })
            .await;
            notes.push(if done {
                "the replacement completed".to_owned()
            } else {
                "the replacement did NOT complete within 60 s".to_owned()
            });
            anyhow::ensure!(done, "the replacement did not complete after the schedulers came back");
            (fault, healed)
        }
        "kill-agent" => {
            let fault = load.now();
            cluster.signal("agent-us-east", "KILL")?;
            tokio::time::sleep(OUTAGE).await;
            cluster.restart("agent-us-east")?;
            (fault, load.now())
        }
        "agent-away" => {
            let fault = load.now();
            cluster.signal("agent-us-east", "KILL")?;
            tokio::time::sleep(Duration::from_secs(25)).await;
            cluster.restart("agent-us-east")?;
            (fault, load.now())
        }
        "lose-region" => {
            let fault = load.now();
            cluster.signal("agent-us-east", "KILL")?;
            let killed = cluster.kill_replicas_of("agent-us-east");
            notes.push(format!("killed agent-us-east and its {killed} replica processes"));
            tokio::time::sleep(Duration::from_secs(30)).await;
            cluster.restart("agent-us-east")?;
            (fault, load.now())
        }
        "full-disk" => {
            let leader = cluster.leader_of(0).await?;
            let filler = cluster.data_dir(&leader).join("filler");
            let fault = load.now();
            tokio::task::block_in_place(|| fill(&filler))?;
            let mut stopped = false;
            for _ in 0..60 {
                stopped = cluster.exited(&leader);
                if stopped {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            notes.push(format!("filled {leader}'s disk; it {}", if stopped { "stopped" } else { "kept running" }));
            tokio::time::sleep(Duration::from_secs(5)).await;
            std::fs::remove_file(&filler)?;
            if !stopped {
                cluster.signal(&leader, "KILL")?;
            }
            cluster.restart(&leader)?;
            (fault, load.now())
        }
        "clock-skew" => {
            let leader = cluster.leader_of(0).await?;
            let fault = load.now();
            for member in [leader.as_str(), "scheduler-s1"] {
                cluster.signal(member, "KILL")?;
                cluster.skew_clock(member, Some("+90s"))?;
                cluster.restart(member)?;
            }
            notes.push(format!("{leader} and scheduler-s1 ran 90 s ahead"));
            tokio::time::sleep(Duration::from_secs(15)).await;
            for member in [leader.as_str(), "scheduler-s1"] {
                cluster.signal(member, "KILL")?;
                cluster.skew_clock(member, None)?;
                cluster.restart(member)?;
            }
            (fault, load.now())
        }
        "restart-all" => {
            let fault = load.now();
            let members: Vec<String> = ["meta-", "scheduler-", "agent-", "gateway-"].iter().flat_map(|p| cluster.names(p)).collect();
            for member in &members {
                cluster.signal(member, "KILL")?;
            }
            for member in &members {
                cluster.restart(member)?;
            }
            notes.push(format!("{} processes killed and started again", members.len()));
            (fault, load.now())
        }
        other => anyhow::bail!("no drill {other}; `nucleus-chaos list` names them"),
    };
    Ok(Done { fault, healed, notes })
}

/// Writes zeros into `path` until its disk is full.
fn fill(path: &std::path::Path) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(path)?;
    let chunk = vec![0u8; 1 << 20];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
    Ok(())
}

pub async fn wait_until<F, Fut>(within: Duration, check: F) -> bool
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}
