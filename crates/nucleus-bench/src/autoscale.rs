//! `nucleus-bench autoscale`: a `nucleus dev` stack with short autoscaling windows, measuring
//! (1) cold starts from zero (first-request latency) beside the same server started directly (its
//! own start-to-ready time: the rest is Nucleus' overhead), (2) the reaction to a step of 0→N
//! concurrent callers (until desired, until ready), (3) Knative's overload case: many simultaneous
//! requests to a workload at zero, and (4) errors while it scales back down. Prints figures; fails
//! only if the stack cannot run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::procs::{Processes, free_ports};
use crate::progress;
use crate::rest::{Rest as Api, TOKEN};

const WAIT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, clap::Args)]
pub struct AutoscaleArgs {
    /// Cold starts from zero to time.
    #[arg(long, default_value_t = 20)]
    pub cold_starts: usize,
    /// Concurrent callers of the step (each keeps one 100 ms request in flight; target 1).
    #[arg(long, default_value_t = 8)]
    pub step: usize,
    /// Simultaneous requests of the overload case (handler 100 ms, target 1, max 10 replicas).
    #[arg(long, default_value_t = 1000)]
    pub overload: usize,
    /// The `nucleus` binary (default: the one beside this binary).
    #[arg(long)]
    pub nucleus: Option<std::path::PathBuf>,
}

/// What this benchmark asks of the API beyond [`Rest::call`].
impl Api {
    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (code, body) = self.call(reqwest::Method::GET, path, None).await?;
        anyhow::ensure!(code == 200, "GET {path}: {code} {body}");
        Ok(body)
    }

    /// (asked-for replicas, ready replicas) of the workload's active proton.
    async fn replicas(&self, id: &str) -> anyhow::Result<(u64, usize)> {
        let w = self.get(&format!("/workloads/{id}")).await?;
        let proton = w["protonId"].as_str().context("protonId")?;
        let p = self.get(&format!("/workloads/{id}/protons/{proton}")).await?;
        let (code, details) = self.call(reqwest::Method::GET, &format!("/workloads/{id}/protons/{proton}/statusDetails"), None).await?;
        let ready = if code == 200 {
            details["replicas"].as_array().map_or(0, |r| {
                r.iter()
                    .filter(|r| r["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["met"] == true)))
                    .count()
            })
        } else {
            0
        };
        Ok((p["replicaCount"].as_u64().unwrap_or(0), ready))
    }

    async fn wait_replicas(&self, id: &str, what: &str, done: impl Fn(u64, usize) -> bool) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let (asked, ready) = self.replicas(id).await?;
            if done(asked, ready) {
                return Ok(started.elapsed());
            }
            anyhow::ensure!(started.elapsed() < WAIT, "workload {id} never reached {what} (asked {asked}, ready {ready})");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn create(&self, name: &str, entrypoint: &[String], min: u32, max: u32) -> anyhow::Result<String> {
        let body = json!({"name": name, "artifact": {"name": name, "spec": {"containerGroups": [{"name": "default", "containers": [{
                "name": "web", "imageUri": "example/whoami:1", "primary": true, "port": 8080,
                "entrypoint": entrypoint,
                "readinessProbe": {"path": "/ready", "port": 8080, "initialDelaySeconds": 0, "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 30}
            }]}]}},
            "runtime": {"containerGroups": [{"name": "default", "autoscaling": {"enabled": true, "minReplicaCount": min, "maxReplicaCount": max,
                "policies": [{"scalingMetric": "httpRequestsConcurrency", "target": 1}]}}]}});
        let (code, created) = self.call(reqwest::Method::POST, "/workloads", Some(body)).await?;
        anyhow::ensure!(code == 201, "creating {name}: {code} {created}");
        Ok(created["id"].as_str().context("workload id")?.to_owned())
    }

    fn invoke_url(&self, id: &str, path: &str) -> String {
        format!("{}/api/v2/endpoints/workloads/{id}/{path}", self.base)
    }
}

/// One invoke call read to the end: whether it succeeded.
async fn call(api: &Api, url: &str) -> bool {
    match api.http.get(url).bearer_auth(TOKEN).send().await {
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

/// Callers that each keep one request to a URL in flight until stopped, counting the outcomes.
struct Callers {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    errors: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Callers {
    fn start(api: &Arc<Api>, url: String, callers: usize) -> Callers {
        let (stop, ok, errors) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let tasks = (0..callers)
            .map(|_| {
                let (api, url, stop, ok, errors) = (api.clone(), url.clone(), stop.clone(), ok.clone(), errors.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let outcome = if call(&api, &url).await { &ok } else { &errors };
                        outcome.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        Callers { stop, ok, errors, tasks }
    }

    /// Stops them once their requests in flight end: (succeeded, failed).
    async fn stop(self) -> anyhow::Result<(usize, usize)> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await?;
        }
        Ok((self.ok.load(Ordering::Relaxed), self.errors.load(Ordering::Relaxed)))
    }
}

fn quantile(samples: &[Duration], q: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted.get(((sorted.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The entrypoint of whoami listening on `port`, started after `delay_ms` (through sh) if any.
fn server(whoami: &str, port: &str, delay_ms: u64) -> Vec<String> {
    match delay_ms {
        0 => vec![whoami.to_owned(), "--port".to_owned(), port.to_owned()],
        ms => vec!["/bin/sh".to_owned(), "-c".to_owned(), format!("sleep {}; exec {whoami} --port {port}", ms as f64 / 1000.0)],
    }
}

/// Starts the server directly `n` times and times each from spawn to its first 200 on /ready.
async fn direct_starts(whoami: &str, delay_ms: u64, n: usize) -> anyhow::Result<Vec<Duration>> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let port = free_ports(1)?[0];
        let command = server(whoami, &port.to_string(), delay_ms);
        let started = Instant::now();
        let mut child = tokio::process::Command::new(&command[0])
            .args(&command[1..])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting whoami")?;
        loop {
            if let Ok(r) = http.get(format!("http://127.0.0.1:{port}/ready")).send().await
                && r.status().is_success()
            {
                break;
            }
            anyhow::ensure!(started.elapsed() < Duration::from_secs(10), "whoami did not become ready");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        times.push(started.elapsed());
        child.kill().await?;
    }
    Ok(times)
}

pub async fn run(args: &AutoscaleArgs, nucleus: &std::path::Path) -> anyhow::Result<()> {
    let whoami = nucleus.with_file_name("nucleus-whoami");
    anyhow::ensure!(whoami.is_file(), "{} not found: build it (cargo build --release -p nucleus-whoami)", whoami.display());
    let whoami = whoami.to_string_lossy().into_owned();
    let mut procs = Processes::new("autoscale")?;
    let port = free_ports(1)?[0];
    let data = procs.dir().join("data").to_string_lossy().into_owned();
    let listen = format!("127.0.0.1:{port}");
    let flags = [
        "dev",
        "--listen",
        &listen,
        "--token",
        TOKEN,
        "--data-dir",
        &data,
        "--autoscale-stable-window",
        "2s",
        "--autoscale-panic-window",
        "1s",
        "--scale-to-zero-grace",
        "0s",
        "--max-in-flight-per-workload",
        "100000",
    ];
    procs.spawn("dev", nucleus, &flags.map(String::from))?;
    procs.wait_for_log("dev", "REST API at", Duration::from_secs(60))?;
    let api = Arc::new(Api {
        http: reqwest::Client::builder().no_proxy().pool_max_idle_per_host(2000).build()?,
        base: format!("http://{listen}"),
    });
    println!("nucleus dev with --autoscale-stable-window 2s --autoscale-panic-window 1s --scale-to-zero-grace 0s");

    // 1. Cold starts, of whoami as it is and of a server that takes 0.5 s to start.
    let mut cold_rows = Vec::new();
    for (label, delay_ms) in [("whoami", 0), ("a server starting in 0.5 s", 500)] {
        progress(&format!("{} direct starts of {label} (spawn → /ready 200) ...", args.cold_starts));
        let direct = direct_starts(&whoami, delay_ms, args.cold_starts).await?;
        let cold_id = api.create(&format!("cold-{delay_ms}"), &server(&whoami, "$PORT", delay_ms), 0, 1).await?;
        let mut cold = Vec::with_capacity(args.cold_starts);
        for i in 0..args.cold_starts {
            api.wait_replicas(&cold_id, "zero replicas", |asked, ready| asked == 0 && ready == 0).await?;
            // The route table hears of the zero a moment after the proton does.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let started = Instant::now();
            let response = api.http.get(api.invoke_url(&cold_id, "echo")).bearer_auth(TOKEN).send().await?;
            let status = response.status();
            response.bytes().await?;
            anyhow::ensure!(status.is_success(), "cold start {i}: {status}");
            cold.push(started.elapsed());
            progress(&format!("cold start {}/{} of {label}: {}", i + 1, args.cold_starts, ms(*cold.last().unwrap_or(&Duration::ZERO))));
        }
        let overhead: Vec<Duration> = cold.iter().zip(&direct).map(|(c, d)| c.saturating_sub(*d)).collect();
        cold_rows.push((label, cold, direct, overhead));
    }

    // 2. Step 0 → N callers on a workload at its minimum of 1.
    let step_id = api.create("step", &server(&whoami, "$PORT", 0), 1, 10).await?;
    api.wait_replicas(&step_id, "1 ready", |_, ready| ready >= 1).await?;
    let step = Callers::start(&api, api.invoke_url(&step_id, "sleep/100"), args.step);
    let want = args.step as u64;
    let until_desired = api.wait_replicas(&step_id, "the step's count", |asked, _| asked >= want).await?;
    let until_ready = until_desired + api.wait_replicas(&step_id, "the step's count ready", |_, ready| ready as u64 >= want).await?;
    let (step_ok, step_errors) = step.stop().await?;

    // 3. Scale-down under a light load: one caller while the step's replicas go.
    let caller = Callers::start(&api, api.invoke_url(&step_id, "sleep/100"), 1);
    let down = api.wait_replicas(&step_id, "1 replica", |asked, ready| asked == 1 && ready == 1).await?;
    tokio::time::sleep(Duration::from_secs(3)).await; // the drained replicas stop meanwhile
    let (down_ok, down_errors) = caller.stop().await?;
    // 4. Overload: simultaneous requests to a workload at zero.
    let over_id = api.create("overload", &server(&whoami, "$PORT", 0), 0, 10).await?;
    api.wait_replicas(&over_id, "zero replicas", |asked, ready| asked == 0 && ready == 0).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    progress(&format!("{} simultaneous requests to a workload at zero ...", args.overload));
    let peak = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (api, id, peak) = (api.clone(), over_id.clone(), peak.clone());
        tokio::spawn(async move {
            loop {
                if let Ok((asked, _)) = api.replicas(&id).await {
                    peak.fetch_max(asked as usize, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let started = Instant::now();
    let requests: Vec<_> = (0..args.overload)
        .map(|_| {
            let (api, url) = (api.clone(), api.invoke_url(&over_id, "sleep/100"));
            tokio::spawn(async move { call(&api, &url).await })
        })
        .collect();
    let mut overload_errors = 0;
    for request in requests {
        if !request.await? {
            overload_errors += 1;
        }
    }
    let overload_total = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    watcher.abort();
    let peak = peak.load(Ordering::Relaxed);

    procs.check_alive()?;

    println!();
    println!("| measure | p50 | p95 | note |");
    println!("|---|---|---|---|");
    for (label, cold, direct, overhead) in &cold_rows {
        println!(
            "| {label}: first request from zero | {} | {} | {} cold starts |",
            ms(quantile(cold, 0.5)),
            ms(quantile(cold, 0.95)),
            cold.len()
        );
        println!(
            "| {label} started directly: spawn → ready | {} | {} | the server's own start |",
            ms(quantile(direct, 0.5)),
            ms(quantile(direct, 0.95))
        );
        println!(
            "| {label}: Nucleus' own cold-start overhead | {} | {} | first request − direct start, pairwise |",
            ms(quantile(overhead, 0.5)),
            ms(quantile(overhead, 0.95))
        );
    }
    println!();
    println!(
        "step 0→{} callers (target 1): desired {} after {}, all ready after {}; {} errors in {} requests",
        args.step,
        args.step,
        ms(until_desired),
        ms(until_ready),
        step_errors,
        step_ok + step_errors
    );
    println!(
        "overload: {} simultaneous requests (100 ms handler, target 1, max 10) to a workload at zero: {} errors, all answered in {:.2} s, at most {} replicas asked",
        args.overload,
        overload_errors,
        overload_total.as_secs_f64(),
        peak
    );
    println!(
        "scale-down from {} to 1 under one caller: {} errors in {} requests, down in {:.1} s",
        args.step,
        down_errors,
        down_errors + down_ok,
        down.as_secs_f64()
    );
    Ok(())
}
