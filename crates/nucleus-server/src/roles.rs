//! Starting each role. `nucleus dev` and the per-role subcommands share these, so the dev stack
//! runs the same code paths as a cluster.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use nucleus_agent::driver::process::ProcessSettings;
use nucleus_agent::{Agent, AgentConfig, AgentOptions, DriverChoice, KubernetesConfig};
use nucleus_api::exec_policy::ExecPolicy;
use nucleus_client::{AgentRecord, MetaClient, NodeRecord, Txn, keys};
use nucleus_gateway::{AppState, GatewayConfig};
use nucleus_meta::{MetaConfig, MetaNode};
use nucleus_scheduler::SchedulerConfig;
use nucleus_tls::{LiveTls, Role};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::shutdown::{Shutdown, terminated};
use crate::tls::TlsArgs;

const HEARTBEAT: Duration = Duration::from_secs(5);

#[derive(clap::Args)]
pub struct MetaArgs {
    /// This node's id, unique in the cluster.
    #[arg(long, default_value_t = 1)]
    pub id: u64,
    #[arg(long, default_value = "127.0.0.1:7001")]
    pub listen: SocketAddr,
    /// Address other nodes and clients reach this node at (default: the listen address).
    #[arg(long)]
    pub advertise: Option<String>,
    /// Addresses of existing members to join; none bootstraps a new cluster.
    #[arg(long, value_delimiter = ',')]
    pub join: Vec<String>,
    #[arg(long, default_value = "./.nucleus")]
    pub data_dir: PathBuf,
    /// Shard groups of a new cluster (only read when this node bootstraps one; joining nodes take
    /// the cluster's count). Fixed for the cluster's life.
    #[arg(long, default_value_t = nucleus_meta::DEFAULT_SHARDS)]
    pub shards: u64,
    /// The Raft leader's heartbeat interval in milliseconds (50-2000; elections take 3 to 6 of
    /// them). Voters in one region: the default. Voters across regions: about 1.5 times the largest
    /// round trip between them, the same on every node (docs/deploy.md).
    #[arg(long, default_value_t = nucleus_meta::DEFAULT_RAFT_HEARTBEAT.as_millis() as u64)]
    pub raft_heartbeat_ms: u64,
    #[command(flatten)]
    pub tls: TlsArgs,
}

/// Starts a meta node serving (and dialing its peers) with `tls`, plaintext without.
pub async fn start_meta(args: MetaArgs, tls: Option<Arc<LiveTls>>) -> anyhow::Result<MetaNode> {
    let data_dir = args.data_dir;
    std::fs::create_dir_all(&data_dir).with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let config = MetaConfig {
        advertise: args.advertise,
        join: args.join,
        shards: args.shards,
        tls,
        raft_heartbeat: std::time::Duration::from_millis(args.raft_heartbeat_ms),
        ..MetaConfig::new(args.id, data_dir.clone(), args.listen)
    };
    MetaNode::start(config).await.with_context(|| format!("starting the metadata node (data dir {})", data_dir.display()))
}

#[derive(clap::Args)]
pub struct AgentArgs {
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:7001")]
    pub meta: Vec<String>,
    #[arg(long, default_value = "127.0.0.1:7101")]
    pub listen: SocketAddr,
    /// Address schedulers reach this agent at (default: the listen address).
    #[arg(long)]
    pub advertise: Option<String>,
    #[arg(long, default_value = "local")]
    pub cluster: String,
    #[arg(long, default_value = "local")]
    pub region: String,
    #[arg(long, default_value = "./.nucleus")]
    pub data_dir: PathBuf,
    /// How replicas run: host processes, or pods in a Kubernetes cluster.
    #[arg(long, value_enum, default_value = "process")]
    pub driver: DriverKind,
    /// Kubernetes namespace of the workloads' Deployments and Services (kubernetes driver): not
    /// the control plane's, so that its NetworkPolicy can keep workloads away from it.
    #[arg(long, default_value = "nucleus-workloads")]
    pub namespace: String,
    /// Run replicas as this user (name, UID or UID:GID) instead of the agent's (process driver).
    #[arg(long, value_name = "USER")]
    pub run_as: Option<nucleus_agent::driver::process::RunAs>,
    /// The IP address replicas listen on and gateways reach them at (process driver; default:
    /// the --advertise or --listen IP, else 127.0.0.1).
    #[arg(long, env = "NUCLEUS_ADVERTISE_HOST", value_name = "IP")]
    pub advertise_host: Option<IpAddr>,
    /// Who may have replicas run commands on this host (process driver): `anyone` (every API
    /// user), `admins` (only the administrator's workloads), or a comma-separated list of programs.
    #[arg(long, env = "NUCLEUS_ALLOW_EXEC", value_name = "POLICY", default_value = "anyone")]
    pub allow_exec: ExecPolicy,
}

impl AgentArgs {
    /// `--advertise-host`, else the IP of `--advertise`, else the listen IP; loopback (with a
    /// warning when the agent listens beyond it) when none is a specific address.
    fn replica_host(&self) -> IpAddr {
        let advertised = self.advertise.as_deref().and_then(|a| a.parse::<SocketAddr>().ok()).map(|a| a.ip());
        let listen = Some(self.listen.ip());
        if let Some(host) = [self.advertise_host, advertised, listen].into_iter().flatten().find(|ip| !ip.is_unspecified()) {
            return host;
        }
        tracing::warn!(
            "replicas listen on 127.0.0.1, so only gateways on this host reach them; give --advertise-host with this host's address"
        );
        IpAddr::from([127, 0, 0, 1])
    }
}

/// How the agent runs protons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DriverKind {
    /// Replicas are processes of this host.
    Process,
    /// Replicas are pods of Deployments in the Kubernetes cluster of the in-cluster config or
    /// kubeconfig.
    Kubernetes,
}

pub struct RunningAgent {
    pub agent: Agent,
    pub addr: SocketAddr,
    pub tasks: Vec<JoinHandle<()>>,
}

/// An agent's name: `<cluster>-<region>`, also the name its certificate is issued for.
pub fn agent_name(cluster: &str, region: &str) -> String {
    format!("{cluster}-{region}")
}

/// Serves the agent and keeps its registration in meta fresh.
pub async fn start_agent(args: AgentArgs, meta: MetaClient, tls: Option<Arc<LiveTls>>, shutdown: Shutdown) -> anyhow::Result<RunningAgent> {
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding the agent to {}", args.listen))?;
    let addr = listener.local_addr()?;
    let name = agent_name(&args.cluster, &args.region);
    if let Some(tls) = &tls
        && !tls.identity().names_agent(&name)
    {
        anyhow::bail!(
            "the agent certificate {} was not issued for agent `{name}` (its --cluster and --region), so meta would refuse its \
             registration; issue one with `nucleus certs issue --role agent --name {name}`",
            tls.paths().cert.display()
        );
    }
    let driver = match args.driver {
        DriverKind::Process => DriverChoice::Process,
        DriverKind::Kubernetes => DriverChoice::Kubernetes(
            KubernetesConfig::infer(args.namespace.clone())
                .await
                .context("connecting the Kubernetes driver (in-cluster config or kubeconfig)")?,
        ),
    };
    let replica_host = args.replica_host();
    let config = AgentConfig { name: name.clone(), data_dir: args.data_dir.join("agent"), node_address: replica_host.to_string() };
    let process = ProcessSettings { replica_host, run_as: args.run_as, exec: args.allow_exec.clone() };
    let options = AgentOptions { cluster: args.cluster.clone(), region: args.region.clone(), driver, process };
    let agent = Agent::with_options(config, options).context("starting the agent (its data dir)")?;
    let server = {
        let agent = agent.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            if let Err(err) = nucleus_agent::serve(agent, listener, tls, shutdown.wait()).await {
                tracing::error!(error = %err, "agent gRPC server failed");
            }
        })
    };
    let record = AgentRecord {
        name,
        address: args.advertise.unwrap_or_else(|| addr.to_string()),
        driver: agent.driver_kind().to_owned(),
        cluster: args.cluster,
        region: args.region,
        heartbeat_at: String::new(),
        nodes: Vec::new(),
        exec: args.allow_exec,
    };
    let agent_for_beat = agent.clone();
    let heartbeat = tokio::spawn(async move {
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            let nodes = match agent_for_beat.capacity().await {
                Ok(nodes) => nodes.into_iter().map(NodeRecord::from).collect(),
                Err(err) => {
                    tracing::warn!(error = %err, "cannot read the driver's capacity; registering none");
                    Vec::new()
                }
            };
            let beat = AgentRecord { heartbeat_at: nucleus_api::clock::now().to_rfc3339(), nodes, ..record.clone() };
            let write = Txn::new().put_json(&keys::agent(&beat.name), &beat).map(|txn| meta.write(txn));
            match write {
                Ok(call) => {
                    if let Err(err) = call.await {
                        tracing::warn!(error = %err, "agent heartbeat to meta failed; will retry");
                    }
                }
                Err(err) => tracing::error!(error = %err, "cannot encode the agent record"),
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(HEARTBEAT) => {}
            }
        }
    });
    Ok(RunningAgent { agent, addr, tasks: vec![server, heartbeat] })
}

/// The task, and a receiver told when the scheduler has reconciled every proton once.
/// `dialer` carries the scheduler's certificate, for the agents it calls.
/// The autoscaler's settings (shared by `nucleus scheduler` and `nucleus dev`).
#[derive(clap::Args, Debug, Clone)]
pub struct AutoscaleArgs {
    /// The window whose average load ordinary scaling decisions follow.
    #[arg(long, default_value = "60s", value_parser = crate::duration::parse)]
    pub autoscale_stable_window: Duration,
    /// The short window that reacts to bursts (panic mode, entered at twice the target).
    #[arg(long, default_value = "6s", value_parser = crate::duration::parse)]
    pub autoscale_panic_window: Duration,
    /// How long an idle group that may rest at zero keeps its last replica after a stable window
    /// without traffic.
    #[arg(long, default_value = "30s", value_parser = crate::duration::parse)]
    pub scale_to_zero_grace: Duration,
    /// Scale-downs wait until every recommendation over this long agreed.
    #[arg(long, default_value = "0s", value_parser = crate::duration::parse)]
    pub autoscale_scale_down_delay: Duration,
}

impl AutoscaleArgs {
    pub fn settings(&self) -> anyhow::Result<nucleus_scheduler::autoscale::Settings> {
        anyhow::ensure!(!self.autoscale_stable_window.is_zero(), "--autoscale-stable-window must be longer than 0s");
        anyhow::ensure!(
            !self.autoscale_panic_window.is_zero() && self.autoscale_panic_window <= self.autoscale_stable_window,
            "--autoscale-panic-window must be longer than 0s and at most --autoscale-stable-window"
        );
        Ok(nucleus_scheduler::autoscale::Settings {
            stable_window: self.autoscale_stable_window,
            panic_window: self.autoscale_panic_window,
            scale_to_zero_grace: self.scale_to_zero_grace,
            scale_down_delay: self.autoscale_scale_down_delay,
            ..nucleus_scheduler::autoscale::Settings::default()
        })
    }
}

pub fn start_scheduler(meta: MetaClient, config: SchedulerConfig, shutdown: Shutdown) -> (JoinHandle<()>, oneshot::Receiver<()>) {
    let (first_pass, reconciled) = oneshot::channel();
    let task = tokio::spawn(async move {
        if let Err(err) = nucleus_scheduler::run(config, meta, shutdown.wait(), first_pass).await {
            tracing::error!(error = %err, "scheduler stopped with an error");
        }
    });
    (task, reconciled)
}

/// What the gateway takes besides its meta nodes, address and token (shared by `nucleus gateway`
/// and `nucleus dev`).
#[derive(clap::Args, Debug, Clone)]
pub struct GatewayArgs {
    /// Seconds a draft workload lives after it was created or last started (the spec's 8 hours).
    #[arg(long, env = "NUCLEUS_DRAFT_TTL_SECONDS", default_value_t = 8 * 3600)]
    pub draft_ttl_seconds: u64,
    /// URL callers reach the gateway at (e.g. https://nucleus.example.com), used for `endpoint`,
    /// `next` and `trackVia` links; default: http://<listen address>.
    #[arg(long, env = "NUCLEUS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Seconds a connection may take to send a request's headers, counted from when it waits for
    /// one (also how long an idle HTTP/1.1 connection is kept).
    #[arg(long, default_value_t = 30)]
    pub header_read_timeout: u64,
    /// Seconds a connection with no request in progress is kept open.
    #[arg(long, default_value_t = 60)]
    pub idle_timeout: u64,
    /// Connections open at once; past it new ones get 503.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// Invoke requests in flight per workload at this gateway; past it, 503 with Retry-After.
    #[arg(long, default_value_t = 1_000)]
    pub max_in_flight_per_workload: u32,
    /// Seconds a replica may take to send response headers before the caller gets 504 (a
    /// workload may set its own: runtime.invokeTimeoutSeconds).
    #[arg(long, default_value_t = 300)]
    pub upstream_timeout: u64,
    /// Threads serving connections (default: one per CPU).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Where the gateway's internal gRPC service (its request load, for the schedulers' autoscaler;
    /// mutual TLS) listens; default: the --listen address's host, any free port.
    #[arg(long, env = "NUCLEUS_INTERNAL_LISTEN")]
    pub internal_listen: Option<SocketAddr>,
    /// The `host:port` schedulers reach the internal service at, when it differs from where it
    /// listens (e.g. it listens on 0.0.0.0).
    #[arg(long, env = "NUCLEUS_INTERNAL_ADVERTISE")]
    pub internal_advertise: Option<String>,
    /// Requests held per workload while it starts from zero replicas; past it, 503.
    #[arg(long, default_value_t = 10_000)]
    pub max_held_per_workload: u32,
    /// How long a request is held for a workload starting from zero before 503.
    #[arg(long, default_value = "120s", value_parser = crate::duration::parse)]
    pub activator_timeout: Duration,
}

impl GatewayArgs {
    fn config(&self, token: String, listen: SocketAddr) -> anyhow::Result<GatewayConfig> {
        let public_url = match &self.public_url {
            Some(url) => {
                anyhow::ensure!(
                    url.starts_with("http://") || url.starts_with("https://"),
                    "--public-url must start with http:// or https://, got {url}"
                );
                url.trim_end_matches('/').to_owned()
            }
            None if listen.ip().is_unspecified() => {
                let url = format!("http://127.0.0.1:{}", listen.port());
                tracing::warn!(url, "listening on all addresses without --public-url: links will name {url}; set --public-url");
                url
            }
            None => format!("http://{listen}"),
        };
        let seconds = |name: &str, value: u64| {
            anyhow::ensure!(value > 0, "--{name} must be at least 1 second");
            Ok(std::time::Duration::from_secs(value))
        };
        let limits = nucleus_gateway::Limits {
            header_read_timeout: seconds("header-read-timeout", self.header_read_timeout)?,
            idle_timeout: seconds("idle-timeout", self.idle_timeout)?,
            max_connections: self.max_connections.max(1),
            max_in_flight_per_workload: self.max_in_flight_per_workload.max(1),
            upstream_timeout: seconds("upstream-timeout", self.upstream_timeout)?,
            max_held_per_workload: self.max_held_per_workload,
            activator_timeout: self.activator_timeout,
            ..nucleus_gateway::Limits::default()
        };
        let workers = self.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from)).max(1);
        Ok(GatewayConfig { token, public_url, draft_ttl: seconds("draft-ttl-seconds", self.draft_ttl_seconds)?, limits, workers })
    }
}

/// Starts the gateway: the public listener, and its internal gRPC service (with `tls`'s
/// certificate), registered in meta for the schedulers.
pub async fn start_gateway(
    meta: MetaClient,
    listen: SocketAddr,
    token: String,
    args: &GatewayArgs,
    tls: Option<Arc<LiveTls>>,
    shutdown: Shutdown,
) -> anyhow::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the gateway to {listen}: is another nucleus running? pick another --listen"))?;
    let addr = listener.local_addr()?;
    let internal_listen = args.internal_listen.unwrap_or_else(|| SocketAddr::new(listen.ip(), 0));
    let internal = tokio::net::TcpListener::bind(internal_listen)
        .await
        .with_context(|| format!("binding the gateway's internal service to {internal_listen}: pick another --internal-listen"))?;
    let internal_addr = internal.local_addr()?;
    let advertised = match &args.internal_advertise {
        Some(address) => address.clone(),
        None if internal_addr.ip().is_unspecified() => {
            let address = format!("127.0.0.1:{}", internal_addr.port());
            tracing::warn!(
                address,
                "the internal service listens on all addresses without --internal-advertise: schedulers on other hosts cannot reach it"
            );
            address
        }
        None => internal_addr.to_string(),
    };
    let state = AppState::new(meta.clone(), args.config(token, addr)?).with_agent_dialer(crate::tls::dialer(&tls));
    let reporter = state.load_reporter();
    let registration = tokio::spawn(nucleus_gateway::load::register(meta, reporter.name().to_owned(), advertised));
    let internal_shutdown = shutdown.clone();
    let internal_task = tokio::spawn(async move {
        if let Err(err) = nucleus_gateway::load::serve_internal(reporter, internal, tls, internal_shutdown.wait()).await {
            tracing::error!(error = %err, "gateway internal service failed: autoscaling does not see this gateway's load");
        }
    });
    let task = tokio::spawn(async move {
        if let Err(err) = nucleus_gateway::serve(state, listener, shutdown.wait()).await {
            tracing::error!(error = %err, "gateway failed");
        }
        registration.abort();
        let _ = internal_task.await;
    });
    Ok((addr, task))
}

pub async fn meta(args: MetaArgs) -> anyhow::Result<()> {
    let id = args.id;
    let links: Vec<String> = [args.listen.to_string()].into_iter().chain(args.advertise.clone()).chain(args.join.clone()).collect();
    let tls = args.tls.resolve(Some(Role::Meta), &links)?;
    let node = start_meta(args, tls).await?;
    println!("nucleus meta {id} serving on {}", node.addr());
    tokio::select! {
        () = terminated() => {}
        failure = node.storage_failure() => {
            tracing::error!(%failure, "meta storage failed: this node stops");
            let _ = tokio::time::timeout(Duration::from_secs(5), node.shutdown()).await;
            anyhow::bail!(
                "meta node {id} stopped: its storage failed ({failure}); check the disk under --data-dir \
                 (full? read-only? corrupt?), free it or move the data dir, then start the node again"
            );
        }
    }
    node.shutdown().await?;
    Ok(())
}

pub async fn scheduler(meta: Vec<String>, name: String, autoscale: AutoscaleArgs, tls: TlsArgs) -> anyhow::Result<()> {
    let (stop, shutdown) = Shutdown::new();
    // Agents' addresses come from meta, so they are not known here: plaintext to them is the
    // operator's choice (--insecure) unless the scheduler has a certificate.
    let identity = tls.resolve(Some(Role::Scheduler), &meta)?;
    let dialer = crate::tls::dialer(&identity);
    let config = SchedulerConfig { name: name.clone(), dialer: dialer.clone(), autoscale: autoscale.settings()? };
    let (task, _reconciled) = start_scheduler(MetaClient::new(&meta, &dialer)?, config, shutdown);
    println!("nucleus scheduler {name} started (meta {})", meta.join(","));
    terminated().await;
    let _ = stop.send(true);
    task.await?;
    Ok(())
}

pub async fn agent(args: AgentArgs, tls: TlsArgs) -> anyhow::Result<()> {
    let (stop, shutdown) = Shutdown::new();
    let links: Vec<String> = [args.listen.to_string()].into_iter().chain(args.advertise.clone()).chain(args.meta.clone()).collect();
    let identity = tls.resolve(Some(Role::Agent), &links)?;
    let meta = MetaClient::new(&args.meta, &crate::tls::dialer(&identity))?;
    let running = start_agent(args, meta, identity, shutdown).await?;
    println!("nucleus agent serving on {}", running.addr);
    terminated().await;
    let _ = stop.send(true);
    running.agent.shutdown().await;
    Ok(())
}

pub async fn gateway(meta: Vec<String>, listen: SocketAddr, token: String, args: GatewayArgs, tls: TlsArgs) -> anyhow::Result<()> {
    let (stop, shutdown) = Shutdown::new();
    let identity = tls.resolve(Some(Role::Gateway), &meta)?;
    let meta_client = MetaClient::new(&meta, &crate::tls::dialer(&identity))?;
    let (addr, task) = start_gateway(meta_client, listen, token, &args, identity, shutdown).await?;
    println!("nucleus gateway listening on http://{addr}");
    terminated().await;
    let _ = stop.send(true);
    task.await?;
    Ok(())
}

pub async fn meta_status(addrs: &[String], tls: &TlsArgs) -> anyhow::Result<()> {
    let dialer = crate::tls::dialer(&tls.resolve(None, addrs)?);
    let mut reachable = 0;
    for addr in addrs {
        match nucleus_client::node_status(addr, &dialer).await {
            Ok(s) => {
                reachable += 1;
                let members: Vec<String> = s
                    .members
                    .iter()
                    .map(|m| {
                        let role = if s.voter_ids.contains(&m.id) { "" } else { " (learner)" };
                        format!("{}@{}{role}", m.id, m.addr)
                    })
                    .collect();
                println!("node {} at {addr}: {} shard group(s) + root; root members {}", s.node_id, s.shard_count, members.join(", "));
                println!(
                    "  {:<6} {:<10} {:>6} {:>6} {:>9} {:>9}  voters (learners)",
                    "group", "state", "leader", "term", "applied", "revision"
                );
                for g in &s.groups {
                    let leader = g.leader_id.map(|l| l.to_string()).unwrap_or_else(|| "-".to_owned());
                    let name = if g.group_id == 0 { "root".to_owned() } else { g.group_id.to_string() };
                    let learners = if g.learner_ids.is_empty() { String::new() } else { format!(" ({:?})", g.learner_ids) };
                    println!(
                        "  {name:<6} {:<10} {leader:>6} {:>6} {:>9} {:>9}  {:?}{learners}",
                        g.state, g.term, g.applied_index, g.revision, g.voter_ids
                    );
                }
            }
            Err(err) => println!("node at {addr}: unreachable: {err}"),
        }
    }
    anyhow::ensure!(
        reachable > 0 || dialer.is_tls(),
        "no meta node answered in plaintext; if the cluster speaks TLS (it does unless started --insecure or on \
         loopback without certificates), give --tls-ca, --tls-cert and --tls-key; else check the addresses and that the nodes run"
    );
    anyhow::ensure!(reachable > 0, "no meta node answered; check the addresses, the certificate's CA, and that the nodes run");
    Ok(())
}
