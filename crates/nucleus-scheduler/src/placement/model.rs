//! What placement reads (nodes, allocations, requests) and what it answers (plans).

use std::fmt;

use nucleus_api::Importance;

use super::units::{self, UnitError};

/// A resource bundle: what one replica reserves on the node it runs on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bundle {
    /// Catalogue id such as `cpu.small` or `gpu.l4.small`.
    pub id: String,
    /// CPU in millicores (1000 = one core).
    pub cpu_millicores: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Whole GPUs; 0 for a CPU-only bundle.
    pub gpu_count: u32,
    /// GPU model (`nvidia-l4`, `nvidia-a10g`, `nvidia-h100`, ...); `None` takes any model (an
    /// explicit allocation names none). Ignored when `gpu_count` is 0.
    pub gpu_type: Option<String>,
    /// Minimum memory of each GPU, in bytes.
    pub gpu_memory_bytes: u64,
}

impl Bundle {
    /// A bundle without GPUs.
    pub fn cpu_only(id: impl Into<String>, cpu_millicores: u64, memory_bytes: u64) -> Self {
        Bundle { id: id.into(), cpu_millicores, memory_bytes, gpu_count: 0, gpu_type: None, gpu_memory_bytes: 0 }
    }

    /// A bundle of `gpu_count` GPUs of one model, each with at least `gpu_memory_bytes`.
    pub fn with_gpus(
        id: impl Into<String>,
        cpu_millicores: u64,
        memory_bytes: u64,
        gpu_count: u32,
        gpu_type: impl Into<String>,
        gpu_memory_bytes: u64,
    ) -> Self {
        Bundle { id: id.into(), cpu_millicores, memory_bytes, gpu_count, gpu_type: Some(gpu_type.into()), gpu_memory_bytes }
    }

    /// The one-bundle equivalent of an explicit `resourceAllocation` (id [`Bundle::ALLOCATION_ID`],
    /// any GPU model).
    pub fn from_allocation(allocation: &ResourceAllocation) -> Result<Self, UnitError> {
        let gpu_memory_bytes = match &allocation.gpu_memory {
            Some(text) => units::parse_memory(text)?,
            None => 0,
        };
        Ok(Bundle {
            id: Self::ALLOCATION_ID.to_owned(),
            cpu_millicores: units::cpu_millicores(allocation.cpu)?,
            memory_bytes: units::parse_memory(&allocation.memory)?,
            gpu_count: units::gpu_count(allocation.gpu)?,
            gpu_type: None,
            gpu_memory_bytes,
        })
    }

    /// The id given to a bundle made from an explicit allocation.
    pub const ALLOCATION_ID: &'static str = "allocation";

    /// Whether the bundle reserves any GPU.
    pub fn needs_gpus(&self) -> bool {
        self.gpu_count > 0
    }
}

/// An explicit `resourceAllocation` as the Workload API carries it (the runtime's `containerGroups[].containers[].resourceAllocation` in docs/api/openapi.json): CPU in cores,
/// memory strings in the accepted units.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceAllocation {
    /// Cores, fractional allowed.
    pub cpu: f64,
    /// Memory, e.g. `"16GiB"` or a plain byte count.
    pub memory: String,
    /// Whole GPUs.
    pub gpu: f64,
    /// Memory per GPU, if the workload needs a minimum.
    pub gpu_memory: Option<String>,
}

/// A machine replicas can be placed on. Names are unique within a cluster; a node carries at most
/// one GPU model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Unique name.
    pub name: String,
    /// Region, e.g. `us-east-1`.
    pub region: String,
    /// Zone within the region, e.g. `us-east-1a`.
    pub zone: String,
    /// CPU capacity in millicores.
    pub cpu_millicores: u64,
    /// Memory capacity in bytes.
    pub memory_bytes: u64,
    /// Number of GPUs.
    pub gpu_count: u32,
    /// The GPU model; `None` when the node has no GPUs.
    pub gpu_type: Option<String>,
    /// Memory of each GPU, in bytes.
    pub gpu_memory_bytes: u64,
}

impl Node {
    /// A node without GPUs.
    pub fn new(
        name: impl Into<String>,
        region: impl Into<String>,
        zone: impl Into<String>,
        cpu_millicores: u64,
        memory_bytes: u64,
    ) -> Self {
        Node {
            name: name.into(),
            region: region.into(),
            zone: zone.into(),
            cpu_millicores,
            memory_bytes,
            gpu_count: 0,
            gpu_type: None,
            gpu_memory_bytes: 0,
        }
    }

    /// The same node with `gpu_count` GPUs of one model, each with `gpu_memory_bytes`.
    #[must_use]
    pub fn with_gpus(mut self, gpu_count: u32, gpu_type: impl Into<String>, gpu_memory_bytes: u64) -> Self {
        self.gpu_count = gpu_count;
        self.gpu_type = Some(gpu_type.into());
        self.gpu_memory_bytes = gpu_memory_bytes;
        self
    }

    /// Whether the node's GPU model and GPU memory suit the bundle, ignoring what is in use.
    pub fn suits(&self, bundle: &Bundle) -> bool {
        if !bundle.needs_gpus() {
            return true;
        }
        let model_matches = match (&bundle.gpu_type, &self.gpu_type) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(wanted), Some(offered)) => wanted == offered,
        };
        model_matches && self.gpu_memory_bytes >= bundle.gpu_memory_bytes
    }

    /// Whether the bundle would fit on this node if it ran nothing else.
    pub fn could_ever_hold(&self, bundle: &Bundle) -> bool {
        self.suits(bundle)
            && bundle.gpu_count <= self.gpu_count
            && bundle.cpu_millicores <= self.cpu_millicores
            && bundle.memory_bytes <= self.memory_bytes
    }
}

/// Which replica of which proton an allocation is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AllocationId {
    /// The proton's id.
    pub proton: String,
    /// The replica's index within the proton.
    pub replica: u32,
}

impl fmt::Display for AllocationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.proton, self.replica)
    }
}

/// A replica that holds its bundle on a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// Which replica this is.
    pub id: AllocationId,
    /// The node it runs on (allocations on unknown nodes hold nothing).
    pub node: String,
    /// What it reserves there.
    pub bundle: Bundle,
    /// Its workload's importance, which decides who may preempt it.
    pub importance: Importance,
}

/// A request to place `replicas` new replicas of a proton.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The proton's id.
    pub proton: String,
    /// How many replicas to place; all or none are placed.
    pub replicas: u32,
    /// The workload's importance.
    pub importance: Importance,
    /// Bundles in order of preference (`bundleSelectionPolicy: availability`): the first one that
    /// can hold every replica is taken. An explicit allocation is a one-bundle list.
    pub bundles: Vec<Bundle>,
    /// Nodes in this region are preferred; others are used when it has no room.
    pub preferred_region: Option<String>,
}

impl Request {
    /// A request without a region preference.
    pub fn new(proton: impl Into<String>, replicas: u32, importance: Importance, bundles: Vec<Bundle>) -> Self {
        Request { proton: proton.into(), replicas, importance, bundles, preferred_region: None }
    }

    /// The same request, preferring nodes of `region`.
    #[must_use]
    pub fn preferring_region(mut self, region: impl Into<String>) -> Self {
        self.preferred_region = Some(region.into());
        self
    }
}

/// One replica's node in a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The replica's index. New replicas take the lowest indices the proton does not hold yet.
    pub replica: u32,
    /// The node chosen for it.
    pub node: String,
}

/// Where every replica of a request goes, all with the same bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The proton's id.
    pub proton: String,
    /// The request's importance, carried into the allocations.
    pub importance: Importance,
    /// The bundle chosen (the first of the request's list that could hold every replica).
    pub bundle: Bundle,
    /// One entry per replica, in replica order.
    pub assignments: Vec<Assignment>,
}

impl Plan {
    /// The allocations the plan adds once committed.
    pub fn allocations(&self) -> Vec<Allocation> {
        self.assignments
            .iter()
            .map(|assignment| Allocation {
                id: AllocationId { proton: self.proton.clone(), replica: assignment.replica },
                node: assignment.node.clone(),
                bundle: self.bundle.clone(),
                importance: self.importance,
            })
            .collect()
    }
}
