use nucleus_api::bundle::default_catalogue;

use super::*;

const GIB: u64 = 1 << 30;

fn bundle(id: &str) -> ResourceBundle {
    default_catalogue().into_iter().find(|b| b.id == id).unwrap()
}

fn gpu_node(name: &str, gpus: u32) -> NodeRecord {
    NodeRecord {
        name: name.into(),
        zone: "z1".into(),
        cpu_millis: 64_000,
        memory_bytes: 256 * GIB,
        gpu_count: gpus,
        gpu_type: "nvidia-l4".into(),
        gpu_memory_bytes: 24 * GIB,
    }
}

fn ask<'a>(proton: &'a str, replicas: u32, importance: Importance, bundles: &'a [ResourceBundle]) -> Ask<'a> {
    Ask { proton, workload: proton, replicas, importance, bundles }
}

/// Commits `change` to the local ledger as meta would (every write at one new revision), after
/// checking its conditions as meta would.
fn commit(ledgers: &mut Ledgers, change: &Change, revision: u64) -> bool {
    let holds = change.writes.iter().all(|(key, planned, _)| ledgers.get(key).map_or(0, |d| d.mod_revision) == *planned);
    if holds {
        change.applied(revision, ledgers);
    }
    holds
}

/// GPUs reserved per node key.
fn gpus_reserved(ledgers: &Ledgers) -> BTreeMap<String, u32> {
    ledgers
        .iter()
        .map(|(key, doc)| (key.clone(), doc.value.allocations.iter().filter(|r| r.is_live()).map(|r| r.bundle.gpu_count).sum()))
        .collect()
}

#[test]
fn placements_fill_the_nodes_and_then_name_what_is_short() {
    let nodes = [gpu_node("n1", 2), gpu_node("n2", 2)];
    let agents = [AgentNodes { name: "a", region: "r", nodes: &nodes }];
    let small = [bundle("gpu.l4.small")];
    let mut ledgers = Ledgers::new();
    for (i, proton) in ["p1", "p2", "p3", "p4"].into_iter().enumerate() {
        let change = place(&agents, &ledgers, &ask(proton, 1, Importance::Moderate, &small)).unwrap();
        assert_eq!(change.agent, "a");
        assert!(change.interrupted.is_empty());
        assert!(commit(&mut ledgers, &change, i as u64 + 1));
    }
    assert_eq!(gpus_reserved(&ledgers).values().copied().collect::<Vec<_>>(), [2, 2], "4 GPUs, 4 replicas");
    let Err(error) = place(&agents, &ledgers, &ask("p5", 1, Importance::Moderate, &small)) else {
        panic!("every GPU is taken and nothing less important runs");
    };
    let message = error.to_string();
    assert!(message.contains("gpu.l4.small") && message.contains("GPU"), "{message}");
    let holding = holding(&ledgers, "p3").unwrap();
    assert_eq!((holding.agent.as_str(), holding.bundle.id.as_str(), holding.preempted_by), ("a", "gpu.l4.small", None));
}

#[test]
fn two_plans_from_one_snapshot_cannot_both_commit_the_last_gpu() {
    let nodes = [gpu_node("n1", 1)];
    let agents = [AgentNodes { name: "a", region: "r", nodes: &nodes }];
    let small = [bundle("gpu.l4.small")];
    let mut ledgers = Ledgers::new();
    let first = place(&agents, &ledgers, &ask("p1", 1, Importance::Moderate, &small)).unwrap();
    let second = place(&agents, &ledgers, &ask("p2", 1, Importance::Moderate, &small)).unwrap();
    assert!(commit(&mut ledgers, &first, 1));
    assert!(!commit(&mut ledgers, &second, 2), "planned on a revision that is gone");
    assert!(place(&agents, &ledgers, &ask("p2", 1, Importance::Moderate, &small)).is_err(), "re-planned: no room");
}

#[test]
fn a_more_important_proton_preempts_and_the_victim_learns_by_whom() {
    let nodes = [gpu_node("n1", 2)];
    let agents = [AgentNodes { name: "a", region: "r", nodes: &nodes }];
    let small = [bundle("gpu.l4.small")];
    let mut ledgers = Ledgers::new();
    let low = place(&agents, &ledgers, &ask("low", 2, Importance::Low, &small)).unwrap();
    assert!(commit(&mut ledgers, &low, 1));
    let critical = place(&agents, &ledgers, &ask("crit", 1, Importance::Critical, &small)).unwrap();
    assert_eq!(critical.interrupted, ["low"]);
    assert!(commit(&mut ledgers, &critical, 2));
    let victim = holding(&ledgers, "low").unwrap();
    let preemptor = victim.preempted_by.expect("marked preempted");
    assert_eq!((preemptor.proton.as_str(), preemptor.importance), ("crit", Importance::Critical));
    assert_eq!(gpus_reserved(&ledgers).values().sum::<u32>(), 2, "one replica of low preempted, crit holds its GPU");

    // A critical proton is never preempted, and an equal importance does not preempt.
    let Err(error) = place(&agents, &ledgers, &ask("crit2", 2, Importance::Critical, &small)) else {
        panic!("only one GPU could be freed (the other is critical)");
    };
    let message = error.to_string();
    assert!(message.contains("gpu.l4.small"), "{message}");

    // Releasing the victim frees its records; an empty node document is deleted.
    let release = release(&ledgers, "low");
    assert_eq!(release.writes.len(), 1);
    assert!(commit(&mut ledgers, &release, 3));
    assert!(holding(&ledgers, "low").is_none());
    let release_crit = super::release(&ledgers, "crit");
    assert!(commit(&mut ledgers, &release_crit, 4));
    assert!(ledgers.is_empty(), "{ledgers:?}");
}

#[test]
fn without_agents_or_room_anywhere_the_message_says_so() {
    let small = [bundle("gpu.l4.small")];
    let Err(error) = place(&[], &Ledgers::new(), &ask("p", 1, Importance::Low, &small)) else { panic!() };
    let message = error.to_string();
    assert!(message.contains("No node agent"), "{message}");
    let cpu = [NodeRecord { gpu_count: 0, gpu_type: String::new(), ..gpu_node("c", 0) }];
    let agents = [AgentNodes { name: "a", region: "r", nodes: &cpu }, AgentNodes { name: "b", region: "r", nodes: &cpu }];
    let Err(error) = place(&agents, &Ledgers::new(), &ask("p", 1, Importance::Low, &small)) else { panic!() };
    let message = error.to_string();
    assert!(message.contains("agent a") && message.contains("agent b") && message.contains("nvidia-l4"), "{message}");
}

#[test]
fn a_placed_proton_grows_with_its_bundle_preempting_only_less_important_ones_and_shrinks() {
    let nodes = [gpu_node("n1", 2), gpu_node("n2", 2)];
    let agent = AgentNodes { name: "a", region: "r", nodes: &nodes };
    let small = [bundle("gpu.l4.small")];
    let mut ledgers = Ledgers::new();
    let placed = place(&[agent], &ledgers, &ask("scaled", 1, Importance::High, &small)).unwrap();
    assert!(commit(&mut ledgers, &placed, 1));
    let low = place(&[agent], &ledgers, &ask("low", 2, Importance::Low, &small)).unwrap();
    assert!(commit(&mut ledgers, &low, 2));
    assert_eq!(reserved(&ledgers, "scaled"), 1);

    // One more GPU is free: the scale-up takes it, numbered after the first replica.
    let held = holding(&ledgers, "scaled").unwrap();
    let grown = grow(agent, &ledgers, &held, &ask("scaled", 1, Importance::High, &small)).unwrap();
    assert!(grown.interrupted.is_empty());
    assert!(commit(&mut ledgers, &grown, 3));
    assert_eq!(reserved(&ledgers, "scaled"), 2);
    let replicas: Vec<u32> =
        ledgers.values().flat_map(|d| d.value.allocations.iter()).filter(|r| r.proton == "scaled").map(|r| r.replica).collect();
    assert_eq!(replicas.iter().copied().collect::<std::collections::BTreeSet<_>>(), [0, 1].into());

    // Full: the next scale-up preempts the less important proton, never an equal or higher one.
    let grown = grow(agent, &ledgers, &held, &ask("scaled", 1, Importance::High, &small)).unwrap();
    assert_eq!(grown.interrupted, ["low"]);
    assert!(commit(&mut ledgers, &grown, 4));
    let equal = place(&[agent], &ledgers, &ask("peer", 1, Importance::High, &small));
    assert!(equal.is_err() || equal.unwrap().interrupted.iter().all(|p| p == "low"));

    // Scale-down drops the highest-numbered replicas' records only.
    let shrunk = shrink(&ledgers, "scaled", 1);
    assert!(commit(&mut ledgers, &shrunk, 5));
    assert_eq!(reserved(&ledgers, "scaled"), 1);
    assert!(shrink(&ledgers, "scaled", 1).is_empty(), "nothing more to drop");
}
