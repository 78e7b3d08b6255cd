//! Faults, drawn from the seed: partitions (symmetric, one-way, leader isolation), crashes and
//! restarts (the RocksDB directory is kept), and message latency changes.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;

use super::cluster::{Shared, host_name};

#[derive(Debug, Clone)]
pub enum Fault {
    /// Cut `node` off from the other meta nodes (and from the clients when `clients`).
    Isolate {
        node: u64,
        clients: bool,
        leader: bool,
    },
    /// Drop messages from `from` to `to` only.
    OneWay {
        from: u64,
        to: u64,
    },
    Crash {
        node: u64,
    },
    Restart {
        node: u64,
    },
    /// Every link's latency bound (turmoil draws each message's latency up to it).
    Latency {
        max: Duration,
    },
    /// A slow link between two meta nodes.
    SlowLink {
        a: u64,
        b: u64,
        latency: Duration,
    },
    Heal,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Isolate { node, clients, leader } => {
                let who = if *leader { "leader " } else { "" };
                let from = if *clients { "everyone" } else { "the other meta nodes" };
                write!(f, "isolate {who}meta-{node} from {from}")
            }
            Fault::OneWay { from, to } => write!(f, "drop meta-{from} -> meta-{to}"),
            Fault::Crash { node } => write!(f, "crash meta-{node}"),
            Fault::Restart { node } => write!(f, "restart meta-{node}"),
            Fault::Latency { max } => write!(f, "max latency {max:?}"),
            Fault::SlowLink { a, b, latency } => write!(f, "meta-{a} <-> meta-{b} latency {latency:?}"),
            Fault::Heal => write!(f, "heal partitions"),
        }
    }
}

pub struct Nemesis {
    rng: StdRng,
    nodes: Vec<u64>,
    pub crashed: BTreeSet<u64>,
}

impl Nemesis {
    pub fn new(rng: StdRng, nodes: u64) -> Nemesis {
        Nemesis { rng, nodes: (1..=nodes).collect(), crashed: BTreeSet::new() }
    }

    /// Pause before the next fault.
    pub fn pause(&mut self) -> Duration {
        Duration::from_millis(self.rng.random_range(300..1500))
    }

    pub fn next(&mut self, observed: &Shared) -> Fault {
        let node = *self.nodes.choose(&mut self.rng).expect("nodes");
        match self.rng.random_range(0..100) {
            0..20 => {
                let leader = observed.borrow().latest_leader.map(|(_, id)| id);
                Fault::Isolate { node: leader.unwrap_or(node), clients: self.rng.random_bool(0.3), leader: leader.is_some() }
            }
            20..32 => Fault::Isolate { node, clients: self.rng.random_bool(0.3), leader: false },
            32..47 => {
                let others: Vec<u64> = self.nodes.iter().copied().filter(|n| *n != node).collect();
                Fault::OneWay { from: node, to: *others.choose(&mut self.rng).expect("others") }
            }
            47..60 => match self.crashed.first() {
                Some(&down) => Fault::Restart { node: down },
                None => Fault::Crash { node },
            },
            60..70 => Fault::Latency { max: Duration::from_millis(self.rng.random_range(1..80)) },
            70..78 => {
                let others: Vec<u64> = self.nodes.iter().copied().filter(|n| *n != node).collect();
                let b = *others.choose(&mut self.rng).expect("others");
                Fault::SlowLink { a: node, b, latency: Duration::from_millis(self.rng.random_range(20..300)) }
            }
            _ => Fault::Heal,
        }
    }

    pub fn apply(&mut self, sim: &mut turmoil::Sim<'_>, fault: &Fault, clients: &[String], observed: &Shared) {
        match *fault {
            Fault::Isolate { node, clients: cut_clients, .. } => {
                for other in self.nodes.iter().filter(|n| **n != node) {
                    sim.partition(host_name(node), host_name(*other));
                }
                if cut_clients {
                    for client in clients {
                        sim.partition(host_name(node), client.as_str());
                    }
                }
            }
            Fault::OneWay { from, to } => sim.partition_oneway(host_name(from), host_name(to)),
            Fault::Crash { node } => {
                sim.crash(host_name(node));
                self.crashed.insert(node);
                observed.borrow_mut().replicas.retain(|(id, _), _| *id != node);
            }
            Fault::Restart { node } => {
                sim.bounce(host_name(node));
                self.crashed.remove(&node);
            }
            Fault::Latency { max } => sim.set_max_message_latency(max),
            Fault::SlowLink { a, b, latency } => sim.set_link_max_message_latency(host_name(a), host_name(b), latency),
            Fault::Heal => self.repair_all(sim, clients),
        }
    }

    fn repair_all(&self, sim: &mut turmoil::Sim<'_>, clients: &[String]) {
        let mut hosts: Vec<String> = self.nodes.iter().map(|n| host_name(*n)).collect();
        hosts.extend(clients.iter().cloned());
        for (i, a) in hosts.iter().enumerate() {
            for b in &hosts[i + 1..] {
                sim.repair(a.as_str(), b.as_str());
            }
        }
    }

    /// Ends every fault: links repaired and fast again, crashed nodes restarted.
    pub fn heal_all(&mut self, sim: &mut turmoil::Sim<'_>, clients: &[String], base_latency: Duration) {
        self.repair_all(sim, clients);
        sim.set_max_message_latency(base_latency);
        for a in &self.nodes {
            for b in self.nodes.iter().filter(|b| *b > a) {
                sim.set_link_max_message_latency(host_name(*a), host_name(*b), base_latency);
            }
        }
        for node in std::mem::take(&mut self.crashed) {
            sim.bounce(host_name(node));
        }
    }
}
