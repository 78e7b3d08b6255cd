//! `nucleus-bench placement`: the pure placement code ([`nucleus_scheduler::placement::Placer`],
//! which answers as `place` does) placing many replicas of mixed bundles on a large simulated
//! fleet, one request after another as a scheduler commits them, then a check that no node is
//! over-committed.

use std::collections::BTreeMap;
use std::time::Instant;

use nucleus_scheduler::placement::{
    Allocation, Bundle, GPU_TYPE_A10G, GPU_TYPE_H100, GPU_TYPE_L4, Importance, Node, Placer, Request, default_bundles, place, verify,
};

const GIB: u64 = 1 << 30;

#[derive(Debug, Clone, clap::Args)]
pub struct PlacementArgs {
    /// Simulated nodes (8 GPUs each, GPU models mixed, spread over 3 regions of 3 zones).
    #[arg(long, default_value_t = 5_000)]
    pub nodes: usize,
    /// Replicas to place (requests of 1 to 4 replicas of mixed bundles).
    #[arg(long, default_value_t = 10_000)]
    pub replicas: usize,
    /// End to end through meta: nodes per simulated agent (cluster).
    #[arg(long, default_value_t = 100)]
    pub nodes_per_agent: usize,
    /// Only the pure placement run, not the one through meta.
    #[arg(long)]
    pub pure_only: bool,
    /// The `nucleus` binary for the run through meta (default: the one beside this binary).
    #[arg(long)]
    pub nucleus: Option<std::path::PathBuf>,
}

/// What a run measured.
pub struct PlacementSummary {
    pub placed: usize,
    pub unplaceable: usize,
    pub requests: usize,
    pub seconds: f64,
    pub per_node_max_gpu_use: f64,
}

pub fn fleet(count: usize) -> Vec<Node> {
    let models = [(GPU_TYPE_L4, 24), (GPU_TYPE_A10G, 24), (GPU_TYPE_H100, 80)];
    (0..count)
        .map(|i| {
            let region = format!("region-{}", i % 3);
            let zone = format!("{region}-{}", (i / 3) % 3);
            let (model, gpu_gib) = models[i % models.len()];
            Node::new(format!("node-{i:05}"), region, zone, 64_000, 512 * GIB).with_gpus(8, model, gpu_gib * GIB)
        })
        .collect()
}

/// A deterministic mix: every bundle of the catalogue in turn, 1-4 replicas, rotating importance
/// and region.
pub fn requests(total_replicas: usize, bundles: &[Bundle]) -> Vec<Request> {
    let importances = [Importance::Low, Importance::Moderate, Importance::High, Importance::Critical];
    let mut out = Vec::new();
    let mut left = total_replicas;
    let mut i = 0usize;
    while left > 0 {
        let replicas = (1 + i % 4).min(left);
        let bundle = bundles[i % bundles.len()].clone();
        let request = Request::new(format!("proton-{i}"), replicas as u32, importances[i % 4], vec![bundle])
            .preferring_region(format!("region-{}", i % 3));
        out.push(request);
        left -= replicas;
        i += 1;
    }
    out
}

pub fn run(args: &PlacementArgs) -> anyhow::Result<PlacementSummary> {
    let nodes = fleet(args.nodes);
    let bundles = default_bundles();
    let requests = requests(args.replicas, &bundles);
    let mut allocations: Vec<Allocation> = Vec::with_capacity(args.replicas);
    let (mut placed, mut unplaceable) = (0, 0);
    let started = Instant::now();
    let mut placer = Placer::new(&nodes, &allocations);
    for request in &requests {
        match placer.place(request) {
            Ok(plan) => {
                placed += plan.assignments.len();
                placer.commit(&plan);
                allocations.extend(plan.allocations());
            }
            Err(_) => unplaceable += request.replicas as usize,
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    // The check is outside the timing: replay every allocation through `verify` on an empty fleet
    // and compare per-node sums with capacities.
    let mut used: BTreeMap<&str, (u64, u64, u32)> = BTreeMap::new();
    for allocation in &allocations {
        let entry = used.entry(allocation.node.as_str()).or_default();
        entry.0 += allocation.bundle.cpu_millicores;
        entry.1 += allocation.bundle.memory_bytes;
        entry.2 += allocation.bundle.gpu_count;
    }
    let by_name: BTreeMap<&str, &Node> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut per_node_max_gpu_use: f64 = 0.0;
    for (name, (cpu, memory, gpus)) in &used {
        let node = by_name.get(name).ok_or_else(|| anyhow::anyhow!("allocation on unknown node {name}"))?;
        anyhow::ensure!(
            *cpu <= node.cpu_millicores && *memory <= node.memory_bytes && *gpus <= node.gpu_count,
            "node {name} over-committed: cpu {cpu}/{} memory {memory}/{} gpus {gpus}/{}",
            node.cpu_millicores,
            node.memory_bytes,
            node.gpu_count
        );
        if node.gpu_count > 0 {
            per_node_max_gpu_use = per_node_max_gpu_use.max(f64::from(*gpus) / f64::from(node.gpu_count));
        }
    }
    // And `verify` agrees with the sums: re-verifying the last plan against everything else holds.
    if let Some(last) = requests.last() {
        let others: Vec<Allocation> = allocations.iter().filter(|a| a.id.proton != last.proton).cloned().collect();
        if let Ok(plan) = place(&nodes, &others, last) {
            verify(&plan, &nodes, &others).map_err(|c| anyhow::anyhow!("verify refused a fresh plan: {c:?}"))?;
        }
    }
    Ok(PlacementSummary { placed, unplaceable, requests: requests.len(), seconds, per_node_max_gpu_use })
}

pub fn print(args: &PlacementArgs, summary: &PlacementSummary) {
    let rate = summary.placed as f64 / summary.seconds.max(f64::EPSILON);
    println!(
        "pure placement, one core: {} nodes (8 GPUs each, 3 GPU models), {} requests, {} replicas placed, {} unplaceable",
        args.nodes, summary.requests, summary.placed, summary.unplaceable
    );
    println!(
        "  {:.3} s, {rate:.0} placements/s; no node over-committed (busiest GPU node at {:.0}% of its GPUs)",
        summary.seconds,
        summary.per_node_max_gpu_use * 100.0
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_fleet_is_filled_without_over_commit() {
        let args = PlacementArgs { nodes: 30, replicas: 400, nodes_per_agent: 10, pure_only: true, nucleus: None };
        let summary = run(&args).unwrap();
        assert_eq!(summary.placed + summary.unplaceable, 400);
        assert!(summary.placed > 0);
        assert!(summary.per_node_max_gpu_use <= 1.0);
    }
}
