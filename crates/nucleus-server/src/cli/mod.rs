//! The `nucleus` command-line client of the Workload API, in the style of kubectl and Knative's
//! `kn`: `workload`, `artifact`, `invoke` and `config` (contexts). It talks to a gateway over
//! HTTP like any other client; it never reaches into meta.

mod api;
mod artifact;
mod config;
mod output;
mod sse;
mod wait;
mod workload;

use std::path::Path;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::Value;

use self::api::Api;
pub use self::artifact::ArtifactCommand;
pub use self::workload::WorkloadCommand;

/// Where the API is: flags, then `NUCLEUS_URL` / `NUCLEUS_TOKEN`, then the current context.
#[derive(Debug, Clone, Args)]
pub struct Target {
    /// The gateway's URL, e.g. http://127.0.0.1:8080.
    #[arg(long, global = true, env = "NUCLEUS_URL", value_name = "URL")]
    pub server: Option<String>,
    /// The API token.
    #[arg(long, global = true, env = "NUCLEUS_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl Target {
    fn api(&self) -> anyhow::Result<Api> {
        Api::new(config::resolve(self.server.clone(), self.token.clone())?)
    }
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Adds or changes a context (a server URL and token); with --use it becomes the current one.
    SetContext {
        name: String,
        #[arg(long)]
        server: String,
        #[arg(long)]
        token: String,
        #[arg(long = "use")]
        use_it: bool,
    },
    /// Makes a context the current one.
    UseContext { name: String },
    /// Lists the contexts (the current one starred).
    GetContexts,
    /// Prints the current context's name.
    CurrentContext,
}

#[derive(Debug, Args)]
pub struct InvokeArgs {
    pub workload_id: String,
    /// The path under the workload's endpoint.
    #[arg(default_value = "")]
    pub path: String,
    /// A request body (JSON, sent as application/json); implies POST.
    #[arg(short = 'd', long = "data")]
    pub data: Option<String>,
    /// The method (default GET, or POST with --data).
    #[arg(short = 'X', long = "request")]
    pub method: Option<String>,
}

pub async fn workload(command: WorkloadCommand, target: Target) -> anyhow::Result<()> {
    workload::run(command, &target.api()?).await
}

pub async fn artifact(command: ArtifactCommand, target: Target) -> anyhow::Result<()> {
    artifact::run(command, &target.api()?).await
}

pub async fn invoke(args: InvokeArgs, target: Target) -> anyhow::Result<()> {
    let api = target.api()?;
    let workload: Value = api.get(&format!("/workloads/{}/", args.workload_id)).await?;
    let endpoint =
        workload["endpoint"].as_str().map(str::to_owned).unwrap_or_else(|| api.url(&format!("/endpoints/workloads/{}", args.workload_id)));
    let url = format!("{}/{}", endpoint.trim_end_matches('/'), args.path.trim_start_matches('/'));
    let method = match (&args.method, &args.data) {
        (Some(method), _) => method.to_ascii_uppercase().parse().with_context(|| format!("'{method}' is not an HTTP method"))?,
        (None, Some(_)) => reqwest::Method::POST,
        (None, None) => reqwest::Method::GET,
    };
    let response = api.invoke(method, &url, args.data).await?;
    let status = response.status();
    let body = response.text().await?;
    print!("{body}");
    if !body.ends_with('\n') && !body.is_empty() {
        println!();
    }
    anyhow::ensure!(status.is_success(), "the workload answered {status}");
    Ok(())
}

pub fn config(command: ConfigCommand) -> anyhow::Result<()> {
    let mut file = config::Config::load()?;
    match command {
        ConfigCommand::SetContext { name, server, token, use_it } => {
            file.contexts.insert(name.clone(), config::Context { server: server.trim_end_matches('/').to_owned(), token });
            if use_it || file.current_context.is_none() {
                file.current_context = Some(name.clone());
            }
            let path = file.save()?;
            println!("context {name} saved in {}", path.display());
        }
        ConfigCommand::UseContext { name } => {
            file.use_context(&name)?;
            file.save()?;
            println!("now using context {name}");
        }
        ConfigCommand::GetContexts => {
            let rows: Vec<Vec<String>> = file
                .contexts
                .iter()
                .map(|(name, context)| {
                    let current = if file.current_context.as_deref() == Some(name.as_str()) { "*" } else { "" };
                    vec![current.to_owned(), name.clone(), context.server.clone()]
                })
                .collect();
            output::print_table(&["CURRENT", "NAME", "SERVER"], &rows);
        }
        ConfigCommand::CurrentContext => match file.current() {
            Some((name, _)) => println!("{name}"),
            None => anyhow::bail!("no current context; pick one with `nucleus config use-context NAME`"),
        },
    }
    Ok(())
}

/// From now on, Ctrl-C prints `message` and ends the process (status 130): a wait or a follow is
/// stopped, never the operation it follows. One handler for the whole run, so that no Ctrl-C
/// falls between two `select!`s.
fn exit_on_ctrl_c(message: String) {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\n{message}");
            std::process::exit(130);
        }
    });
}

/// A spec file (YAML or JSON; `-` reads stdin) as a JSON document. JSON is sent as written.
fn read_spec(path: &Path) -> anyhow::Result<Value> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("reading the spec from stdin")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    if let Ok(json) = serde_json::from_str(&text) {
        return Ok(json);
    }
    yaml_serde::from_str(&text).with_context(|| format!("{} is neither JSON nor YAML", path.display()))
}
