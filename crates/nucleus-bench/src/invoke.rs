//! `nucleus-bench invoke`: the invoke path side by side with direct access and nginx, in one run on
//! one machine. A static file served by an nginx replica (a workload of `nucleus dev`) is fetched
//! with wrk, the same connections and threads each time, from (a) the replica directly, (b) nginx
//! as a keep-alive reverse proxy in front of it, (c) the workload's invoke URL. Then an open-loop
//! run at a fixed rate measures the latency each proxy adds over direct access.
//!
//! It prints figures and ratios; it fails only when something could not be measured (a process
//! died, wrk failed, a request failed).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::procs::{Processes, free_ports, which};
use crate::progress;
use crate::rest::TOKEN;

#[derive(Debug, Clone, clap::Args)]
pub struct InvokeArgs {
    /// Measured seconds per wrk run and per fixed-rate run.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Open connections (wrk -c), the same for every target.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// wrk threads (-t).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Worker threads of the gateway and worker processes of the nginx proxy (the same number).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Requests per second of the fixed-rate run.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Size of the static file, bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Rounds of the wrk runs (direct, nginx, Nucleus in turn each round); the table shows medians.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// The `nucleus` binary (default: the one beside this binary).
    #[arg(long)]
    pub nucleus: Option<PathBuf>,
}

/// One wrk run's figures.
#[derive(Debug, Clone, Copy)]
struct Saturated {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    /// CPU seconds the proxy spent per 1,000 requests (none for direct access).
    cpu_per_1k: Option<f64>,
}

/// `a`'s req/s over `b`'s, for each round.
fn paired_ratios(runs: &[(&str, Vec<Saturated>)], a: &str, b: &str) -> Vec<f64> {
    let of = |name: &str| runs.iter().find(|(n, _)| *n == name).map(|(_, r)| r.as_slice()).unwrap_or_default();
    of(a).iter().zip(of(b)).map(|(a, b)| a.requests_per_sec / b.requests_per_sec).collect()
}

/// Each figure's median over the rounds (figures of one target, each taken alone).
fn median(runs: &[Saturated]) -> Saturated {
    let mid = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let cpu: Vec<f64> = runs.iter().filter_map(|r| r.cpu_per_1k).collect();
    Saturated {
        requests_per_sec: mid(runs.iter().map(|r| r.requests_per_sec).collect()),
        p50_ms: mid(runs.iter().map(|r| r.p50_ms).collect()),
        p99_ms: mid(runs.iter().map(|r| r.p99_ms).collect()),
        requests: runs.iter().map(|r| r.requests).sum(),
        cpu_per_1k: (!cpu.is_empty()).then(|| mid(cpu)),
    }
}

/// One fixed-rate run's figures.
#[derive(Debug, Clone, Copy)]
struct Paced {
    p50_ms: f64,
    p99_ms: f64,
    sent: u64,
    failed: u64,
}

impl Paced {
    /// The median run's latencies, and every run's requests.
    fn median(runs: &[Paced]) -> Paced {
        let mid = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        Paced {
            p50_ms: mid(runs.iter().map(|r| r.p50_ms).collect()),
            p99_ms: mid(runs.iter().map(|r| r.p99_ms).collect()),
            sent: runs.iter().map(|r| r.sent).sum(),
            failed: runs.iter().map(|r| r.failed).sum(),
        }
    }
}

pub async fn run(args: &InvokeArgs, nucleus: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.seconds > 0 && args.connections > 0 && args.threads > 0 && args.workers > 0 && args.rate > 0 && args.rounds > 0,
        "every option must be positive"
    );
    let nginx = which("nginx").context("nginx is not installed: run `apt-get install -y nginx`")?;
    let wrk = which("wrk").context("wrk is not installed: run `apt-get install -y wrk`")?;
    let mut procs = Processes::new("invoke")?;
    let dir = procs.dir().to_path_buf();
    std::fs::create_dir_all(dir.join("www"))?;
    std::fs::create_dir_all(dir.join("tmp"))?;
    std::fs::write(dir.join("www/file"), vec![b'x'; args.size])?;
    std::fs::write(dir.join("replica.conf.in"), replica_config(&dir))?;

    let [gateway_port, proxy_port]: [u16; 2] = free_ports(2)?.try_into().map_err(|_| anyhow::anyhow!("two ports"))?;
    let listen = format!("127.0.0.1:{gateway_port}");
    let data = dir.join("data").to_string_lossy().into_owned();
    progress(&format!("starting nucleus dev ({} gateway worker(s)) from {}", args.workers, nucleus.display()));
    let dev_args = ["dev", "--listen", &listen, "--token", TOKEN, "--data-dir", &data, "--workers", &args.workers.to_string()];
    procs.spawn("dev", nucleus, &dev_args.map(String::from))?;
    procs.wait_for_log("dev", "REST API at", Duration::from_secs(60))?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let base = format!("http://{listen}/api/v2");
    let replica = start_workload(&http, &base, &nginx, &dir).await?;
    progress(&format!("replica (nginx serving a {}-byte file) ready at {replica}", args.size));

    std::fs::write(dir.join("proxy.conf"), proxy_config(&dir, args.workers, proxy_port, &replica))?;
    let proxy_args =
        ["-e", &dir.join("proxy.err").to_string_lossy(), "-c", &dir.join("proxy.conf").to_string_lossy()].map(|s| s.to_string());
    procs.spawn("nginx-proxy", &nginx, &proxy_args)?;
    wait_until_serving(&format!("http://127.0.0.1:{proxy_port}/file")).await?;

    let invoke_url = format!("{base}/endpoints/workloads/{}/file", workload_id(&http, &base).await?);
    let targets = [
        ("direct", format!("http://{replica}/file"), None),
        ("nginx proxy", format!("http://127.0.0.1:{proxy_port}/file"), Some(Cpu::Children(procs.pid("nginx-proxy")?))),
        ("nucleus invoke", invoke_url.clone(), Some(Cpu::Threads(procs.pid("dev")?, "nucleus-gateway"))),
    ];
    // Rounds in turn, so that a slow moment of the machine falls on every target alike.
    let mut runs: Vec<(&str, Vec<Saturated>)> = targets.iter().map(|(name, _, _)| (*name, Vec::new())).collect();
    for (name, url, _) in &targets {
        progress(&format!("{name}: 2 s warm-up"));
        run_wrk(&wrk, args, url, 2)?;
    }
    for round in 1..=args.rounds {
        for ((name, url, cpu), (_, results)) in targets.iter().zip(runs.iter_mut()) {
            progress(&format!(
                "round {round}/{}: {name}: wrk -t{} -c{} -d{}s ...",
                args.rounds, args.threads, args.connections, args.seconds
            ));
            let before = cpu.as_ref().map(Cpu::seconds).transpose()?;
            let figures = run_wrk(&wrk, args, url, args.seconds)?;
            let after = cpu.as_ref().map(Cpu::seconds).transpose()?;
            let cpu_per_1k = before.zip(after).map(|(b, a)| (a - b) / figures.requests as f64 * 1000.0);
            progress(&format!("  {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms", figures.requests_per_sec, figures.p50_ms, figures.p99_ms));
            procs.check_alive()?;
            results.push(Saturated { cpu_per_1k, ..figures });
        }
    }
    let saturated: Vec<(&str, Saturated)> = runs.iter().map(|(name, results)| (*name, median(results))).collect();
    // Each round's own Nucleus/nginx ratio: a slow moment of the machine weighs on both of a pair.
    let paired = paired_ratios(&runs, "nucleus invoke", "nginx proxy");
    // Fixed-rate rounds in turn too (at most 3): one stall of the machine is not the proxy's p99.
    let paced_rounds = args.rounds.min(3);
    let mut paced_runs: Vec<(&str, Vec<Paced>)> = targets.iter().map(|(name, _, _)| (*name, Vec::new())).collect();
    for round in 1..=paced_rounds {
        for ((name, url, _), (_, results)) in targets.iter().zip(paced_runs.iter_mut()) {
            progress(&format!(
                "round {round}/{paced_rounds}: {name}: {} req/s for {} s (open loop, 16 connections) ...",
                args.rate, args.seconds
            ));
            let figures = run_paced(url, args.rate, Duration::from_secs(args.seconds)).await?;
            anyhow::ensure!(figures.failed == 0, "{name}: {} of {} paced requests failed", figures.failed, figures.sent);
            progress(&format!("  p50 {:.3} ms, p99 {:.3} ms", figures.p50_ms, figures.p99_ms));
            procs.check_alive()?;
            results.push(figures);
        }
    }
    let paced: Vec<(&str, Paced)> = paced_runs.iter().map(|(name, runs)| (*name, Paced::median(runs))).collect();
    println!();
    print!("{}", report(args, &saturated, &paced, &paired));
    Ok(())
}

fn report(args: &InvokeArgs, saturated: &[(&str, Saturated)], paced: &[(&str, Paced)], paired: &[f64]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}-byte static file; wrk -t{} -c{} -d{}s, median of {} rounds; gateway --workers {} and nginx worker_processes {}, both keep-alive to the replica and setting X-Forwarded-For/-Proto/-Host",
        args.size, args.threads, args.connections, args.seconds, args.rounds, args.workers, args.workers
    );
    out.push_str("| target | req/s | p50 ms | p99 ms | proxy CPU s per 1,000 req |\n|---|---:|---:|---:|---:|\n");
    for (name, s) in saturated {
        let cpu = s.cpu_per_1k.map_or("-".to_owned(), |c| format!("{c:.4}"));
        let _ = writeln!(out, "| {name} | {:.0} | {:.2} | {:.2} | {cpu} |", s.requests_per_sec, s.p50_ms, s.p99_ms);
    }
    let find = |name: &str| saturated.iter().find(|(n, _)| *n == name).map(|(_, s)| s);
    if let (Some(nucleus), Some(nginx), Some(direct)) = (find("nucleus invoke"), find("nginx proxy"), find("direct")) {
        let _ = writeln!(
            out,
            "| nucleus/nginx | {:.2}x | {:.2}x | {:.2}x | {} |",
            nucleus.requests_per_sec / nginx.requests_per_sec,
            nucleus.p50_ms / nginx.p50_ms,
            nucleus.p99_ms / nginx.p99_ms,
            nucleus.cpu_per_1k.zip(nginx.cpu_per_1k).map_or("-".to_owned(), |(a, b)| format!("{:.2}x", a / b)),
        );
        let _ = writeln!(
            out,
            "| nucleus/direct | {:.2}x | {:.2}x | {:.2}x | - |",
            nucleus.requests_per_sec / direct.requests_per_sec,
            nucleus.p50_ms / direct.p50_ms,
            nucleus.p99_ms / direct.p99_ms
        );
    }
    if !paired.is_empty() {
        let mut sorted = paired.to_vec();
        sorted.sort_by(f64::total_cmp);
        let each: Vec<String> = paired.iter().map(|r| format!("{r:.2}")).collect();
        let _ = writeln!(out, "\nnucleus/nginx req/s, round by round: {} (median {:.2}x)", each.join(", "), sorted[sorted.len() / 2]);
    }
    let _ = writeln!(
        out,
        "\nFixed rate: {} req/s for {} s, open loop over 16 keep-alive connections (latency from each request's send), median of {} rounds",
        args.rate,
        args.seconds,
        args.rounds.min(3)
    );
    out.push_str("| target | requests | p50 ms | p99 ms | added p50 ms | added p99 ms |\n|---|---:|---:|---:|---:|---:|\n");
    let direct = paced.iter().find(|(n, _)| *n == "direct").map(|(_, p)| p);
    for (name, p) in paced {
        let added = |f: fn(&Paced) -> f64| direct.filter(|_| *name != "direct").map_or("-".to_owned(), |d| format!("{:+.3}", f(p) - f(d)));
        let _ = writeln!(
            out,
            "| {name} | {} | {:.3} | {:.3} | {} | {} |",
            p.sent,
            p.p50_ms,
            p.p99_ms,
            added(|p| p.p50_ms),
            added(|p| p.p99_ms)
        );
    }
    out
}

/// The replica: nginx as one process, serving `www/` on the port the process driver gives it.
fn replica_config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/replica-@PORT@.pid;\nerror_log {d}/replica-@PORT@.err warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  scgi_temp_path {d}/tmp/scgi;\n\
         \x20 keepalive_requests 10000000;\n  server {{ listen 127.0.0.1:@PORT@; location / {{ root {d}/www; }} }}\n}}\n"
    )
}

/// nginx as a keep-alive reverse proxy in front of the replica, with `workers` worker processes.
fn proxy_config(dir: &Path, workers: usize, port: u16, replica: &str) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nworker_processes {workers};\npid {d}/proxy.pid;\nerror_log {d}/proxy.err warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/pbody;\n  proxy_temp_path {d}/tmp/pproxy;\n  fastcgi_temp_path {d}/tmp/pfastcgi;\n  uwsgi_temp_path {d}/tmp/puwsgi;\n  scgi_temp_path {d}/tmp/pscgi;\n\
         \x20 keepalive_requests 10000000;\n  upstream replica {{ server {replica}; keepalive 64; keepalive_requests 10000000; }}\n\
         \x20 server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://replica; proxy_http_version 1.1; proxy_set_header Connection \"\";\n\
         \x20   proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; proxy_set_header X-Forwarded-Proto $scheme; proxy_set_header X-Forwarded-Host $host; }} }}\n}}\n"
    )
}

/// Creates the workload whose one replica is nginx serving the file; returns the replica's address.
async fn start_workload(http: &reqwest::Client, base: &str, nginx: &Path, dir: &Path) -> anyhow::Result<String> {
    let d = dir.display();
    let script = format!(
        "sed s/@PORT@/$PORT/g {d}/replica.conf.in > {d}/replica-$PORT.conf && exec {} -e {d}/replica-$PORT.err -c {d}/replica-$PORT.conf",
        nginx.display()
    );
    let body = json!({
        "name": "static",
        "artifact": {"name": "static", "spec": {"containerGroups": [{"name": "default", "containers": [{
            "name": "nginx", "imageUri": "nginx:1.22", "primary": true, "port": 8080,
            "entrypoint": ["sh", "-c", script]
        }]}]}},
        "runtime": {"containerGroups": [{"name": "default", "replicaCount": 1}]}
    });
    let created: Value = http.post(format!("{base}/workloads")).bearer_auth(TOKEN).json(&body).send().await?.json().await?;
    let id = created["id"].as_str().with_context(|| format!("creating the workload: {created}"))?.to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let w: Value = http.get(format!("{base}/workloads/{id}")).bearer_auth(TOKEN).send().await?.json().await?;
        if w["status"] == "running" {
            let proton = w["protonId"].as_str().context("proton id")?;
            let details: Value =
                http.get(format!("{base}/workloads/{id}/protons/{proton}/statusDetails")).bearer_auth(TOKEN).send().await?.json().await?;
            return details["replicas"][0]["address"].as_str().map(str::to_owned).with_context(|| format!("no replica address: {details}"));
        }
        if Instant::now() > deadline {
            bail!("the nginx workload did not run within 60 s: {w}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn workload_id(http: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let page: Value = http.get(format!("{base}/workloads")).bearer_auth(TOKEN).send().await?.json().await?;
    page["data"][0]["id"].as_str().map(str::to_owned).context("the workload is listed")
}

async fn wait_until_serving(url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if reqwest::get(url).await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{url} did not answer within 20 s")
}

fn run_wrk(wrk: &Path, args: &InvokeArgs, url: &str, seconds: u64) -> anyhow::Result<Saturated> {
    let output = Command::new(wrk)
        .args(["-t", &args.threads.to_string(), "-c", &args.connections.to_string(), "-d", &format!("{seconds}s"), "--latency"])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}"), url])
        .output()
        .context("running wrk")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    anyhow::ensure!(output.status.success(), "wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    parse_wrk(&text).with_context(|| format!("reading wrk's output:\n{text}"))
}

/// Requests/sec, the 50th and 99th latency percentiles and the request count from `wrk --latency`;
/// any non-2xx answer or socket error is an error (the figures would not be comparable).
fn parse_wrk(text: &str) -> anyhow::Result<Saturated> {
    if let Some(line) = text.lines().find(|l| l.contains("Non-2xx") || l.contains("Socket errors")) {
        bail!("wrk saw failures: {}", line.trim());
    }
    let value_after = |label: &str| -> anyhow::Result<&str> {
        let line = text.lines().find(|l| l.trim_start().starts_with(label)).with_context(|| format!("no {label:?} line"))?;
        line.trim_start()[label.len()..].split_whitespace().next().context("no value")
    };
    let requests_per_sec = value_after("Requests/sec:")?.parse::<f64>()?;
    let p50_ms = duration_ms(value_after("50%")?)?;
    let p99_ms = duration_ms(value_after("99%")?)?;
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .context("no request count")?
        .parse::<u64>()?;
    Ok(Saturated { requests_per_sec, p50_ms, p99_ms, requests, cpu_per_1k: None })
}

/// wrk's durations: `540.00us`, `1.51ms`, `1.02s`.
fn duration_ms(text: &str) -> anyhow::Result<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        bail!("not a wrk duration: {text}")
    };
    Ok(number.parse::<f64>()? * factor)
}

/// Where a proxy's CPU time is read from.
enum Cpu {
    /// A process and its children (nginx's master and workers).
    Children(u32),
    /// The threads of a process whose name starts so (the gateway's workers in `nucleus dev`).
    Threads(u32, &'static str),
}

impl Cpu {
    fn seconds(&self) -> anyhow::Result<f64> {
        let ticks = match self {
            Cpu::Children(pid) => {
                let mut total = process_ticks(&format!("/proc/{pid}/stat"))?;
                for entry in std::fs::read_dir("/proc")?.flatten() {
                    let stat = entry.path().join("stat");
                    if let Ok(text) = std::fs::read_to_string(&stat)
                        && parent_of(&text) == Some(*pid)
                    {
                        total += ticks_of(&text).unwrap_or(0);
                    }
                }
                total
            }
            Cpu::Threads(pid, prefix) => {
                let mut total = 0;
                for entry in std::fs::read_dir(format!("/proc/{pid}/task"))?.flatten() {
                    let text = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
                    if command_of(&text).is_some_and(|c| c.starts_with(prefix)) {
                        total += ticks_of(&text).unwrap_or(0);
                    }
                }
                total
            }
        };
        Ok(ticks as f64 / clock_ticks_per_second())
    }
}

fn process_ticks(path: &str) -> anyhow::Result<u64> {
    ticks_of(&std::fs::read_to_string(path)?).with_context(|| format!("reading {path}"))
}

/// `/proc/.../stat`: `pid (comm) state ppid ... utime stime ...` (comm may hold spaces).
fn fields_after_command(stat: &str) -> Option<Vec<&str>> {
    Some(stat[stat.rfind(')')? + 1..].split_whitespace().collect())
}

fn command_of(stat: &str) -> Option<&str> {
    Some(&stat[stat.find('(')? + 1..stat.rfind(')')?])
}

fn parent_of(stat: &str) -> Option<u32> {
    fields_after_command(stat)?.get(1)?.parse().ok()
}

/// utime + stime, in clock ticks (fields 14 and 15; 12 and 13 after the command).
fn ticks_of(stat: &str) -> Option<u64> {
    let fields = fields_after_command(stat)?;
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Open loop: request `i` is due at `start + i / rate`, spread over 16 keep-alive connections;
/// latency counts from when it is sent (the timer's own lateness, up to a millisecond, is not
/// the proxy's).
async fn run_paced(url: &str, rate: u64, length: Duration) -> anyhow::Result<Paced> {
    const CONNECTIONS: u64 = 16;
    let total = rate * length.as_secs();
    let interval = Duration::from_secs_f64(CONNECTIONS as f64 / rate as f64);
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let url = Arc::new(url.to_owned());
    let mut tasks = Vec::new();
    for lane in 0..CONNECTIONS {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(1).build()?;
            let mut latencies = Histogram::<u64>::new(3)?;
            let mut failed = 0;
            let first = start + Duration::from_secs_f64(lane as f64 / rate as f64);
            let mut i = 0u64;
            while lane + i * CONNECTIONS < total {
                let due = first + interval * i as u32;
                tokio::time::sleep_until(due).await;
                let sent = tokio::time::Instant::now();
                let ok = match client.get(url.as_str()).bearer_auth(TOKEN).send().await {
                    Ok(answer) => answer.status().is_success() && answer.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    latencies.record((sent.elapsed().as_micros() as u64).max(1))?;
                } else {
                    failed += 1;
                }
                i += 1;
            }
            Ok::<_, anyhow::Error>((latencies, failed))
        }));
    }
    let mut all = Histogram::<u64>::new(3)?;
    let mut failed = 0;
    for task in tasks {
        let (latencies, lane_failed) = task.await??;
        all.add(&latencies)?;
        failed += lane_failed;
    }
    Ok(Paced {
        p50_ms: all.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: all.value_at_quantile(0.99) as f64 / 1000.0,
        sent: all.len() + failed,
        failed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 10s test @ http://127.0.0.1:8080/file
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.10ms  450.00us  12.00ms   80.00%
    Req/Sec    29.30k     1.20k   31.00k    70.00%
  Latency Distribution
     50%  970.00us
     75%    1.20ms
     90%    1.60ms
     99%    3.20ms
  291234 requests in 10.00s, 330.00MB read
Requests/sec:  29123.40
Transfer/sec:     33.00MB
";

    #[test]
    fn wrk_output_is_read() {
        let s = parse_wrk(WRK).unwrap();
        assert_eq!(s.requests, 291_234);
        assert!((s.requests_per_sec - 29_123.4).abs() < 0.01);
        assert!((s.p50_ms - 0.97).abs() < 1e-9);
        assert!((s.p99_ms - 3.2).abs() < 1e-9);
        let failing = WRK.replace("Requests/sec", "  Non-2xx or 3xx responses: 12\nRequests/sec");
        assert!(parse_wrk(&failing).is_err(), "failed requests make the run unusable");
        assert_eq!(duration_ms("1.02s").unwrap(), 1020.0);
    }

    #[test]
    fn proc_stat_fields() {
        let stat = "4242 (nucleus-gateway) S 4200 4242 4200 0 -1 4194368 100 0 0 0 250 75 0 0 20 0 1 0 1000 1000 100";
        assert_eq!(command_of(stat), Some("nucleus-gateway"));
        assert_eq!(parent_of(stat), Some(4200));
        assert_eq!(ticks_of(stat), Some(325));
        let spaced = "7 (a b) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0";
        assert_eq!((command_of(spaced), parent_of(spaced), ticks_of(spaced)), (Some("a b"), Some(1), Some(7)));
    }
}
