//! The allocation ledger against a real meta node: two workers placing at once on the same GPUs
//! never double-book a node, because each placement commits on the revisions it planned on.

use std::collections::BTreeMap;

use nucleus_api::Importance;
use nucleus_api::bundle::{ResourceBundle, default_catalogue};
use nucleus_client::{MetaClient, NodeRecord, WriteOutcome, keys};
use nucleus_scheduler::allocations::{self, AgentNodes, Ask, Ledgers, NodeAllocations};

const GIB: u64 = 1 << 30;

fn nodes(count: usize, gpus: u32) -> Vec<NodeRecord> {
    (0..count)
        .map(|i| NodeRecord {
            name: format!("n{i}"),
            zone: format!("z{}", i % 2),
            cpu_millis: 64_000,
            memory_bytes: 256 * GIB,
            gpu_count: gpus,
            gpu_type: "nvidia-l4".into(),
            gpu_memory_bytes: 24 * GIB,
        })
        .collect()
}

fn bundle(id: &str) -> ResourceBundle {
    default_catalogue().into_iter().find(|b| b.id == id).unwrap()
}

async fn read_ledger(meta: &MetaClient) -> Ledgers {
    let docs = meta.list_json::<NodeAllocations>(keys::ALLOCATIONS).await.unwrap();
    docs.into_iter().map(|doc| (doc.key.clone(), doc)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_made_on_an_older_ledger_is_refused_at_commit() {
    let fixture = nucleus_testkit::Meta::start(2).await;
    let meta = fixture.client.clone();
    let nodes = nodes(1, 1);
    let agents = [AgentNodes { name: "a", region: "r", nodes: &nodes }];
    let wanted = [bundle("gpu.l4.small")];
    let snapshot = read_ledger(&meta).await;
    let ask = |proton| Ask { proton, workload: proton, replicas: 1, importance: Importance::Moderate, bundles: &wanted };
    let first = allocations::place(&agents, &snapshot, &ask("p1")).unwrap();
    let second = allocations::place(&agents, &snapshot, &ask("p2")).unwrap();
    assert!(matches!(meta.write(first.txn().unwrap()).await.unwrap(), WriteOutcome::Applied { .. }));
    assert!(
        matches!(meta.write(second.txn().unwrap()).await.unwrap(), WriteOutcome::Conflict { .. }),
        "both planned the only GPU on the same revision"
    );
    let fresh = read_ledger(&meta).await;
    assert!(allocations::place(&agents, &fresh, &ask("p2")).is_err(), "no room once re-planned");
    assert!(allocations::holding(&fresh, "p1").is_some() && allocations::holding(&fresh, "p2").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_placing_at_once_never_over_commit_a_node() {
    let fixture = nucleus_testkit::Meta::start(2).await;
    let meta = fixture.client.clone();
    let nodes = nodes(3, 2); // 6 GPUs for 16 single-GPU protons
    let mut workers = Vec::new();
    for worker in 0..2 {
        let (meta, nodes) = (meta.clone(), nodes.clone());
        workers.push(tokio::spawn(async move {
            let agents = [AgentNodes { name: "a", region: "r", nodes: &nodes }];
            let wanted = [bundle("gpu.l4.small")];
            let (mut placed, mut conflicts) = (0, 0);
            for i in 0..8 {
                let proton = format!("w{worker}-p{i}");
                loop {
                    let ledger = read_ledger(&meta).await;
                    let ask = Ask { proton: &proton, workload: &proton, replicas: 1, importance: Importance::Moderate, bundles: &wanted };
                    let Ok(change) = allocations::place(&agents, &ledger, &ask) else { break };
                    match meta.write(change.txn().unwrap()).await.unwrap() {
                        WriteOutcome::Applied { .. } => {
                            placed += 1;
                            break;
                        }
                        WriteOutcome::Conflict { .. } => conflicts += 1,
                    }
                }
            }
            (placed, conflicts)
        }));
    }
    let mut placed = 0;
    for worker in workers {
        placed += worker.await.unwrap().0;
    }
    assert_eq!(placed, 6, "every GPU is used once");
    let ledger = read_ledger(&meta).await;
    let mut per_node: BTreeMap<&str, u32> = BTreeMap::new();
    for doc in ledger.values() {
        *per_node.entry(&doc.value.node).or_default() += doc.value.allocations.iter().map(|r| r.bundle.gpu_count).sum::<u32>();
    }
    assert_eq!(per_node.values().copied().collect::<Vec<_>>(), [2, 2, 2], "{per_node:?}");
}
