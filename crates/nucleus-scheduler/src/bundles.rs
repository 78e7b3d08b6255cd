//! Which resource bundle a proton runs with, and which agent can hold it.
//!
//! `resourceBundles` is an ordered preference (`bundleSelectionPolicy: availability`): the first
//! bundle of the list that some connected agent has a node for is chosen, and reported back as
//! the group's `resolvedBundle`. Without `resourceBundles` any connected agent will do and no
//! bundle is reserved. Nodes are matched by what they have, not by what is in use on them: the
//! per-node accounting of `placement` is not wired to agents yet.

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

/// Chooses bundle and agent. `agents` are the connected agents with the nodes they registered,
/// in the order to try them.
pub fn choose<'a>(group: Option<&GroupRuntime>, agents: &[(&'a str, &'a [NodeRecord])]) -> Choice<'a> {
    let ids: Vec<&str> = group.and_then(|g| g.resource_bundles.as_ref()).into_iter().flatten().map(String::as_str).collect();
    if ids.is_empty() {
        return match agents.first() {
            Some((agent, _)) => Choice::On { agent, bundle: None },
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
        if let Some((agent, _)) = agents.iter().find(|(_, nodes)| nodes.iter().any(|node| holds(node, bundle))) {
            return Choice::On { agent, bundle: Some((*bundle).clone()) };
        }
    }
    Choice::Short(format!(
        "No connected agent has a node that can hold resource bundle {} ({}, {} GiB memory){}; waiting for capacity",
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
    let cpu_millis = (bundle.cpu_count * 1000.0).ceil() as u64;
    let gpus_ok = bundle.gpu_count == 0
        || (node.gpu_count >= bundle.gpu_count
            && bundle.gpu_type_label.as_deref().is_none_or(|model| model == node.gpu_type)
            && node.gpu_memory_bytes >= bundle.gpu_memory_bytes);
    u64::from(node.cpu_millis) >= cpu_millis && node.memory_bytes >= bundle.memory_bytes && gpus_ok
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

    #[test]
    fn without_bundles_the_first_connected_agent_runs_it() {
        let cpu = [node(2000, 8, 0, "")];
        assert_eq!(choose(None, &[("a", &cpu)]), Choice::On { agent: "a", bundle: None });
        assert!(matches!(choose(None, &[]), Choice::Short(_)));
    }

    #[test]
    fn the_first_bundle_some_agent_can_hold_is_chosen_on_that_agent() {
        let cpu_host = [node(4000, 16, 0, "")];
        let gpu_host = [node(32_000, 128, 2, "nvidia-l4")];
        let agents = [("cpu-only", &cpu_host[..]), ("gpus", &gpu_host[..])];
        let group = asking(&["gpu.h100.small", "gpu.l4.medium", "cpu.small"]);
        match choose(Some(&group), &agents) {
            Choice::On { agent, bundle } => {
                assert_eq!(agent, "gpus");
                assert_eq!(bundle.unwrap().id, "gpu.l4.medium", "no H100 anywhere: the next preference");
            }
            other => panic!("{other:?}"),
        }
        let cpu_first = asking(&["cpu.small", "gpu.l4.small"]);
        assert!(matches!(choose(Some(&cpu_first), &agents), Choice::On { agent: "cpu-only", .. }));
    }

    #[test]
    fn a_shortage_names_the_bundle_and_the_resource() {
        let cpu_host = [node(4000, 16, 0, "")];
        let Choice::Short(message) = choose(Some(&asking(&["gpu.l4.small"])), &[("cpu-only", &cpu_host[..])]) else {
            panic!("a CPU-only agent cannot hold an L4 bundle");
        };
        assert!(message.contains("gpu.l4.small") && message.contains("nvidia-l4"), "{message}");
        let Choice::Short(message) = choose(Some(&asking(&["no.such"])), &[("cpu-only", &cpu_host[..])]) else {
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
