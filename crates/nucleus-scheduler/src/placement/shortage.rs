//! Why a request could not be placed, naming the resource that ran short.

use std::fmt;

/// A request that cannot be placed: what went wrong with each of its bundles, in preference order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    /// The proton's id.
    pub proton: String,
    /// How many replicas were asked for.
    pub replicas: u32,
    /// One entry per bundle tried; empty when the request listed no bundle.
    pub attempts: Vec<FailedBundle>,
}

/// Why one bundle could not hold every replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedBundle {
    /// The bundle's id.
    pub bundle: String,
    /// How many replicas fitted before one did not (none of them is placed).
    pub placed: u32,
    /// What the next replica lacked.
    pub missing: Missing,
}

/// The resource that ran short for one replica, checked in this order: nodes, GPU model, GPU memory,
/// free GPUs, free CPU, free memory. Each later check only looks at nodes that passed the earlier ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// The cluster has no nodes.
    NoNodes,
    /// No node has GPUs of the model (`None`: of any model).
    GpuModel {
        /// The model asked for.
        gpu_type: Option<String>,
    },
    /// No node of the model has enough memory per GPU.
    GpuMemory {
        /// The model asked for.
        gpu_type: Option<String>,
        /// Bytes needed per GPU.
        needed: u64,
        /// The most any suitable node has.
        largest: Largest,
    },
    /// No suitable node has enough free GPUs.
    Gpus {
        /// The model asked for.
        gpu_type: Option<String>,
        /// GPUs needed.
        needed: u64,
        /// The most free GPUs on a suitable node.
        largest: Largest,
    },
    /// No node with the GPUs has enough free CPU.
    Cpu {
        /// Millicores needed.
        needed: u64,
        /// The most free millicores on a node that passed the earlier checks.
        largest: Largest,
    },
    /// No node with the GPUs and CPU has enough free memory.
    Memory {
        /// Bytes needed.
        needed: u64,
        /// The most free bytes on a node that passed the earlier checks.
        largest: Largest,
    },
}

/// The largest amount found and the node that has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Largest {
    /// The amount, in the resource's unit.
    pub amount: u64,
    /// The node's name.
    pub node: String,
}

impl fmt::Display for Shortage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot place {} replica(s) of proton {}: ", self.replicas, self.proton)?;
        if self.attempts.is_empty() {
            return write!(f, "no resource bundle requested");
        }
        for (index, attempt) in self.attempts.iter().enumerate() {
            if index > 0 {
                write!(f, "; ")?;
            }
            write!(f, "bundle {}: ", attempt.bundle)?;
            if attempt.placed > 0 {
                write!(f, "only {} of {} replicas fit, then ", attempt.placed, self.replicas)?;
            }
            write!(f, "{}", attempt.missing)?;
        }
        Ok(())
    }
}

impl std::error::Error for Shortage {}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::NoNodes => write!(f, "the cluster has no nodes"),
            Missing::GpuModel { gpu_type } => write!(f, "no node has {}GPUs", model(gpu_type)),
            Missing::GpuMemory { gpu_type, needed, largest } => write!(
                f,
                "no {}node has {} of memory per GPU (largest: {} on node {})",
                model(gpu_type),
                bytes(*needed),
                bytes(largest.amount),
                largest.node
            ),
            Missing::Gpus { gpu_type, needed, largest } => {
                write!(f, "no node has {needed} free {}GPUs (largest free: {} on node {})", model(gpu_type), largest.amount, largest.node)
            }
            Missing::Cpu { needed, largest } => {
                write!(f, "not enough cpu: need {} cores, largest free {} on node {}", cores(*needed), cores(largest.amount), largest.node)
            }
            Missing::Memory { needed, largest } => {
                write!(f, "not enough memory: need {}, largest free {} on node {}", bytes(*needed), bytes(largest.amount), largest.node)
            }
        }
    }
}

/// The GPU model followed by a space, or nothing when any model will do.
fn model(gpu_type: &Option<String>) -> String {
    gpu_type.as_ref().map(|model| format!("{model} ")).unwrap_or_default()
}

/// Millicores as cores: 2500 → `2.5`.
fn cores(millicores: u64) -> String {
    let whole = millicores / 1000;
    let fraction = millicores % 1000;
    if fraction == 0 { whole.to_string() } else { format!("{whole}.{fraction:03}").trim_end_matches('0').to_owned() }
}

/// Bytes in the largest 1024-based unit that divides them exactly, else in bytes.
fn bytes(amount: u64) -> String {
    const UNITS: [(&str, u32); 4] = [("TiB", 4), ("GiB", 3), ("MiB", 2), ("KiB", 1)];
    for (unit, power) in UNITS {
        let size = 1024u64.pow(power);
        if amount >= size && amount.is_multiple_of(size) {
            return format!("{}{unit}", amount / size);
        }
    }
    format!("{amount} bytes")
}
