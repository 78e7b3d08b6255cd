//! Planning on the ledger: place a proton on one agent's nodes (preempting if it must), find what
//! a proton holds, release it; each answer is a [`Change`] to commit on the revisions planned on.

use std::collections::BTreeMap;

use nucleus_api::Importance;
use nucleus_api::bundle::ResourceBundle;
use nucleus_client::{NodeRecord, Txn, Versioned, WatchEvent, decode, keys};

use super::ledgers::Ledgers;
use super::record::{AllocationRecord, NodeAllocations, Preemptor};
use crate::Error;
use crate::placement::{self, Allocation, AllocationId, Bundle, Node, Request};

/// A connected agent and its nodes, as placement sees it.
#[derive(Debug, Clone, Copy)]
pub struct AgentNodes<'a> {
    pub name: &'a str,
    pub region: &'a str,
    pub nodes: &'a [NodeRecord],
}

/// What to place: every replica of one proton, with the first bundle of `bundles` that fits.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    pub proton: &'a str,
    pub workload: &'a str,
    pub replicas: u32,
    pub importance: Importance,
    pub bundles: &'a [ResourceBundle],
}

/// Rewrites of ledger documents, each conditional on the revision it was planned on.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// The agent the placement is on (empty for a release).
    pub agent: String,
    /// The bundle every replica holds (placements only).
    pub bundle: Option<ResourceBundle>,
    /// Protons that lose room to this placement: each becomes `interrupted`.
    pub interrupted: Vec<String>,
    /// (key, revision planned on (0: absent), new document or `None` to delete it).
    pub writes: Vec<(String, u64, Option<NodeAllocations>)>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// The transaction that commits the change (in the root group).
    pub fn txn(&self) -> Result<Txn, nucleus_client::Error> {
        let mut txn = Txn::new();
        for (key, revision, doc) in &self.writes {
            txn = txn.require(key, *revision);
            txn = match doc {
                Some(doc) => txn.put_json(key, doc)?,
                None => txn.delete(key),
            };
        }
        Ok(txn)
    }

    /// Applies the committed change to a local copy of the ledger, at the commit's revision, so
    /// that the next plan does not wait for the watch to bring it back.
    pub fn applied(&self, revision: u64, ledgers: &mut Ledgers) {
        for (key, _, doc) in &self.writes {
            match doc {
                Some(doc) => {
                    ledgers.insert(Versioned { key: key.clone(), value: doc.clone(), mod_revision: revision });
                }
                None => {
                    ledgers.remove(key);
                }
            }
        }
    }
}

/// Applies a watch event of `allocations/` to a copy of the ledger, keeping a newer document the
/// worker committed itself (see [`Change::applied`]) over an older event still on its way.
pub fn apply_event(ledgers: &mut Ledgers, event: WatchEvent) {
    let put = |ledgers: &mut Ledgers, kv: nucleus_proto::meta::v1::KeyValue| match decode::<NodeAllocations>(kv) {
        Ok(doc) => {
            ledgers.insert(doc);
        }
        Err(err) => tracing::warn!(error = %err, "unreadable allocation document"),
    };
    match event {
        WatchEvent::Reset(kvs) => {
            ledgers.clear();
            for kv in kvs {
                put(ledgers, kv);
            }
        }
        WatchEvent::Put(kv) => {
            if ledgers.get(&kv.key).is_none_or(|doc| doc.mod_revision <= kv.mod_revision) {
                put(ledgers, kv);
            }
        }
        WatchEvent::Delete { key, revision } => {
            if ledgers.get(&key).is_some_and(|doc| doc.mod_revision <= revision) {
                ledgers.remove(&key);
            }
        }
    }
}

/// What the ledger holds for a proton.
#[derive(Debug, Clone, PartialEq)]
pub struct Holding {
    pub agent: String,
    pub bundle: ResourceBundle,
    /// Set when some of its replicas were preempted: the whole proton is to be interrupted.
    pub preempted_by: Option<Preemptor>,
}

/// What the ledger holds for `proton`, if anything.
pub fn holding(ledgers: &Ledgers, proton: &str) -> Option<Holding> {
    let mut found: Option<Holding> = None;
    for doc in ledgers.holding(proton) {
        for record in doc.value.allocations.iter().filter(|r| r.proton == proton) {
            let holding =
                found.get_or_insert_with(|| Holding { agent: doc.value.agent.clone(), bundle: record.bundle.clone(), preempted_by: None });
            if holding.preempted_by.is_none() {
                holding.preempted_by.clone_from(&record.preempted_by);
            }
        }
    }
    found
}

/// Drops every record of `proton` (empty when there is none).
pub fn release(ledgers: &Ledgers, proton: &str) -> Change {
    let writes = ledgers
        .holding(proton)
        .map(|doc| {
            let mut kept = doc.value.clone();
            kept.allocations.retain(|r| r.proton != proton);
            let kept = (!kept.allocations.is_empty()).then_some(kept);
            (doc.key.clone(), doc.mod_revision, kept)
        })
        .collect();
    Change { agent: String::new(), bundle: None, interrupted: Vec::new(), writes }
}

/// How many replicas of `proton` hold room (live records).
pub fn reserved(ledgers: &Ledgers, proton: &str) -> u32 {
    let count = ledgers.holding(proton).flat_map(|doc| doc.value.allocations.iter()).filter(|r| r.proton == proton && r.is_live()).count();
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// Reserves `ask.replicas` more replicas of a proton placed on `agent` (taking the lowest replica
/// numbers it does not hold), with the bundle it holds: first fit, or else preempting less important replicas on that agent (the
/// autoscaler's scale-up of a bundle-placed proton; more important workloads' scale-ups are
/// planned first).
pub fn grow(agent: AgentNodes<'_>, ledgers: &Ledgers, held: &Holding, ask: &Ask<'_>) -> Result<Change, Error> {
    let request = Request::new(ask.proton, ask.replicas, ask.importance, vec![bundle_of(&held.bundle)]);
    let view = AgentView::new(agent, ledgers);
    let (plan, victims) = match placement::place(&view.nodes, &view.allocations, &request) {
        Ok(plan) => (plan, Vec::new()),
        Err(shortage) => match placement::preempt(&view.nodes, &view.allocations, &request) {
            Ok(preemption) => (preemption.plan, preemption.victims),
            Err(_) => return Err(Error::NoRoom(vec![(agent.name.to_owned(), shortage)])),
        },
    };
    let bundles = [held.bundle.clone()];
    Ok(view.commit(&Ask { bundles: &bundles, ..ask.clone() }, &plan, &victims))
}

/// Drops the records of `proton`'s replicas numbered `keep` and above (a scale-down).
pub fn shrink(ledgers: &Ledgers, proton: &str, keep: u32) -> Change {
    let writes = ledgers
        .holding(proton)
        .filter(|doc| doc.value.allocations.iter().any(|r| r.proton == proton && r.replica >= keep))
        .map(|doc| {
            let mut kept = doc.value.clone();
            kept.allocations.retain(|r| r.proton != proton || r.replica < keep);
            let kept = (!kept.allocations.is_empty()).then_some(kept);
            (doc.key.clone(), doc.mod_revision, kept)
        })
        .collect();
    Change { agent: String::new(), bundle: None, interrupted: Vec::new(), writes }
}

/// Places every replica of `ask` on the nodes of one agent (tried in the given order, first fit
/// without preemption; failing that, the agent where the fewest replicas are preempted), or says
/// why none can hold it.
pub fn place(agents: &[AgentNodes<'_>], ledgers: &Ledgers, ask: &Ask<'_>) -> Result<Change, Error> {
    if agents.is_empty() {
        return Err(Error::NoAgent);
    }
    let request = Request::new(ask.proton, ask.replicas, ask.importance, ask.bundles.iter().map(bundle_of).collect());
    let mut shortages = Vec::new();
    for agent in agents {
        let view = AgentView::new(*agent, ledgers);
        match placement::place(&view.nodes, &view.allocations, &request) {
            Ok(plan) => return Ok(view.commit(ask, &plan, &[])),
            Err(shortage) => shortages.push((agent.name.to_owned(), shortage)),
        }
    }
    let mut best: Option<(AgentView<'_>, placement::Preemption)> = None;
    for agent in agents {
        let view = AgentView::new(*agent, ledgers);
        if let Ok(preemption) = placement::preempt(&view.nodes, &view.allocations, &request)
            && best.as_ref().is_none_or(|(_, b)| preemption.victims.len() < b.victims.len())
        {
            best = Some((view, preemption));
        }
    }
    if let Some((view, preemption)) = best {
        return Ok(view.commit(ask, &preemption.plan, &preemption.victims));
    }
    Err(Error::NoRoom(shortages))
}

/// One agent's nodes and live allocations in placement's terms.
struct AgentView<'a> {
    agent: AgentNodes<'a>,
    nodes: Vec<Node>,
    allocations: Vec<Allocation>,
    docs: Vec<&'a Versioned<NodeAllocations>>,
}

impl<'a> AgentView<'a> {
    fn new(agent: AgentNodes<'a>, ledgers: &'a Ledgers) -> AgentView<'a> {
        let docs: Vec<&Versioned<NodeAllocations>> = ledgers.of_agent(agent.name).collect();
        let allocations = docs
            .iter()
            .flat_map(|doc| doc.value.allocations.iter().filter(|r| r.is_live()).map(|r| allocation_of(&doc.value.node, r)))
            .collect();
        let nodes = agent.nodes.iter().map(|n| node_of(n, agent.region)).collect();
        AgentView { agent, nodes, allocations, docs }
    }

    /// The change that records `plan` on this agent and marks `victims` preempted.
    fn commit(&self, ask: &Ask<'_>, plan: &placement::Plan, victims: &[AllocationId]) -> Change {
        let bundle = ask.bundles.iter().find(|b| b.id == plan.bundle.id).cloned().unwrap_or_else(|| ask.bundles[0].clone());
        let preemptor = Preemptor { proton: ask.proton.to_owned(), workload: ask.workload.to_owned(), importance: ask.importance };
        let mut touched: BTreeMap<String, (u64, NodeAllocations)> = BTreeMap::new();
        let mut interrupted = Vec::new();
        for victim in victims {
            let Some(node) = self.allocations.iter().find(|a| &a.id == victim).map(|a| a.node.clone()) else { continue };
            let (_, doc) = self.doc_of(&mut touched, &node);
            for record in doc.allocations.iter_mut().filter(|r| r.proton == victim.proton && r.replica == victim.replica) {
                record.preempted_by = Some(preemptor.clone());
            }
            if !interrupted.contains(&victim.proton) {
                interrupted.push(victim.proton.clone());
            }
        }
        for assignment in &plan.assignments {
            let (_, doc) = self.doc_of(&mut touched, &assignment.node);
            doc.allocations.push(AllocationRecord {
                proton: ask.proton.to_owned(),
                workload: ask.workload.to_owned(),
                replica: assignment.replica,
                bundle: bundle.clone(),
                importance: ask.importance,
                preempted_by: None,
            });
        }
        let writes = touched.into_iter().map(|(key, (revision, doc))| (key, revision, Some(doc))).collect();
        Change { agent: self.agent.name.to_owned(), bundle: Some(bundle), interrupted, writes }
    }
}

impl AgentView<'_> {
    /// The document of `node` being rewritten, starting from the one planned on.
    fn doc_of<'t>(&self, touched: &'t mut BTreeMap<String, (u64, NodeAllocations)>, node: &str) -> &'t mut (u64, NodeAllocations) {
        let key = keys::allocations(self.agent.name, node);
        touched.entry(key.clone()).or_insert_with(|| match self.docs.iter().find(|d| d.key == key) {
            Some(doc) => (doc.mod_revision, doc.value.clone()),
            None => (0, NodeAllocations { agent: self.agent.name.to_owned(), node: node.to_owned(), allocations: Vec::new() }),
        })
    }
}

fn allocation_of(node: &str, record: &AllocationRecord) -> Allocation {
    Allocation {
        id: AllocationId { proton: record.proton.clone(), replica: record.replica },
        node: node.to_owned(),
        bundle: bundle_of(&record.bundle),
        importance: record.importance,
    }
}

/// A catalogue bundle in placement's terms.
pub fn bundle_of(bundle: &ResourceBundle) -> Bundle {
    Bundle {
        id: bundle.id.clone(),
        cpu_millicores: (bundle.cpu_count * 1000.0).ceil() as u64,
        memory_bytes: bundle.memory_bytes,
        gpu_count: bundle.gpu_count,
        gpu_type: bundle.gpu_type_label.clone(),
        gpu_memory_bytes: bundle.gpu_memory_bytes,
    }
}

/// A registered node in placement's terms.
pub fn node_of(node: &NodeRecord, region: &str) -> Node {
    let plain = Node::new(&node.name, region, &node.zone, u64::from(node.cpu_millis), node.memory_bytes);
    if node.gpu_count > 0 && !node.gpu_type.is_empty() {
        plain.with_gpus(node.gpu_count, &node.gpu_type, node.gpu_memory_bytes)
    } else {
        plain
    }
}

#[cfg(test)]
mod tests;
