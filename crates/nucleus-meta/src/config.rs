//! What a metadata node is told at start, and the Raft timings derived from it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use openraft::{Config, SnapshotPolicy};

use crate::error::Error;

/// Default number of log entries since the last snapshot that triggers a new one.
pub const DEFAULT_SNAPSHOT_AFTER_LOGS: u64 = 5000;
/// Default number of shard groups of a new cluster.
pub const DEFAULT_SHARDS: u64 = 16;
/// Upper bound on the shard count: every node runs a Raft instance per shard.
pub const MAX_SHARDS: u64 = 256;
/// Replicas of each shard group (fewer while the cluster has fewer nodes).
pub const SHARD_REPLICAS: usize = 3;

/// Default number of revisions the change log keeps for watches that resume from a revision.
pub const DEFAULT_WATCH_HISTORY: u64 = 10_000;

/// Default interval of a leader's heartbeats: right for voters in one region (round trips of a few
/// milliseconds). Election timeouts are 3 to 6 heartbeats.
pub const DEFAULT_RAFT_HEARTBEAT: Duration = Duration::from_millis(100);
/// The heartbeats a node accepts: an AppendEntries must fit in one (openraft times it out after a
/// heartbeat interval), and an election takes 3 to 6 of them.
const RAFT_HEARTBEAT_RANGE: std::ops::RangeInclusive<Duration> = Duration::from_millis(50)..=Duration::from_millis(2000);

#[derive(Debug, Clone)]
pub struct MetaConfig {
    pub node_id: u64,
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// `host:port` other nodes and clients reach this node at. `None`: the bound address, with
    /// 127.0.0.1 in place of an unspecified IP (0.0.0.0 / [::]).
    pub advertise: Option<String>,
    /// `host:port` of existing members to join through on first start. Empty: bootstrap a new
    /// one-member group. Ignored once this node has Raft state.
    pub join: Vec<String>,
    /// Log entries since the last snapshot that trigger a new one (tests lower it to exercise
    /// snapshot transfer).
    pub snapshot_after_logs: u64,
    /// Run RocksDB's synced log writes on the Raft task itself instead of tokio's blocking pool.
    /// Off in production (an fsync must not stall a runtime thread). The deterministic simulation
    /// turns it on: a blocking-pool thread finishes in real time, outside the simulated clock and
    /// scheduler, so whether a write completed within a simulation step would depend on the disk.
    pub inline_storage_writes: bool,
    /// Revisions of changes kept for watches that start from a revision; a watch from further
    /// back is told it was compacted and re-lists.
    pub watch_history: u64,
    /// Shard groups of a cluster this node creates (bootstrap). A joining node takes the
    /// cluster's count, and a restarted node the one it recorded; this is ignored for both.
    pub shards: u64,
    /// The node's certificate: it serves and dials other nodes with mutual TLS. None: plaintext
    /// (`--insecure`, and tests of one process).
    pub tls: Option<std::sync::Arc<nucleus_tls::LiveTls>>,
    /// The leader's heartbeat interval ([`DEFAULT_RAFT_HEARTBEAT`]); voters in several regions need
    /// about 1.5 times their largest round trip (docs/deploy.md).
    pub raft_heartbeat: Duration,
}

impl MetaConfig {
    /// A node that bootstraps its own group, advertises its bound address, snapshots every
    /// [`DEFAULT_SNAPSHOT_AFTER_LOGS`] entries and keeps [`DEFAULT_WATCH_HISTORY`] revisions of changes.
    pub fn new(node_id: u64, data_dir: impl Into<PathBuf>, listen: SocketAddr) -> MetaConfig {
        MetaConfig {
            node_id,
            data_dir: data_dir.into(),
            listen,
            advertise: None,
            join: Vec::new(),
            snapshot_after_logs: DEFAULT_SNAPSHOT_AFTER_LOGS,
            inline_storage_writes: false,
            watch_history: DEFAULT_WATCH_HISTORY,
            shards: DEFAULT_SHARDS,
            tls: None,
            raft_heartbeat: DEFAULT_RAFT_HEARTBEAT,
        }
    }

    /// The address that goes into the group's membership for this node.
    pub(crate) fn advertise_addr(&self, bound: SocketAddr) -> Result<String, Error> {
        match &self.advertise {
            Some(addr) if addr.trim().is_empty() => Err(Error::Config("advertise address is empty".to_owned())),
            Some(addr) => Ok(addr.trim().to_owned()),
            None if bound.ip().is_unspecified() => Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), bound.port()).to_string()),
            None => Ok(bound.to_string()),
        }
    }

    pub(crate) fn raft_config(&self) -> Result<Config, Error> {
        if self.shards == 0 || self.shards > MAX_SHARDS {
            return Err(Error::Config(format!("shards must be between 1 and {MAX_SHARDS}, got {}", self.shards)));
        }
        if self.snapshot_after_logs == 0 {
            return Err(Error::Config("snapshot_after_logs must be at least 1".to_owned()));
        }
        if !RAFT_HEARTBEAT_RANGE.contains(&self.raft_heartbeat) {
            return Err(Error::Config(format!(
                "the Raft heartbeat must be between {:?} and {:?}, got {:?}: about 1.5 times the largest round trip between meta nodes",
                RAFT_HEARTBEAT_RANGE.start(),
                RAFT_HEARTBEAT_RANGE.end(),
                self.raft_heartbeat
            )));
        }
        let heartbeat = u64::try_from(self.raft_heartbeat.as_millis()).unwrap_or(u64::MAX);
        let config = Config {
            cluster_name: "nucleus-meta".to_owned(),
            // A follower campaigns once the leader's lease (election_timeout_max since the last
            // heartbeat) and its own election timeout have passed: with the default 100 ms
            // heartbeat 0.9-1.2 s after a leader crash, so even a split vote (one more timeout)
            // ends within the 3 s writes may pause. Three heartbeats fit in the shortest timeout.
            heartbeat_interval: heartbeat,
            election_timeout_min: 3 * heartbeat,
            election_timeout_max: 6 * heartbeat,
            // Append entries and heartbeats time out after heartbeat_interval (openraft's rule);
            // a snapshot (one chunk per RPC) gets much longer.
            install_snapshot_timeout: 10_000,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_after_logs),
            max_in_snapshot_log_to_keep: self.snapshot_after_logs / 5,
            ..Default::default()
        };
        config.validate().map_err(|e| Error::Config(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertise_defaults_to_bound_address_with_loopback_for_wildcards() {
        let config = MetaConfig::new(1, "/tmp/x", "0.0.0.0:0".parse().unwrap());
        assert_eq!(config.advertise_addr("0.0.0.0:7001".parse().unwrap()).unwrap(), "127.0.0.1:7001");
        assert_eq!(config.advertise_addr("[::]:7001".parse().unwrap()).unwrap(), "127.0.0.1:7001");
        assert_eq!(config.advertise_addr("10.1.2.3:7001".parse().unwrap()).unwrap(), "10.1.2.3:7001");
        let config = MetaConfig { advertise: Some("meta-1:7001".into()), ..config };
        assert_eq!(config.advertise_addr("0.0.0.0:7001".parse().unwrap()).unwrap(), "meta-1:7001");
        let config = MetaConfig { advertise: Some(" ".into()), ..config };
        assert!(config.advertise_addr("0.0.0.0:7001".parse().unwrap()).is_err());
    }

    #[test]
    fn raft_timings_allow_fast_failover() {
        let raft = MetaConfig::new(1, "/tmp/x", "127.0.0.1:0".parse().unwrap()).raft_config().unwrap();
        assert!(raft.heartbeat_interval * 3 <= raft.election_timeout_min);
        assert!(raft.election_timeout_max <= 1000);
        assert!(raft.install_snapshot_timeout > raft.election_timeout_max);
    }

    #[test]
    fn a_longer_heartbeat_stretches_the_election_timeouts_and_nonsense_is_refused() {
        let config =
            MetaConfig { raft_heartbeat: Duration::from_millis(250), ..MetaConfig::new(1, "/tmp/x", "127.0.0.1:0".parse().unwrap()) };
        let raft = config.raft_config().unwrap();
        assert_eq!((raft.heartbeat_interval, raft.election_timeout_min, raft.election_timeout_max), (250, 750, 1500));
        for wrong in [Duration::from_millis(10), Duration::from_secs(5)] {
            let err = MetaConfig { raft_heartbeat: wrong, ..config.clone() }.raft_config().expect_err("out of range");
            assert!(err.to_string().contains("round trip"), "{err}");
        }
    }
}
