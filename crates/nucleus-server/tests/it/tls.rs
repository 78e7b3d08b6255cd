//! Mutual TLS on the internal links, over real sockets: who may connect, and who may call what.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nucleus_proto::agent::v1::agent_client::AgentClient;
use nucleus_proto::agent::v1::{InfoRequest, LaunchRequest};
use nucleus_proto::meta::v1::meta_client::MetaClient;
use nucleus_proto::meta::v1::{GetRequest, Op, Put, StatusRequest, WriteRequest, op};
use nucleus_proto::raft::v1::RaftMessage;
use nucleus_proto::raft::v1::raft_client::RaftClient;
use nucleus_tls::{Dialer, LiveTls, Role, TlsPaths, authority};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// A call that does not complete within this is as good as refused.
const CALL: Duration = Duration::from_secs(5);

fn now() -> SystemTime {
    nucleus_api::clock::now().into()
}

fn issue(ca_dir: &Path, role: Role) -> (TlsPaths, Arc<LiveTls>) {
    let out = ca_dir.join("issued");
    let paths = authority::issue(ca_dir, role.name(), &[role], &["127.0.0.1".into()], None, &out, now()).expect("issue");
    let tls = LiveTls::load(paths.clone(), Some(role)).expect("load");
    (paths, tls)
}

fn channel(addr: &str, tls: &Arc<LiveTls>, server: Role) -> Channel {
    let dialer = Dialer::tls(tls.clone());
    dialer.connect_lazy(dialer.endpoint(addr).expect("endpoint").connect_timeout(CALL).timeout(CALL), server)
}

fn put(key: &str) -> WriteRequest {
    WriteRequest {
        request_id: String::new(),
        conditions: Vec::new(),
        ops: vec![Op { op: Some(op::Op::Put(Put { key: key.to_owned(), value: b"{}".to_vec() })) }],
        group_id: 0,
    }
}

#[tokio::test]
async fn meta_accepts_only_certificates_of_its_ca_and_each_role_only_its_calls() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca");
    authority::init(&ca, now()).expect("CA");
    let (_, meta_id) = issue(&ca, Role::Meta);
    let (_, agent_id) = issue(&ca, Role::Agent);
    let (_, gateway_id) = issue(&ca, Role::Gateway);

    let config = nucleus_meta::MetaConfig {
        tls: Some(meta_id.clone()),
        ..nucleus_meta::MetaConfig::new(1, dir.path().join("meta"), "127.0.0.1:0".parse().expect("addr"))
    };
    let node = nucleus_meta::MetaNode::start(config).await.expect("a meta node with TLS starts and elects itself");
    let addr = node.addr().to_string();

    // A plaintext client gets nowhere.
    let plain = Endpoint::from_shared(format!("http://{addr}")).expect("uri").connect_timeout(CALL).timeout(CALL).connect_lazy();
    let refused = MetaClient::new(plain).status(StatusRequest { group_id: 0 }).await;
    assert!(refused.is_err(), "plaintext call answered: {refused:?}");

    // Nor does a client whose certificate another CA signed, though it trusts the right CA.
    let other_ca = dir.path().join("other-ca");
    authority::init(&other_ca, now()).expect("other CA");
    let (stranger, _) = issue(&other_ca, Role::Gateway);
    let read = |path: &Path| std::fs::read_to_string(path).expect("pem");
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&ca.join("ca.pem"))))
        .identity(Identity::from_pem(read(&stranger.cert), read(&stranger.key)))
        .domain_name(Role::Meta.dns_name());
    let endpoint = Endpoint::from_shared(format!("https://{addr}")).expect("uri").tls_config(tls).expect("tls");
    let refused = MetaClient::new(endpoint.connect_timeout(CALL).timeout(CALL).connect_lazy()).status(StatusRequest { group_id: 0 }).await;
    assert!(refused.is_err(), "a certificate of another CA was accepted: {refused:?}");

    // An agent's certificate: no Raft, no reads, no writes beyond its own registration.
    let as_agent = channel(&addr, &agent_id, Role::Meta);
    let raft = RaftClient::new(as_agent.clone()).append_entries(RaftMessage { group_id: 0, payload: Vec::new(), data: Vec::new() }).await;
    assert_eq!(raft.expect_err("agent speaking Raft").code(), tonic::Code::PermissionDenied);
    let mut meta_as_agent = MetaClient::new(as_agent);
    let read = meta_as_agent.get(GetRequest { key: "tokens/admin".into(), group_id: 0 }).await;
    assert_eq!(read.expect_err("agent reading").code(), tonic::Code::PermissionDenied);
    let write = meta_as_agent.write(put("users/mallory")).await;
    let denied = write.expect_err("agent writing a user");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    assert!(denied.message().contains("agents/"), "{}", denied.message());
    // The certificate was issued for the agent named `agent` (`issue` names it after its role):
    // it registers that agent and no other.
    let own = meta_as_agent.write(put("agents/agent")).await.expect("an agent registers itself");
    assert!(own.into_inner().succeeded);
    let other = meta_as_agent.write(put("agents/local-local")).await.expect_err("an agent registering another");
    assert_eq!(other.code(), tonic::Code::PermissionDenied);
    assert!(other.message().contains("--name <cluster>-<region>"), "{}", other.message());
    let status = meta_as_agent.status(StatusRequest { group_id: 0 }).await;
    assert!(status.is_ok(), "anyone of the cluster reads the status: {status:?}");

    // A gateway's certificate writes state.
    let mut meta_as_gateway = MetaClient::new(channel(&addr, &gateway_id, Role::Meta));
    let written = meta_as_gateway.write(put("agents/by-gateway")).await.expect("gateway writes");
    assert!(written.into_inner().succeeded);
    let got = meta_as_gateway.get(GetRequest { key: "agents/agent".into(), group_id: 0 }).await.expect("gateway reads");
    assert!(got.into_inner().kv.is_some());
    let never = meta_as_gateway.get(GetRequest { key: "agents/local-local".into(), group_id: 0 }).await.expect("gateway reads");
    assert!(never.into_inner().kv.is_none(), "the refused registration wrote nothing");

    // A client expecting a meta node refuses a server that cannot prove it is one.
    let not_meta = MetaClient::new(channel(&addr, &gateway_id, Role::Agent)).status(StatusRequest { group_id: 0 }).await;
    assert!(not_meta.is_err(), "a meta node passed for an agent: {not_meta:?}");

    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn only_schedulers_launch_on_agents() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = dir.path().join("ca");
    authority::init(&ca, now()).expect("CA");
    let (_, agent_id) = issue(&ca, Role::Agent);
    let (_, gateway_id) = issue(&ca, Role::Gateway);
    let (_, scheduler_id) = issue(&ca, Role::Scheduler);

    let config =
        nucleus_agent::AgentConfig { name: "tls-agent".into(), data_dir: dir.path().join("agent"), node_address: "127.0.0.1".into() };
    let agent = nucleus_agent::Agent::new(config).expect("agent");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = agent.clone();
    let server = tokio::spawn(async move {
        nucleus_agent::serve(served, listener, Some(agent_id), async move {
            let _ = stopped.await;
        })
        .await
    });

    let launch = LaunchRequest { proton_id: "p".into(), ..LaunchRequest::default() };
    let as_gateway = AgentClient::new(channel(&addr, &gateway_id, Role::Agent)).launch(launch.clone()).await;
    let denied = as_gateway.expect_err("a gateway launching");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);
    assert!(denied.message().contains("scheduler.nucleus"), "{}", denied.message());
    let info = AgentClient::new(channel(&addr, &scheduler_id, Role::Agent)).info(InfoRequest {}).await.expect("scheduler asks");
    assert_eq!(info.into_inner().name, "tls-agent");

    let _ = stop.send(());
    server.await.expect("server task").expect("server");
    agent.shutdown().await;
}

/// Certificates rotate without a restart: after the files change and the process reloads them (as
/// `SIGHUP` does), new connections use the new CA and certificate; the old CA's clients are refused.
#[tokio::test]
async fn a_reloaded_certificate_and_ca_take_effect_for_new_connections() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (old_ca, new_ca) = (dir.path().join("old-ca"), dir.path().join("new-ca"));
    authority::init(&old_ca, now()).expect("old CA");
    authority::init(&new_ca, now()).expect("new CA");
    // The node's files live in one place; rotation rewrites them there.
    let node_dir = dir.path().join("node");
    let paths = authority::issue(&old_ca, "meta", &[Role::Meta], &[], None, &node_dir, now()).expect("issue");
    let meta_tls = LiveTls::load(paths.clone(), Some(Role::Meta)).expect("load");
    let config = nucleus_meta::MetaConfig {
        tls: Some(meta_tls.clone()),
        ..nucleus_meta::MetaConfig::new(1, dir.path().join("meta"), "127.0.0.1:0".parse().expect("addr"))
    };
    let node = nucleus_meta::MetaNode::start(config).await.expect("meta with TLS");
    let addr = node.addr().to_string();
    let (_, old_gateway) = issue(&old_ca, Role::Gateway);
    let (_, new_gateway) = issue(&new_ca, Role::Gateway);
    let status = |tls: &Arc<LiveTls>| {
        let mut client = MetaClient::new(channel(&addr, tls, Role::Meta));
        async move { client.status(StatusRequest { group_id: 0 }).await }
    };
    status(&old_gateway).await.expect("the old CA's clients are served before the rotation");
    assert!(status(&new_gateway).await.is_err(), "the new CA is not trusted yet");

    authority::issue(&new_ca, "meta", &[Role::Meta], &[], None, &node_dir, now()).expect("rotate the node's files");
    meta_tls.reload().expect("reload");
    status(&new_gateway).await.expect("the new CA's clients are served after the reload, without a restart");
    assert!(status(&old_gateway).await.is_err(), "the old CA is no longer trusted for new connections");

    // A reload that cannot be used keeps what works.
    std::fs::write(&paths.key, "not a key").expect("break the key");
    assert!(meta_tls.reload().is_err());
    status(&new_gateway).await.expect("still served with the settings in use");
    node.shutdown().await.expect("shutdown");
}
