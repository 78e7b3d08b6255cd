//! Nodes as capacity: what each schedulable node can give to replicas. Pure.

use k8s_openapi::api::core::v1::Node;

use super::manifest::{GPU_PRODUCT_LABEL, GPU_RESOURCE};
use super::quantity::Quantity;
use crate::driver::NodeCapacity;

/// NVIDIA's GPU feature discovery: memory of each GPU, in MiB.
const GPU_MEMORY_LABEL: &str = "nvidia.com/gpu.memory";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// The capacity of every node a replica could be scheduled on, in the order given.
pub(crate) fn capacities(nodes: &[Node]) -> Vec<NodeCapacity> {
    nodes.iter().filter_map(node_capacity).collect()
}

/// A node's allocatable resources, or None when no replica could be scheduled there: it is
/// cordoned, or tainted NoSchedule/NoExecute by anything but the GPU taint replicas tolerate
/// (which covers nodes that are not ready: the node controller taints them).
pub(crate) fn node_capacity(node: &Node) -> Option<NodeCapacity> {
    let spec = node.spec.as_ref();
    if spec.and_then(|spec| spec.unschedulable) == Some(true) {
        return None;
    }
    let repelled = spec
        .and_then(|spec| spec.taints.as_ref())
        .into_iter()
        .flatten()
        .any(|taint| matches!(taint.effect.as_str(), "NoSchedule" | "NoExecute") && taint.key != GPU_RESOURCE);
    if repelled {
        return None;
    }
    let allocatable = node.status.as_ref().and_then(|status| status.allocatable.as_ref());
    let amount =
        |resource: &str| allocatable.and_then(|allocatable| allocatable.get(resource)).and_then(|quantity| Quantity::parse(&quantity.0));
    let label = |key: &str| node.metadata.labels.as_ref().and_then(|labels| labels.get(key)).cloned().unwrap_or_default();
    let gpu_count = amount(GPU_RESOURCE).map_or(0, |count| saturate(count.units()));
    let gpu_memory_mib: u64 = label(GPU_MEMORY_LABEL).parse().unwrap_or(0);
    Some(NodeCapacity {
        name: node.metadata.name.clone().unwrap_or_default(),
        zone: label(ZONE_LABEL),
        cpu_millis: amount("cpu").map_or(0, |cpu| saturate(cpu.millis())),
        memory_bytes: amount("memory").map_or(0, Quantity::units),
        gpu_count,
        gpu_type: if gpu_count > 0 { super::gpu_models::catalogue_type(&label(GPU_PRODUCT_LABEL)) } else { String::new() },
        gpu_memory_bytes: if gpu_count > 0 { gpu_memory_mib.saturating_mul(1 << 20) } else { 0 },
    })
}

fn saturate(value: u64) -> u32 {
    u32::try_from(value).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Taint;

    use super::*;
    use crate::driver::kubernetes::testing::node_fixture;

    #[test]
    fn a_gpu_node() {
        let node = node_fixture("node-gpu-l4");
        assert_eq!(
            node_capacity(&node),
            Some(NodeCapacity {
                name: "gke-gpu-pool-l4-1a2b".into(),
                zone: "us-central1-a".into(),
                cpu_millis: 23_830,
                memory_bytes: 89_621_568 * 1024,
                gpu_count: 2,
                gpu_type: "nvidia-l4".into(),
                gpu_memory_bytes: 23_034 << 20,
            })
        );
    }

    #[test]
    fn a_cpu_node_has_no_gpu_type() {
        let node = node_fixture("node-cpu");
        let capacity = node_capacity(&node).expect("schedulable");
        assert_eq!(capacity.name, "gke-cpu-pool-9f8e");
        assert_eq!(capacity.cpu_millis, 3920);
        assert_eq!(capacity.memory_bytes, 13_364_548 * 1024);
        assert_eq!((capacity.gpu_count, capacity.gpu_type.as_str()), (0, ""));
        assert_eq!(capacity.gpu_memory_bytes, 0);
        assert_eq!(capacity.zone, "us-central1-b");
    }

    #[test]
    fn nodes_that_take_no_replicas_are_skipped() {
        let cordoned = {
            let mut node = node_fixture("node-gpu-l4");
            node.spec.get_or_insert_default().unschedulable = Some(true);
            node
        };
        let not_ready = {
            let mut node = node_fixture("node-cpu");
            node.spec.get_or_insert_default().taints =
                Some(vec![Taint { key: "node.kubernetes.io/not-ready".into(), effect: "NoExecute".into(), ..Taint::default() }]);
            node
        };
        let preferring = {
            let mut node = node_fixture("node-cpu");
            node.spec.get_or_insert_default().taints =
                Some(vec![Taint { key: "example.com/spot".into(), effect: "PreferNoSchedule".into(), ..Taint::default() }]);
            node
        };
        let nodes = [cordoned, not_ready, node_fixture("node-gpu-l4"), preferring];
        let names: Vec<String> = capacities(&nodes).into_iter().map(|node| node.name).collect();
        assert_eq!(names, ["gke-gpu-pool-l4-1a2b", "gke-cpu-pool-9f8e"]);
    }
}
