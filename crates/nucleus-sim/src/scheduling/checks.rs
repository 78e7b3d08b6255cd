//! What the scheduler simulation checks: every desired workload converged onto exactly one agent
//! after healing, and no node of the allocation ledger ever holds more than it has.

use std::collections::BTreeMap;

use nucleus_api::{DesiredState, Proton, ProtonStatus, Workload};
use nucleus_scheduler::allocations::NodeAllocations;

use super::machine::{GPUS_PER_MACHINE, Machine};

/// The differences between what meta asks for and what the machines run (empty: converged).
pub fn divergence(workloads: &[Workload], protons: &[Proton], machines: &[Machine]) -> Vec<String> {
    let mut problems = Vec::new();
    let workloads: BTreeMap<&str, &Workload> = workloads.iter().map(|w| (w.id.as_str(), w)).collect();
    let running: Vec<(String, Vec<(String, u32)>)> = machines
        .iter()
        .map(|m| (m.name.clone(), m.state().running.values().map(|r| (r.spec.proton_id.clone(), r.spec.replica_count)).collect()))
        .collect();
    let runs_on = |proton: &str| -> Vec<(&str, u32)> {
        running
            .iter()
            .filter_map(|(machine, protons)| protons.iter().find(|(p, _)| p == proton).map(|(_, n)| (machine.as_str(), *n)))
            .collect()
    };
    for proton in protons {
        let on = runs_on(&proton.id);
        let workload = workloads.get(proton.workload_id.as_str());
        let wanted =
            workload.is_some_and(|w| w.proton_id.as_deref() == Some(proton.id.as_str())) && proton.desired_state == DesiredState::Running;
        match workload {
            None => {
                problems.push(format!("proton {} of deleted workload {} is not forgotten (runs on {on:?})", proton.id, proton.workload_id))
            }
            Some(_) if !wanted => {
                if !on.is_empty() {
                    problems.push(format!("stopped proton {} still runs on {on:?}", proton.id));
                }
                if proton.status != ProtonStatus::Stopped {
                    problems.push(format!("stopped proton {} shows status {}", proton.id, proton.status));
                }
            }
            Some(_) => {
                let placed = proton.agent.as_deref().unwrap_or("nowhere");
                if on != [(placed, proton.replica_count)] {
                    problems.push(format!(
                        "proton {} is placed on {placed} with {} replicas but runs on {on:?}",
                        proton.id, proton.replica_count
                    ));
                }
                if proton.status != ProtonStatus::Running {
                    problems.push(format!("proton {} shows status {}, not running", proton.id, proton.status));
                }
            }
        }
    }
    for (machine, protons_there) in &running {
        for (proton, _) in protons_there {
            if !protons.iter().any(|p| p.id == *proton) {
                problems.push(format!("{machine} runs {proton}, which meta no longer has"));
            }
        }
    }
    problems
}

/// Nodes whose live reservations exceed their GPUs.
pub fn overcommitted(ledger: &[NodeAllocations]) -> Vec<String> {
    ledger
        .iter()
        .filter_map(|node| {
            let gpus: u32 = node.allocations.iter().filter(|r| r.is_live()).map(|r| r.bundle.gpu_count).sum();
            (gpus > GPUS_PER_MACHINE).then(|| {
                let holders: Vec<String> =
                    node.allocations.iter().filter(|r| r.is_live()).map(|r| format!("{}#{}", r.proton, r.replica)).collect();
                format!("{}/{} reserves {gpus} of {GPUS_PER_MACHINE} GPUs: {}", node.agent, node.node, holders.join(", "))
            })
        })
        .collect()
}
