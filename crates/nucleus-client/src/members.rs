//! Which meta node to call for a group: its leader if we know it, else the known nodes in turn.
//! Each Raft group (root and shards) has its own leader, so hints are kept per group. A node that
//! cannot serve a call for a group it is a member of answers UNAVAILABLE with that group's leader
//! in the metadata entry `nucleus-leader-addr`; the next attempt goes there. A node that does not
//! host the group answers without a hint, and the next attempt tries another node.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use nucleus_proto::meta::v1::meta_client::MetaClient as Grpc;
use nucleus_proto::metadata::LEADER_ADDR;
use nucleus_tls::{Dialer, Role};
use tonic::transport::Channel;

use crate::Error;

#[derive(Debug)]
pub struct Members {
    seeds: Vec<String>,
    /// The seeds, then nodes learned from the root group's membership ([`Members::discovered`]):
    /// the seeds need not host every shard.
    known: Mutex<Vec<String>>,
    routes: Mutex<HashMap<u64, Route>>,
    channels: Mutex<HashMap<String, Grpc<Channel>>>,
    dialer: Dialer,
}

/// Where calls for one group go.
#[derive(Debug, Default)]
struct Route {
    /// The node that last served the group or that was named its leader.
    leader: Option<String>,
    /// Without a leader: the index in `known` to try next.
    next: usize,
}

impl Members {
    pub fn new(seeds: &[String], dialer: Dialer) -> Result<Members, Error> {
        if seeds.is_empty() {
            return Err(Error::Connect {
                service: "meta",
                addr: String::new(),
                message: "no meta address given; pass --meta host:port".to_owned(),
            });
        }
        let members = Members {
            seeds: seeds.to_vec(),
            known: Mutex::new(seeds.to_vec()),
            routes: Mutex::default(),
            channels: Mutex::default(),
            dialer,
        };
        for seed in seeds {
            members.channel(seed)?;
        }
        Ok(members)
    }

    pub fn seeds(&self) -> &[String] {
        &self.seeds
    }

    /// Adds nodes to try for groups without a leader hint (e.g. the root group's members).
    pub fn discovered<'a>(&self, addrs: impl IntoIterator<Item = &'a str>) {
        let mut known = lock(&self.known);
        for addr in addrs {
            if !addr.is_empty() && !known.iter().any(|k| k == addr) {
                known.push(addr.to_owned());
            }
        }
    }

    /// The node to call next for `group`, and a client for it.
    pub fn target(&self, group: u64) -> Result<(String, Grpc<Channel>), Error> {
        let addr = {
            let mut routes = lock(&self.routes);
            let route = routes.entry(group).or_default();
            match &route.leader {
                Some(leader) => leader.clone(),
                None => {
                    let known = lock(&self.known);
                    known[route.next % known.len()].clone()
                }
            }
        };
        let grpc = self.channel(&addr)?;
        Ok((addr, grpc))
    }

    pub fn succeeded(&self, group: u64, addr: &str) {
        lock(&self.routes).entry(group).or_default().leader = Some(addr.to_owned());
    }

    /// Records a failed call for `group` to `addr`. Returns true if the failure named another node
    /// to try.
    pub fn failed(&self, group: u64, addr: &str, status: &tonic::Status) -> bool {
        let hint = status
            .metadata()
            .get(LEADER_ADDR)
            .and_then(|v| v.to_str().ok())
            .filter(|hint| !hint.is_empty() && *hint != addr)
            .map(str::to_owned);
        let mut routes = lock(&self.routes);
        let route = routes.entry(group).or_default();
        match hint {
            Some(leader) => {
                route.leader = Some(leader);
                true
            }
            None => {
                // Past the node that failed, if it is one we rotate over.
                let known = lock(&self.known);
                route.leader = None;
                route.next = known.iter().position(|k| k == addr).unwrap_or(route.next) + 1;
                false
            }
        }
    }

    fn channel(&self, addr: &str) -> Result<Grpc<Channel>, Error> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(grpc) = channels.get(addr) {
            return Ok(grpc.clone());
        }
        let endpoint = self
            .dialer
            .endpoint(addr)
            .map_err(|e| Error::Connect { service: "meta", addr: addr.to_owned(), message: e.to_string() })?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        let grpc = Grpc::new(self.dialer.connect_lazy(endpoint, Role::Meta));
        channels.insert(addr.to_owned(), grpc.clone());
        Ok(grpc)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable(leader: Option<&str>) -> tonic::Status {
        let mut status = tonic::Status::unavailable("not leader");
        if let Some(leader) = leader {
            status.metadata_mut().insert(LEADER_ADDR, leader.parse().unwrap());
        }
        status
    }

    #[tokio::test]
    async fn follows_the_leader_hint_then_rotates_seeds() {
        let seeds = vec!["127.0.0.1:1".to_owned(), "127.0.0.1:2".to_owned()];
        let members = Members::new(&seeds, Dialer::plaintext()).unwrap();
        assert_eq!(members.target(0).unwrap().0, "127.0.0.1:1");
        assert!(members.failed(0, "127.0.0.1:1", &unavailable(Some("127.0.0.1:3"))));
        assert_eq!(members.target(0).unwrap().0, "127.0.0.1:3", "goes to the named leader, even if not a seed");
        assert!(!members.failed(0, "127.0.0.1:3", &unavailable(None)));
        assert_eq!(members.target(0).unwrap().0, "127.0.0.1:2", "no hint: next seed");
        members.succeeded(0, "127.0.0.1:2");
        assert_eq!(members.target(0).unwrap().0, "127.0.0.1:2", "sticks to a node that served");
        assert!(!members.failed(0, "127.0.0.1:2", &tonic::Status::not_found("group not hosted here")));
        assert_eq!(members.target(0).unwrap().0, "127.0.0.1:1", "wraps around");
    }

    #[tokio::test]
    async fn hints_are_independent_per_group() {
        let seeds = vec!["127.0.0.1:1".to_owned(), "127.0.0.1:2".to_owned()];
        let members = Members::new(&seeds, Dialer::plaintext()).unwrap();
        members.succeeded(0, "127.0.0.1:2");
        assert!(members.failed(3, "127.0.0.1:1", &unavailable(Some("127.0.0.1:4"))));
        assert_eq!(members.target(0).unwrap().0, "127.0.0.1:2");
        assert_eq!(members.target(3).unwrap().0, "127.0.0.1:4");
        assert_eq!(members.target(5).unwrap().0, "127.0.0.1:1", "a group never seen starts at the seeds");
        assert!(!members.failed(5, "127.0.0.1:1", &tonic::Status::not_found("group not hosted here")));
        assert_eq!(members.target(5).unwrap().0, "127.0.0.1:2");
        assert_eq!(members.target(0).unwrap().0, "127.0.0.1:2", "other groups keep their leader");
        assert_eq!(members.target(3).unwrap().0, "127.0.0.1:4");
    }

    #[tokio::test]
    async fn tries_discovered_nodes_after_the_seeds() {
        let members = Members::new(&["127.0.0.1:1".to_owned()], Dialer::plaintext()).unwrap();
        members.discovered(["127.0.0.1:1", "127.0.0.1:2", ""]);
        assert!(!members.failed(7, "127.0.0.1:1", &tonic::Status::not_found("group not hosted here")));
        assert_eq!(members.target(7).unwrap().0, "127.0.0.1:2");
        assert!(!members.failed(7, "127.0.0.1:2", &tonic::Status::unavailable("no leader yet")));
        assert_eq!(members.target(7).unwrap().0, "127.0.0.1:1");
    }

    #[test]
    fn needs_an_address() {
        assert!(Members::new(&[], Dialer::plaintext()).is_err());
    }
}
