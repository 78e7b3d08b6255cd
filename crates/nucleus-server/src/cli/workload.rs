//! `nucleus workload ...`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Value, json};

use super::api::Api;
use super::output::{Format, age, print_document, print_table, text};
use super::{read_spec, wait};

#[derive(Debug, Subcommand)]
pub enum WorkloadCommand {
    /// Creates a workload from a spec file (YAML or JSON, `-` for stdin).
    Create {
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// Wait until it runs, showing progress.
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value = "10m", value_parser = crate::duration::parse)]
        timeout: Duration,
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        output: Format,
    },
    /// Shows a workload.
    Get {
        id: String,
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        output: Format,
    },
    /// Lists workloads.
    List {
        /// Only workloads in these statuses (repeatable).
        #[arg(long)]
        status: Vec<String>,
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        output: Format,
    },
    /// Starts a stopped workload.
    Start {
        id: String,
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value = "10m", value_parser = crate::duration::parse)]
        timeout: Duration,
    },
    /// Stops a workload (its replicas go; it can be started again).
    Stop {
        id: String,
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value = "10m", value_parser = crate::duration::parse)]
        timeout: Duration,
    },
    /// Deletes a workload.
    Delete { id: String },
    /// What the workload's replicas printed, oldest first.
    Logs {
        id: String,
        /// Keep printing new records as they come.
        #[arg(short = 'f', long)]
        follow: bool,
        /// The least severe level shown: debug, info, warn, error, critical.
        #[arg(long)]
        level: Option<String>,
        /// Only records of the last DURATION (e.g. 15m, 2h) or since an RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// Only records whose message contains this (repeatable: all of them).
        #[arg(long)]
        grep: Vec<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        output: Format,
    },
    /// The workload's events, oldest first.
    Events {
        id: String,
        /// Keep printing new events.
        #[arg(short = 'w', long)]
        watch: bool,
    },
    /// Rolls the workload onto another artifact (a rolling replacement).
    Replace {
        id: String,
        #[arg(long)]
        artifact: String,
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value = "10m", value_parser = crate::duration::parse)]
        timeout: Duration,
    },
    /// Locks the workload's draft artifact in place (no restart).
    Promote { id: String },
    /// Shows the workload's runtime settings, or changes them (which rolls the replicas, or
    /// applies autoscaling changes in place).
    Settings {
        id: String,
        /// Sets the replica count of the (first, or --group) container group.
        #[arg(long)]
        replicas: Option<u32>,
        #[arg(long)]
        group: Option<String>,
        /// A whole settings body (`{"runtime": ...}`) from a file.
        #[arg(short = 'f', long = "file", conflicts_with = "replicas")]
        file: Option<PathBuf>,
        #[arg(short = 'o', long = "output", value_enum, default_value_t)]
        output: Format,
    },
}

fn row(workload: &Value, wide: bool) -> Vec<String> {
    let mut cells = vec![
        text(&workload["id"]),
        text(&workload["name"]),
        text(&workload["status"]),
        workload["createdAt"].as_str().map(age).unwrap_or_default(),
    ];
    if wide {
        cells.extend([text(&workload["artifactId"]), text(&workload["importance"]), text(&workload["endpoint"])]);
    }
    cells
}

fn headers(wide: bool) -> Vec<&'static str> {
    let mut headers = vec!["ID", "NAME", "STATUS", "AGE"];
    if wide {
        headers.extend(["ARTIFACT", "IMPORTANCE", "ENDPOINT"]);
    }
    headers
}

pub async fn run(command: WorkloadCommand, api: &Api) -> anyhow::Result<()> {
    match command {
        WorkloadCommand::Create { file, wait: wait_for, timeout, output } => {
            let spec = read_spec(&file)?;
            let created: Value = api.json(Method::POST, "/workloads/", Some(&spec)).await?;
            let id = text(&created["id"]);
            if !print_document(output, &created)? {
                println!("workload {id} created ({})", text(&created["status"]));
            }
            if wait_for {
                wait::until(api, &id, "running", timeout).await?;
                let running: Value = api.get(&format!("/workloads/{id}/")).await?;
                println!("workload {id} is running at {}", text(&running["endpoint"]));
            }
        }
        WorkloadCommand::Get { id, output } => {
            let workload: Value = api.get(&format!("/workloads/{id}/")).await?;
            if !print_document(output, &workload)? {
                print_table(&headers(output == Format::Wide), &[row(&workload, output == Format::Wide)]);
            }
        }
        WorkloadCommand::List { status, output } => {
            let mut query: Vec<String> = status.iter().map(|s| format!("status={s}")).collect();
            query.push("limit=100".to_owned());
            let all = api.list_all(&format!("/workloads/?{}", query.join("&")), usize::MAX).await?;
            if !print_document(output, &Value::Array(all.clone()))? {
                let wide = output == Format::Wide;
                print_table(&headers(wide), &all.iter().map(|w| row(w, wide)).collect::<Vec<_>>());
            }
        }
        WorkloadCommand::Start { id, wait: wait_for, timeout } => {
            let _: Value = api.json(Method::POST, &format!("/workloads/{id}/start"), Some(&json!({}))).await?;
            println!("workload {id} starting");
            if wait_for {
                wait::until(api, &id, "running", timeout).await?;
            }
        }
        WorkloadCommand::Stop { id, wait: wait_for, timeout } => {
            let _: Value = api.json(Method::POST, &format!("/workloads/{id}/stop"), Some(&json!({}))).await?;
            println!("workload {id} stopping");
            if wait_for {
                wait::until(api, &id, "stopped", timeout).await?;
            }
        }
        WorkloadCommand::Delete { id } => {
            api.send(Method::DELETE, &format!("/workloads/{id}/"), None).await?;
            println!("workload {id} deleted");
        }
        WorkloadCommand::Logs { id, follow, level, since, grep, limit, output } => {
            logs(api, &id, LogsQuery { follow, level, since, grep, limit }, output).await?;
        }
        WorkloadCommand::Events { id, watch } => events(api, &id, watch).await?,
        WorkloadCommand::Replace { id, artifact, wait: wait_for, timeout } => {
            let body = json!({"artifactId": artifact, "strategy": "rolling"});
            let replacement: Value = api.json(Method::POST, &format!("/workloads/{id}/replacement/"), Some(&body)).await?;
            println!("replacement of workload {id} onto artifact {artifact}: {}", text(&replacement["status"]));
            if wait_for {
                wait_replacement(api, &id, timeout).await?;
            }
        }
        WorkloadCommand::Promote { id } => {
            let _: Value = api.json(Method::POST, &format!("/workloads/{id}/promote/"), Some(&json!({}))).await?;
            println!("workload {id} promoted: its artifact is locked");
        }
        WorkloadCommand::Settings { id, replicas, group, file, output } => {
            let path = format!("/workloads/{id}/settings/");
            let body = match (replicas, file) {
                (None, None) => None,
                (_, Some(file)) => Some(read_spec(&file)?),
                (Some(count), None) => {
                    let settings: Value = api.get(&path).await?;
                    let groups = settings["runtime"]["containerGroups"].as_array().cloned().unwrap_or_default();
                    let name = match group {
                        Some(name) => name,
                        None => groups.first().map(|g| text(&g["name"])).unwrap_or_else(|| "default".to_owned()),
                    };
                    Some(json!({"runtime": {"containerGroups": [{"name": name, "replicaCount": count}]}}))
                }
            };
            let answer: Value = match &body {
                None => api.get(&path).await?,
                Some(body) => api.json(Method::PATCH, &path, Some(body)).await?,
            };
            let format = if matches!(output, Format::Table | Format::Wide) { Format::Yaml } else { output };
            print_document(format, &answer)?;
        }
    }
    Ok(())
}

struct LogsQuery {
    follow: bool,
    level: Option<String>,
    since: Option<String>,
    grep: Vec<String>,
    limit: u32,
}

/// `--since`: a duration back from now, or a time.
fn since_time(since: &str) -> anyhow::Result<String> {
    if chrono::DateTime::parse_from_rfc3339(since).is_ok() {
        return Ok(since.to_owned());
    }
    let back =
        crate::duration::parse(since).map_err(|err| anyhow::anyhow!("--since {since}: {err} (e.g. 15m, 2h, or an RFC 3339 time)"))?;
    let at = nucleus_api::clock::now() - chrono::Duration::from_std(back)?;
    Ok(at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
}

async fn logs(api: &Api, id: &str, query: LogsQuery, output: Format) -> anyhow::Result<()> {
    let mut params: Vec<(String, String)> = vec![("limit".into(), query.limit.min(1000).to_string())];
    if let Some(level) = &query.level {
        params.push(("level".into(), level.clone()));
    }
    params.extend(query.grep.iter().map(|text| ("includes".to_owned(), text.clone())));
    if let Some(start) = query.since.as_deref().map(since_time).transpose()? {
        params.push(("startTime".into(), start));
    }
    let print = |record: &Value| -> anyhow::Result<()> {
        match output {
            Format::Json => println!("{}", serde_json::to_string(record)?),
            Format::Yaml => print!("---\n{}", yaml_serde::to_string(record)?),
            Format::Table | Format::Wide => println!(
                "{} {:<8} {} {}",
                text(&record["timestamp"]),
                text(&record["level"]),
                text(&record["replica"]),
                text(&record["message"])
            ),
        }
        Ok(())
    };
    if query.follow {
        super::exit_on_ctrl_c(String::new());
        let mut events = api.events(&format!("/otel/workload/{id}/logs/stream/?{}", form_urlencoded(&params))).await?;
        while let Some(event) = events.next().await? {
            match event.kind.as_str() {
                "log" => print(&serde_json::from_str(&event.data)?)?,
                "warning" => eprintln!("warning: {}", event.data),
                "end" => {
                    eprintln!("{}", event.data);
                    return Ok(());
                }
                _ => {}
            }
        }
        anyhow::bail!("the server closed the log stream; run the command again to go on");
    }
    let mut records = api.list_all(&format!("/otel/workload/{id}/logs/?{}", form_urlencoded(&params)), 1).await?;
    records.reverse(); // oldest first, like a terminal
    for record in &records {
        print(record)?;
    }
    if records.is_empty() {
        eprintln!("no log records; `nucleus workload get {id}` shows whether it runs");
    }
    Ok(())
}

fn form_urlencoded(pairs: &[(String, String)]) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        out.append_pair(key, value);
    }
    out.finish()
}

async fn events(api: &Api, id: &str, watch: bool) -> anyhow::Result<()> {
    if watch {
        super::exit_on_ctrl_c(String::new());
    }
    let mut seen: HashSet<String> = HashSet::new();
    loop {
        let page: Value = api.get(&format!("/workloads/{id}/events/?limit=100")).await?;
        let mut events = page["data"].as_array().cloned().unwrap_or_default();
        events.sort_by(|a, b| text(&a["timestamp"]).cmp(&text(&b["timestamp"])));
        for event in events {
            if !seen.insert(text(&event["id"])) {
                continue;
            }
            println!(
                "{} {:<28} {}",
                text(&event["timestamp"]),
                text(&event["eventType"]),
                event["details"]["message"].as_str().unwrap_or_default()
            );
        }
        if !watch {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Until the workload has no replacement under way (GET answers 404) and runs.
async fn wait_replacement(api: &Api, id: &str, timeout: Duration) -> anyhow::Result<()> {
    super::exit_on_ctrl_c(format!("stopped waiting; the replacement of workload {id} carries on"));
    let started = tokio::time::Instant::now();
    let mut last = String::new();
    while let Some(replacement) = api.get_optional::<Value>(&format!("/workloads/{id}/replacement/")).await? {
        let status = text(&replacement["status"]);
        if status != last {
            eprintln!("replacement of workload {id}: {status}");
            last = status;
        }
        anyhow::ensure!(
            started.elapsed() < timeout,
            "the replacement of workload {id} is still under way after {}s; it carries on",
            timeout.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait::until(api, id, "running", timeout).await
}
