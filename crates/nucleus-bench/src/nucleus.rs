//! The Nucleus side: N real `nucleus meta` processes on loopback, and puts through `MetaClient`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use nucleus_client::{MetaClient, Txn, WriteOutcome};

use crate::load::Putter;
use crate::procs::{Processes, free_ports};
use crate::progress;

/// A running meta group; its processes die with it.
pub struct Cluster {
    pub addrs: Vec<String>,
    procs: Processes,
}

impl Cluster {
    /// Starts node 1 (which bootstraps the group), then nodes 2..=n joining through node 1, each
    /// awaited until it says `serving on`.
    pub fn start(nucleus: &Path, nodes: usize, shards: u64) -> anyhow::Result<Cluster> {
        let mut procs = Processes::new("nucleus")?;
        let addrs: Vec<String> = free_ports(nodes)?.into_iter().map(|p| format!("127.0.0.1:{p}")).collect();
        for (i, addr) in addrs.iter().enumerate() {
            let id = i + 1;
            let name = format!("meta-{id}");
            let data = procs.dir().join(&name);
            let mut args: Vec<String> = vec![
                "meta".into(),
                "--id".into(),
                id.to_string(),
                "--listen".into(),
                addr.clone(),
                "--data-dir".into(),
                data.to_string_lossy().into_owned(),
                "--shards".into(),
                shards.to_string(),
            ];
            if i > 0 {
                args.extend(["--join".into(), addrs[0].clone()]);
            }
            procs.spawn(&name, nucleus, &args)?;
            procs.wait_for_log(&name, "serving on", Duration::from_secs(60))?;
            progress(&format!("nucleus meta {id} serving on {addr}"));
        }
        Ok(Cluster { addrs, procs })
    }

    /// Waits until every group (root and shards) has `min(nodes, 3)` voters and a leader, and
    /// leadership is spread (as many nodes lead shards as there can be): measuring earlier would time the rebalancer's membership changes
    /// and leader hand-overs, not steady writes.
    pub async fn settled(&self, timeout: Duration) -> anyhow::Result<()> {
        let replicas = self.addrs.len().min(3);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut leaders = std::collections::BTreeSet::new();
            let mut settled = true;
            let mut shard_count = 0;
            for addr in &self.addrs {
                let Ok(status) = nucleus_client::node_status(addr, &nucleus_tls::Dialer::plaintext()).await else {
                    settled = false;
                    break;
                };
                let hosted = status.groups.iter().filter(|g| g.voter_ids.contains(&status.node_id));
                for group in hosted {
                    settled &= group.voter_ids.len() == replicas && group.leader_id.is_some();
                    if group.group_id != 0 && group.state == "leader" {
                        leaders.insert(status.node_id);
                    }
                }
                settled &= status.shard_count > 0;
                shard_count = status.shard_count;
            }
            if settled && leaders.len() as u64 == (self.addrs.len() as u64).min(shard_count) {
                return Ok(());
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "the meta cluster did not settle within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `nucleus meta status` of the group, as that command prints it.
    pub fn status(&self, nucleus: &Path) -> anyhow::Result<String> {
        let output = Command::new(nucleus)
            .args(["meta", "status", "--meta", &self.addrs.join(",")])
            .output()
            .context("running nucleus meta status")?;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Ok(text)
    }

    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.procs.check_alive()
    }

    pub fn data_dir(&self) -> &Path {
        self.procs.dir()
    }
}

/// Puts through the regular client, which routes every call to the leader.
pub struct NucleusPutter {
    client: MetaClient,
    /// The JSON string written at every key (see `load::json_string_value`).
    value: String,
}

impl NucleusPutter {
    pub fn new(addrs: &[String], value: String) -> anyhow::Result<NucleusPutter> {
        Ok(NucleusPutter { client: MetaClient::new(addrs, &nucleus_tls::Dialer::plaintext())?, value })
    }
}

impl Putter for NucleusPutter {
    /// `Txn` only has `put_json`, so the value is the JSON encoding of a string: the same bytes
    /// the etcd side writes (the load generator's `value` is ignored here).
    async fn put(&self, key: String, _value: Vec<u8>) -> anyhow::Result<()> {
        let txn = Txn::new().put_json(&key, &self.value)?;
        match self.client.write(txn).await? {
            WriteOutcome::Applied { .. } => Ok(()),
            WriteOutcome::Conflict { key } => anyhow::bail!("unconditional put conflicted on {key}"),
        }
    }
}
