//! The deterministic simulation of scheduling: three real meta nodes, two real scheduler workers
//! and two real agents with a fake driver (on simulated machines with 4 GPUs each), a user
//! creating, stopping, starting and deleting workloads, and a seeded nemesis crashing and
//! isolating schedulers, agents and meta nodes. One seed, one run: [`run_seed`].
//!
//! Checked on every run: no agent's driver carries out a launch under a fencing token older than
//! one it already launched under for that shard; no machine runs more GPUs than it has and no
//! node of the allocation ledger reserves more (sampled all along); after healing, every workload
//! converges (each running workload's proton runs on exactly its agent with its replica count and
//! shows `running`; stopped ones run nowhere and show `stopped`; deleted ones are forgotten).

mod checks;
mod hosts;
mod machine;
mod nemesis;

use std::cell::{Cell, RefCell};
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use nucleus_api::{DesiredState, Proton, Workload};
use nucleus_client::{MetaClient, Txn, keys};
use nucleus_scheduler::allocations::NodeAllocations;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use self::machine::Machine;
use self::nemesis::Nemesis;
use crate::harness::cluster::{self, Observed, Shared};
use crate::harness::{FORM_DEADLINE, Failure, data_dir, group_formed, simulation};

const META_NODES: u64 = 3;
const SCHEDULERS: u64 = 2;
const AGENTS: u64 = 2;

/// Knobs of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Simulated time the nemesis and the user are active.
    pub chaos: Duration,
    /// Workloads created before the faults start.
    pub workloads: usize,
    /// Print every fault and the run's summary.
    pub verbose: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options { chaos: Duration::from_secs(10), workloads: 6, verbose: false }
    }
}

/// Time for the first workloads to be written once the group formed.
const SETUP_DEADLINE: Duration = Duration::from_secs(20);
/// After healing: every workload must have converged within this (leases expire in 5 s, an agent
/// is given up on after 15 s).
const CONVERGE_DEADLINE: Duration = Duration::from_secs(45);
/// How often the checker samples the allocation ledger.
const LEDGER_SAMPLE: Duration = Duration::from_millis(250);

/// What a passing run did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub seed: u64,
    pub faults: usize,
    pub user_ops: u64,
    pub launches: usize,
    /// Distinct (shard, fencing token) pairs launches came with: how often leases changed hands.
    pub tokens: usize,
    pub ledger_samples: u64,
    pub converged_after: Duration,
    pub simulated: Duration,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: ok, {} faults, {} user operations, {} launches under {} fencing tokens, {} ledger samples, converged {:.1}s after healing, {:.1}s simulated",
            self.seed,
            self.faults,
            self.user_ops,
            self.launches,
            self.tokens,
            self.ledger_samples,
            self.converged_after.as_secs_f64(),
            self.simulated.as_secs_f64()
        )
    }
}

/// What the harness and the clients share (one thread).
#[derive(Default)]
struct Run {
    formed: Cell<bool>,
    created: Cell<bool>,
    stop: Cell<bool>,
    user_ops: Cell<u64>,
    ledger_samples: Cell<u64>,
    overcommitted: RefCell<Vec<String>>,
    ending: RefCell<Ending>,
}

#[derive(Debug, Clone, Default)]
enum Ending {
    #[default]
    Running,
    Converged(Duration),
    Diverged(Vec<String>),
}

/// Runs one seed.
pub fn run_seed(seed: u64, options: &Options) -> Result<Summary, Failure> {
    let fail = |invariant: &'static str, detail: String, faults: &[String]| Failure {
        seed,
        invariant,
        detail,
        faults: faults.to_vec(),
        replay: replay_command(seed, options),
    };
    let data = data_dir().map_err(|e| fail("harness", format!("temp dir: {e}"), &[]))?;
    let total = FORM_DEADLINE + SETUP_DEADLINE + options.chaos + CONVERGE_DEADLINE + Duration::from_secs(30);
    let mut sim = simulation(seed, total);

    let observed: Shared = Rc::new(RefCell::new(Observed::default()));
    let shared = Rc::new(Run::default());
    for id in 1..=META_NODES {
        let root = data.path().to_owned();
        let observed = observed.clone();
        sim.host(cluster::host_name(id), move || cluster::software(id, root.clone(), observed.clone()));
    }
    for i in 1..=SCHEDULERS {
        sim.host(hosts::scheduler_host(i), move || hosts::scheduler(i, META_NODES));
    }
    let machines: Vec<Machine> = (1..=AGENTS).map(|i| Machine::new(hosts::agent_host(i))).collect();
    for (i, machine) in (1..=AGENTS).zip(&machines) {
        let dir = data.path().join(hosts::agent_host(i));
        std::fs::create_dir_all(&dir).map_err(|e| fail("harness", format!("agent dir: {e}"), &[]))?;
        let machine = machine.clone();
        sim.host(hosts::agent_host(i), move || hosts::agent(i, machine.clone(), dir.clone(), META_NODES));
    }
    {
        let (shared, workloads) = (shared.clone(), options.workloads);
        sim.client("user", async move {
            user(seed, workloads, &shared).await;
            Ok(())
        });
    }
    {
        let (shared, machines) = (shared.clone(), machines.clone());
        sim.client("checker", async move {
            checker(&shared, &machines).await;
            Ok(())
        });
    }

    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(0x5C4E_D000));
    let mut nemesis = Nemesis::new(StdRng::seed_from_u64(rng.random()), META_NODES, SCHEDULERS, AGENTS);
    let mut faults: Vec<String> = Vec::new();
    let mut chaos_until = None;
    let mut next_fault = Duration::ZERO;
    let mut formed_at = None;
    loop {
        let now = sim.elapsed();
        if formed_at.is_none() && group_formed(&observed, META_NODES) {
            shared.formed.set(true);
            formed_at = Some(now);
        }
        match (chaos_until, formed_at) {
            (None, None) if now > FORM_DEADLINE => {
                return Err(fail("group forms", format!("no {META_NODES}-voter group after {now:?}"), &faults));
            }
            (None, Some(at)) if !shared.created.get() && now > at + SETUP_DEADLINE => {
                return Err(fail(
                    "workloads are created",
                    format!("the user's workloads were not written within {SETUP_DEADLINE:?}"),
                    &faults,
                ));
            }
            (None, Some(_)) if shared.created.get() => {
                chaos_until = Some(now + options.chaos);
                next_fault = now + nemesis.pause();
            }
            (Some(until), _) if !shared.stop.get() && now >= until => {
                nemesis.heal_all(&mut sim);
                faults.push(format!("{:>8.3}s heal everything, restart crashed hosts", now.as_secs_f64()));
                shared.stop.set(true);
            }
            (Some(_), _) if !shared.stop.get() && now >= next_fault => {
                let fault = nemesis.next();
                if options.verbose {
                    eprintln!("{:>8.3}s {fault}", now.as_secs_f64());
                }
                faults.push(format!("{:>8.3}s {fault}", now.as_secs_f64()));
                nemesis.apply(&mut sim, &fault);
                next_fault = now + nemesis.pause();
            }
            _ => {}
        }
        match sim.step() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => return Err(fail("simulation runs", format!("{e}"), &faults)),
        }
    }
    let simulated = sim.elapsed();
    drop(sim);

    let mut launches = 0;
    let mut tokens = std::collections::BTreeSet::new();
    for machine in &machines {
        let state = machine.state();
        launches += state.launches.len();
        tokens.extend(state.launches.iter().copied());
        if let Some(violation) = state.violations.first() {
            let invariant =
                if violation.contains("fencing token") { "no launch under a stale fencing token" } else { "no GPU double-booked" };
            return Err(fail(invariant, state.violations.join("\n"), &faults));
        }
    }
    if let Some(first) = shared.overcommitted.borrow().first() {
        return Err(fail("no ledger node over-committed", first.clone(), &faults));
    }
    let converged_after = match shared.ending.borrow().clone() {
        Ending::Converged(after) => after,
        Ending::Running => return Err(fail("checks complete", "the checker never finished".into(), &faults)),
        Ending::Diverged(problems) => {
            let detail = format!("not converged {CONVERGE_DEADLINE:?} after healing:\n  {}", problems.join("\n  "));
            return Err(fail("every workload converges after healing", detail, &faults));
        }
    };
    Ok(Summary {
        seed,
        faults: faults.len(),
        user_ops: shared.user_ops.get(),
        launches,
        tokens: tokens.len(),
        ledger_samples: shared.ledger_samples.get(),
        converged_after,
        simulated,
    })
}

/// `cargo xtask sim --scheduling --seed S` plus the options that differ from the defaults.
pub fn replay_command(seed: u64, options: &Options) -> String {
    let mut command = format!("cargo xtask sim --scheduling --seed {seed}");
    if options.chaos != Options::default().chaos {
        command.push_str(&format!(" --chaos-secs {}", options.chaos.as_secs()));
    }
    command
}

/// Writes a document change, retried until it is applied or refused (a refusal means another
/// writer changed it since it was read: the user's next operation reads again).
async fn write(meta: &MetaClient, txn: impl Fn() -> Option<Txn>) {
    for _ in 0..10 {
        let Some(txn) = txn() else { return };
        match meta.write(txn).await {
            Ok(_) => return,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn create_txn(i: usize, gpu: bool) -> Option<Txn> {
    let (workload, proton) = hosts::workload(i, gpu, 1);
    Txn::new()
        .require(&keys::workload(&workload.id), 0)
        .put_json(&keys::workload(&workload.id), &workload)
        .and_then(|t| t.put_json(&keys::proton(&workload.id, &proton.id), &proton))
        .ok()
}

/// The user: creates the first workloads, then while the faults last stops, starts, deletes and
/// creates workloads as the gateway would (one transaction per change).
async fn user(seed: u64, workloads: usize, shared: &Run) {
    while !shared.formed.get() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let meta = hosts::meta_client(META_NODES);
    let mut rng = StdRng::seed_from_u64(seed.wrapping_add(0x05E4));
    let mut next_id = 0;
    for _ in 0..workloads {
        let gpu = next_id % 3 != 2;
        write(&meta, || create_txn(next_id, gpu)).await;
        next_id += 1;
    }
    shared.created.set(true);
    while !shared.stop.get() {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
        let i = rng.random_range(0..next_id);
        let (workload_key, proton_key) = (keys::workload(&format!("w{i}")), keys::proton(&format!("w{i}"), &format!("p{i}")));
        let (Ok(Some(w)), Ok(Some(p))) = (meta.get_json::<Workload>(&workload_key).await, meta.get_json::<Proton>(&proton_key).await)
        else {
            if rng.random_bool(0.5) {
                let gpu = rng.random_bool(0.6);
                write(&meta, || create_txn(next_id, gpu)).await;
                next_id += 1;
                shared.user_ops.set(shared.user_ops.get() + 1);
            }
            continue;
        };
        shared.user_ops.set(shared.user_ops.get() + 1);
        match rng.random_range(0..100) {
            0..20 => write(&meta, || Some(Txn::new().require(&w.key, w.mod_revision).delete(&w.key))).await,
            _ => {
                let start = w.value.desired_state == DesiredState::Stopped;
                let (mut workload, mut proton) = (w.value.clone(), p.value.clone());
                let desired = if start { DesiredState::Running } else { DesiredState::Stopped };
                workload.desired_state = desired;
                proton.desired_state = desired;
                if start {
                    proton.generation += 1;
                }
                write(&meta, || {
                    Txn::new()
                        .require(&w.key, w.mod_revision)
                        .require(&p.key, p.mod_revision)
                        .put_json(&w.key, &workload)
                        .and_then(|t| t.put_json(&p.key, &proton))
                        .ok()
                })
                .await;
            }
        }
    }
}

/// Samples the allocation ledger until healing, then waits for every workload to converge.
async fn checker(shared: &Run, machines: &[Machine]) {
    while !shared.formed.get() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let meta = hosts::meta_client(META_NODES);
    while !shared.stop.get() {
        sample_ledger(&meta, shared).await;
        tokio::time::sleep(LEDGER_SAMPLE).await;
    }
    let healed = tokio::time::Instant::now();
    let mut problems = vec!["nothing read from meta yet".to_owned()];
    while healed.elapsed() < CONVERGE_DEADLINE {
        sample_ledger(&meta, shared).await;
        let read = async {
            Ok::<_, nucleus_client::Error>((
                meta.list_json::<Workload>(keys::WORKLOADS).await?,
                meta.list_json::<Proton>(keys::PROTONS).await?,
            ))
        };
        if let Ok(Ok((workloads, protons))) = tokio::time::timeout(Duration::from_secs(2), read).await {
            let workloads: Vec<Workload> = workloads.into_iter().map(|w| w.value).collect();
            let protons: Vec<Proton> = protons.into_iter().map(|p| p.value).collect();
            problems = checks::divergence(&workloads, &protons, machines);
            if problems.is_empty() {
                *shared.ending.borrow_mut() = Ending::Converged(healed.elapsed());
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    *shared.ending.borrow_mut() = Ending::Diverged(problems);
}

async fn sample_ledger(meta: &MetaClient, shared: &Run) {
    let read = meta.list_json::<NodeAllocations>(keys::ALLOCATIONS);
    if let Ok(Ok(ledger)) = tokio::time::timeout(Duration::from_secs(1), read).await {
        let ledger: Vec<NodeAllocations> = ledger.into_iter().map(|d| d.value).collect();
        shared.ledger_samples.set(shared.ledger_samples.get() + 1);
        shared.overcommitted.borrow_mut().extend(checks::overcommitted(&ledger));
    }
}
