//! `nucleus-bench placement`, end to end: the same kind of fleet and requests placed through a
//! real 3-node meta cluster by 2 concurrent workers. Each worker does what the scheduler does
//! (`nucleus_scheduler::allocations`): plan on its watched copy of the allocation ledger, commit on
//! the revisions it planned on, re-plan after a conflict. Then the committed ledger is read back
//! and checked: no node over-committed, every acknowledged placement present.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nucleus_api::bundle::{ResourceBundle, default_catalogue};
use nucleus_client::{MetaClient, NodeRecord, WatchEvent, WriteOutcome, keys};
use nucleus_scheduler::allocations::{self, AgentNodes, Ask, Ledgers, NodeAllocations};
use nucleus_scheduler::placement::{Importance, Node};
use tokio::sync::mpsc;

use crate::nucleus::Cluster;
use crate::progress;

const WORKERS: usize = 2;

/// What the end-to-end run measured.
pub struct MetaSummary {
    pub agents: usize,
    pub placed: usize,
    pub unplaceable: usize,
    pub conflicts: usize,
    pub seconds: f64,
}

/// One simulated agent (cluster) and its nodes.
struct SimAgent {
    name: String,
    region: String,
    nodes: Vec<NodeRecord>,
}

fn agents_of(nodes: &[Node], per_agent: usize) -> Vec<SimAgent> {
    nodes
        .chunks(per_agent.max(1))
        .enumerate()
        .map(|(i, chunk)| SimAgent {
            name: format!("agent-{i:03}"),
            region: chunk[0].region.clone(),
            nodes: chunk
                .iter()
                .map(|n| NodeRecord {
                    name: n.name.clone(),
                    zone: n.zone.clone(),
                    cpu_millis: u32::try_from(n.cpu_millicores).unwrap_or(u32::MAX),
                    memory_bytes: n.memory_bytes,
                    gpu_count: n.gpu_count,
                    gpu_type: n.gpu_type.clone().unwrap_or_default(),
                    gpu_memory_bytes: n.gpu_memory_bytes,
                })
                .collect(),
        })
        .collect()
}

/// One request of the pure run's mix, with catalogue bundles: (proton, replicas, importance, bundles).
type OwnedAsk = (String, u32, Importance, Vec<ResourceBundle>);

fn asks(requests: &[nucleus_scheduler::placement::Request]) -> anyhow::Result<Vec<OwnedAsk>> {
    let catalogue = default_catalogue();
    requests
        .iter()
        .map(|r| {
            let bundles = r
                .bundles
                .iter()
                .map(|b| {
                    catalogue.iter().find(|c| c.id == b.id).cloned().ok_or_else(|| anyhow::anyhow!("bundle {} not in the catalogue", b.id))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            Ok((r.proton.clone(), r.replicas, r.importance, bundles))
        })
        .collect()
}

pub async fn run(
    nucleus: &Path,
    nodes: &[Node],
    requests: &[nucleus_scheduler::placement::Request],
    nodes_per_agent: usize,
) -> anyhow::Result<MetaSummary> {
    let agents = Arc::new(agents_of(nodes, nodes_per_agent));
    let asks = Arc::new(asks(requests)?);
    progress(&format!("placement through meta: starting 3 meta nodes from {}", nucleus.display()));
    let mut cluster = Cluster::start(nucleus, 3, 16)?;
    cluster.settled(Duration::from_secs(120)).await?;
    progress(&format!("placement through meta: {} agents, {WORKERS} workers, {} requests ...", agents.len(), asks.len()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let meta = MetaClient::new(&cluster.addrs, &nucleus_tls::Dialer::plaintext())?;
        let (agents, asks) = (agents.clone(), asks.clone());
        workers.push(tokio::spawn(async move { work(meta, &agents, &asks, worker).await }));
    }
    let (mut placed, mut unplaceable, mut conflicts) = (0, 0, 0);
    for worker in workers {
        let (p, u, c) = worker.await??;
        placed += p;
        unplaceable += u;
        conflicts += c;
    }
    let seconds = started.elapsed().as_secs_f64();
    cluster.check_alive()?;
    check(&MetaClient::new(&cluster.addrs, &nucleus_tls::Dialer::plaintext())?, &agents, placed).await?;
    Ok(MetaSummary { agents: agents.len(), placed, unplaceable, conflicts, seconds })
}

/// One worker: every `WORKERS`-th request, in order. Returns (replicas placed, unplaceable, conflicts).
async fn work(meta: MetaClient, agents: &[SimAgent], asks: &[OwnedAsk], worker: usize) -> anyhow::Result<(usize, usize, usize)> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let watcher = {
        let meta = meta.clone();
        tokio::spawn(async move {
            let mut watch = meta.watch_resumable(keys::ALLOCATIONS);
            loop {
                if tx.send(watch.next().await).is_err() {
                    return;
                }
            }
        })
    };
    let mut ledgers = Ledgers::new();
    // The first event is the whole ledger as of now.
    let first: WatchEvent = rx.recv().await.ok_or_else(|| anyhow::anyhow!("the ledger watch ended"))?;
    allocations::apply_event(&mut ledgers, first);
    let views: Vec<AgentNodes<'_>> = agents.iter().map(|a| AgentNodes { name: &a.name, region: &a.region, nodes: &a.nodes }).collect();
    let (mut placed, mut unplaceable, mut conflicts) = (0, 0, 0);
    for (proton, replicas, importance, bundles) in asks.iter().skip(worker).step_by(WORKERS) {
        loop {
            while let Ok(event) = rx.try_recv() {
                allocations::apply_event(&mut ledgers, event);
            }
            let ask = Ask { proton, workload: proton, replicas: *replicas, importance: *importance, bundles };
            let Ok(change) = allocations::place(&views, &ledgers, &ask) else {
                unplaceable += *replicas as usize;
                break;
            };
            match meta.write(change.txn()?).await? {
                WriteOutcome::Applied { revision } => {
                    change.applied(revision, &mut ledgers);
                    placed += *replicas as usize;
                    break;
                }
                WriteOutcome::Conflict { .. } => {
                    conflicts += 1;
                    // Re-plan once the watch brought the newer ledger.
                    if let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
                        allocations::apply_event(&mut ledgers, event);
                    }
                }
            }
        }
    }
    watcher.abort();
    Ok((placed, unplaceable, conflicts))
}

/// Reads the committed ledger back: every node within its capacity, every placed replica there.
async fn check(meta: &MetaClient, agents: &[SimAgent], placed: usize) -> anyhow::Result<()> {
    let docs = meta.list_json::<NodeAllocations>(keys::ALLOCATIONS).await?;
    let capacity: BTreeMap<(&str, &str), &NodeRecord> =
        agents.iter().flat_map(|a| a.nodes.iter().map(move |n| ((a.name.as_str(), n.name.as_str()), n))).collect();
    let mut replicas = 0;
    for doc in &docs {
        let node = capacity
            .get(&(doc.value.agent.as_str(), doc.value.node.as_str()))
            .ok_or_else(|| anyhow::anyhow!("allocation on unknown node {}", doc.key))?;
        let live: Vec<_> = doc.value.allocations.iter().filter(|r| r.is_live()).collect();
        let cpu: u64 = live.iter().map(|r| (r.bundle.cpu_count * 1000.0).ceil() as u64).sum();
        let memory: u64 = live.iter().map(|r| r.bundle.memory_bytes).sum();
        let gpus: u32 = live.iter().map(|r| r.bundle.gpu_count).sum();
        anyhow::ensure!(
            cpu <= u64::from(node.cpu_millis) && memory <= node.memory_bytes && gpus <= node.gpu_count,
            "{} over-committed: cpu {cpu}/{} memory {memory}/{} gpus {gpus}/{}",
            doc.key,
            node.cpu_millis,
            node.memory_bytes,
            node.gpu_count
        );
        replicas += doc.value.allocations.len();
    }
    anyhow::ensure!(replicas == placed, "the ledger holds {replicas} replicas, the workers placed {placed}");
    Ok(())
}

pub fn print(summary: &MetaSummary) {
    let rate = summary.placed as f64 / summary.seconds.max(f64::EPSILON);
    println!(
        "through meta (3 nodes, 16 shards), {WORKERS} workers, {} agents: {} replicas placed, {} unplaceable, {} commit conflicts re-planned",
        summary.agents, summary.placed, summary.unplaceable, summary.conflicts
    );
    println!("  {:.3} s, {rate:.0} placements/s; committed ledger read back: no node over-committed", summary.seconds);
}
