//! Faults of the scheduler simulation, drawn from the seed: crashed and isolated schedulers (cut
//! off from meta while they still reach agents: the stale-lease case), crashed and isolated
//! agents, crashed and isolated meta nodes.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use rand::Rng;
use rand::rngs::StdRng;

use super::hosts::{agent_host, scheduler_host};
use crate::harness::cluster::host_name;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Host {
    Meta(u64),
    Scheduler(u64),
    Agent(u64),
}

impl Host {
    pub fn name(self) -> String {
        match self {
            Host::Meta(i) => host_name(i),
            Host::Scheduler(i) => scheduler_host(i),
            Host::Agent(i) => agent_host(i),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Fault {
    Crash(Host),
    Restart(Host),
    /// Cut `host` off from every host in `from`.
    Isolate {
        host: Host,
        from: Vec<Host>,
        what: &'static str,
    },
    Heal,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Crash(host) => write!(f, "crash {}", host.name()),
            Fault::Restart(host) => write!(f, "restart {}", host.name()),
            Fault::Isolate { host, what, .. } => write!(f, "isolate {} from {what}", host.name()),
            Fault::Heal => write!(f, "heal partitions"),
        }
    }
}

pub struct Nemesis {
    rng: StdRng,
    metas: Vec<Host>,
    schedulers: Vec<Host>,
    agents: Vec<Host>,
    crashed: BTreeSet<Host>,
}

impl Nemesis {
    pub fn new(rng: StdRng, metas: u64, schedulers: u64, agents: u64) -> Nemesis {
        Nemesis {
            rng,
            metas: (1..=metas).map(Host::Meta).collect(),
            schedulers: (1..=schedulers).map(Host::Scheduler).collect(),
            agents: (1..=agents).map(Host::Agent).collect(),
            crashed: BTreeSet::new(),
        }
    }

    /// Pause before the next fault.
    pub fn pause(&mut self) -> Duration {
        Duration::from_millis(self.rng.random_range(500..2000))
    }

    fn pick(&mut self, hosts: &[Host]) -> Host {
        hosts[self.rng.random_range(0..hosts.len())]
    }

    pub fn next(&mut self) -> Fault {
        // A crashed host comes back before anything else goes down, so faults do not pile up.
        if let Some(&down) = self.crashed.first()
            && self.rng.random_bool(0.5)
        {
            return Fault::Restart(down);
        }
        let (metas, schedulers, agents) = (self.metas.clone(), self.schedulers.clone(), self.agents.clone());
        let fault = match self.rng.random_range(0..100) {
            0..15 => Fault::Crash(self.pick(&schedulers)),
            15..35 => Fault::Isolate { host: self.pick(&schedulers), from: metas, what: "meta (agents still reachable)" },
            35..45 => Fault::Isolate { host: self.pick(&schedulers), from: agents, what: "the agents" },
            45..55 => Fault::Crash(self.pick(&agents)),
            55..65 => Fault::Isolate { host: self.pick(&agents), from: schedulers, what: "the schedulers" },
            65..75 => Fault::Crash(self.pick(&metas)),
            75..85 => {
                let host = self.pick(&metas);
                let others = metas.into_iter().filter(|m| *m != host).collect();
                Fault::Isolate { host, from: others, what: "the other meta nodes" }
            }
            _ => Fault::Heal,
        };
        // One host down at a time.
        match (fault, self.crashed.first()) {
            (Fault::Crash(_), Some(&down)) => Fault::Restart(down),
            (fault, _) => fault,
        }
    }

    pub fn apply(&mut self, sim: &mut turmoil::Sim<'_>, fault: &Fault) {
        match fault {
            Fault::Crash(host) => {
                sim.crash(host.name());
                self.crashed.insert(*host);
            }
            Fault::Restart(host) => {
                sim.bounce(host.name());
                self.crashed.remove(host);
            }
            Fault::Isolate { host, from, .. } => {
                for other in from {
                    sim.partition(host.name(), other.name());
                }
            }
            Fault::Heal => self.repair_all(sim),
        }
    }

    fn hosts(&self) -> Vec<Host> {
        self.metas.iter().chain(&self.schedulers).chain(&self.agents).copied().collect()
    }

    fn repair_all(&self, sim: &mut turmoil::Sim<'_>) {
        let hosts = self.hosts();
        for (i, a) in hosts.iter().enumerate() {
            for b in &hosts[i + 1..] {
                sim.repair(a.name(), b.name());
            }
        }
    }

    /// Ends every fault: links repaired, crashed hosts restarted.
    pub fn heal_all(&mut self, sim: &mut turmoil::Sim<'_>) {
        self.repair_all(sim);
        for host in std::mem::take(&mut self.crashed) {
            sim.bounce(host.name());
        }
    }
}
