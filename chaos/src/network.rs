//! Network namespaces for the partition drills: each meta node gets its own namespace and
//! address on a bridge in this namespace (where the other roles and the load run), so that one
//! node can be cut off with iptables rules inside its namespace. Everything is removed on drop.

use std::process::Command;

use anyhow::Context;

pub struct Network {
    bridge: String,
    /// (namespace, host-side veth) of each node.
    nodes: Vec<(String, String)>,
    subnet: String,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip").args(args).output().context("running ip (iproute2)")?;
    anyhow::ensure!(output.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    Ok(())
}

impl Network {
    /// A bridge and `count` namespaces attached to it; node `i` (from 0) has address
    /// [`Network::address`]`(i)`.
    pub fn create(count: usize) -> anyhow::Result<Network> {
        let tag = std::process::id() % 10_000;
        let subnet = format!("10.{}.{}", 100 + tag % 100, tag / 100);
        let mut network = Network { bridge: format!("nchb{tag}"), nodes: Vec::new(), subnet };
        ip(&["link", "add", &network.bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{}.1/24", network.subnet), "dev", &network.bridge])?;
        ip(&["link", "set", &network.bridge, "up"])?;
        for i in 0..count {
            let namespace = format!("nucleus-chaos-{tag}-{i}");
            let veth = format!("nch{tag}v{i}");
            let peer = format!("nch{tag}p{i}");
            ip(&["netns", "add", &namespace])?;
            network.nodes.push((namespace.clone(), veth.clone()));
            ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer])?;
            ip(&["link", "set", &veth, "master", &network.bridge])?;
            ip(&["link", "set", &veth, "up"])?;
            ip(&["link", "set", &peer, "netns", &namespace])?;
            ip(&["netns", "exec", &namespace, "ip", "addr", "add", &format!("{}/24", network.address(i)), "dev", &peer])?;
            ip(&["netns", "exec", &namespace, "ip", "link", "set", &peer, "up"])?;
            ip(&["netns", "exec", &namespace, "ip", "link", "set", "lo", "up"])?;
        }
        Ok(network)
    }

    pub fn address(&self, node: usize) -> String {
        format!("{}.{}", self.subnet, 10 + node)
    }

    pub fn namespace(&self, node: usize) -> &str {
        &self.nodes[node].0
    }

    /// Every address, for certificates.
    pub fn addresses(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|i| self.address(i)).collect()
    }

    /// Cuts node `node` off from everyone (`cut`), or joins it again.
    pub fn isolate(&self, node: usize, cut: bool) -> anyhow::Result<()> {
        let namespace = self.namespace(node);
        let rules: &[&[&str]] = if cut { &[&["-I", "INPUT", "-j", "DROP"], &["-I", "OUTPUT", "-j", "DROP"]] } else { &[&["-F"]] };
        for rule in rules {
            let status = Command::new("ip")
                .args(["netns", "exec", namespace, "iptables"])
                .args(*rule)
                .status()
                .context("running iptables (apt-get install -y iptables)")?;
            anyhow::ensure!(status.success(), "iptables {} in {namespace} failed", rule.join(" "));
        }
        Ok(())
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for (namespace, veth) in &self.nodes {
            let _ = Command::new("ip").args(["link", "del", veth]).status();
            let _ = Command::new("ip").args(["netns", "del", namespace]).status();
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).status();
    }
}
