//! What tests across the workspace share: a real meta node and a client for it, a gateway's REST
//! API called in process over it, polling until a condition holds, and sending a signal. Tests only (`publish = false`, never a normal
//! dependency of a shipped crate).
//!
//! Its own `tests/` hold the scheduler's tests against a real meta node, so that
//! `cargo test -p nucleus-scheduler` (pure placement, plans, leases' plan) builds without RocksDB.

mod rest;

pub use rest::Rest;

use std::future::Future;
use std::time::Duration;

use nucleus_client::MetaClient;
use nucleus_meta::{MetaConfig, MetaNode};

/// One meta node on a loopback port, in a temporary data dir, and a client for it.
pub struct Meta {
    pub node: MetaNode,
    pub client: MetaClient,
    _dir: tempfile::TempDir,
}

impl Meta {
    /// A single-node cluster with `shards` shard groups.
    pub async fn start(shards: u64) -> Meta {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = MetaConfig { shards, ..MetaConfig::new(1, dir.path(), "127.0.0.1:0".parse().expect("loopback")) };
        let node = MetaNode::start(config).await.expect("meta node starts");
        let client = MetaClient::new(&[node.addr().to_string()], &nucleus_tls::Dialer::plaintext()).expect("client for the node");
        Meta { node, client, _dir: dir }
    }

    /// The node's `host:port`.
    pub fn addr(&self) -> String {
        self.node.addr().to_string()
    }
}

/// Polls `probe` every 50 ms until it yields a value; panics naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `signal` to process `pid` (nothing happens if it is gone).
#[allow(unsafe_code)]
pub fn send_signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, signal);
    }
}
