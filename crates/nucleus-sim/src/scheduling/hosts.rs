//! The software of the simulated scheduler and agent hosts (the real `nucleus_scheduler::run` and
//! the real `nucleus_agent::Agent` over turmoil's network), and the documents users create.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nucleus_agent::{Agent, AgentConfig, AgentOptions, DriverChoice};
use nucleus_api::{Proton, Workload};
use nucleus_client::{AgentRecord, MetaClient, NodeRecord, Txn, keys};
use nucleus_meta::Transport;
use nucleus_scheduler::SchedulerConfig;
use nucleus_tls::{Dialer, Network};
use tonic::transport::{Channel, Endpoint};

use super::machine::Machine;
use crate::harness::TurmoilTransport;
use crate::harness::cluster::host_addr;

/// Port every agent serves on.
pub const AGENT_PORT: u16 = 7100;
/// How long a host waits before trying again what failed (a supervisor's restart delay).
const RETRY: Duration = Duration::from_millis(500);

/// The simulated network, as the clients' `Dialer` sees it.
struct SimNetwork;

impl Network for SimNetwork {
    fn channel(&self, endpoint: Endpoint) -> Channel {
        TurmoilTransport.channel(endpoint)
    }
}

pub fn dialer() -> Dialer {
    Dialer::over(Arc::new(SimNetwork))
}

pub fn meta_client(meta_nodes: u64) -> MetaClient {
    let seeds: Vec<String> = (1..=meta_nodes).map(host_addr).collect();
    MetaClient::new(&seeds, &dialer()).expect("simulated meta addresses are valid")
}

pub fn scheduler_host(i: u64) -> String {
    format!("scheduler-{i}")
}

pub fn agent_host(i: u64) -> String {
    format!("agent-{i}")
}

pub fn region_of(agent: u64) -> String {
    format!("region-{agent}")
}

/// A scheduler worker: runs until the host is crashed; a run that ends in an error starts again.
pub async fn scheduler(i: u64, meta_nodes: u64) -> turmoil::Result {
    let config = SchedulerConfig { name: scheduler_host(i), dialer: dialer(), autoscale: Default::default() };
    let meta = meta_client(meta_nodes);
    loop {
        let (first_pass, _) = tokio::sync::oneshot::channel();
        if let Err(err) = nucleus_scheduler::run(config.clone(), meta.clone(), std::future::pending(), first_pass).await {
            tracing::info!(scheduler = i, error = %err, "scheduler stopped; starting again");
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// An agent on `machine` (which outlives the host's crashes, like a host's processes outlive
/// their agent): registers in meta, then serves the Agent service.
pub async fn agent(i: u64, machine: Machine, data_dir: PathBuf, meta_nodes: u64) -> turmoil::Result {
    let name = agent_host(i);
    let address = format!("{name}:{AGENT_PORT}");
    let build = {
        let machine = machine.clone();
        Box::new(move |sink| machine.driver(sink)) as nucleus_agent::CustomDriver
    };
    let options =
        AgentOptions { cluster: name.clone(), region: region_of(i), driver: DriverChoice::Custom(build), ..AgentOptions::default() };
    let config = AgentConfig { name: name.clone(), data_dir, node_address: name.clone() };
    let agent = Agent::with_options(config, options)?;
    let (incoming, _) = TurmoilTransport.bind(format!("0.0.0.0:{AGENT_PORT}").parse()?).await?;
    let serving = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(nucleus_tls::RoleGuardLayer::new(nucleus_tls::policy::agent_server, false))
            .add_service(agent.grpc_service())
            .serve_with_incoming(incoming),
    );
    let capacity = machine.capacity();
    let record = AgentRecord {
        name: name.clone(),
        address,
        driver: "fake".to_owned(),
        cluster: name.clone(),
        region: region_of(i),
        heartbeat_at: nucleus_api::clock::now().to_rfc3339(),
        nodes: vec![NodeRecord {
            name: capacity.name,
            zone: capacity.zone,
            cpu_millis: capacity.cpu_millis,
            memory_bytes: capacity.memory_bytes,
            gpu_count: capacity.gpu_count,
            gpu_type: capacity.gpu_type,
            gpu_memory_bytes: capacity.gpu_memory_bytes,
        }],
        exec: Default::default(),
    };
    let meta = meta_client(meta_nodes);
    loop {
        let txn = Txn::new().put_json(&keys::agent(&name), &record)?;
        if meta.write(txn).await.is_ok() {
            break;
        }
        tokio::time::sleep(RETRY).await;
    }
    serving.await??;
    Ok(())
}

/// Workload `i` and its proton, as the gateway creates them: GPU workloads ask for one L4 per
/// replica through a bundle; the others ask for nothing (any agent).
pub fn workload(i: usize, gpu: bool, replicas: u32) -> (Workload, Proton) {
    let id = format!("w{i}");
    let proton_id = format!("p{i}");
    let runtime = if gpu {
        serde_json::json!({"containerGroups": [{"name": "g", "replicaCount": replicas, "resourceBundles": ["gpu.l4.small"]}]})
    } else {
        serde_json::json!({"containerGroups": [{"name": "g", "replicaCount": replicas}]})
    };
    let now = nucleus_api::clock::now().to_rfc3339();
    let workload = serde_json::from_value(serde_json::json!({
        "id": id, "name": id, "description": "", "status": "submitted", "importance": "low", "type": "service",
        "artifactId": "a", "artifact": {"id": "a"}, "runtime": runtime, "protonId": proton_id, "creator": null,
        "createdAt": now, "updatedAt": now, "desiredState": "running"
    }))
    .expect("a valid workload");
    let proton = serde_json::from_value(serde_json::json!({
        "id": proton_id, "name": proton_id, "workloadId": id, "artifactId": "a", "role": "active", "status": "submitted",
        "runtime": runtime, "replicaCount": replicas, "createdAt": now, "updatedAt": now, "desiredState": "running",
        "generation": 1, "container": {"name": "main", "imageUri": "example/serve:1", "primary": true, "port": 8080}
    }))
    .expect("a valid proton");
    (workload, proton)
}
