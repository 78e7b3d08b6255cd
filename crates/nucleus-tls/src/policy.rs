//! Who may call what, for each gRPC server of the cluster. A call outside its policy is refused
//! by [`crate::RoleGuard`] before it reaches the service.

use crate::Role;

const META: &[Role] = &[Role::Meta];
const SCHEDULER: &[Role] = &[Role::Scheduler];
/// The roles that keep the cluster's state: meta nodes (forwarding to a leader), schedulers and
/// gateways.
const STATE: &[Role] = &[Role::Meta, Role::Scheduler, Role::Gateway];
/// Agents also write, but only their own registration: the meta service checks each key.
const STATE_AND_AGENTS: &[Role] = &[Role::Meta, Role::Scheduler, Role::Gateway, Role::Agent];
const ANYONE: &[Role] = &Role::ALL;
const NOBODY: &[Role] = &[];

/// A meta node: Raft and membership between meta nodes only; reads, watches and leases for the
/// roles that keep state; writes for those and for agents registering themselves.
pub fn meta_server(rpc: &str) -> &'static [Role] {
    match split(rpc) {
        Some(("nucleus.raft.v1.Raft", _)) => META,
        Some(("nucleus.meta.v1.Meta", "Join" | "Leave")) => META,
        Some(("nucleus.meta.v1.Meta", "Get" | "List" | "Watch" | "Campaign")) => STATE,
        Some(("nucleus.meta.v1.Meta", "Write")) => STATE_AND_AGENTS,
        Some(("nucleus.meta.v1.Meta", "Status")) => ANYONE,
        Some(("grpc.health.v1.Health", _)) => ANYONE,
        _ => NOBODY,
    }
}

/// Schedulers, and gateways reading what replicas printed.
const LOG_READERS: &[Role] = &[Role::Scheduler, Role::Gateway];

/// An agent: only schedulers launch, stop and watch protons; gateways may also read replica logs.
pub fn agent_server(rpc: &str) -> &'static [Role] {
    match split(rpc) {
        Some(("nucleus.agent.v1.Agent", "Logs")) => LOG_READERS,
        Some(("nucleus.agent.v1.Agent", _)) => SCHEDULER,
        Some(("grpc.health.v1.Health", _)) => ANYONE,
        _ => NOBODY,
    }
}

/// A gateway's internal service: only schedulers read its load.
pub fn gateway_server(rpc: &str) -> &'static [Role] {
    match split(rpc) {
        Some(("nucleus.gateway.v1.Gateway", _)) => SCHEDULER,
        Some(("grpc.health.v1.Health", _)) => ANYONE,
        _ => NOBODY,
    }
}

fn split(rpc: &str) -> Option<(&str, &str)> {
    rpc.strip_prefix('/')?.split_once('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raft_is_for_meta_nodes_and_launch_for_schedulers() {
        assert_eq!(meta_server("/nucleus.raft.v1.Raft/AppendEntries"), [Role::Meta]);
        assert!(!meta_server("/nucleus.meta.v1.Meta/Get").contains(&Role::Agent));
        assert!(meta_server("/nucleus.meta.v1.Meta/Write").contains(&Role::Gateway));
        assert_eq!(agent_server("/nucleus.agent.v1.Agent/Launch"), [Role::Scheduler]);
        assert_eq!(agent_server("/nucleus.agent.v1.Agent/Logs"), [Role::Scheduler, Role::Gateway]);
        assert!(agent_server("/nucleus.meta.v1.Meta/Get").is_empty());
        assert_eq!(gateway_server("/nucleus.gateway.v1.Gateway/WatchLoad"), [Role::Scheduler]);
        assert!(meta_server("/grpc.reflection.v1.ServerReflection/Info").is_empty());
    }
}
