//! Making room for a request by stopping replicas of less important workloads.

use std::collections::BTreeSet;

use nucleus_api::Importance;

use super::ledger::{Ledger, Usage};
use super::model::{Allocation, AllocationId, Bundle, Node, Plan, Request};
use super::place::place_among;
use super::shortage::Shortage;

/// Above this many possible victims, [`preempt`] searches greedily instead of exhaustively
/// (2^12 = 4096 candidate sets at most).
pub const EXACT_SEARCH_LIMIT: usize = 12;

/// The replicas to stop and the plan that uses the room they leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preemption {
    /// The replicas to stop, sorted; empty when the request fits as things are.
    pub victims: Vec<AllocationId>,
    /// The protons with at least one victim, sorted: each becomes `interrupted`.
    pub interrupted: Vec<String>,
    /// The placement, valid once the victims are gone (see [`Preemption::survivors`]).
    pub plan: Plan,
}

impl Preemption {
    /// `allocations` without the victims: what to [`verify`](super::verify) the plan against.
    pub fn survivors(&self, allocations: &[Allocation]) -> Vec<Allocation> {
        allocations.iter().filter(|allocation| !self.victims.contains(&allocation.id)).cloned().collect()
    }
}

/// Places `request`, stopping replicas of less important workloads if that is the only way.
///
/// Only replicas of strictly lower importance than the request's are candidates, never `critical`
/// ones, and only those on nodes where one of the request's bundles could ever fit. The chosen set is
/// the smallest that lets every replica be placed: fewest victims, then the least important (victim
/// importances compared from the most important down), then the fewest resources freed (GPUs, then
/// CPU, then memory), then the lowest ids.
///
/// With at most [`EXACT_SEARCH_LIMIT`] candidates every set is tried, smallest first. With more, a
/// greedy search runs per bundle: while the bundle lacks room for some replica, it looks at each node
/// that could hold the bundle, picks the cheapest victims there that make room for one more replica
/// (in two orders: least important first, and largest first), and takes the cheapest node's set; at
/// the end it gives back every victim the placement can do without. Either way the victims are valid
/// and the returned plan fits once they are gone.
///
/// When even stopping every candidate does not make room, the shortage is reported as it would be
/// with every candidate stopped.
pub fn preempt(nodes: &[Node], allocations: &[Allocation], request: &Request) -> Result<Preemption, Shortage> {
    let candidates = candidates(nodes, allocations, request);
    let search = if candidates.len() <= EXACT_SEARCH_LIMIT { Search::Exact } else { Search::Greedy };
    preempt_with(nodes, allocations, request, search)
}

/// How victims are searched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Search {
    /// Every set of candidates, smallest first.
    Exact,
    /// Per bundle and per node, then pruned.
    Greedy,
}

/// [`preempt`] with the search chosen by the caller (tests run the greedy one on small inputs).
pub(super) fn preempt_with(nodes: &[Node], allocations: &[Allocation], request: &Request, search: Search) -> Result<Preemption, Shortage> {
    let shortage = match place_among(nodes, allocations.iter(), request) {
        Ok(plan) => {
            return Ok(Preemption { victims: Vec::new(), interrupted: Vec::new(), plan });
        }
        Err(shortage) => shortage,
    };
    let candidates = candidates(nodes, allocations, request);
    if candidates.is_empty() {
        return Err(shortage);
    }
    let everyone = Selection { allocations, victims: candidates.clone() };
    everyone.place(nodes, request)?;
    let found = match search {
        Search::Exact => exact(nodes, allocations, &candidates, request),
        Search::Greedy => greedy(nodes, allocations, &candidates, request),
    };
    let (victims, plan) = match found {
        Some(found) => found,
        None => {
            // Not expected (stopping every candidate makes room), but always answer a valid set.
            let victims = prune(nodes, allocations, candidates, request);
            let plan = Selection { allocations, victims: victims.clone() }.place(nodes, request)?;
            (victims, plan)
        }
    };
    let victims: Vec<AllocationId> = victims.iter().map(|&index| allocations[index].id.clone()).collect();
    let interrupted: BTreeSet<String> = victims.iter().map(|id| id.proton.clone()).collect();
    let mut victims = victims;
    victims.sort();
    Ok(Preemption { victims, interrupted: interrupted.into_iter().collect(), plan })
}

/// Indices of the allocations that may be stopped for `request`, ascending.
fn candidates(nodes: &[Node], allocations: &[Allocation], request: &Request) -> Vec<usize> {
    let useful_node = |name: &str| {
        nodes.iter().find(|node| node.name == name).is_some_and(|node| request.bundles.iter().any(|bundle| node.could_ever_hold(bundle)))
    };
    allocations
        .iter()
        .enumerate()
        .filter(|(_, allocation)| {
            allocation.importance < request.importance && allocation.importance != Importance::Critical && useful_node(&allocation.node)
        })
        .map(|(index, _)| index)
        .collect()
}

/// The allocations minus a set of victims (indices, ascending).
struct Selection<'a> {
    allocations: &'a [Allocation],
    victims: Vec<usize>,
}

impl Selection<'_> {
    fn survivors(&self) -> impl Iterator<Item = &Allocation> + Clone + '_ {
        self.allocations
            .iter()
            .enumerate()
            .filter(|(index, _)| self.victims.binary_search(index).is_err())
            .map(|(_, allocation)| allocation)
    }

    fn place(&self, nodes: &[Node], request: &Request) -> Result<Plan, Shortage> {
        place_among(nodes, self.survivors(), request)
    }
}

/// How bad a victim set is; smaller is better (fields compare in order).
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Cost<'a> {
    victims: usize,
    importances_most_first: Vec<Importance>,
    gpus_freed: u64,
    cpu_freed: u64,
    memory_freed: u64,
    ids: Vec<&'a AllocationId>,
}

fn cost<'a>(allocations: &'a [Allocation], victims: &[usize]) -> Cost<'a> {
    let chosen = || victims.iter().map(|&index| &allocations[index]);
    let mut importances_most_first: Vec<Importance> = chosen().map(|victim| victim.importance).collect();
    importances_most_first.sort_by(|a, b| b.cmp(a));
    let mut ids: Vec<&AllocationId> = chosen().map(|victim| &victim.id).collect();
    ids.sort();
    let total = |amount: fn(&Bundle) -> u64| chosen().map(|victim| amount(&victim.bundle)).fold(0u64, u64::saturating_add);
    Cost {
        victims: victims.len(),
        importances_most_first,
        gpus_freed: total(|bundle| u64::from(bundle.gpu_count)),
        cpu_freed: total(|bundle| bundle.cpu_millicores),
        memory_freed: total(|bundle| bundle.memory_bytes),
        ids,
    }
}

/// The cheapest set among all sets of candidates, trying sizes from 1 up.
fn exact(nodes: &[Node], allocations: &[Allocation], candidates: &[usize], request: &Request) -> Option<(Vec<usize>, Plan)> {
    for size in 1..=candidates.len() {
        let mut best: Option<(Cost<'_>, Vec<usize>, Plan)> = None;
        for_each_combination(candidates.len(), size, |chosen| {
            let victims: Vec<usize> = chosen.iter().map(|&at| candidates[at]).collect();
            let cost = cost(allocations, &victims);
            if best.as_ref().is_some_and(|(best_cost, _, _)| cost >= *best_cost) {
                return;
            }
            let selection = Selection { allocations, victims };
            if let Ok(plan) = selection.place(nodes, request) {
                best = Some((cost, selection.victims, plan));
            }
        });
        if let Some((_, victims, plan)) = best {
            return Some((victims, plan));
        }
    }
    None
}

/// Calls `visit` with every ascending choice of `size` indices out of `0..count` (1 ≤ size ≤ count).
fn for_each_combination(count: usize, size: usize, mut visit: impl FnMut(&[usize])) {
    let mut chosen: Vec<usize> = (0..size).collect();
    loop {
        visit(&chosen);
        let Some(slot) = (0..size).rev().find(|&slot| chosen[slot] < count - size + slot) else {
            return;
        };
        chosen[slot] += 1;
        for next in slot + 1..size {
            chosen[next] = chosen[next - 1] + 1;
        }
    }
}

/// The cheapest of the per-bundle greedy sets, pruned.
fn greedy(nodes: &[Node], allocations: &[Allocation], candidates: &[usize], request: &Request) -> Option<(Vec<usize>, Plan)> {
    let mut best: Option<(Cost<'_>, Vec<usize>, Plan)> = None;
    for bundle in &request.bundles {
        let Some(victims) = greedy_for_bundle(nodes, allocations, candidates, request.replicas, bundle) else {
            continue;
        };
        let victims = prune(nodes, allocations, victims, request);
        let cost = cost(allocations, &victims);
        if best.as_ref().is_some_and(|(best_cost, _, _)| cost >= *best_cost) {
            continue;
        }
        let selection = Selection { allocations, victims };
        if let Ok(plan) = selection.place(nodes, request) {
            best = Some((cost, selection.victims, plan));
        }
    }
    best.map(|(_, victims, plan)| (victims, plan))
}

/// Adds victims node by node until `bundle` has room for `replicas` replicas; `None` if it cannot.
fn greedy_for_bundle(
    nodes: &[Node],
    allocations: &[Allocation],
    candidates: &[usize],
    replicas: u32,
    bundle: &Bundle,
) -> Option<Vec<usize>> {
    let wanted = u64::from(replicas);
    let mut victims: Vec<usize> = Vec::new();
    loop {
        let selection = Selection { allocations, victims: victims.clone() };
        let ledger = Ledger::new(nodes, selection.survivors());
        let room: u64 = (0..ledger.nodes().len()).map(|position| ledger.room_for(position, bundle, wanted)).sum();
        if room >= wanted {
            return Some(victims);
        }
        let mut best_step: Option<(Cost<'_>, Vec<usize>)> = None;
        for position in 0..ledger.nodes().len() {
            let Some(step) = room_for_one_more(&ledger, position, allocations, candidates, &victims, bundle) else {
                continue;
            };
            let step_cost = cost(allocations, &step);
            if best_step.as_ref().is_none_or(|(best_cost, _)| step_cost < *best_cost) {
                best_step = Some((step_cost, step));
            }
        }
        let (_, step) = best_step?;
        victims.extend(step);
        victims.sort_unstable();
    }
}

/// The cheapest victims on one node that make room for one more replica of `bundle` there.
fn room_for_one_more(
    ledger: &Ledger<'_>,
    position: usize,
    allocations: &[Allocation],
    candidates: &[usize],
    victims: &[usize],
    bundle: &Bundle,
) -> Option<Vec<usize>> {
    let node = ledger.nodes()[position];
    if !node.could_ever_hold(bundle) {
        return None;
    }
    let fitting = ledger.room_for(position, bundle, u64::MAX);
    let demand = Usage::of(bundle);
    let free = ledger.free(position);
    let deficit = Usage {
        cpu_millicores: demand.cpu_millicores.saturating_mul(fitting + 1).saturating_sub(free.cpu_millicores),
        memory_bytes: demand.memory_bytes.saturating_mul(fitting + 1).saturating_sub(free.memory_bytes),
        gpus: demand.gpus.saturating_mul(fitting + 1).saturating_sub(free.gpus),
    };
    let on_node: Vec<usize> =
        candidates.iter().copied().filter(|index| allocations[*index].node == node.name && victims.binary_search(index).is_err()).collect();
    let share = |index: usize| coverage(Usage::of(&allocations[index].bundle), deficit);
    let least_important_first = sorted(&on_node, |index| (allocations[index].importance, std::cmp::Reverse(share(index))));
    let largest_first = sorted(&on_node, |index| (std::cmp::Reverse(share(index)), allocations[index].importance));
    [least_important_first, largest_first]
        .into_iter()
        .filter_map(|order| take_until_covered(&order, allocations, deficit))
        .min_by(|a, b| cost(allocations, a).cmp(&cost(allocations, b)))
}

fn sorted<K: Ord>(indices: &[usize], key: impl Fn(usize) -> K) -> Vec<usize> {
    let mut indices = indices.to_vec();
    indices.sort_by_key(|&index| (key(index), index));
    indices
}

/// The shortest prefix of `order` whose bundles add up to `deficit`, sorted; `None` if all do not.
fn take_until_covered(order: &[usize], allocations: &[Allocation], deficit: Usage) -> Option<Vec<usize>> {
    let mut freed = Usage::default();
    let mut taken = Vec::new();
    for &index in order {
        if freed.covers(deficit) {
            break;
        }
        let bundle = Usage::of(&allocations[index].bundle);
        freed = Usage {
            cpu_millicores: freed.cpu_millicores.saturating_add(bundle.cpu_millicores),
            memory_bytes: freed.memory_bytes.saturating_add(bundle.memory_bytes),
            gpus: freed.gpus.saturating_add(bundle.gpus),
        };
        taken.push(index);
    }
    taken.sort_unstable();
    freed.covers(deficit).then_some(taken)
}

/// How much of `deficit` a freed bundle covers, in millionths per short resource, summed.
fn coverage(freed: Usage, deficit: Usage) -> u128 {
    let part = |freed: u64, short: u64| {
        if short == 0 { 0 } else { u128::from(freed.min(short)) * 1_000_000 / u128::from(short) }
    };
    part(freed.cpu_millicores, deficit.cpu_millicores) + part(freed.memory_bytes, deficit.memory_bytes) + part(freed.gpus, deficit.gpus)
}

/// Gives back every victim the request can be placed without, costliest first.
fn prune(nodes: &[Node], allocations: &[Allocation], victims: Vec<usize>, request: &Request) -> Vec<usize> {
    let mut order = victims.clone();
    order.sort_by(|a, b| cost(allocations, &[*b]).cmp(&cost(allocations, &[*a])));
    let mut kept = victims;
    for victim in order {
        let trial: Vec<usize> = kept.iter().copied().filter(|&index| index != victim).collect();
        let selection = Selection { allocations, victims: trial };
        if selection.place(nodes, request).is_ok() {
            kept = selection.victims;
        }
    }
    kept
}
