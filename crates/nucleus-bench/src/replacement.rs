//! `nucleus-bench replacement`: successive rolling replacements of a 3-replica workload on a
//! `nucleus dev` stack under steady load from separate clients. Prints requests, errors and
//! latency quantiles before and during the replacements, and the fewest ready replicas seen; it
//! fails if any request failed or fewer than the replicas were ever ready.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::procs::{Processes, free_ports};
use crate::progress;
use crate::rest::{Rest as Client, TOKEN};

#[derive(Debug, Clone, clap::Args)]
pub struct ReplacementArgs {
    /// Replacements in a row.
    #[arg(long, default_value_t = 3)]
    pub replacements: usize,
    /// Replicas of the workload.
    #[arg(long, default_value_t = 3)]
    pub replicas: u32,
    /// Concurrent callers.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Seconds of load before the first replacement (the "before" figures).
    #[arg(long, default_value_t = 5)]
    pub before: u64,
    /// The `nucleus` binary (default: the one beside this binary).
    #[arg(long)]
    pub nucleus: Option<std::path::PathBuf>,
}

/// Latencies and errors of one phase.
struct Phase {
    latencies: Histogram<u64>,
    errors: usize,
    started: Instant,
    ended: Option<Instant>,
}

impl Phase {
    fn new() -> Phase {
        Phase { latencies: Histogram::new(3).expect("histogram"), errors: 0, started: Instant::now(), ended: None }
    }
}

fn artifact(name: &str, whoami: &str) -> Value {
    json!({
        "name": name,
        "spec": {"containerGroups": [{"name": "default", "containers": [{
            "name": "web", "imageUri": "example/whoami:1", "primary": true, "port": 8080,
            "entrypoint": [whoami, "--port", "$PORT"],
            "readinessProbe": {"path": "/ready", "port": 8080, "initialDelaySeconds": 0, "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 30}
        }]}]}
    })
}

pub async fn run(args: &ReplacementArgs, nucleus: &std::path::Path) -> anyhow::Result<()> {
    let whoami = nucleus.with_file_name("nucleus-whoami");
    anyhow::ensure!(whoami.is_file(), "{} not found: build it (cargo build --release -p nucleus-whoami)", whoami.display());
    let whoami = whoami.to_string_lossy().into_owned();
    let mut procs = Processes::new("replacement")?;
    let port = free_ports(1)?[0];
    let data = procs.dir().join("data").to_string_lossy().into_owned();
    let listen = format!("127.0.0.1:{port}");
    procs.spawn(
        "dev",
        nucleus,
        &["dev".into(), "--listen".into(), listen.clone(), "--token".into(), TOKEN.into(), "--data-dir".into(), data],
    )?;
    procs.wait_for_log("dev", "REST API at", Duration::from_secs(60))?;
    let client = Arc::new(Client { http: reqwest::Client::builder().no_proxy().build()?, base: format!("http://{listen}") });

    let body = json!({"name": "rolled", "artifact": artifact("rolled", &whoami),
        "runtime": {"containerGroups": [{"name": "default", "replicaCount": args.replicas}]}});
    let (code, created) = client.call(reqwest::Method::POST, "/workloads", Some(body)).await?;
    anyhow::ensure!(code == 201, "creating the workload: {code} {created}");
    let id = created["id"].as_str().context("workload id")?.to_owned();
    wait(&client, &id, "running", |w| w["status"] == "running").await?;
    progress(&format!("workload {id} running with {} replicas; {} callers start", args.replicas, args.clients));

    let phases = Arc::new(Mutex::new(vec![Phase::new()]));
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let mut callers = Vec::new();
    for _ in 0..args.clients {
        let (client, id, phases, stop, calls) = (client.clone(), id.clone(), phases.clone(), stop.clone(), calls.clone());
        callers.push(tokio::spawn(async move {
            let url = format!("{}/api/v2/endpoints/workloads/{id}/echo", client.base);
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let ok = match client.http.get(&url).bearer_auth(TOKEN).send().await {
                    Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                    Err(_) => false,
                };
                let micros = started.elapsed().as_micros() as u64;
                calls.fetch_add(1, Ordering::Relaxed);
                let mut phases = phases.lock().unwrap_or_else(|p| p.into_inner());
                let phase = phases.last_mut().expect("a phase");
                if ok {
                    let _ = phase.latencies.record(micros.max(1));
                } else {
                    phase.errors += 1;
                }
            }
        }));
    }
    // The fewest ready replicas of the serving proton, sampled every 100 ms.
    let fewest_ready = Arc::new(AtomicU32::new(u32::MAX));
    let sampler = {
        let (client, id, stop, fewest) = (client.clone(), id.clone(), stop.clone(), fewest_ready.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(ready) = ready_replicas(&client, &id).await {
                    fewest.fetch_min(ready, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(args.before)).await;
    next_phase(&phases);
    for round in 1..=args.replacements {
        let name = format!("rolled-v{}", round + 1);
        let (code, made) = client.call(reqwest::Method::POST, "/artifacts", Some(artifact(&name, &whoami))).await?;
        anyhow::ensure!(code == 201, "creating artifact {name}: {code} {made}");
        let artifact_id = made["id"].as_str().context("artifact id")?.to_owned();
        let started = Instant::now();
        let (code, replacement) = client
            .call(
                reqwest::Method::POST,
                &format!("/workloads/{id}/replacement"),
                Some(json!({"artifactId": artifact_id, "strategy": "rolling"})),
            )
            .await?;
        anyhow::ensure!(code == 202, "starting replacement {round}: {code} {replacement}");
        wait(&client, &id, "replacement done", |w| w["replacement"].is_null() && w["artifactId"] == artifact_id.as_str()).await?;
        progress(&format!("replacement {round}/{} completed in {:.1} s", args.replacements, started.elapsed().as_secs_f64()));
    }
    stop.store(true, Ordering::Relaxed);
    for caller in callers {
        caller.await?;
    }
    sampler.await?;
    procs.check_alive()?;
    let phases = phases.lock().unwrap_or_else(|p| p.into_inner());
    let total = calls.load(Ordering::Relaxed);
    print(&phases, args, total, fewest_ready.load(Ordering::Relaxed));
    let errors: usize = phases.iter().map(|p| p.errors).sum();
    anyhow::ensure!(errors == 0, "{errors} request(s) failed");
    let fewest = fewest_ready.load(Ordering::Relaxed);
    anyhow::ensure!(fewest >= args.replicas, "only {fewest} replica(s) were ready at one point");
    Ok(())
}

fn next_phase(phases: &Mutex<Vec<Phase>>) {
    let mut phases = phases.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(last) = phases.last_mut() {
        last.ended = Some(Instant::now());
    }
    phases.push(Phase::new());
}

async fn ready_replicas(client: &Client, id: &str) -> anyhow::Result<u32> {
    let (_, w) = client.call(reqwest::Method::GET, &format!("/workloads/{id}"), None).await?;
    let proton = w["protonId"].as_str().context("proton id")?;
    let (code, details) = client.call(reqwest::Method::GET, &format!("/workloads/{id}/protons/{proton}/statusDetails"), None).await?;
    anyhow::ensure!(code == 200, "no snapshot yet");
    let ready = details["replicas"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter(|r| r["conditions"].as_array().is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["met"] == true)))
                .count()
        })
        .unwrap_or(0);
    Ok(ready as u32)
}

async fn wait(client: &Client, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, w) = client.call(reqwest::Method::GET, &format!("/workloads/{id}"), None).await?;
        if done(&w) {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{what}: not within 120 s: {w}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn print(phases: &[Phase], args: &ReplacementArgs, total: usize, fewest_ready: u32) {
    println!(
        "rolling replacement under load: {} replacement(s) of a {}-replica workload, {} callers, {total} requests",
        args.replacements, args.replicas, args.clients
    );
    println!("| phase | seconds | requests | req/s | errors | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|---|");
    for (name, phase) in ["before", "during replacements"].iter().zip(phases) {
        let seconds = phase.ended.unwrap_or_else(Instant::now).duration_since(phase.started).as_secs_f64();
        let requests = phase.latencies.len() as usize + phase.errors;
        println!(
            "| {name} | {seconds:.1} | {requests} | {:.0} | {} | {:.2} | {:.2} |",
            requests as f64 / seconds.max(f64::EPSILON),
            phase.errors,
            phase.latencies.value_at_quantile(0.5) as f64 / 1000.0,
            phase.latencies.value_at_quantile(0.99) as f64 / 1000.0
        );
    }
    println!("fewest ready replicas of the serving proton at any 100 ms sample: {fewest_ready}");
}
