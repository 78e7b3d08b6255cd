//! The etcd side: N `etcd` members on loopback (default durability: fsync on every commit), and
//! puts over etcd's own v3 gRPC API (`etcdserverpb.KV/Put`), sent to the leader.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tonic::transport::{Channel, Endpoint};

use crate::load::Putter;
use crate::procs::{Processes, free_ports, which};
use crate::progress;

#[allow(clippy::all)]
pub mod pb {
    tonic::include_proto!("etcdserverpb");
}

use pb::kv_client::KvClient;
use pb::maintenance_client::MaintenanceClient;

pub const INSTALL_HINT: &str = "etcd is not installed: run `apt-get install -y etcd-server` (Debian bookworm ships 3.4.23)";

/// The `etcd` binary: `explicit` if given, else the one on `PATH`.
pub fn find_etcd(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    match explicit {
        Some(path) if path.is_file() => Ok(path.to_owned()),
        Some(path) => bail!("--etcd {} does not exist (etcd from Debian: `apt-get install -y etcd-server`)", path.display()),
        None => which("etcd").context(INSTALL_HINT),
    }
}

/// A running etcd cluster; its processes die with it.
pub struct Cluster {
    /// Client URLs (`http://127.0.0.1:PORT`), one per member.
    pub client_urls: Vec<String>,
    procs: Processes,
}

impl Cluster {
    pub fn start(etcd: &Path, members: usize) -> anyhow::Result<Cluster> {
        let mut procs = Processes::new("etcd")?;
        let ports = free_ports(2 * members)?;
        let client_urls: Vec<String> = ports[..members].iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
        let peer_urls: Vec<String> = ports[members..].iter().map(|p| format!("http://127.0.0.1:{p}")).collect();
        let initial_cluster = peer_urls.iter().enumerate().map(|(i, url)| format!("m{}={url}", i + 1)).collect::<Vec<_>>().join(",");
        let token = format!("nucleus-bench-{}", std::process::id());
        for i in 0..members {
            let name = format!("m{}", i + 1);
            let data = procs.dir().join(&name).to_string_lossy().into_owned();
            let args: Vec<String> = [
                "--name",
                name.as_str(),
                "--data-dir",
                data.as_str(),
                "--listen-client-urls",
                client_urls[i].as_str(),
                "--advertise-client-urls",
                client_urls[i].as_str(),
                "--listen-peer-urls",
                peer_urls[i].as_str(),
                "--initial-advertise-peer-urls",
                peer_urls[i].as_str(),
                "--initial-cluster",
                initial_cluster.as_str(),
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                token.as_str(),
                "--logger",
                "zap",
                "--log-level",
                "warn",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            procs.spawn(&name, etcd, &args)?;
        }
        progress(&format!("etcd members starting, client URLs {}", client_urls.join(", ")));
        Ok(Cluster { client_urls, procs })
    }

    /// Waits until every member answers `Status` and they agree on a leader; returns the leader's
    /// client URL.
    pub async fn wait_for_leader(&mut self, within: Duration) -> anyhow::Result<String> {
        let deadline = Instant::now() + within;
        let mut last_problem = String::new();
        while Instant::now() < deadline {
            self.procs.check_alive()?;
            match self.leader().await {
                Ok(url) => return Ok(url),
                Err(err) => last_problem = format!("{err:#}"),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!("etcd cluster not healthy within {within:?}: {last_problem}")
    }

    async fn leader(&self) -> anyhow::Result<String> {
        let mut leader_url = None;
        let mut leaders = Vec::new();
        for url in &self.client_urls {
            let channel = Endpoint::from_shared(url.clone())?
                .connect_timeout(Duration::from_secs(1))
                .timeout(Duration::from_secs(2))
                .connect()
                .await
                .with_context(|| format!("connecting to {url}"))?;
            let status = MaintenanceClient::new(channel)
                .status(pb::StatusRequest {})
                .await
                .with_context(|| format!("status of {url}"))?
                .into_inner();
            let member = status.header.context("status without header")?.member_id;
            anyhow::ensure!(status.leader != 0, "{url} has no leader yet");
            leaders.push(status.leader);
            if status.leader == member {
                leader_url = Some(url.clone());
            }
        }
        leaders.sort_unstable();
        leaders.dedup();
        anyhow::ensure!(leaders.len() == 1, "members disagree on the leader: {leaders:?}");
        leader_url.context("no member says it is the leader")
    }

    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        self.procs.check_alive()
    }
}

/// Puts over one HTTP/2 channel to the leader (gRPC calls are multiplexed on it, as the Nucleus
/// client's are on its channel to the meta leader).
pub struct EtcdPutter {
    kv: KvClient<Channel>,
}

impl EtcdPutter {
    pub async fn connect(url: &str) -> anyhow::Result<EtcdPutter> {
        let channel = Endpoint::from_shared(url.to_owned())?.connect().await.with_context(|| format!("connecting to {url}"))?;
        Ok(EtcdPutter { kv: KvClient::new(channel) })
    }
}

impl Putter for EtcdPutter {
    async fn put(&self, key: String, value: Vec<u8>) -> anyhow::Result<()> {
        let mut request = tonic::Request::new(pb::PutRequest {
            key: key.into_bytes(),
            value,
            lease: 0,
            prev_kv: false,
            ignore_value: false,
            ignore_lease: false,
        });
        request.set_timeout(Duration::from_secs(10));
        self.kv.clone().put(request).await.context("etcd put")?;
        Ok(())
    }
}
