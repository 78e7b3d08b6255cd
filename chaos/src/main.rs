//! `nucleus-chaos`: fault drills for SREs. `nucleus-chaos DRILL|all` starts a real multi-process
//! cluster for each drill (see [`cluster`]), puts steady load on it ([`load`]), injects the
//! drill's fault ([`drills`]), waits for recovery, reads every acknowledged write back, looks for
//! replicas running twice, and prints what users saw with PASS/FAIL against the drill's
//! thresholds ([`report`]). `cargo xtask chaos` builds and runs it; chaos/README.md is the runbook.

mod cluster;
mod drills;
mod load;
mod network;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::{Method, StatusCode};

use cluster::Cluster;
use load::{Load, Target};
use report::Report;

const USAGE: &str = "usage: nucleus-chaos [--nucleus PATH] [--whoami PATH] DRILL... | all | list\n       nucleus-chaos observe --gateway URL[,URL] --token TOKEN --workload ID[,ID] [--seconds N]";
/// Load before the fault, and how long after recovery the drill watches for more failures.
const BASELINE: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_secs(5);

pub fn progress(message: &str) {
    eprintln!("[chaos] {message}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("observe") {
        return observe(std::env::args().skip(2).collect()).await;
    }
    let mut args = std::env::args().skip(1);
    let mut nucleus = PathBuf::from("nucleus");
    let mut whoami = PathBuf::from("nucleus-whoami");
    let mut chosen = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--nucleus" => nucleus = args.next().context(USAGE)?.into(),
            "--whoami" => whoami = args.next().context(USAGE)?.into(),
            "list" => {
                for drill in drills::DRILLS {
                    println!("{:<18} {}", drill.name, drill.what);
                }
                return Ok(());
            }
            "all" => chosen.extend(drills::DRILLS.iter().map(|d| d.name)),
            name => match drills::DRILLS.iter().find(|d| d.name == name) {
                Some(drill) => chosen.push(drill.name),
                None => bail!("no drill {name}; {USAGE}"),
            },
        }
    }
    if chosen.is_empty() {
        bail!(USAGE);
    }
    let whoami = std::fs::canonicalize(&whoami).with_context(|| format!("{} not found (--whoami)", whoami.display()))?;
    let whoami = whoami.to_string_lossy().into_owned();
    let mut reports = Vec::new();
    let mut broken = Vec::new();
    for name in chosen {
        progress(&format!("drill {name}: starting a cluster"));
        tokio::select! {
            report = drill(name, &nucleus, &whoami) => match report {
                Ok(report) => reports.push(report),
                // One drill that could not run does not stop the others.
                Err(err) => {
                    progress(&format!("drill {name} could not run: {err:#}"));
                    broken.push(format!("{name}: {err:#}"));
                }
            },
            _ = tokio::signal::ctrl_c() => bail!("interrupted; the drill's processes were killed"),
        }
    }
    report::print(&reports);
    for line in &broken {
        println!("ERROR {line}");
    }
    if !broken.is_empty() || reports.iter().any(|r| !r.failures().is_empty()) {
        std::process::exit(1);
    }
    Ok(())
}

async fn drill(name: &'static str, nucleus: &std::path::Path, whoami: &str) -> anyhow::Result<Report> {
    let spec = drills::DRILLS.iter().find(|d| d.name == name).context("drill")?;
    let small_disks = (name == "full-disk").then_some("256m");
    let mut cluster = tokio::task::block_in_place(|| Cluster::start(nucleus, small_disks))?;
    let target = Target::new(cluster.gateways(), cluster.token.clone())?;
    let mut serving = Vec::new();
    for i in 0..2 {
        let (status, created) = target.call(0, Method::POST, "/workloads", Some(&load::workload(&format!("serving-{i}"), whoami, 2))).await;
        anyhow::ensure!(status == Some(StatusCode::CREATED), "cannot create a serving workload: {created}");
        serving.push(created["id"].as_str().context("id")?.to_owned());
    }
    for id in &serving {
        let running = drills::wait_until(Duration::from_secs(60), || async {
            let (_, w) = target.call(0, Method::GET, &format!("/workloads/{id}"), None).await;
            w["status"] == "running"
        })
        .await;
        anyhow::ensure!(running, "serving workload {id} did not run within 60 s; logs in {}", cluster.dir().display());
    }
    progress(&format!("drill {name}: 2 workloads serving; load starts"));
    let load = Load::start(&target, &serving, Some(whoami));
    tokio::time::sleep(BASELINE).await;
    progress(&format!("drill {name}: {}", spec.what));
    let done = match drills::run(name, &mut cluster, &load, &target, &serving, whoami).await {
        Ok(done) => done,
        Err(err) => {
            cluster.keep();
            return Err(err.context(format!("drill {name}")));
        }
    };
    // Watch until a quiet spell without failures (or 60 s).
    let quiet = drills::wait_until(Duration::from_secs(60), || async {
        let recent = load.outcomes_since(load.now().saturating_sub(QUIET));
        load.now() >= done.healed + QUIET && !recent.is_empty() && recent.iter().all(|o| o.ok)
    })
    .await;
    let end = load.now();
    let acked = load.acked.clone();
    let outcomes = load.stop().await;
    progress(&format!("drill {name}: {} requests; reading acknowledged writes back", outcomes.len()));
    let acked = std::mem::take(&mut *acked.lock().unwrap_or_else(|p| p.into_inner()));
    let (acked_writes, lost) = read_back(&target, &acked).await;
    let placed_twice = settled_duplicates(&cluster).await;
    let mut notes = done.notes;
    if !quiet {
        notes.push("no 5 s without failures within 60 s of the fault's end".to_owned());
    }
    Ok(Report {
        drill: name,
        writes: report::counts(&outcomes, load::Kind::Write),
        invokes: report::counts(&outcomes, load::Kind::Invoke),
        longest_error_window: report::longest_error_window(&outcomes, end),
        slowest: outcomes.iter().map(|o| o.took).max().unwrap_or_default(),
        recovery: report::recovery(&outcomes, done.healed.min(end).max(done.fault), end, QUIET),
        acked_writes,
        lost,
        placed_twice,
        thresholds: spec.thresholds,
        notes,
    })
}

/// `observe`: the drills' load and report against a running deployment, while an operator
/// injects faults by hand. It invokes the named workloads and creates artifacts (deleted at the
/// end); it changes nothing else. Thresholds: only lost writes fail it.
async fn observe(args: Vec<String>) -> anyhow::Result<()> {
    let (mut gateways, mut token, mut workloads, mut seconds) = (Vec::new(), None, Vec::new(), 120u64);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().context(USAGE);
        match arg.as_str() {
            "--gateway" => gateways = value()?.split(',').map(|g| format!("{}/api/v2", g.trim_end_matches('/'))).collect(),
            "--token" => token = Some(value()?),
            "--workload" => workloads = value()?.split(',').map(str::to_owned).collect(),
            "--seconds" => seconds = value()?.parse().context("--seconds takes a number")?,
            _ => bail!(USAGE),
        }
    }
    anyhow::ensure!(!gateways.is_empty() && !workloads.is_empty(), "{USAGE}");
    let token = token.or_else(|| std::env::var("NUCLEUS_TOKEN").ok()).context("--token (or NUCLEUS_TOKEN) is needed")?;
    let target = Target::new(gateways, token)?;
    progress(&format!("observing for {seconds} s: inject faults now; Ctrl-C ends early"));
    let load = Load::start(&target, &workloads, None);
    tokio::select! {
        () = tokio::time::sleep(Duration::from_secs(seconds)) => {}
        _ = tokio::signal::ctrl_c() => progress("ending early"),
    }
    let end = load.now();
    let acked = load.acked.clone();
    let outcomes = load.stop().await;
    let acked = std::mem::take(&mut *acked.lock().unwrap_or_else(|p| p.into_inner()));
    let (acked_writes, lost) = read_back(&target, &acked).await;
    for id in &acked.artifacts {
        let _ = target.call(0, Method::DELETE, &format!("/artifacts/{id}"), None).await;
    }
    let report = Report {
        drill: "observe",
        writes: report::counts(&outcomes, load::Kind::Write),
        invokes: report::counts(&outcomes, load::Kind::Invoke),
        longest_error_window: report::longest_error_window(&outcomes, end),
        slowest: outcomes.iter().map(|o| o.took).max().unwrap_or_default(),
        // From the start: when the last failure came.
        recovery: report::recovery(&outcomes, Duration::ZERO, end, Duration::ZERO),
        acked_writes,
        lost,
        placed_twice: Vec::new(),
        thresholds: report::Thresholds { min_write_availability: 0.0, min_invoke_availability: 0.0, max_recovery: end },
        notes: vec!["recovery here is when the last failure came, from the start; replicas placed twice are not checked".to_owned()],
    };
    report::print(std::slice::from_ref(&report));
    if !report.failures().is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

/// Reads every acknowledged write back; answers how many were checked and which are missing.
async fn read_back(target: &Target, acked: &load::Acked) -> (usize, Vec<String>) {
    let mut lost = Vec::new();
    let mut checked = 0;
    let paths: Vec<String> = acked
        .artifacts
        .iter()
        .map(|id| format!("/artifacts/{id}"))
        .chain(acked.workloads.iter().map(|id| format!("/workloads/{id}")))
        .collect();
    for path in &paths {
        checked += 1;
        let (status, _) = target.call(0, Method::GET, path, None).await;
        if status != Some(StatusCode::OK) {
            lost.push(format!("{path} ({})", status.map_or("unreachable".to_owned(), |s| s.to_string())));
        }
    }
    for (id, (last_acked, last_tried)) in &acked.descriptions {
        checked += 1;
        let (_, w) = target.call(0, Method::GET, &format!("/workloads/{id}"), None).await;
        let number = w["description"].as_str().and_then(|d| d.strip_prefix("d-")).and_then(|n| n.parse::<u64>().ok());
        if !number.is_some_and(|n| n >= *last_acked && n <= *last_tried) {
            lost.push(format!("workload {id} description {:?}, acknowledged d-{last_acked}", w["description"]));
        }
    }
    (checked, lost)
}

/// Replica names running as more than one process, once the cluster had up to 30 s to settle
/// (an agent that comes back stops what is no longer its own).
async fn settled_duplicates(cluster: &Cluster) -> Vec<String> {
    let mut twice = Vec::new();
    for _ in 0..30 {
        twice = cluster
            .replica_processes()
            .into_iter()
            .filter(|(_, pids)| pids.len() > 1)
            .map(|(name, pids)| format!("{name} {pids:?}"))
            .collect();
        if twice.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    twice
}
