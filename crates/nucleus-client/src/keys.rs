//! Where each document lives in meta. Keys sort so that a prefix lists one kind (or one
//! workload's children).
//!
//! Also which Raft group holds a key (ADR 001): a workload and everything under it (the
//! [`PER_WORKLOAD`] kinds, whose keys all start with the workload id) live in shard
//! `1 + fnv1a64(workload_id) % shard_count`; every other key lives in the root group 0. Routing is a
//! pure function of the key and the cluster's shard count, which is fixed at cluster creation.

pub const ARTIFACTS: &str = "artifacts/";
pub const WORKLOADS: &str = "workloads/";
pub const PROTONS: &str = "protons/";
pub const SNAPSHOTS: &str = "snapshots/";
pub const EVENTS: &str = "events/";
pub const AGENTS: &str = "agents/";
/// `gateways/<name>`: a gateway's internal address (root group), for schedulers to read its load.
pub const GATEWAYS: &str = "gateways/";
/// `users/<id>`: a user; `usernames/<name>` → its id (so that a name is taken once);
/// `tokens/<sha256 of the token>` → whose token it is (tokens are never stored in the clear).
pub const USERS: &str = "users/";
pub const USERNAMES: &str = "usernames/";
pub const TOKENS: &str = "tokens/";
/// `usergroups/<id>` → `UserGroup` (root group).
pub const USER_GROUPS: &str = "usergroups/";
/// `deployments/<id>`: a legacy deployment (cluster-wide).
pub const DEPLOYMENTS: &str = "deployments/";
/// `deploymentworkloads/<workload>`: which deployment a workload backs (at most one), so that two
/// creates for one workload cannot both succeed.
pub const DEPLOYMENT_WORKLOADS: &str = "deploymentworkloads/";
/// `stats/<workload>/<proton>/<minute>/<gateway>`: one gateway's request counts for one proton and
/// minute (minutes since the epoch, zero-padded so that keys sort by time).
pub const STATS: &str = "stats/";
/// `history/<workload>/<time-sortable id>`: the workload's past replacements and promotions.
pub const HISTORY: &str = "history/";
/// `shardleases/<group>`: the lease of scheduler work on one shard, stored in that shard's own
/// group so that every scheduler write there can be conditioned on it (meta-level fencing).
pub const SHARD_LEASES: &str = "shardleases/";
/// `allocations/<agent>/<node>`: what the replicas placed on one node reserve there. Cluster-wide
/// (root group), one key per node, so that a placement is committed on the revisions of exactly
/// the nodes it uses, whichever worker and shard it comes from.
pub const ALLOCATIONS: &str = "allocations/";
/// `schedulers/<name>`: a scheduler worker's heartbeat, so that workers know how many share the shards.
pub const SCHEDULERS: &str = "schedulers/";

/// The kinds stored in the shard of their workload; every other key is cluster-wide (group 0).
pub const PER_WORKLOAD: [&str; 6] = [WORKLOADS, PROTONS, SNAPSHOTS, EVENTS, HISTORY, STATS];

/// The root group: cluster-wide documents (artifacts, agents, scheduler leases, ...).
pub const ROOT_GROUP: u64 = 0;

pub fn artifact(id: &str) -> String {
    format!("{ARTIFACTS}{id}")
}

pub fn workload(id: &str) -> String {
    format!("{WORKLOADS}{id}")
}

pub fn protons_of(workload_id: &str) -> String {
    format!("{PROTONS}{workload_id}/")
}

pub fn proton(workload_id: &str, proton_id: &str) -> String {
    format!("{PROTONS}{workload_id}/{proton_id}")
}

pub fn snapshots_of(workload_id: &str) -> String {
    format!("{SNAPSHOTS}{workload_id}/")
}

/// The replica status snapshot of a proton, written by the scheduler from agent reports.
pub fn snapshot(workload_id: &str, proton_id: &str) -> String {
    format!("{SNAPSHOTS}{workload_id}/{proton_id}")
}

pub fn events_of(workload_id: &str) -> String {
    format!("{EVENTS}{workload_id}/")
}

/// `event_id` must sort by time (see the gateway's and scheduler's id makers).
pub fn event(workload_id: &str, event_id: &str) -> String {
    format!("{EVENTS}{workload_id}/{event_id}")
}

pub fn history_of(workload_id: &str) -> String {
    format!("{HISTORY}{workload_id}/")
}

pub fn history(workload_id: &str, record_id: &str) -> String {
    format!("{HISTORY}{workload_id}/{record_id}")
}

pub fn user(id: &str) -> String {
    format!("{USERS}{id}")
}

pub fn username(name: &str) -> String {
    format!("{USERNAMES}{name}")
}

pub fn user_group(id: &str) -> String {
    format!("{USER_GROUPS}{id}")
}

pub fn token(hash: &str) -> String {
    format!("{TOKENS}{hash}")
}

pub fn deployment(id: &str) -> String {
    format!("{DEPLOYMENTS}{id}")
}

pub fn deployment_of_workload(workload_id: &str) -> String {
    format!("{DEPLOYMENT_WORKLOADS}{workload_id}")
}

pub fn stats_of(workload_id: &str) -> String {
    format!("{STATS}{workload_id}/")
}

pub fn stats_of_proton(workload_id: &str, proton_id: &str) -> String {
    format!("{STATS}{workload_id}/{proton_id}/")
}

pub fn stats(workload_id: &str, proton_id: &str, minute: i64, gateway: &str) -> String {
    format!("{STATS}{workload_id}/{proton_id}/{minute:012}/{gateway}")
}

pub fn gateway(name: &str) -> String {
    format!("{GATEWAYS}{name}")
}

pub fn agent(name: &str) -> String {
    format!("{AGENTS}{name}")
}

pub fn scheduler(name: &str) -> String {
    format!("{SCHEDULERS}{name}")
}

/// The allocation ledger of one node of one agent.
pub fn allocations(agent: &str, node: &str) -> String {
    format!("{ALLOCATIONS}{agent}/{node}")
}

/// The scheduler lease of shard group `group` (lives in that group). Written only when the
/// lease changes hands, so its revision is the holder's fencing token for the shard.
pub fn shard_lease(group: u64) -> String {
    format!("{SHARD_LEASES}{group}")
}

/// The holder's heartbeat for the lease of `group` (lives in that group too): renewing the lease
/// writes only this, so the fencing token stays the same while the holder keeps it.
pub fn shard_lease_beat(group: u64) -> String {
    format!("{SHARD_LEASES}{group}/beat")
}

/// The last path segment of a key.
pub fn id_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// FNV-1a, 64 bits. Decides which shard holds a workload, so it must never change.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// The part of the keyspace a key belongs to, whatever the shard count: a transaction must stay
/// within one scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope<'a> {
    /// Cluster-wide documents: the root group.
    Root,
    /// One workload and everything under it: its shard.
    Workload(&'a str),
    /// A document about a shard group itself (its scheduler lease), stored in that group.
    Shard(u64),
}

impl Scope<'_> {
    /// The group holding this scope in a cluster of `shard_count` shards (0: unsharded, all in
    /// the root group).
    pub fn group(&self, shard_count: u64) -> u64 {
        match self {
            Scope::Workload(id) if shard_count > 0 => 1 + fnv1a64(id.as_bytes()) % shard_count,
            Scope::Shard(group) if shard_count > 0 => *group,
            _ => ROOT_GROUP,
        }
    }
}

/// The scope of a key: for `workloads/<id>` the id is the rest of the key, for the other
/// per-workload kinds the segment up to the next `/`.
pub fn scope_of_key(key: &str) -> Scope<'_> {
    if let Some(group) = key.strip_prefix(SHARD_LEASES).and_then(|rest| rest.split('/').next()?.parse().ok()) {
        return Scope::Shard(group);
    }
    for kind in PER_WORKLOAD {
        if let Some(rest) = key.strip_prefix(kind) {
            let id = if kind == WORKLOADS { rest } else { rest.split('/').next().unwrap_or(rest) };
            return Scope::Workload(id);
        }
    }
    Scope::Root
}

/// The one scope every key under `prefix` belongs to, or `None` if keys under it may belong to
/// several. Only a per-workload prefix with a complete id (`protons/<wid>/`) names one workload:
/// `workloads/ab` also matches `workloads/abc`, which lives elsewhere.
pub fn scope_of_prefix(prefix: &str) -> Option<Scope<'_>> {
    for kind in PER_WORKLOAD {
        if let Some(rest) = prefix.strip_prefix(kind) {
            return match rest.split_once('/') {
                Some((id, _)) if kind != WORKLOADS => Some(Scope::Workload(id)),
                _ => None,
            };
        }
    }
    // A prefix of a kind's name ("", "w", "protons") also matches per-workload keys.
    let spans_workloads = PER_WORKLOAD.iter().chain([&SHARD_LEASES]).any(|kind| kind.starts_with(prefix));
    (!spans_workloads).then_some(Scope::Root)
}

/// The group holding `key`.
pub fn group_of_key(key: &str, shard_count: u64) -> u64 {
    scope_of_key(key).group(shard_count)
}

/// The groups a listing or watch of `prefix` must visit, ascending.
pub fn groups_of_prefix(prefix: &str, shard_count: u64) -> Vec<u64> {
    if shard_count == 0 {
        return vec![ROOT_GROUP];
    }
    if let Some(scope) = scope_of_prefix(prefix) {
        return vec![scope.group(shard_count)];
    }
    let shards = 1..=shard_count;
    if PER_WORKLOAD.iter().chain([&SHARD_LEASES]).any(|kind| prefix.starts_with(kind)) {
        shards.collect()
    } else {
        std::iter::once(ROOT_GROUP).chain(shards).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_is_the_standard_one_forever() {
        // Reference values of FNV-1a 64 (also those of any other implementation).
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        // Changing these moves stored workloads to another shard: never do.
        assert_eq!(group_of_key("workloads/a", 16), 13);
        assert_eq!(group_of_key("workloads/foobar", 16), 9);
        assert_eq!(group_of_key("protons/0b9c6f1e-5d2a-4c1e-9f3a-2b7d8e6a1c40/p1", 16), 11);
        assert_eq!(group_of_key("events/0b9c6f1e-5d2a-4c1e-9f3a-2b7d8e6a1c40/e", 3), 1);
    }

    #[test]
    fn a_workload_and_its_children_share_a_shard() {
        let w = "65f1c0de0123456789abcdef";
        let group = group_of_key(&workload(w), 16);
        assert!((1..=16).contains(&group));
        for key in [proton(w, "p"), snapshot(w, "p"), event(w, "e"), protons_of(w), events_of(w)] {
            assert_eq!(group_of_key(&key, 16), group, "{key}");
        }
        for prefix in [protons_of(w), snapshots_of(w), events_of(w)] {
            assert_eq!(groups_of_prefix(&prefix, 16), [group], "{prefix}");
        }
        assert_eq!(scope_of_key(&proton(w, "p")), Scope::Workload(w));
    }

    #[test]
    fn everything_else_is_in_the_root_group() {
        for key in [artifact("a"), agent("n"), "schedulers/s".to_owned(), "users/u".to_owned(), "workload".to_owned()] {
            assert_eq!(group_of_key(&key, 16), ROOT_GROUP, "{key}");
        }
        assert_eq!(group_of_key(&workload("a"), 0), ROOT_GROUP, "unsharded: all in the root");
    }

    #[test]
    fn prefixes_visit_every_group_they_may_match() {
        let shards: Vec<u64> = (1..=4).collect();
        let all: Vec<u64> = (0..=4).collect();
        assert_eq!(groups_of_prefix(ARTIFACTS, 4), [ROOT_GROUP]);
        assert_eq!(groups_of_prefix("agents/n", 4), [ROOT_GROUP]);
        assert_eq!(groups_of_prefix("x", 4), [ROOT_GROUP]);
        for kind in PER_WORKLOAD {
            assert_eq!(groups_of_prefix(kind, 4), shards, "{kind}");
        }
        assert_eq!(groups_of_prefix("protons/abc", 4), shards, "incomplete id");
        assert_eq!(groups_of_prefix("workloads/abc", 4), shards, "also matches workloads/abcd");
        assert_eq!(groups_of_prefix("workloads/abc/", 4), shards);
        assert_eq!(groups_of_prefix("protons/abc/", 4), [group_of_key("workloads/abc", 4)]);
        for prefix in ["", "w", "protons", "events"] {
            assert_eq!(groups_of_prefix(prefix, 4), all, "{prefix:?}");
            assert_eq!(scope_of_prefix(prefix), None);
        }
        assert_eq!(groups_of_prefix("", 0), [ROOT_GROUP]);
        assert_eq!(groups_of_prefix(WORKLOADS, 0), [ROOT_GROUP], "unsharded: all in the root");
    }
}
