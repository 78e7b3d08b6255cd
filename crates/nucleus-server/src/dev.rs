//! `nucleus dev`: every role in one process, on loopback, over the same gRPC services a cluster
//! uses.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use nucleus_client::MetaClient;
use nucleus_tls::{Dialer, LiveTls, Role};

use crate::roles::{self, AgentArgs};
use crate::shutdown::{Shutdown, terminated};
use crate::tls::TlsArgs;
use crate::token::{self, Token};

/// Where `nucleus dev`'s one agent says it is (its name is `local-local`).
const DEV_CLUSTER: &str = "local";
const DEV_REGION: &str = "local";

const FIRST_PASS_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Args)]
pub struct DevArgs {
    /// Address of the REST gateway.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where metadata (RocksDB) and the generated token live.
    #[arg(long, default_value = "./.nucleus")]
    data_dir: PathBuf,
    /// The administrator's API token (at least 32 characters); when absent one is generated once and
    /// kept in <data-dir>/token.
    #[arg(long, env = "NUCLEUS_TOKEN")]
    token: Option<String>,
    /// A file whose first line is the administrator's token (instead of --token, out of `ps`).
    #[arg(long, env = "NUCLEUS_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Who may have replicas run commands on this machine: `anyone` (the administrator and the users
    /// it makes), `admins`, or a comma-separated list of programs.
    #[arg(long, value_name = "POLICY", default_value = "anyone")]
    allow_exec: nucleus_api::exec_policy::ExecPolicy,
    #[command(flatten)]
    gateway: roles::GatewayArgs,
    #[command(flatten)]
    autoscale: roles::AutoscaleArgs,
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating data dir {}", args.data_dir.display()))?;
    let token = token::resolve(token::given(args.token, args.token_file.as_deref())?, &args.data_dir)?;
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    // The same mutual TLS as a cluster: a CA of its own in the data dir, a certificate per role.
    let tls_dir = args.data_dir.join("tls");
    let agent_name = roles::agent_name(DEV_CLUSTER, DEV_REGION);
    let bundle = nucleus_tls::authority::dev_bundle(&tls_dir, &agent_name, nucleus_api::clock::now().into())
        .with_context(|| format!("making the dev cluster's certificates in {}", tls_dir.display()))?;
    let live: Vec<(Role, Arc<LiveTls>)> =
        bundle.into_iter().map(|(role, paths)| Ok((role, LiveTls::load(paths, Some(role))?))).collect::<anyhow::Result<_>>()?;
    crate::tls::reload_on_hangup(live.iter().map(|(_, tls)| tls.clone()).collect());
    let identity = |role: Role| -> anyhow::Result<Arc<LiveTls>> {
        live.iter().find(|(r, _)| *r == role).map(|(_, tls)| tls.clone()).context("a certificate per role")
    };
    let dialer = |role: Role| -> anyhow::Result<Dialer> { Ok(Dialer::tls(identity(role)?)) };

    let meta_args = roles::MetaArgs {
        id: 1,
        listen: loopback(0),
        advertise: None,
        join: Vec::new(),
        data_dir: args.data_dir.clone(),
        shards: nucleus_meta::DEFAULT_SHARDS,
        raft_heartbeat_ms: nucleus_meta::DEFAULT_RAFT_HEARTBEAT.as_millis() as u64,
        tls: TlsArgs::default(),
    };
    let meta_node = roles::start_meta(meta_args, Some(identity(Role::Meta)?)).await?;
    let meta_addrs = [meta_node.addr().to_string()];
    let meta = MetaClient::new(&meta_addrs, &dialer(Role::Scheduler)?)?;
    tracing::info!(addr = %meta_node.addr(), "meta node ready");

    let (stop_roles, roles_shutdown) = Shutdown::new();
    let agent_args = AgentArgs {
        meta: meta.seeds().to_vec(),
        listen: loopback(0),
        advertise: None,
        cluster: DEV_CLUSTER.to_owned(),
        region: DEV_REGION.to_owned(),
        data_dir: args.data_dir.clone(),
        driver: roles::DriverKind::Process,
        namespace: String::new(),
        run_as: None,
        advertise_host: None,
        allow_exec: args.allow_exec.clone(),
    };
    let agent_meta = MetaClient::new(&meta_addrs, &dialer(Role::Agent)?)?;
    let agent = roles::start_agent(agent_args, agent_meta, Some(identity(Role::Agent)?), roles_shutdown.clone()).await?;
    let scheduler_config = nucleus_scheduler::SchedulerConfig {
        name: "dev".to_owned(),
        dialer: dialer(Role::Scheduler)?,
        autoscale: args.autoscale.settings()?,
    };
    let (scheduler, reconciled) = roles::start_scheduler(meta.clone(), scheduler_config, roles_shutdown.clone());
    // Serve only once the scheduler has replaced the statuses left from before a restart: until
    // then meta may still call replicas ready that died with the previous process.
    if tokio::time::timeout(FIRST_PASS_WAIT, reconciled).await.is_err() {
        tracing::warn!("the scheduler has not reconciled within {FIRST_PASS_WAIT:?}; serving anyway");
    }
    let gateway_meta = MetaClient::new(&meta_addrs, &dialer(Role::Gateway)?)?;
    let (gateway_addr, gateway) = roles::start_gateway(
        gateway_meta,
        args.listen,
        token.value().to_owned(),
        &args.gateway,
        Some(identity(Role::Gateway)?),
        roles_shutdown,
    )
    .await?;

    match &token {
        Token::Generated(t) => println!("API token (generated; kept in {}): {t}", args.data_dir.join("token").display()),
        Token::Loaded(_) => println!("API token: see {}", args.data_dir.join("token").display()),
        Token::Given(_) => {}
    }
    println!("nucleus dev is up: REST API at http://{gateway_addr}/api/v2 (Ctrl-C to stop)");

    let storage_failure = tokio::select! {
        () = terminated() => None,
        failure = meta_node.storage_failure() => {
            tracing::error!(%failure, "meta storage failed: nucleus dev stops");
            Some(failure)
        }
    };
    println!("nucleus dev: stopping");
    // Gateway and scheduler first, so nothing records the processes going away as a user's stop:
    // workloads that were running are running again after a restart.
    let _ = stop_roles.send(true);
    let _ = gateway.await;
    let _ = scheduler.await;
    agent.agent.shutdown().await;
    for task in agent.tasks {
        let _ = task.await;
    }
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), meta_node.shutdown()).await;
    if let Some(failure) = storage_failure {
        anyhow::bail!(
            "the metadata store failed ({failure}); check the disk under {} (full? read-only? corrupt?), free it, then start again",
            args.data_dir.display()
        );
    }
    stopped.context("the metadata node did not stop within 10 s")??;
    println!("nucleus dev: stopped");
    Ok(())
}
