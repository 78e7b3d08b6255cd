use proptest::prelude::*;

use super::preempt::{Search, preempt_with};
use super::*;

const GIB: u64 = 1024 * 1024 * 1024;

fn bundle(id: &str) -> Bundle {
    default_bundles().into_iter().find(|bundle| bundle.id == id).expect("catalogue bundle")
}

fn gpu_memory_of(model: &str) -> u64 {
    if model == GPU_TYPE_H100 { 80 * GIB } else { 24 * GIB }
}

/// A 64-core, 512 GiB node in region r1.
fn gpu_node(name: &str, zone: &str, gpus: u32, model: &str) -> Node {
    Node::new(name, "r1", zone, 64_000, 512 * GIB).with_gpus(gpus, model, gpu_memory_of(model))
}

fn cpu_node(name: &str, zone: &str, cores: u64, memory_gib: u64) -> Node {
    Node::new(name, "r1", zone, cores * 1000, memory_gib * GIB)
}

fn allocation(proton: &str, replica: u32, node: &str, bundle_id: &str, importance: Importance) -> Allocation {
    Allocation { id: AllocationId { proton: proton.into(), replica }, node: node.into(), bundle: bundle(bundle_id), importance }
}

fn request(replicas: u32, bundle_ids: &[&str]) -> Request {
    Request::new("p", replicas, Importance::High, bundle_ids.iter().map(|id| bundle(id)).collect())
}

fn nodes_of(plan: &Plan) -> Vec<&str> {
    plan.assignments.iter().map(|assignment| assignment.node.as_str()).collect()
}

fn zone_of<'a>(nodes: &'a [Node], name: &str) -> &'a str {
    &nodes.iter().find(|node| node.name == name).expect("node").zone
}

// ---------------------------------------------------------------- filtering

#[test]
fn gpu_bundles_go_only_to_nodes_of_their_model() {
    let nodes = [gpu_node("l4", "a", 4, GPU_TYPE_L4), gpu_node("a10g", "a", 4, GPU_TYPE_A10G)];
    let plan = place(&nodes, &[], &request(2, &["gpu.a10g.small"])).expect("fits");
    assert_eq!(nodes_of(&plan), ["a10g", "a10g"]);

    let shortage = place(&nodes, &[], &request(1, &["gpu.h100.small"])).expect_err("no h100");
    assert_eq!(shortage.attempts[0].missing, Missing::GpuModel { gpu_type: Some(GPU_TYPE_H100.into()) });
    assert!(shortage.to_string().contains("no node has nvidia-h100 GPUs"), "{shortage}");
}

#[test]
fn gpu_count_shortage_names_the_largest_free_count() {
    let nodes = [gpu_node("n1", "a", 4, GPU_TYPE_H100), gpu_node("n3", "a", 8, GPU_TYPE_H100)];
    let allocations = [
        allocation("x", 0, "n1", "gpu.h100.medium", Importance::Low), // 4 of 4
        allocation("y", 0, "n3", "gpu.h100.medium", Importance::Low), // 4 of 8
        allocation("y", 1, "n3", "gpu.h100.small", Importance::Low),
        allocation("y", 2, "n3", "gpu.h100.small", Importance::Low),
        allocation("y", 3, "n3", "gpu.h100.small", Importance::Low), // 7 of 8
    ];
    let two_gpus = Bundle::with_gpus("two", 1000, GIB, 2, GPU_TYPE_H100, 80 * GIB);
    let wanted = Request::new("p", 1, Importance::Low, vec![two_gpus]);
    let shortage = place(&nodes, &allocations, &wanted).expect_err("only 1 free");
    let message = shortage.to_string();
    assert!(message.contains("no node has 2 free nvidia-h100 GPUs (largest free: 1 on node n3)"), "{message}");
}

#[test]
fn gpu_memory_per_gpu_filters_nodes_when_any_model_will_do() {
    let allocation_40g = ResourceAllocation { cpu: 2.0, memory: "8GiB".into(), gpu: 1.0, gpu_memory: Some("40GiB".into()) };
    let big_gpu = Bundle::from_allocation(&allocation_40g).expect("valid");
    assert_eq!(big_gpu.gpu_type, None);
    let nodes = [gpu_node("l4", "a", 8, GPU_TYPE_L4), gpu_node("h100", "a", 8, GPU_TYPE_H100)];
    let wanted = Request::new("p", 1, Importance::Low, vec![big_gpu.clone()]);
    assert_eq!(nodes_of(&place(&nodes, &[], &wanted).expect("h100 fits")), ["h100"]);

    let shortage = place(&nodes[..1], &[], &wanted).expect_err("24GiB < 40GiB");
    assert!(matches!(shortage.attempts[0].missing, Missing::GpuMemory { needed, .. } if needed == 40 * GIB));
    assert!(shortage.to_string().contains("40GiB of memory per GPU (largest: 24GiB on node l4)"), "{shortage}");
}

#[test]
fn cpu_and_memory_are_checked_after_gpus() {
    let nodes = [cpu_node("small", "a", 2, 64)];
    let shortage = place(&nodes, &[], &request(1, &["cpu.large"])).expect_err("4 cores > 2");
    assert!(shortage.to_string().contains("not enough cpu: need 4 cores, largest free 2 on node small"), "{shortage}");

    let nodes = [cpu_node("lean", "a", 32, 4)];
    let shortage = place(&nodes, &[], &request(1, &["cpu.large"])).expect_err("16GiB > 4GiB");
    assert!(shortage.to_string().contains("not enough memory: need 16GiB, largest free 4GiB on node lean"), "{shortage}");
}

// ---------------------------------------------------------------- scoring

#[test]
fn best_fit_keeps_a_whole_gpu_node_free() {
    let nodes = [gpu_node("empty", "a", 8, GPU_TYPE_H100), gpu_node("partly", "a", 8, GPU_TYPE_H100)];
    let allocations = [allocation("x", 0, "partly", "gpu.h100.medium", Importance::Low)];
    let plan = place(&nodes, &allocations, &request(1, &["gpu.h100.small"])).expect("fits");
    assert_eq!(nodes_of(&plan), ["partly"]);
    // And the 8-GPU bundle still has its node.
    let mut after = allocations.to_vec();
    after.extend(plan.allocations());
    let large = Request::new("big", 1, Importance::Low, vec![bundle("gpu.h100.large")]);
    assert_eq!(nodes_of(&place(&nodes, &after, &large).expect("whole node free")), ["empty"]);
}

#[test]
fn cpu_bundles_avoid_gpu_nodes_then_pack_cpu() {
    let nodes = [gpu_node("gpu", "a", 4, GPU_TYPE_L4), cpu_node("roomy", "a", 64, 256), cpu_node("snug", "a", 8, 256)];
    let plan = place(&nodes, &[], &request(1, &["cpu.small"])).expect("fits");
    assert_eq!(nodes_of(&plan), ["snug"]);
}

#[test]
fn replicas_spread_across_nodes_then_zones() {
    let nodes = [cpu_node("a1", "a", 8, 64), cpu_node("a2", "a", 8, 64), cpu_node("b1", "b", 16, 64), cpu_node("c1", "c", 32, 64)];
    let plan = place(&nodes, &[], &request(3, &["cpu.small"])).expect("fits");
    let chosen = nodes_of(&plan);
    let mut zones: Vec<&str> = chosen.iter().map(|name| zone_of(&nodes, name)).collect();
    zones.sort_unstable();
    assert_eq!(zones, ["a", "b", "c"], "{chosen:?}");

    // A fourth replica goes to the zone-a node that has none yet, not back onto a used node.
    let plan = place(&nodes, &[], &request(4, &["cpu.small"])).expect("fits");
    let mut chosen = nodes_of(&plan);
    chosen.sort_unstable();
    assert_eq!(chosen, ["a1", "a2", "b1", "c1"]);
}

#[test]
fn existing_replicas_of_the_proton_count_for_spread_and_indices() {
    let nodes = [cpu_node("a1", "a", 8, 64), cpu_node("a2", "a", 8, 64), cpu_node("b1", "b", 64, 64)];
    let allocations = [allocation("p", 0, "a1", "cpu.small", Importance::High)];
    let plan = place(&nodes, &allocations, &request(1, &["cpu.small"])).expect("fits");
    assert_eq!(nodes_of(&plan), ["b1"], "other zone first, although a2 is the tighter fit");
    assert_eq!(plan.assignments[0].replica, 1);
}

#[test]
fn preferred_region_wins_over_fit_and_falls_back_when_full() {
    let mut r2 = cpu_node("tight-r2", "z2", 2, 8);
    r2.region = "r2".into();
    let nodes = [cpu_node("roomy-r1", "z1", 64, 256), r2];
    let no_preference = place(&nodes, &[], &request(1, &["cpu.small"])).expect("fits");
    assert_eq!(nodes_of(&no_preference), ["tight-r2"]);
    let in_r1 = place(&nodes, &[], &request(1, &["cpu.small"]).preferring_region("r1")).expect("fits");
    assert_eq!(nodes_of(&in_r1), ["roomy-r1"]);
    let in_r2 = place(&nodes, &[], &request(3, &["cpu.small"]).preferring_region("r2")).expect("fits");
    assert_eq!(nodes_of(&in_r2), ["tight-r2", "tight-r2", "roomy-r1"]);
}

#[test]
fn bundle_preference_falls_back_to_the_second_bundle() {
    let nodes = [gpu_node("l4", "a", 4, GPU_TYPE_L4), gpu_node("a10g", "a", 4, GPU_TYPE_A10G)];
    let plan = place(&nodes, &[], &request(1, &["gpu.h100.small", "gpu.l4.small"])).expect("l4 fits");
    assert_eq!(plan.bundle.id, "gpu.l4.small");
    assert_eq!(nodes_of(&plan), ["l4"]);
    let plan = place(&nodes, &[], &request(1, &["gpu.a10g.small", "gpu.l4.small"])).expect("first fits");
    assert_eq!(plan.bundle.id, "gpu.a10g.small");
    // 2 replicas of 4 L4s each do not fit on one 4-GPU node: the whole request falls to a10g.
    let plan = place(&nodes, &[], &request(1, &["gpu.l4.large", "gpu.a10g.large"])).expect("fits");
    assert_eq!(plan.bundle.id, "gpu.l4.large");
    let shortage = place(&nodes, &[], &request(2, &["gpu.l4.large", "gpu.a10g.large"])).expect_err("1 each");
    assert_eq!(shortage.attempts.len(), 2);
}

#[test]
fn placement_is_all_or_nothing() {
    // 40 GiB holds two 16 GiB replicas, not three.
    let nodes = [cpu_node("only", "a", 64, 40)];
    let shortage = place(&nodes, &[], &request(3, &["cpu.large"])).expect_err("room for 2");
    assert_eq!(shortage.attempts[0].placed, 2);
    assert!(matches!(shortage.attempts[0].missing, Missing::Memory { .. }));
    let message = shortage.to_string();
    assert!(message.contains("only 2 of 3 replicas fit, then not enough memory: need 16GiB"), "{message}");
    assert!(place(&nodes, &[], &request(2, &["cpu.large"])).is_ok());
}

#[test]
fn empty_inputs_are_shortages() {
    let shortage = place(&[], &[], &request(1, &["cpu.small"])).expect_err("no nodes");
    assert_eq!(shortage.attempts[0].missing, Missing::NoNodes);
    let shortage = place(&[cpu_node("n", "a", 8, 8)], &[], &request(1, &[])).expect_err("no bundle");
    assert!(shortage.to_string().contains("no resource bundle requested"));
}

#[test]
fn default_catalogue_has_the_spec_ids() {
    let ids: Vec<String> = default_bundles().into_iter().map(|bundle| bundle.id).collect();
    for id in ["cpu.small", "cpu.medium", "cpu.large", "gpu.l4.small", "gpu.a10g.medium", "gpu.h100.large"] {
        assert!(ids.iter().any(|known| known == id), "{id} missing from {ids:?}");
    }
    assert_eq!(bundle("gpu.h100.large").gpu_count, 8);
    assert_eq!(bundle("gpu.l4.medium").gpu_count, 2);
}

// ---------------------------------------------------------------- verify

#[test]
fn verify_catches_a_concurrent_booking() {
    let nodes = [gpu_node("n", "a", 4, GPU_TYPE_L4)];
    let plan = place(&nodes, &[], &request(1, &["gpu.l4.large"])).expect("fits");
    assert_eq!(verify(&plan, &nodes, &[]), Ok(()));
    let other_worker = [allocation("q", 0, "n", "gpu.l4.small", Importance::Low)];
    let conflicts = verify(&plan, &nodes, &other_worker).expect_err("5 GPUs on 4");
    assert_eq!(conflicts, [Conflict::OverCommitted { node: "n".into(), resource: Resource::Gpus, capacity: 4, requested: 5 }]);
    let same_replica = [allocation("p", 0, "n", "cpu.small", Importance::High)];
    let conflicts = verify(&plan, &nodes, &same_replica).expect_err("double placement");
    assert!(conflicts.iter().any(|conflict| matches!(conflict, Conflict::AlreadyAllocated { .. })));
    assert_eq!(verify(&plan, &[], &[]), Err(vec![Conflict::UnknownNode { replica: 0, node: "n".into() }]));
}

// ---------------------------------------------------------------- preemption

#[test]
fn preemption_stops_only_strictly_less_important_replicas() {
    let nodes = [gpu_node("n", "a", 1, GPU_TYPE_L4)];
    let wanted = |importance| Request::new("p", 1, importance, vec![bundle("gpu.l4.small")]);
    for (holder, asker, preemptible) in [
        (Importance::Low, Importance::Moderate, true),
        (Importance::High, Importance::Critical, true),
        (Importance::Moderate, Importance::Moderate, false),
        (Importance::High, Importance::Moderate, false),
        (Importance::Critical, Importance::Critical, false),
    ] {
        let allocations = [allocation("v", 0, "n", "gpu.l4.small", holder)];
        let result = preempt(&nodes, &allocations, &wanted(asker));
        assert_eq!(result.is_ok(), preemptible, "{holder:?} held, {asker:?} asked: {result:?}");
        if let Ok(preemption) = result {
            assert_eq!(preemption.victims, [allocations[0].id.clone()]);
            assert_eq!(preemption.interrupted, ["v"]);
            assert_eq!(verify(&preemption.plan, &nodes, &preemption.survivors(&allocations)), Ok(()));
        }
    }
}

#[test]
fn preemption_prefers_fewest_victims_then_lowest_importance() {
    let nodes = [gpu_node("two-low", "a", 2, GPU_TYPE_L4), gpu_node("one-moderate", "a", 2, GPU_TYPE_L4)];
    let allocations = [
        allocation("a", 0, "two-low", "gpu.l4.small", Importance::Low),
        allocation("b", 0, "two-low", "gpu.l4.small", Importance::Low),
        allocation("c", 0, "one-moderate", "gpu.l4.medium", Importance::Moderate),
    ];
    let wanted = Request::new("p", 1, Importance::High, vec![bundle("gpu.l4.medium")]);
    let preemption = preempt(&nodes, &allocations, &wanted).expect("room can be made");
    assert_eq!(preemption.victims, [allocations[2].id.clone()], "one moderate beats two low");

    let wanted = Request::new("p", 1, Importance::High, vec![bundle("gpu.l4.small")]);
    let preemption = preempt(&nodes, &allocations, &wanted).expect("room can be made");
    assert_eq!(preemption.victims.len(), 1);
    assert_eq!(preemption.interrupted.len(), 1);
    assert_ne!(preemption.interrupted, ["c"], "a low victim beats a moderate one");
}

#[test]
fn preemption_without_a_solution_reports_the_shortage() {
    let nodes = [gpu_node("n", "a", 2, GPU_TYPE_L4)];
    let allocations =
        [allocation("low", 0, "n", "gpu.l4.small", Importance::Low), allocation("crit", 0, "n", "gpu.l4.small", Importance::Critical)];
    let wanted = Request::new("p", 1, Importance::High, vec![bundle("gpu.l4.medium")]);
    let shortage = preempt(&nodes, &allocations, &wanted).expect_err("critical stays");
    assert!(shortage.to_string().contains("no node has 2 free nvidia-l4 GPUs (largest free: 1 on node n)"), "{shortage}");
}

#[test]
fn greedy_preemption_is_valid_on_a_large_cluster() {
    // 10 nodes × 8 L4s, every GPU held by a low replica: 80 candidates, far above the exact limit.
    let nodes: Vec<Node> = (0..10).map(|i| gpu_node(&format!("n{i}"), "a", 8, GPU_TYPE_L4)).collect();
    let allocations: Vec<Allocation> =
        (0..80).map(|i| allocation(&format!("w{}", i % 7), i, &format!("n{}", i / 8), "gpu.l4.small", Importance::Low)).collect();
    let wanted = Request::new("p", 3, Importance::High, vec![bundle("gpu.l4.large")]);
    let preemption = preempt(&nodes, &allocations, &wanted).expect("room can be made");
    assert_eq!(preemption.victims.len(), 12, "three 4-GPU replicas need 12 single-GPU victims");
    assert_eq!(verify(&preemption.plan, &nodes, &preemption.survivors(&allocations)), Ok(()));
}

// ---------------------------------------------------------------- units

#[test]
fn memory_strings_parse_in_both_unit_families() {
    for (text, bytes) in [
        ("512MiB", 512 * 1024 * 1024),
        ("16GiB", 16 * GIB),
        ("16Gi", 16 * GIB),
        ("2GB", 2_000_000_000),
        ("1.5GiB", 3 * GIB / 2),
        (" 1 TB ", 1_000_000_000_000),
        ("1TiB", 1024 * GIB),
        ("4KB", 4000),
        ("4Ki", 4096),
        ("7Mi", 7 * 1024 * 1024),
        ("3MB", 3_000_000),
        (".5KiB", 512),
        ("1234", 1234),
        ("0.5", 1),
        ("8 GiB", 8 * GIB),
    ] {
        assert_eq!(parse_memory(text), Ok(bytes), "{text}");
    }
}

#[test]
fn memory_strings_reject_everything_else() {
    assert_eq!(parse_memory("  "), Err(UnitError::Empty));
    for text in ["16gb", "16G", "16GIB", "16 bytes", "16B", "1e9", "GiB"] {
        assert!(
            matches!(parse_memory(text), Err(UnitError::UnknownUnit { .. } | UnitError::NotANumber(_))),
            "{text}: {:?}",
            parse_memory(text)
        );
    }
    for text in ["-1Gi", "1.Gi", "1..5Gi", "+3"] {
        assert!(matches!(parse_memory(text), Err(UnitError::NotANumber(_))), "{text}: {:?}", parse_memory(text));
    }
    assert!(matches!(parse_memory("99999999TiB"), Err(UnitError::TooLarge(_))));
}

#[test]
fn cpu_amounts_become_millicores() {
    assert_eq!(parse_cpu("2"), Ok(2000));
    assert_eq!(parse_cpu("0.5"), Ok(500));
    assert_eq!(parse_cpu(".25"), Ok(250));
    assert_eq!(parse_cpu("0.0001"), Ok(1), "rounded up");
    assert_eq!(cpu_millicores(0.1), Ok(100));
    assert_eq!(cpu_millicores(1.5), Ok(1500));
    assert!(matches!(parse_cpu("500m"), Err(UnitError::NotANumber(_))));
    assert!(matches!(parse_cpu("-1"), Err(UnitError::NotANumber(_))));
    assert_eq!(parse_cpu(""), Err(UnitError::Empty));
    assert!(cpu_millicores(-0.5).is_err());
    assert!(cpu_millicores(f64::NAN).is_err());
    assert_eq!(gpu_count(2.0), Ok(2));
    assert!(gpu_count(0.5).is_err());
    let bundle =
        Bundle::from_allocation(&ResourceAllocation { cpu: 0.5, memory: "512MiB".into(), gpu: 0.0, gpu_memory: None }).expect("valid");
    assert_eq!((bundle.cpu_millicores, bundle.memory_bytes, bundle.gpu_count), (500, 512 * 1024 * 1024, 0));
}

// ---------------------------------------------------------------- properties

/// Node sizes to draw from: (cores, GiB of memory).
const ROOMY: ([u64; 4], [u64; 4]) = ([8, 16, 32, 64], [32, 64, 128, 256]);
const TIGHT: ([u64; 4], [u64; 4]) = ([8, 8, 16, 16], [64, 64, 128, 128]);
const SMALL: ([u64; 4], [u64; 4]) = ([4, 4, 8, 8], [16, 16, 32, 32]);
const MODELS: [&str; 3] = [GPU_TYPE_L4, GPU_TYPE_A10G, GPU_TYPE_H100];
const IMPORTANCES: [Importance; 4] = [Importance::Low, Importance::Moderate, Importance::High, Importance::Critical];

fn arb_nodes(max: usize, sizes: ([u64; 4], [u64; 4])) -> impl Strategy<Value = Vec<Node>> {
    let gpus = prop_oneof![Just(0u32), Just(4), Just(8)];
    prop::collection::vec((0..4usize, 0..4usize, gpus, 0..3usize, 0..2usize, 0..3usize), 1..=max).prop_map(move |specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(index, (cores, memory, gpus, model, region, zone))| {
                let mut node = Node::new(format!("n{index}"), format!("r{region}"), format!("r{region}-z{zone}"), 0, 0);
                node.cpu_millicores = sizes.0[cores] * 1000;
                node.memory_bytes = sizes.1[memory] * GIB;
                if gpus > 0 {
                    node = node.with_gpus(gpus, MODELS[model], gpu_memory_of(MODELS[model]));
                }
                node
            })
            .collect()
    })
}

/// Allocations drawn at random, keeping those that fit (checked by summing, independently of the
/// module).
fn arb_allocations(nodes: Vec<Node>, bundles: &'static [&'static str], max: usize) -> impl Strategy<Value = (Vec<Node>, Vec<Allocation>)> {
    let drawn = (any::<prop::sample::Index>(), prop::sample::select(bundles), prop::sample::select(&IMPORTANCES[..]));
    prop::collection::vec(drawn, max / 2..=max).prop_map(move |drawn| {
        let mut kept: Vec<Allocation> = Vec::new();
        for (index, (node, bundle_id, importance)) in drawn.into_iter().enumerate() {
            let node = &nodes[node.index(nodes.len())];
            let candidate = Allocation {
                id: AllocationId { proton: format!("w{}", index % 4), replica: u32::try_from(index).expect("small") },
                node: node.name.clone(),
                bundle: bundle(bundle_id),
                importance,
            };
            kept.push(candidate);
            if !over_commitments(&nodes, &kept).is_empty() {
                kept.pop();
            }
        }
        (nodes.clone(), kept)
    })
}

/// Which catalogue bundles a request draws from, and its possible importances.
struct RequestShape {
    bundles: &'static [&'static str],
    importances: &'static [Importance],
    max_replicas: u32,
}

/// Anything in the catalogue, at any importance.
const ANY_REQUEST: RequestShape = RequestShape {
    bundles: &[
        "cpu.small",
        "cpu.medium",
        "cpu.large",
        "gpu.l4.small",
        "gpu.l4.medium",
        "gpu.l4.large",
        "gpu.a10g.small",
        "gpu.a10g.medium",
        "gpu.a10g.large",
        "gpu.h100.small",
        "gpu.h100.medium",
        "gpu.h100.large",
    ],
    importances: &IMPORTANCES,
    max_replicas: 5,
};

/// Bundles that fit an empty tight node, asked for at an importance that can preempt.
const PREEMPTING_REQUEST: RequestShape = RequestShape {
    bundles: &["cpu.medium", "cpu.large", "gpu.l4.small", "gpu.l4.medium", "gpu.a10g.small", "gpu.h100.small"],
    importances: &[Importance::Moderate, Importance::High, Importance::High, Importance::Critical],
    max_replicas: 3,
};

/// Small bundles for small nodes, so that a few allocations fill a node.
const SMALL_REQUEST: RequestShape = RequestShape {
    bundles: &["cpu.small", "cpu.medium", "cpu.large", "gpu.l4.small", "gpu.a10g.small"],
    importances: &[Importance::Moderate, Importance::High, Importance::High, Importance::Critical],
    max_replicas: 3,
};

fn arb_request(shape: &'static RequestShape) -> impl Strategy<Value = Request> {
    let bundles = prop::collection::vec(prop::sample::select(shape.bundles), 1..=3);
    (bundles, 1..=shape.max_replicas, prop::sample::select(shape.importances), prop::option::of(0..2usize)).prop_map(
        |(bundles, replicas, importance, region)| {
            let mut request = Request::new("new", replicas, importance, bundles.into_iter().map(bundle).collect());
            request.preferred_region = region.map(|region| format!("r{region}"));
            request
        },
    )
}

fn arb_case(
    max_nodes: usize,
    sizes: ([u64; 4], [u64; 4]),
    max_allocations: usize,
    shape: &'static RequestShape,
) -> impl Strategy<Value = (Vec<Node>, Vec<Allocation>, Request)> {
    let cluster = arb_nodes(max_nodes, sizes).prop_flat_map(move |nodes| arb_allocations(nodes, shape.bundles, max_allocations));
    (cluster, arb_request(shape)).prop_map(|((nodes, allocations), request)| (nodes, allocations, request))
}

/// Every way `allocations` break `nodes`, by summing: unknown node, wrong GPU model or memory,
/// or more of a resource than the node has.
fn over_commitments(nodes: &[Node], allocations: &[Allocation]) -> Vec<String> {
    let mut problems = Vec::new();
    for allocation in allocations {
        let Some(node) = nodes.iter().find(|node| node.name == allocation.node) else {
            problems.push(format!("{} on unknown node", allocation.id));
            continue;
        };
        let bundle = &allocation.bundle;
        if bundle.gpu_count > 0
            && (node.gpu_type.is_none()
                || bundle.gpu_type.as_ref().is_some_and(|model| Some(model) != node.gpu_type.as_ref())
                || node.gpu_memory_bytes < bundle.gpu_memory_bytes)
        {
            problems.push(format!("{} on unsuitable node {}", allocation.id, node.name));
        }
    }
    for node in nodes {
        let on_node = || allocations.iter().filter(|allocation| allocation.node == node.name).map(|a| &a.bundle);
        let cpu: u64 = on_node().map(|bundle| bundle.cpu_millicores).sum();
        let memory: u64 = on_node().map(|bundle| bundle.memory_bytes).sum();
        let gpus: u64 = on_node().map(|bundle| u64::from(bundle.gpu_count)).sum();
        if cpu > node.cpu_millicores || memory > node.memory_bytes || gpus > u64::from(node.gpu_count) {
            problems.push(format!("{} over-committed: cpu {cpu}, memory {memory}, gpus {gpus}", node.name));
        }
    }
    problems
}

/// Whether some bundle of `request` has room for all replicas, counting per node how many copies
/// fit (independently of the module).
fn has_room(nodes: &[Node], allocations: &[Allocation], request: &Request) -> bool {
    request.bundles.iter().any(|bundle| {
        let room: u64 = nodes
            .iter()
            .map(|node| {
                let mut copies = 0u64;
                let mut trial = allocations.to_vec();
                loop {
                    trial.push(Allocation {
                        id: AllocationId { proton: "probe".into(), replica: 0 },
                        node: node.name.clone(),
                        bundle: bundle.clone(),
                        importance: Importance::Low,
                    });
                    if !over_commitments(nodes, &trial).is_empty() || copies >= u64::from(request.replicas) {
                        break copies;
                    }
                    copies += 1;
                }
            })
            .sum();
        room >= u64::from(request.replicas)
    })
}

fn may_be_stopped_for(allocation: &Allocation, request: &Request) -> bool {
    allocation.importance < request.importance && allocation.importance != Importance::Critical
}

fn check_preemption(
    nodes: &[Node],
    allocations: &[Allocation],
    request: &Request,
    result: &Result<Preemption, Shortage>,
) -> Result<(), TestCaseError> {
    match result {
        Ok(preemption) => {
            for victim in &preemption.victims {
                let allocation = allocations.iter().find(|allocation| allocation.id == *victim);
                let allocation = allocation.ok_or_else(|| TestCaseError::fail(format!("{victim} is not running")))?;
                prop_assert!(may_be_stopped_for(allocation, request), "{victim} is {:?}", allocation.importance);
            }
            let survivors = preemption.survivors(allocations);
            let mut after = survivors.clone();
            after.extend(preemption.plan.allocations());
            prop_assert_eq!(over_commitments(nodes, &after), Vec::<String>::new());
            prop_assert_eq!(preemption.plan.assignments.len(), request.replicas as usize);
            prop_assert_eq!(verify(&preemption.plan, nodes, &survivors), Ok(()));
            let mut protons: Vec<String> = preemption.victims.iter().map(|id| id.proton.clone()).collect();
            protons.dedup();
            prop_assert_eq!(&preemption.interrupted, &protons);
        }
        Err(_) => {
            let survivors: Vec<Allocation> =
                allocations.iter().filter(|allocation| !may_be_stopped_for(allocation, request)).cloned().collect();
            prop_assert!(!has_room(nodes, &survivors, request), "a solution exists: stop everything eligible");
        }
    }
    Ok(())
}

/// The brute-force cost of a victim set: count, importances from the highest, GPUs, CPU, memory.
type VictimCost = (usize, Vec<Importance>, u64, u64, u64);

fn victim_cost(victims: &[&Allocation]) -> VictimCost {
    let mut importances: Vec<Importance> = victims.iter().map(|victim| victim.importance).collect();
    importances.sort_by(|a, b| b.cmp(a));
    (
        victims.len(),
        importances,
        victims.iter().map(|victim| u64::from(victim.bundle.gpu_count)).sum(),
        victims.iter().map(|victim| victim.bundle.cpu_millicores).sum(),
        victims.iter().map(|victim| victim.bundle.memory_bytes).sum(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn plans_never_over_commit_and_verify_accepts_them(
        (nodes, allocations, request) in arb_case(20, ROOMY, 40, &ANY_REQUEST)
    ) {
        prop_assert_eq!(over_commitments(&nodes, &allocations), Vec::<String>::new());
        match place(&nodes, &allocations, &request) {
            Ok(plan) => {
                prop_assert_eq!(plan.assignments.len(), request.replicas as usize);
                let mut after = allocations.clone();
                after.extend(plan.allocations());
                prop_assert_eq!(over_commitments(&nodes, &after), Vec::<String>::new());
                prop_assert_eq!(verify(&plan, &nodes, &allocations), Ok(()));

                // Another worker books the whole of a node the plan uses: verify must refuse.
                let node = nodes.iter().find(|node| node.name == plan.assignments[0].node).expect("known node");
                let mut whole_node = Bundle::cpu_only("whole", node.cpu_millicores, node.memory_bytes);
                whole_node.gpu_count = node.gpu_count;
                whole_node.gpu_type = node.gpu_type.clone();
                let mut racing = allocations.clone();
                racing.push(Allocation {
                    id: AllocationId { proton: "racer".into(), replica: 0 },
                    node: node.name.clone(),
                    bundle: whole_node,
                    importance: Importance::Low,
                });
                let conflicts = verify(&plan, &nodes, &racing).expect_err("double booking");
                let names_node = |conflict: &Conflict| matches!(conflict, Conflict::OverCommitted { node: name, .. } if *name == node.name);
                prop_assert!(conflicts.iter().any(names_node), "{:?}", conflicts);
            }
            Err(shortage) => {
                prop_assert!(!has_room(&nodes, &allocations, &request), "room existed: {}", shortage);
                prop_assert_eq!(shortage.attempts.len(), request.bundles.len());
            }
        }
    }

    #[test]
    fn preemption_is_always_valid(
        (nodes, allocations, request) in arb_case(20, TIGHT, 120, &PREEMPTING_REQUEST)
    ) {
        let chosen = preempt(&nodes, &allocations, &request);
        check_preemption(&nodes, &allocations, &request, &chosen)?;
        let greedy = preempt_with(&nodes, &allocations, &request, Search::Greedy);
        check_preemption(&nodes, &allocations, &request, &greedy)?;
        prop_assert_eq!(chosen.is_ok(), greedy.is_ok());
    }

}

proptest! {
    // Small cases are cheap and need many draws to hit the ones where preemption is needed.
    #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn preemption_is_minimal_on_small_clusters(
        (nodes, allocations, request) in arb_case(4, SMALL, 6, &SMALL_REQUEST)
    ) {
        let result = preempt(&nodes, &allocations, &request);
        check_preemption(&nodes, &allocations, &request, &result)?;

        let mut best: Option<VictimCost> = None;
        for subset in 0u32..(1 << allocations.len()) {
            let victims: Vec<&Allocation> = allocations.iter().enumerate()
                .filter(|(index, _)| subset & (1 << index) != 0).map(|(_, allocation)| allocation).collect();
            if !victims.iter().all(|victim| may_be_stopped_for(victim, &request)) {
                continue;
            }
            let survivors: Vec<Allocation> = allocations.iter().enumerate()
                .filter(|(index, _)| subset & (1 << index) == 0).map(|(_, allocation)| allocation.clone()).collect();
            if has_room(&nodes, &survivors, &request) {
                let cost = victim_cost(&victims);
                if best.as_ref().is_none_or(|best| cost < *best) {
                    best = Some(cost);
                }
            }
        }
        match (&result, best) {
            (Ok(preemption), Some(best)) => {
                let victims: Vec<&Allocation> = preemption.victims.iter()
                    .map(|id| allocations.iter().find(|allocation| allocation.id == *id).expect("running")).collect();
                prop_assert_eq!(victim_cost(&victims), best);
            }
            (Err(_), None) => {}
            (result, best) => prop_assert!(false, "preempt {:?}, brute force {:?}", result, best),
        }
    }
}
