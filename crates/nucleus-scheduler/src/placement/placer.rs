//! [`place`](super::place) for a scheduler that places one request after another: the fleet's
//! layout and usage are built once and updated with each committed plan, instead of being rebuilt
//! from every allocation on every call. Same answers as `place` over the same allocations.

use std::collections::HashMap;

use super::ledger::Ledger;
use super::model::{Allocation, Node, Plan, Request};
use super::place::place_on;
use super::shortage::Shortage;

pub struct Placer<'a> {
    ledger: Ledger<'a>,
    /// Allocations by proton id (spreading and replica indices look at one proton's only).
    by_proton: HashMap<String, Vec<Allocation>>,
}

impl<'a> Placer<'a> {
    /// A placer over `nodes` with `allocations` already running.
    pub fn new(nodes: &'a [Node], allocations: &[Allocation]) -> Self {
        let mut by_proton: HashMap<String, Vec<Allocation>> = HashMap::new();
        for allocation in allocations {
            by_proton.entry(allocation.id.proton.clone()).or_default().push(allocation.clone());
        }
        Placer { ledger: Ledger::new(nodes, allocations), by_proton }
    }

    /// Where `request`'s replicas would go now (nothing is reserved until [`Placer::commit`]).
    pub fn place(&self, request: &Request) -> Result<Plan, Shortage> {
        let existing = self.by_proton.get(&request.proton).into_iter().flatten();
        place_on(&self.ledger, existing, request)
    }

    /// Records a plan's allocations as running.
    pub fn commit(&mut self, plan: &Plan) {
        for allocation in plan.allocations() {
            if let Some(position) = self.ledger.position(&allocation.node) {
                self.ledger.reserve(position, &allocation.bundle);
            }
            self.by_proton.entry(allocation.id.proton.clone()).or_default().push(allocation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::{Importance, default_bundles, place};

    const GIB: u64 = 1 << 30;

    #[test]
    fn answers_as_place_does_over_the_same_allocations() {
        let nodes: Vec<Node> = (0..24)
            .map(|i| {
                let node = Node::new(format!("n{i:02}"), format!("r{}", i % 2), format!("z{}", i % 3), 16_000, 128 * GIB);
                match i % 3 {
                    0 => node,
                    1 => node.with_gpus(4, "nvidia-l4", 24 * GIB),
                    _ => node.with_gpus(8, "nvidia-h100", 80 * GIB),
                }
            })
            .collect();
        let bundles = default_bundles();
        let importances = [Importance::Low, Importance::High, Importance::Critical];
        let mut allocations: Vec<Allocation> = Vec::new();
        let mut placer = Placer::new(&nodes, &allocations);
        let (mut placed, mut refused) = (0, 0);
        for i in 0..300usize {
            // Every fifth request adds replicas to an earlier proton, which exercises spreading
            // and replica indices against existing allocations.
            let proton = if i % 5 == 4 { format!("p{}", i - 4) } else { format!("p{i}") };
            let preferences = vec![bundles[i % bundles.len()].clone(), bundles[(i * 7 + 3) % bundles.len()].clone()];
            let request =
                Request::new(proton, 1 + (i % 3) as u32, importances[i % 3], preferences).preferring_region(format!("r{}", i % 2));
            let expected = place(&nodes, &allocations, &request);
            let got = placer.place(&request);
            assert_eq!(got, expected, "request {i}");
            if let Ok(plan) = got {
                placer.commit(&plan);
                allocations.extend(plan.allocations());
                placed += 1;
            } else {
                refused += 1;
            }
        }
        assert!(placed > 50 && refused > 10, "the fleet fills up: {placed} placed, {refused} refused");
    }
}
