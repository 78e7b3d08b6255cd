//! Network namespaces: each process of the drills' cluster gets its own namespace and address on
//! a bridge in this namespace (where the load runs), like hosts on a network, so that any set of
//! them can be cut off from the rest with iptables rules inside their namespaces. Everything is
//! removed on drop.

use std::process::Command;

use anyhow::Context;

pub struct Network {
    bridge: String,
    /// (member name, namespace, host-side veth) of each node, node `i` at address `.10 + i`.
    nodes: Vec<(String, String, String)>,
    subnet: String,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = Command::new("ip").args(args).output().context("running ip (iproute2)")?;
    anyhow::ensure!(output.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
    Ok(())
}

impl Network {
    /// A bridge and a namespace attached to it for each of `members`.
    pub fn create(members: &[String]) -> anyhow::Result<Network> {
        let tag = std::process::id() % 10_000;
        let subnet = format!("10.{}.{}", 100 + tag % 100, tag / 100);
        let mut network = Network { bridge: format!("nchb{tag}"), nodes: Vec::new(), subnet };
        ip(&["link", "add", &network.bridge, "type", "bridge"])?;
        ip(&["addr", "add", &format!("{}.1/24", network.subnet), "dev", &network.bridge])?;
        ip(&["link", "set", &network.bridge, "up"])?;
        for (i, member) in members.iter().enumerate() {
            let namespace = format!("nucleus-chaos-{tag}-{member}");
            let veth = format!("nch{tag}v{i}");
            let peer = format!("nch{tag}p{i}");
            ip(&["netns", "add", &namespace])?;
            network.nodes.push((member.clone(), namespace.clone(), veth.clone()));
            let ip_address = format!("{}.{}", network.subnet, 10 + i);
            ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer])?;
            ip(&["link", "set", &veth, "master", &network.bridge])?;
            ip(&["link", "set", &veth, "up"])?;
            ip(&["link", "set", &peer, "netns", &namespace])?;
            ip(&["netns", "exec", &namespace, "ip", "addr", "add", &format!("{ip_address}/24"), "dev", &peer])?;
            ip(&["netns", "exec", &namespace, "ip", "link", "set", &peer, "up"])?;
            ip(&["netns", "exec", &namespace, "ip", "link", "set", "lo", "up"])?;
        }
        Ok(network)
    }

    fn index(&self, member: &str) -> Option<usize> {
        self.nodes.iter().position(|(name, ..)| name == member)
    }

    /// `member`'s address.
    pub fn address(&self, member: &str) -> Option<String> {
        Some(format!("{}.{}", self.subnet, 10 + self.index(member)?))
    }

    pub fn namespace(&self, member: &str) -> Option<&str> {
        Some(self.nodes[self.index(member)?].1.as_str())
    }

    /// Every member's address, for certificates.
    pub fn addresses(&self) -> Vec<String> {
        self.nodes.iter().filter_map(|(name, ..)| self.address(name)).collect()
    }

    /// Drops all traffic between `minority` and `majority` (in the minority's namespaces, both
    /// ways); a member in both lists is cut off from everyone.
    pub fn split(&self, minority: &[String], majority: &[String]) -> anyhow::Result<()> {
        for member in minority {
            let namespace = self.namespace(member).with_context(|| format!("no member {member}"))?;
            for other in majority {
                let address = self.address(other).with_context(|| format!("no member {other}"))?;
                iptables(namespace, &["-I", "INPUT", "-s", &address, "-j", "DROP"])?;
                iptables(namespace, &["-I", "OUTPUT", "-d", &address, "-j", "DROP"])?;
            }
        }
        Ok(())
    }

    /// Removes every rule in the members' namespaces.
    pub fn heal(&self, members: &[String]) -> anyhow::Result<()> {
        for member in members {
            iptables(self.namespace(member).with_context(|| format!("no member {member}"))?, &["-F"])?;
        }
        Ok(())
    }
}

fn iptables(namespace: &str, rule: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("ip")
        .args(["netns", "exec", namespace, "iptables"])
        .args(rule)
        .status()
        .context("running iptables (apt-get install -y iptables)")?;
    anyhow::ensure!(status.success(), "iptables {} in {namespace} failed", rule.join(" "));
    Ok(())
}

impl Drop for Network {
    fn drop(&mut self) {
        for (_, namespace, veth) in &self.nodes {
            let _ = Command::new("ip").args(["link", "del", veth]).status();
            let _ = Command::new("ip").args(["netns", "del", namespace]).status();
        }
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).status();
    }
}
