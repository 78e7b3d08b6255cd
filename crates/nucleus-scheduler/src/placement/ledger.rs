//! What each node has in use: its allocations plus the replicas a plan has placed so far.

use std::collections::HashMap;
use std::sync::Arc;

use super::model::{Allocation, Bundle, Node};

/// Amounts of the three resources a bundle reserves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Usage {
    pub(super) cpu_millicores: u64,
    pub(super) memory_bytes: u64,
    pub(super) gpus: u64,
}

impl Usage {
    pub(super) fn of(bundle: &Bundle) -> Self {
        Usage { cpu_millicores: bundle.cpu_millicores, memory_bytes: bundle.memory_bytes, gpus: u64::from(bundle.gpu_count) }
    }

    pub(super) fn capacity(node: &Node) -> Self {
        Usage { cpu_millicores: node.cpu_millicores, memory_bytes: node.memory_bytes, gpus: u64::from(node.gpu_count) }
    }

    fn add(&mut self, other: Usage) {
        self.cpu_millicores = self.cpu_millicores.saturating_add(other.cpu_millicores);
        self.memory_bytes = self.memory_bytes.saturating_add(other.memory_bytes);
        self.gpus = self.gpus.saturating_add(other.gpus);
    }

    fn saturating_sub(self, other: Usage) -> Usage {
        Usage {
            cpu_millicores: self.cpu_millicores.saturating_sub(other.cpu_millicores),
            memory_bytes: self.memory_bytes.saturating_sub(other.memory_bytes),
            gpus: self.gpus.saturating_sub(other.gpus),
        }
    }

    /// Whether `demand` fits within these amounts.
    pub(super) fn covers(&self, demand: Usage) -> bool {
        demand.cpu_millicores <= self.cpu_millicores && demand.memory_bytes <= self.memory_bytes && demand.gpus <= self.gpus
    }
}

/// The known nodes (first of each name), their positions and zones: fixed for a fleet, shared by
/// every copy of a ledger.
struct Layout<'a> {
    nodes: Vec<&'a Node>,
    positions: HashMap<&'a str, usize>,
    /// Per node position, the index of its (region, zone) among the distinct zones.
    zones: Vec<usize>,
    zone_count: usize,
}

/// The known nodes and what is in use on each. Cloning copies only the usage.
#[derive(Clone)]
pub(super) struct Ledger<'a> {
    layout: Arc<Layout<'a>>,
    used: Vec<Usage>,
}

impl<'a> Ledger<'a> {
    /// Counts every allocation on a known node; allocations on unknown nodes hold nothing.
    pub(super) fn new<'b>(nodes: &'a [Node], allocations: impl IntoIterator<Item = &'b Allocation>) -> Self {
        let mut layout = Layout {
            nodes: Vec::with_capacity(nodes.len()),
            positions: HashMap::with_capacity(nodes.len()),
            zones: Vec::with_capacity(nodes.len()),
            zone_count: 0,
        };
        let mut zone_ids: HashMap<(&str, &str), usize> = HashMap::new();
        for node in nodes {
            if !layout.positions.contains_key(node.name.as_str()) {
                layout.positions.insert(&node.name, layout.nodes.len());
                layout.nodes.push(node);
                let next = zone_ids.len();
                layout.zones.push(*zone_ids.entry((node.region.as_str(), node.zone.as_str())).or_insert(next));
            }
        }
        layout.zone_count = zone_ids.len();
        let used = vec![Usage::default(); layout.nodes.len()];
        let mut ledger = Ledger { layout: Arc::new(layout), used };
        for allocation in allocations {
            if let Some(position) = ledger.position(&allocation.node) {
                ledger.reserve(position, &allocation.bundle);
            }
        }
        ledger
    }

    /// The known nodes, indexed by position.
    pub(super) fn nodes(&self) -> &[&'a Node] {
        &self.layout.nodes
    }

    /// The position of the node named `name`.
    pub(super) fn position(&self, name: &str) -> Option<usize> {
        self.layout.positions.get(name).copied()
    }

    /// The zone index of the node at `position` (nodes in the same region and zone share it).
    pub(super) fn zone(&self, position: usize) -> usize {
        self.layout.zones[position]
    }

    /// How many distinct (region, zone) pairs the nodes span.
    pub(super) fn zone_count(&self) -> usize {
        self.layout.zone_count
    }

    /// What is in use on the node at `position`.
    pub(super) fn used(&self, position: usize) -> Usage {
        self.used[position]
    }

    /// What is still free on the node at `position` (zero where it is already over-committed).
    pub(super) fn free(&self, position: usize) -> Usage {
        Usage::capacity(self.layout.nodes[position]).saturating_sub(self.used[position])
    }

    /// How many more replicas of `bundle` fit on the node at `position`, at most `cap`.
    pub(super) fn room_for(&self, position: usize, bundle: &Bundle, cap: u64) -> u64 {
        if !self.layout.nodes[position].suits(bundle) {
            return 0;
        }
        let free = self.free(position);
        let demand = Usage::of(bundle);
        let per_resource = |free: u64, need: u64| free.checked_div(need).unwrap_or(cap);
        per_resource(free.cpu_millicores, demand.cpu_millicores)
            .min(per_resource(free.memory_bytes, demand.memory_bytes))
            .min(per_resource(free.gpus, demand.gpus))
            .min(cap)
    }

    /// Records one more replica of `bundle` on the node at `position`.
    pub(super) fn reserve(&mut self, position: usize, bundle: &Bundle) {
        self.used[position].add(Usage::of(bundle));
    }
}
