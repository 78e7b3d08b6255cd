//! `nucleus`: one binary, one subcommand per role, plus the Workload API client (`workload`,
//! `artifact`, `invoke`, `config`; see `cli/`). `nucleus dev` runs every role in one process,
//! talking to each other over gRPC on loopback exactly as separate processes would.

mod cli;
mod dev;
mod duration;
mod metrics_http;
mod otlp;
mod roles;
mod shutdown;
mod tls;
mod token;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// The invoke path allocates per request (headers, answers, futures); mimalloc serves that from
/// per-thread pages, where glibc's malloc spent ~2 µs a request consolidating chunks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "nucleus", version, about = "Runs containerized AI services behind stable, governed endpoints")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Serve this process's Prometheus metrics at http://ADDRESS/metrics (the roles: dev, meta,
    /// scheduler, agent, gateway; the gateway also serves them on its API port, to the admin token).
    #[arg(long, global = true, env = "NUCLEUS_METRICS_LISTEN", value_name = "ADDRESS")]
    metrics_listen: Option<SocketAddr>,
    /// Export every span over OTLP/gRPC to this collector (e.g. http://127.0.0.1:4317), with W3C
    /// trace context carried between the roles and to replicas (the roles only).
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    otlp_endpoint: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the whole control plane (meta, scheduler, agent with the process driver, gateway) in one process.
    Dev(dev::DevArgs),
    /// Run a metadata node, or show a cluster's status (`nucleus meta status`).
    #[command(args_conflicts_with_subcommands = true)]
    Meta {
        #[command(subcommand)]
        action: Option<MetaAction>,
        #[command(flatten)]
        run: roles::MetaArgs,
    },
    /// Run a scheduler worker.
    Scheduler {
        /// Meta node addresses (any member; comma-separated or repeated).
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:7001")]
        meta: Vec<String>,
        #[arg(long, default_value = "scheduler")]
        name: String,
        #[command(flatten)]
        autoscale: roles::AutoscaleArgs,
        #[command(flatten)]
        tls: tls::TlsArgs,
    },
    /// Run a node agent (process or Kubernetes driver).
    Agent {
        #[command(flatten)]
        args: roles::AgentArgs,
        #[command(flatten)]
        tls: tls::TlsArgs,
    },
    /// Run the REST gateway.
    Gateway {
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:7001")]
        meta: Vec<String>,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// The administrator's API token (at least 32 characters).
        #[arg(long, env = "NUCLEUS_TOKEN", required_unless_present = "token_file")]
        token: Option<String>,
        /// A file whose first line is the administrator's token (instead of --token, out of `ps`).
        #[arg(long, env = "NUCLEUS_TOKEN_FILE", value_name = "FILE")]
        token_file: Option<PathBuf>,
        #[command(flatten)]
        options: roles::GatewayArgs,
        #[command(flatten)]
        tls: tls::TlsArgs,
    },
    /// Make the cluster's certificate authority and issue certificates for its processes.
    Certs {
        #[command(subcommand)]
        command: tls::CertsCommand,
    },
    /// Create, inspect and manage workloads (a client of the Workload API).
    Workload {
        #[command(subcommand)]
        command: cli::WorkloadCommand,
        #[command(flatten)]
        target: cli::Target,
    },
    /// Create, inspect and manage artifacts.
    Artifact {
        #[command(subcommand)]
        command: cli::ArtifactCommand,
        #[command(flatten)]
        target: cli::Target,
    },
    /// Call a workload's endpoint.
    Invoke {
        #[command(flatten)]
        args: cli::InvokeArgs,
        #[command(flatten)]
        target: cli::Target,
    },
    /// Contexts: which server and token the client commands use.
    Config {
        #[command(subcommand)]
        command: cli::ConfigCommand,
    },
    /// Print a shell completion script (e.g. `source <(nucleus completion bash)`).
    Completion { shell: clap_complete::Shell },
}

#[derive(Subcommand)]
enum MetaAction {
    /// Members, leader, term and applied index as each node sees them.
    Status {
        /// Meta node addresses to ask.
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:7001")]
        meta: Vec<String>,
        #[command(flatten)]
        tls: tls::TlsArgs,
    },
}

/// Errors are one line (`error: what: why`) that says what to do next, for people and scripts
/// alike; the exit status is 1.
fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let service = match &cli.command {
        Command::Dev(_) => Some("nucleus-dev"),
        Command::Meta { action: None, .. } => Some("nucleus-meta"),
        Command::Scheduler { .. } => Some("nucleus-scheduler"),
        Command::Agent { .. } => Some("nucleus-agent"),
        Command::Gateway { .. } => Some("nucleus-gateway"),
        _ => None,
    };
    // Only the roles export traces and serve metrics; the client commands do neither.
    let tracing =
        runtime.block_on(async { otlp::init(cli.otlp_endpoint.as_deref().filter(|_| service.is_some()), service.unwrap_or("nucleus")) })?;
    let result = runtime.block_on(async move {
        if let (Some(address), Some(_)) = (cli.metrics_listen, service) {
            let bound = metrics_http::start(address).await?;
            println!("metrics at http://{bound}/metrics");
        }
        match cli.command {
            Command::Dev(args) => dev::run(args).await,
            Command::Meta { action: Some(MetaAction::Status { meta, tls }), .. } => roles::meta_status(&meta, &tls).await,
            Command::Meta { action: None, run } => roles::meta(run).await,
            Command::Scheduler { meta, name, autoscale, tls } => roles::scheduler(meta, name, autoscale, tls).await,
            Command::Agent { args, tls } => roles::agent(args, tls).await,
            Command::Gateway { meta, listen, token, token_file, options, tls } => {
                let token = token::given(token, token_file.as_deref())?.unwrap_or_default();
                roles::gateway(meta, listen, token, options, tls).await
            }
            Command::Certs { command } => tls::certs(command),
            Command::Workload { command, target } => cli::workload(command, target).await,
            Command::Artifact { command, target } => cli::artifact(command, target).await,
            Command::Invoke { args, target } => cli::invoke(args, target).await,
            Command::Config { command } => cli::config(command),
            Command::Completion { shell } => {
                clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "nucleus", &mut std::io::stdout());
                Ok(())
            }
        }
    });
    runtime.block_on(async { tracing.shutdown() });
    result
}
