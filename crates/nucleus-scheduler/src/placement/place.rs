//! Placing every replica of a request: filter the nodes, score them, take the best, all or nothing.

use std::collections::BTreeSet;

use super::ledger::Ledger;
use super::model::{Allocation, Assignment, Bundle, Node, Plan, Request};
use super::shortage::{FailedBundle, Largest, Missing, Shortage};

/// Places every replica of `request` on `nodes`, given what `allocations` already hold.
///
/// Bundles are tried in the request's order and the first that can hold all replicas is taken.
/// Replicas are placed one at a time, each on the best node that still has room for it (counting the
/// replicas placed before it), best meaning, in order:
///
/// 1. inside the preferred region, if the request names one;
/// 2. fewest replicas of the same proton on the node, then in its zone (spread), counting the
///    proton's existing allocations too;
/// 3. best fit: a CPU-only bundle avoids nodes with GPUs; then fewest free GPUs left (whole GPU nodes
///    stay free for large bundles), the smallest GPU memory that suffices, the least CPU left, the
///    least memory left;
/// 4. the node's name, so that the answer is deterministic.
///
/// Since every replica of a request has the same bundle, placing them one by one finds room for all
/// of them whenever room exists. New replicas take the lowest indices the proton does not hold yet.
pub fn place(nodes: &[Node], allocations: &[Allocation], request: &Request) -> Result<Plan, Shortage> {
    place_among(nodes, allocations.iter(), request)
}

/// [`place`] over any selection of allocations (preemption leaves some out).
pub(super) fn place_among<'b, I>(nodes: &[Node], allocations: I, request: &Request) -> Result<Plan, Shortage>
where
    I: Iterator<Item = &'b Allocation> + Clone,
{
    let base = Ledger::new(nodes, allocations.clone());
    let proton = request.proton.as_str();
    place_on(&base, allocations.filter(|allocation| allocation.id.proton == proton), request)
}

/// Places `request` on the nodes of `base`, whose usage already counts every allocation;
/// `existing` are the allocations of the request's own proton (for spreading and replica indices).
pub(super) fn place_on<'a, 'b, I>(base: &Ledger<'a>, existing: I, request: &Request) -> Result<Plan, Shortage>
where
    I: Iterator<Item = &'b Allocation> + Clone,
{
    let mut attempts = Vec::new();
    for bundle in &request.bundles {
        let mut ledger = base.clone();
        let mut spread = Spread::new(&ledger, &request.proton, existing.clone());
        match place_bundle(&mut ledger, &mut spread, request, bundle) {
            Ok(chosen) => {
                let replicas = new_replica_indices(&request.proton, existing, chosen.len());
                let assignments = replicas
                    .into_iter()
                    .zip(chosen)
                    .map(|(replica, position)| Assignment { replica, node: ledger.nodes()[position].name.clone() })
                    .collect();
                return Ok(Plan { proton: request.proton.clone(), importance: request.importance, bundle: bundle.clone(), assignments });
            }
            Err(failed) => attempts.push(failed),
        }
    }
    Err(Shortage { proton: request.proton.clone(), replicas: request.replicas, attempts })
}

/// Chooses a node position for each replica, reserving as it goes.
fn place_bundle<'a>(ledger: &mut Ledger<'a>, spread: &mut Spread, request: &Request, bundle: &Bundle) -> Result<Vec<usize>, FailedBundle> {
    let mut chosen = Vec::new();
    for placed in 0..request.replicas {
        let fail = |missing| FailedBundle { bundle: bundle.id.clone(), placed, missing };
        let candidates = candidates(ledger, bundle).map_err(fail)?;
        let best = candidates
            .into_iter()
            .min_by_key(|&position| score(ledger, spread, request, bundle, position))
            .ok_or_else(|| fail(Missing::NoNodes))?;
        ledger.reserve(best, bundle);
        spread.add(ledger, best);
        chosen.push(best);
    }
    Ok(chosen)
}

/// The nodes with room for one more replica of `bundle`, or what the best of them lacks. The checks
/// narrow the pool in the order [`Missing`] lists them, so the reason names the first resource that
/// no remaining node has enough of.
fn candidates(ledger: &Ledger<'_>, bundle: &Bundle) -> Result<Vec<usize>, Missing> {
    let nodes = ledger.nodes();
    let mut pool: Vec<usize> = (0..nodes.len()).collect();
    if pool.is_empty() {
        return Err(Missing::NoNodes);
    }
    if bundle.needs_gpus() {
        let gpu_type = &bundle.gpu_type;
        pool.retain(|&position| has_gpu_model(nodes[position], gpu_type));
        if pool.is_empty() {
            return Err(Missing::GpuModel { gpu_type: gpu_type.clone() });
        }
        let needed = bundle.gpu_memory_bytes;
        narrow(&mut pool, ledger, |position| nodes[position].gpu_memory_bytes, needed).map_err(|largest| Missing::GpuMemory {
            gpu_type: gpu_type.clone(),
            needed,
            largest,
        })?;
        let needed = u64::from(bundle.gpu_count);
        narrow(&mut pool, ledger, |position| ledger.free(position).gpus, needed).map_err(|largest| Missing::Gpus {
            gpu_type: gpu_type.clone(),
            needed,
            largest,
        })?;
    }
    let needed = bundle.cpu_millicores;
    narrow(&mut pool, ledger, |position| ledger.free(position).cpu_millicores, needed)
        .map_err(|largest| Missing::Cpu { needed, largest })?;
    let needed = bundle.memory_bytes;
    narrow(&mut pool, ledger, |position| ledger.free(position).memory_bytes, needed)
        .map_err(|largest| Missing::Memory { needed, largest })?;
    Ok(pool)
}

fn has_gpu_model(node: &Node, gpu_type: &Option<String>) -> bool {
    match (gpu_type, &node.gpu_type) {
        (_, None) => false,
        (None, Some(_)) => node.gpu_count > 0,
        (Some(wanted), Some(offered)) => wanted == offered && node.gpu_count > 0,
    }
}

/// Keeps the nodes whose `amount` is at least `needed`; when none is left, answers the largest
/// amount there was (ties: the first node by name).
fn narrow(pool: &mut Vec<usize>, ledger: &Ledger<'_>, amount: impl Fn(usize) -> u64, needed: u64) -> Result<(), Largest> {
    let name = |position: usize| ledger.nodes()[position].name.as_str();
    let largest =
        pool.iter().map(|&position| (amount(position), position)).max_by(|a, b| a.0.cmp(&b.0).then_with(|| name(b.1).cmp(name(a.1))));
    pool.retain(|&position| amount(position) >= needed);
    match largest {
        Some((amount, position)) if pool.is_empty() => Err(Largest { amount, node: name(position).to_owned() }),
        _ => Ok(()),
    }
}

/// How good a node is for the next replica; smaller is better (fields compare in order).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Score<'a> {
    outside_preferred_region: bool,
    replicas_on_node: u32,
    replicas_in_zone: u32,
    cpu_bundle_on_gpu_node: bool,
    gpus_left: u64,
    gpu_memory_per_gpu: u64,
    cpu_left: u64,
    memory_left: u64,
    node: &'a str,
}

fn score<'a>(ledger: &Ledger<'a>, spread: &Spread, request: &Request, bundle: &Bundle, position: usize) -> Score<'a> {
    let node = ledger.nodes()[position];
    let free = ledger.free(position);
    Score {
        outside_preferred_region: request.preferred_region.as_ref().is_some_and(|region| *region != node.region),
        replicas_on_node: spread.on_node[position],
        replicas_in_zone: spread.in_zone(ledger, position),
        cpu_bundle_on_gpu_node: !bundle.needs_gpus() && node.gpu_count > 0,
        gpus_left: free.gpus.saturating_sub(u64::from(bundle.gpu_count)),
        gpu_memory_per_gpu: node.gpu_memory_bytes,
        cpu_left: free.cpu_millicores.saturating_sub(bundle.cpu_millicores),
        memory_left: free.memory_bytes.saturating_sub(bundle.memory_bytes),
        node: &node.name,
    }
}

/// Where the proton's replicas are: existing ones and those placed so far in this plan.
struct Spread {
    on_node: Vec<u32>,
    /// Indexed by the ledger's zone index.
    by_zone: Vec<u32>,
}

impl Spread {
    fn new<'a, 'b>(ledger: &Ledger<'a>, proton: &str, allocations: impl Iterator<Item = &'b Allocation>) -> Self {
        let mut spread = Spread { on_node: vec![0; ledger.nodes().len()], by_zone: vec![0; ledger.zone_count()] };
        for allocation in allocations.filter(|allocation| allocation.id.proton == proton) {
            if let Some(position) = ledger.position(&allocation.node) {
                spread.add(ledger, position);
            }
        }
        spread
    }

    fn add(&mut self, ledger: &Ledger<'_>, position: usize) {
        self.on_node[position] += 1;
        self.by_zone[ledger.zone(position)] += 1;
    }

    fn in_zone(&self, ledger: &Ledger<'_>, position: usize) -> u32 {
        self.by_zone[ledger.zone(position)]
    }
}

/// The `count` lowest replica indices that no allocation of `proton` holds.
fn new_replica_indices<'b>(proton: &str, allocations: impl Iterator<Item = &'b Allocation>, count: usize) -> Vec<u32> {
    let held: BTreeSet<u32> =
        allocations.filter(|allocation| allocation.id.proton == proton).map(|allocation| allocation.id.replica).collect();
    (0..).filter(|index| !held.contains(index)).take(count).collect()
}
