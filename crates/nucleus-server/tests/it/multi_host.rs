//! The process driver across hosts: an agent in its own network namespace (its own address, its
//! own loopback), meta, scheduler and gateway in this one, every link over mutual TLS. The gateway
//! reaches the replica at the agent's address, never at a loopback.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use reqwest::StatusCode;

use crate::harness::{Stack, send_signal, spawn_nucleus, spawn_nucleus_in, temp_dir, whoami_artifact, workload};

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        send_signal(self.0.id() as i32, libc::SIGTERM);
        let _ = self.0.wait();
    }
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().expect("the ip command runs (iproute2)");
    assert!(output.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
}

/// A network namespace joined to this one by a veth pair: `host` is this side's address,
/// `remote` the namespace's. Removed on drop, the test's outcome notwithstanding.
struct Netns {
    name: String,
    veth: String,
    host: String,
    remote: String,
}

impl Netns {
    fn create() -> Netns {
        let pid = std::process::id();
        let name = format!("nucleus-mh-{pid}");
        let veth = format!("nmh{}", pid % 100_000);
        let peer = format!("{veth}p");
        let subnet = format!("10.{}.{}", 200 + pid % 50, (pid / 50) % 250);
        let netns = Netns { name, veth: veth.clone(), host: format!("{subnet}.1"), remote: format!("{subnet}.2") };
        ip(&["netns", "add", &netns.name]);
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", &netns.name]);
        ip(&["addr", "add", &format!("{}/24", netns.host), "dev", &veth]);
        ip(&["link", "set", &veth, "up"]);
        ip(&["netns", "exec", &netns.name, "ip", "addr", "add", &format!("{}/24", netns.remote), "dev", &peer]);
        ip(&["netns", "exec", &netns.name, "ip", "link", "set", &peer, "up"]);
        ip(&["netns", "exec", &netns.name, "ip", "link", "set", "lo", "up"]);
        netns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.veth]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

fn certificates(dir: &Path) -> impl Fn(&str) -> Vec<String> + use<> {
    let ca = dir.join("ca");
    let nucleus = env!("CARGO_BIN_EXE_nucleus");
    let run = |args: &[&str]| {
        let output = Command::new(nucleus).args(args).output().expect("nucleus runs");
        assert!(output.status.success(), "nucleus {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
    };
    let ca_dir = ca.to_string_lossy().into_owned();
    run(&["certs", "init", "--dir", &ca_dir]);
    let out: PathBuf = dir.join("certs");
    for role in ["meta", "scheduler", "gateway", "agent"] {
        let out = out.to_string_lossy();
        let mut issue = vec!["certs", "issue", "--ca-dir", &ca_dir, "--name", role, "--role", role, "--out", &out];
        if role == "agent" {
            // Bound to the agent's name: the defaults' `local-local`.
            issue.extend(["--agent", "local-local"]);
        }
        run(&issue);
    }
    move |role: &str| {
        let file = |name: String| out.join(name).to_string_lossy().into_owned();
        vec![
            "--tls-ca".to_owned(),
            file("ca.pem".to_owned()),
            "--tls-cert".to_owned(),
            file(format!("{role}.pem")),
            "--tls-key".to_owned(),
            file(format!("{role}-key.pem")),
        ]
    }
}

#[tokio::test]
async fn a_replica_on_another_host_is_invoked_through_the_gateway() {
    let dir = temp_dir();
    let netns = Netns::create();
    let tls = certificates(dir.path());
    let with = |args: &[&str], role: &str| -> Vec<String> { args.iter().map(|a| a.to_string()).chain(tls(role)).collect() };

    let meta_listen = format!("{}:0", netns.host);
    let meta_dir = dir.path().join("meta").to_string_lossy().into_owned();
    let (meta, meta_addr) = spawn_nucleus(&with(&["meta", "--listen", &meta_listen, "--data-dir", &meta_dir], "meta"), "serving on ").await;
    let _meta = Process(meta);
    let _scheduler = Process(spawn_nucleus(&with(&["scheduler", "--meta", &meta_addr], "scheduler"), "started (meta").await.0);
    let agent_listen = format!("{}:7101", netns.remote);
    let agent_dir = dir.path().join("agent").to_string_lossy().into_owned();
    let agent_args = with(&["agent", "--meta", &meta_addr, "--listen", &agent_listen, "--data-dir", &agent_dir], "agent");
    let _agent = Process(spawn_nucleus_in(Some(&netns.name), &agent_args, "serving on ").await.0);
    let gateway = Stack::gateway_with(std::slice::from_ref(&meta_addr), &tls("gateway")).await;

    let (code, created) = gateway.post("/workloads", workload("far", whoami_artifact("far", &[]), 1)).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    let running = gateway.wait_status(id, "running").await;
    let address = gateway.replica_addresses(&running).await.remove(0);
    assert!(address.starts_with(&format!("{}:", netns.remote)), "the replica is reported at its host's address: {address}");
    let port = address.rsplit_once(':').unwrap().1;
    assert!(tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await.is_err(), "the replica is not on this host's loopback");

    for i in 0..3 {
        let (code, echo) = gateway.invoke(id, &format!("across/{i}")).await;
        assert_eq!(code, StatusCode::OK, "{echo}");
        assert_eq!(echo["path"], format!("/across/{i}"));
    }
}
