//! Which meta node to call: the leader if we know it, else the configured addresses in turn.
//! Nodes that cannot serve a call answer UNAVAILABLE with the leader's address in the metadata
//! entry `nucleus-leader-addr`; the next attempt goes there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use nucleus_proto::meta::v1::meta_client::MetaClient as Grpc;
use tonic::transport::{Channel, Endpoint};

use crate::Error;

pub const LEADER_ADDR_HEADER: &str = "nucleus-leader-addr";

#[derive(Debug)]
pub struct Members {
    seeds: Vec<String>,
    next_seed: AtomicUsize,
    /// The node that last served us or that was named leader.
    preferred: Mutex<Option<String>>,
    channels: Mutex<HashMap<String, Grpc<Channel>>>,
}

impl Members {
    pub fn new(seeds: &[String]) -> Result<Members, Error> {
        if seeds.is_empty() {
            return Err(Error::Connect {
                service: "meta",
                addr: String::new(),
                message: "no meta address given; pass --meta host:port".to_owned(),
            });
        }
        let members = Members {
            seeds: seeds.to_vec(),
            next_seed: AtomicUsize::new(0),
            preferred: Mutex::new(None),
            channels: Mutex::default(),
        };
        for seed in seeds {
            members.channel(seed)?;
        }
        Ok(members)
    }

    pub fn seeds(&self) -> &[String] {
        &self.seeds
    }

    /// The node to call next, and a client for it.
    pub fn target(&self) -> Result<(String, Grpc<Channel>), Error> {
        let preferred = self.preferred.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let addr = preferred.unwrap_or_else(|| {
            let i = self.next_seed.load(Ordering::Relaxed) % self.seeds.len();
            self.seeds[i].clone()
        });
        let grpc = self.channel(&addr)?;
        Ok((addr, grpc))
    }

    pub fn succeeded(&self, addr: &str) {
        *self.preferred.lock().unwrap_or_else(|p| p.into_inner()) = Some(addr.to_owned());
    }

    /// Records a failed call to `addr`. Returns true if the failure named another node to try.
    pub fn failed(&self, addr: &str, status: &tonic::Status) -> bool {
        let hint = status
            .metadata()
            .get(LEADER_ADDR_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|hint| !hint.is_empty() && *hint != addr)
            .map(str::to_owned);
        let mut preferred = self.preferred.lock().unwrap_or_else(|p| p.into_inner());
        match hint {
            Some(leader) => {
                *preferred = Some(leader);
                true
            }
            None => {
                *preferred = None;
                self.next_seed.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    fn channel(&self, addr: &str) -> Result<Grpc<Channel>, Error> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(grpc) = channels.get(addr) {
            return Ok(grpc.clone());
        }
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Error::Connect { service: "meta", addr: addr.to_owned(), message: e.to_string() })?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true);
        let grpc = Grpc::new(endpoint.connect_lazy());
        channels.insert(addr.to_owned(), grpc.clone());
        Ok(grpc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unavailable(leader: Option<&str>) -> tonic::Status {
        let mut status = tonic::Status::unavailable("not leader");
        if let Some(leader) = leader {
            status.metadata_mut().insert(LEADER_ADDR_HEADER, leader.parse().unwrap());
        }
        status
    }

    #[tokio::test]
    async fn follows_the_leader_hint_then_rotates_seeds() {
        let seeds = vec!["127.0.0.1:1".to_owned(), "127.0.0.1:2".to_owned()];
        let members = Members::new(&seeds).unwrap();
        assert_eq!(members.target().unwrap().0, "127.0.0.1:1");
        assert!(members.failed("127.0.0.1:1", &unavailable(Some("127.0.0.1:3"))));
        assert_eq!(members.target().unwrap().0, "127.0.0.1:3", "goes to the named leader, even if not a seed");
        assert!(!members.failed("127.0.0.1:3", &unavailable(None)));
        assert_eq!(members.target().unwrap().0, "127.0.0.1:2", "no hint: next seed");
        members.succeeded("127.0.0.1:2");
        assert_eq!(members.target().unwrap().0, "127.0.0.1:2", "sticks to a node that served");
    }

    #[test]
    fn needs_an_address() {
        assert!(Members::new(&[]).is_err());
    }
}
