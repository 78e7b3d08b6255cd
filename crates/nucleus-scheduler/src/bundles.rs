//! Which resource bundle a proton runs with, and which agent can hold it.
//!
//! `resourceBundles` is an ordered preference (`bundleSelectionPolicy: availability`): the first
//! bundle of the list that some connected agent has room for is chosen, and reported back as the
//! group's `resolvedBundle`. Without `resourceBundles` any connected agent will do and no bundle is
//! reserved.
//!
//! Room is counted per agent: a bundle fits if one of the agent's nodes could hold a replica and
//! the agent's totals (CPU, memory, and GPUs of the bundle's model) minus what its placed protons
//! reserve cover every replica. So an agent's GPUs are never promised twice; packing replicas onto
//! particular nodes is left to the agent's driver (the per-node `placement` module is not wired to
//! agents yet).

use nucleus_api::bundle::{default_catalogue, ResourceBundle};
use nucleus_api::workload::GroupRuntime;
use nucleus_client::NodeRecord;
use nucleus_proto::agent::v1 as pb;

/// The decision for one proton.
#[derive(Debug, Clone, PartialEq)]
pub enum Choice<'a> {
    /// Run on this agent, reserving this bundle (if the runtime asked for one).
    On { agent: &'a str, bundle: Option<ResourceBundle> },
    /// No connected agent can hold any requested bundle; says which resource is short.
    Short(String),
}

/// The runtime group that asks for bundles, if any.
pub fn requesting_group(groups: &[GroupRuntime]) -> Option<&GroupRuntime> {
    groups.iter().find(|g| g.resource_bundles.as_ref().is_some_and(|ids| !ids.is_empty()))
}

/// A connected agent as placement sees it.
#[derive(Debug, Clone)]
pub struct AgentRoom<'a> {
    pub name: &'a str,
    /// The nodes it registered.
    pub nodes: &'a [NodeRecord],
    /// What the protons placed on it reserve: (bundle, replicas).
    pub reserved: Vec<(ResourceBundle, u32)>,
}

impl AgentRoom<'_> {
    /// Whether `replicas` more replicas of `bundle` fit (see the module comment).
    fn fits(&self, bundle: &ResourceBundle, replicas: u32) -> bool {
        if !self.nodes.iter().any(|node| holds(node, bundle)) {
            return false;
        }
        let wanted = u64::from(replicas);
        let cpu = |b: &ResourceBundle| (b.cpu_count * 1000.0).ceil() as u64;
        let same_model = |b: &ResourceBundle| b.gpu_type_label == bundle.gpu_type_label;
        let reserved = |amount: &dyn Fn(&ResourceBundle) -> u64| -> u64 {
            self.reserved.iter().map(|(b, n)| amount(b) * u64::from(*n)).sum()
        };
        let total_cpu: u64 = self.nodes.iter().map(|n| u64::from(n.cpu_millis)).sum();
        let total_memory: u64 = self.nodes.iter().map(|n| n.memory_bytes).sum();
        // GPUs count where a replica could use them: the right model on a node with room for one.
        let total_gpus: u64 =
            self.nodes.iter().filter(|n| gpus_suit(n, bundle) && host_fits(n, bundle)).map(|n| u64::from(n.gpu_count)).sum();
        let reserved_gpus = reserved(&|b| if same_model(b) { u64::from(b.gpu_count) } else { 0 });
        total_cpu >= reserved(&cpu) + cpu(bundle) * wanted
            && total_memory >= reserved(&|b| b.memory_bytes) + bundle.memory_bytes * wanted
            && (bundle.gpu_count == 0 || total_gpus >= reserved_gpus + u64::from(bundle.gpu_count) * wanted)
    }
}

/// Chooses bundle and agent for `replicas` replicas. `agents` are the connected agents, in the
/// order to try them.
pub fn choose<'a>(group: Option<&GroupRuntime>, replicas: u32, agents: &[AgentRoom<'a>]) -> Choice<'a> {
    let ids: Vec<&str> = group.and_then(|g| g.resource_bundles.as_ref()).into_iter().flatten().map(String::as_str).collect();
    if ids.is_empty() {
        return match agents.first() {
            Some(agent) => Choice::On { agent: agent.name, bundle: None },
            None => Choice::Short(
                "No node agent is connected to run this proton; start one (nucleus agent) or check its logs".to_owned(),
            ),
        };
    }
    let catalogue = default_catalogue();
    let wanted: Vec<&ResourceBundle> = ids.iter().filter_map(|id| catalogue.iter().find(|b| b.id == *id)).collect();
    let Some(first) = wanted.first() else {
        return Choice::Short(format!(
            "None of the requested resource bundles ({}) exists; see GET /api/v2/mlops/compute/bundles/ for the catalogue",
            ids.join(", ")
        ));
    };
    for bundle in &wanted {
        if let Some(agent) = agents.iter().find(|agent| agent.fits(bundle, replicas)) {
            return Choice::On { agent: agent.name, bundle: Some((*bundle).clone()) };
        }
    }
    Choice::Short(format!(
        "No connected agent has room for {replicas} replica(s) of resource bundle {} ({}, {} GiB memory){}; waiting for capacity",
        first.id,
        describe_compute(first),
        first.memory_bytes >> 30,
        if wanted.len() > 1 { format!(" or any of the other {} requested", wanted.len() - 1) } else { String::new() },
    ))
}

fn describe_compute(bundle: &ResourceBundle) -> String {
    match &bundle.gpu_type_label {
        Some(model) if bundle.gpu_count > 0 => format!("{} x {model} GPU, {} CPU", bundle.gpu_count, bundle.cpu_count),
        _ => format!("{} CPU", bundle.cpu_count),
    }
}

/// Whether a node could run one replica of the bundle if it ran nothing else.
pub fn holds(node: &NodeRecord, bundle: &ResourceBundle) -> bool {
    let gpus_ok = bundle.gpu_count == 0 || (node.gpu_count >= bundle.gpu_count && gpus_suit(node, bundle));
    host_fits(node, bundle) && gpus_ok
}

/// Whether the node has the CPU and memory of one replica.
fn host_fits(node: &NodeRecord, bundle: &ResourceBundle) -> bool {
    let cpu_millis = (bundle.cpu_count * 1000.0).ceil() as u64;
    u64::from(node.cpu_millis) >= cpu_millis && node.memory_bytes >= bundle.memory_bytes
}

/// Whether the node's GPUs are of the bundle's model and have enough memory each (not how many).
fn gpus_suit(node: &NodeRecord, bundle: &ResourceBundle) -> bool {
    bundle.gpu_count > 0
        && bundle.gpu_type_label.as_deref().is_none_or(|model| model == node.gpu_type)
        && node.gpu_memory_bytes >= bundle.gpu_memory_bytes
}

/// What a Launch reserves for each replica.
pub fn resources(bundle: &ResourceBundle) -> pb::Resources {
    pb::Resources {
        bundle_id: bundle.id.clone(),
        cpu_millis: (bundle.cpu_count * 1000.0).ceil() as u32,
        memory_bytes: bundle.memory_bytes,
        gpu_count: bundle.gpu_count,
        gpu_type: bundle.gpu_type_label.clone().unwrap_or_default(),
        gpu_memory_bytes: bundle.gpu_memory_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn node(cpu_millis: u32, memory_gib: u64, gpus: u32, gpu_type: &str) -> NodeRecord {
        NodeRecord {
            name: "n".into(),
            zone: String::new(),
            cpu_millis,
            memory_bytes: memory_gib * GIB,
            gpu_count: gpus,
            gpu_type: gpu_type.into(),
            gpu_memory_bytes: if gpus > 0 { 24 * GIB } else { 0 },
        }
    }

    fn asking(ids: &[&str]) -> GroupRuntime {
        let mut group: GroupRuntime = serde_json::from_value(serde_json::json!({"name": "default"})).unwrap();
        group.resource_bundles = Some(ids.iter().map(|id| id.to_string()).collect());
        group
    }

    fn room<'a>(name: &'a str, nodes: &'a [NodeRecord]) -> AgentRoom<'a> {
        AgentRoom { name, nodes, reserved: Vec::new() }
    }

    fn bundle(id: &str) -> ResourceBundle {
        default_catalogue().into_iter().find(|b| b.id == id).unwrap()
    }

    #[test]
    fn without_bundles_the_first_connected_agent_runs_it() {
        let cpu = [node(2000, 8, 0, "")];
        assert_eq!(choose(None, 1, &[room("a", &cpu)]), Choice::On { agent: "a", bundle: None });
        assert!(matches!(choose(None, 1, &[]), Choice::Short(_)));
    }

    #[test]
    fn gpus_already_promised_are_not_promised_again() {
        let gpu_host = [node(32_000, 128, 2, "nvidia-l4")];
        let group = asking(&["gpu.l4.small"]);
        let empty = room("gpus", &gpu_host);
        assert!(matches!(choose(Some(&group), 2, std::slice::from_ref(&empty)), Choice::On { agent: "gpus", .. }));
        assert!(matches!(choose(Some(&group), 3, std::slice::from_ref(&empty)), Choice::Short(_)), "2 GPUs, 3 replicas");
        let half = AgentRoom { reserved: vec![(bundle("gpu.l4.small"), 1)], ..room("gpus", &gpu_host) };
        assert!(matches!(choose(Some(&group), 1, std::slice::from_ref(&half)), Choice::On { .. }));
        let full = AgentRoom { reserved: vec![(bundle("gpu.l4.small"), 2)], ..room("gpus", &gpu_host) };
        let Choice::Short(message) = choose(Some(&group), 1, std::slice::from_ref(&full)) else {
            panic!("both GPUs are reserved");
        };
        assert!(message.contains("gpu.l4.small"), "{message}");
        // CPU-only reservations do not use GPUs, but they do use CPU and memory.
        let cpu_heavy = AgentRoom { reserved: vec![(bundle("cpu.large"), 8)], ..room("gpus", &gpu_host) };
        assert!(matches!(choose(Some(&group), 1, std::slice::from_ref(&cpu_heavy)), Choice::Short(_)), "all 32 cores taken");
        let room_left = AgentRoom { reserved: vec![(bundle("cpu.large"), 7)], ..room("gpus", &gpu_host) };
        assert!(matches!(choose(Some(&group), 1, std::slice::from_ref(&room_left)), Choice::On { .. }), "28 + 4 of 32 cores");
    }

    #[test]
    fn the_first_bundle_some_agent_can_hold_is_chosen_on_that_agent() {
        let cpu_host = [node(4000, 16, 0, "")];
        let gpu_host = [node(32_000, 128, 2, "nvidia-l4")];
        let agents = [room("cpu-only", &cpu_host), room("gpus", &gpu_host)];
        let group = asking(&["gpu.h100.small", "gpu.l4.medium", "cpu.small"]);
        match choose(Some(&group), 1, &agents) {
            Choice::On { agent, bundle } => {
                assert_eq!(agent, "gpus");
                assert_eq!(bundle.unwrap().id, "gpu.l4.medium", "no H100 anywhere: the next preference");
            }
            other => panic!("{other:?}"),
        }
        let cpu_first = asking(&["cpu.small", "gpu.l4.small"]);
        assert!(matches!(choose(Some(&cpu_first), 1, &agents), Choice::On { agent: "cpu-only", .. }));
    }

    #[test]
    fn a_shortage_names_the_bundle_and_the_resource() {
        let cpu_host = [node(4000, 16, 0, "")];
        let Choice::Short(message) = choose(Some(&asking(&["gpu.l4.small"])), 1, &[room("cpu-only", &cpu_host)]) else {
            panic!("a CPU-only agent cannot hold an L4 bundle");
        };
        assert!(message.contains("gpu.l4.small") && message.contains("nvidia-l4"), "{message}");
        let Choice::Short(message) = choose(Some(&asking(&["no.such"])), 1, &[room("cpu-only", &cpu_host)]) else {
            panic!("unknown bundle");
        };
        assert!(message.contains("no.such") && message.contains("/mlops/compute/bundles"), "{message}");
    }

    #[test]
    fn launch_resources_carry_the_bundle() {
        let bundle = default_catalogue().into_iter().find(|b| b.id == "gpu.l4.small").unwrap();
        let resources = resources(&bundle);
        assert_eq!((resources.cpu_millis, resources.gpu_count, resources.gpu_type.as_str()), (4000, 1, "nvidia-l4"));
        assert_eq!(resources.memory_bytes, 16 * GIB);
    }
}
