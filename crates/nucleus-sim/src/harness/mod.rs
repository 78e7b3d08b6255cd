//! The deterministic simulation of a meta group: three real [`MetaNode`](nucleus_meta::MetaNode)s
//! in turmoil hosts, clients recording a history, a seeded nemesis, then healing and the
//! invariant checks. One seed, one run: [`run_seed`].

mod client;
pub(crate) mod cluster;
mod nemesis;
mod net;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;

use self::client::{Conn, SharedHistory};
use self::cluster::{Observed, Replica, Shared, host_name};
use self::nemesis::Nemesis;
pub use self::net::TurmoilTransport;
use crate::{Budget, History, Verdict};

/// Knobs of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Meta nodes in the group.
    pub nodes: u64,
    /// Client hosts issuing operations.
    pub clients: u64,
    /// Keys the clients operate on.
    pub keys: usize,
    /// Simulated time the nemesis is active (clients run during it).
    pub chaos: Duration,
    /// Print every fault and the run's summary.
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { nodes: 3, clients: 3, keys: 3, chaos: Duration::from_secs(8), verbose: false }
    }
}

/// The simulated network's normal latency bound.
const BASE_LATENCY: Duration = Duration::from_millis(5);
/// Simulated time per step: coarser than turmoil's 1 ms default to run faster; Raft's timings
/// (100 ms heartbeats, 300-600 ms election timeouts) are far above it.
const TICK: Duration = Duration::from_millis(5);
/// Time allowed for node 1 to bootstrap and nodes 2.. to join.
pub(crate) const FORM_DEADLINE: Duration = Duration::from_secs(30);
/// After healing: pause before the final reads, their deadline, and the convergence deadline.
const SETTLE: Duration = Duration::from_secs(2);
const FINAL_READ_DEADLINE: Duration = Duration::from_secs(20);
const CONVERGE_DEADLINE: Duration = Duration::from_secs(15);
/// Search budget of the linearizability check (steps, so verdicts do not depend on the machine).
const CHECK_BUDGET: Budget = Budget::Steps(20_000_000);

/// What a passing run did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub seed: u64,
    pub operations: usize,
    pub unknown: usize,
    pub faults: usize,
    pub terms: usize,
    pub simulated: Duration,
    /// The history check ran out of budget (inconclusive, not a failure).
    pub check_timed_out: bool,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: ok, {} ops ({} unknown), {} faults, {} terms, {:.1}s simulated{}",
            self.seed,
            self.operations,
            self.unknown,
            self.faults,
            self.terms,
            self.simulated.as_secs_f64(),
            if self.check_timed_out { ", linearizability check ran out of budget" } else { "" }
        )
    }
}

/// A broken invariant, with what is needed to replay it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub seed: u64,
    pub invariant: &'static str,
    pub detail: String,
    /// The faults injected, in order, with their simulated times.
    pub faults: Vec<String>,
    /// The command that runs this seed again with the same options.
    pub replay: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seed {} FAILED: {}", self.seed, self.invariant)?;
        writeln!(f, "{}", self.detail)?;
        if !self.faults.is_empty() {
            writeln!(f, "faults:")?;
            for fault in &self.faults {
                writeln!(f, "  {fault}")?;
            }
        }
        write!(f, "replay: {}", self.replay)
    }
}

/// How the checker client ended.
#[derive(Debug, Clone, Default)]
enum Final {
    #[default]
    Running,
    Done,
    NoLeader(String),
    Diverged(String),
}

/// Runs one seed: forms the group, runs clients under the nemesis, heals, and checks.
pub fn run_seed(seed: u64, options: &Options) -> Result<Summary, Failure> {
    let fail = |invariant: &'static str, detail: String, faults: &[String]| Failure {
        seed,
        invariant,
        detail,
        faults: faults.to_vec(),
        replay: replay_command(seed, options),
    };
    let data = data_dir().map_err(|e| fail("harness", format!("temp dir: {e}"), &[]))?;
    let total = FORM_DEADLINE + options.chaos + SETTLE + FINAL_READ_DEADLINE + CONVERGE_DEADLINE + Duration::from_secs(30);
    let mut sim = simulation(seed, total);

    let observed: Shared = Rc::new(RefCell::new(Observed::default()));
    let history: SharedHistory = Rc::new(RefCell::new(History::new()));
    let formed = Rc::new(Cell::new(false));
    let stop = Rc::new(Cell::new(false));
    let ending = Rc::new(RefCell::new(Final::default()));

    for id in 1..=options.nodes {
        let root = data.path().to_owned();
        let observed = observed.clone();
        sim.host(host_name(id), move || cluster::software(id, root.clone(), observed.clone()));
    }
    let mut client_hosts = Vec::new();
    for client in 1..=options.clients {
        let name = format!("client-{client}");
        client_hosts.push(name.clone());
        let (formed, stop, history) = (formed.clone(), stop.clone(), history.clone());
        let (keys, nodes) = (options.keys, options.nodes);
        sim.client(name, async move {
            while !formed.get() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            client::run(client, seed, keys, nodes, stop, history).await
        });
    }
    client_hosts.push("checker".to_owned());
    {
        let (stop, history, observed, ending) = (stop.clone(), history.clone(), observed.clone(), ending.clone());
        let (keys, nodes) = (options.keys, options.nodes);
        sim.client("checker", async move {
            let result = final_checks(keys, nodes, stop, history, observed).await;
            *ending.borrow_mut() = result;
            Ok(())
        });
    }

    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(0x5EED));
    let mut nemesis = Nemesis::new(StdRng::seed_from_u64(rand::Rng::random(&mut rng)), options.nodes);
    let mut faults: Vec<String> = Vec::new();
    let mut chaos_until = None;
    let mut next_fault = Duration::ZERO;
    loop {
        let now = sim.elapsed();
        match chaos_until {
            None if group_formed(&observed, options.nodes) => {
                formed.set(true);
                chaos_until = Some(now + options.chaos);
                next_fault = now + nemesis.pause();
            }
            None if now > FORM_DEADLINE => {
                return Err(fail("group forms", format!("no {}-voter group after {now:?}", options.nodes), &faults));
            }
            None => {}
            Some(until) if !stop.get() && now >= until => {
                nemesis.heal_all(&mut sim, &client_hosts, BASE_LATENCY);
                faults.push(format!("{:>8.3}s heal everything, restart crashed nodes", now.as_secs_f64()));
                stop.set(true);
            }
            Some(_) if !stop.get() && now >= next_fault => {
                let fault = nemesis.next(&observed);
                if options.verbose {
                    eprintln!("{:>8.3}s {fault}", now.as_secs_f64());
                }
                faults.push(format!("{:>8.3}s {fault}", now.as_secs_f64()));
                nemesis.apply(&mut sim, &fault, &client_hosts, &observed);
                next_fault = now + nemesis.pause();
            }
            Some(_) => {}
        }
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => return Err(fail("simulation runs", format!("{e}"), &faults)),
        }
    }
    let simulated = sim.elapsed();
    drop(sim);

    // At most one leader per term.
    let observed = observed.borrow();
    if let Some(((group, term), leaders)) = observed.leaders.iter().find(|(_, leaders)| leaders.len() > 1) {
        let detail = format!("group {group} term {term} had leaders {leaders:?}");
        return Err(fail("at most one leader per term", detail, &faults));
    }
    // Every acknowledged write present after healing, and the history linearizable: the final
    // reads are part of the history.
    match ending.borrow().clone() {
        Final::Done => {}
        Final::Running => return Err(fail("checks complete", "the checker never finished".into(), &faults)),
        Final::NoLeader(detail) => return Err(fail("a leader serves reads after healing", detail, &faults)),
        Final::Diverged(detail) => return Err(fail("replicas converge", detail, &faults)),
    }
    let history = history.borrow();
    let operations = history.operations();
    let unknown = operations.iter().filter(|op| op.ret().is_none()).count();
    let verdict = history.check(CHECK_BUDGET).map_err(|e| fail("history is well-formed", e.to_string(), &faults))?;
    let check_timed_out = match verdict {
        Verdict::Linearizable => false,
        Verdict::Timeout { .. } => true,
        Verdict::NotLinearizable { key, explanation } => {
            return Err(fail("linearizable history", format!("key {key}:\n{explanation}"), &faults));
        }
    };
    Ok(Summary {
        seed,
        operations: operations.len(),
        unknown,
        faults: faults.len(),
        terms: observed.leaders.len(),
        simulated,
        check_timed_out,
    })
}

/// A simulation of `seed` lasting at most `duration`, on the network every run uses (1 ms to
/// [`BASE_LATENCY`] per message, [`TICK`] steps).
pub(crate) fn simulation<'a>(seed: u64, duration: Duration) -> turmoil::Sim<'a> {
    turmoil::Builder::new()
        .rng_seed(seed)
        .simulation_duration(duration)
        .min_message_latency(Duration::from_millis(1))
        .max_message_latency(BASE_LATENCY)
        .tick_duration(TICK)
        .build()
}

/// `cargo xtask sim --seed S` plus the options that differ from the defaults.
pub fn replay_command(seed: u64, options: &Options) -> String {
    let defaults = Options::default();
    let mut command = format!("cargo xtask sim --seed {seed}");
    if options.chaos != defaults.chaos {
        command.push_str(&format!(" --chaos-secs {}", options.chaos.as_secs()));
    }
    if options.clients != defaults.clients {
        command.push_str(&format!(" --clients {}", options.clients));
    }
    if options.keys != defaults.keys {
        command.push_str(&format!(" --keys {}", options.keys));
    }
    command
}

/// RocksDB directories on tmpfs when there is one: a turmoil crash keeps the page cache anyway,
/// so fsyncs to a real disk would only cost wall time.
pub(crate) fn data_dir() -> std::io::Result<tempfile::TempDir> {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new().prefix("nucleus-sim-").tempdir_in(shm)
    {
        return Ok(dir);
    }
    tempfile::Builder::new().prefix("nucleus-sim-").tempdir()
}

/// Every node reports every group with all nodes as voters (with 3 nodes, every group is placed
/// on all of them).
pub(crate) fn group_formed(observed: &Shared, nodes: u64) -> bool {
    let observed = observed.borrow();
    let groups = 0..=cluster::SHARDS;
    (1..=nodes).all(|id| groups.clone().all(|g| observed.voters.get(&(id, g)).is_some_and(|voters| voters.len() as u64 == nodes)))
}

/// Each node's last observed view of one group, by node id.
type GroupReplicas = Vec<(u64, Option<Replica>)>;

/// After the clients stop: read every key (recorded, so acknowledged writes must show), then
/// wait until every replica has applied the same state.
async fn final_checks(keys: usize, nodes: u64, stop: Rc<Cell<bool>>, history: SharedHistory, observed: Shared) -> Final {
    while !stop.get() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(SETTLE).await;
    let mut conn = Conn::new(nodes, 0);
    for i in 0..keys {
        let key = client::key(i);
        if client::recorded_read(&mut conn, &history, 0, &key, FINAL_READ_DEADLINE).await.is_none() {
            return Final::NoLeader(format!("no answer to a read of {key} within {FINAL_READ_DEADLINE:?} after healing"));
        }
    }
    let deadline = tokio::time::Instant::now() + CONVERGE_DEADLINE;
    loop {
        let diverged: Vec<(u64, GroupReplicas)> = (0..=cluster::SHARDS)
            .map(|group| {
                let replicas = (1..=nodes).map(|id| (id, observed.borrow().replicas.get(&(id, group)).cloned()));
                (group, replicas.collect::<Vec<_>>())
            })
            .filter(|(_, replicas)| {
                let first = replicas[0].1.clone();
                first.is_none() || replicas.iter().any(|(_, r)| *r != first)
            })
            .collect();
        if diverged.is_empty() {
            return Final::Done;
        }
        if tokio::time::Instant::now() >= deadline {
            let report: Vec<String> = diverged
                .iter()
                .flat_map(|(group, replicas)| {
                    replicas.iter().map(move |(id, r)| match r {
                        Some(r) => format!("group {group} meta-{id}: applied {} revision {} kvs {:?}", r.applied_index, r.revision, r.kvs),
                        None => format!("group {group} meta-{id}: not running"),
                    })
                })
                .collect();
            return Final::Diverged(format!("not converged {CONVERGE_DEADLINE:?} after healing:\n{}", report.join("\n")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `seeds` seeds on `threads` threads; returns the failures (each printed as it happens).
pub fn sweep(seeds: impl Iterator<Item = u64> + Send, options: &Options, threads: usize) -> Vec<Failure> {
    sweep_runs(seeds, threads, options.verbose, |seed| replay_command(seed, options), |seed| run_seed(seed, options))
}

/// Runs `run` for every seed on `threads` threads (a panic is a failure); returns the failures,
/// each printed as it happens, and with `verbose` every passing run's summary too.
pub fn sweep_runs<S: fmt::Display>(
    seeds: impl Iterator<Item = u64> + Send,
    threads: usize,
    verbose: bool,
    replay: impl Fn(u64) -> String + Sync,
    run: impl Fn(u64) -> Result<S, Failure> + Sync,
) -> Vec<Failure> {
    let seeds = std::sync::Mutex::new(seeds);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let Some(seed) = seeds.lock().unwrap_or_else(|p| p.into_inner()).next() else { break };
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(seed)));
                    let outcome = outcome.unwrap_or_else(|panic| {
                        let detail = panic
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                            .unwrap_or_default();
                        Err(Failure { seed, invariant: "no panic", detail, faults: Vec::new(), replay: replay(seed) })
                    });
                    match outcome {
                        Ok(summary) if verbose => eprintln!("{summary}"),
                        Ok(_) => {}
                        Err(failure) => {
                            eprintln!("{failure}\n");
                            failures.lock().unwrap_or_else(|p| p.into_inner()).push(failure);
                        }
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    failures.sort_by_key(|f| f.seed);
    failures
}
