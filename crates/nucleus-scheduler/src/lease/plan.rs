//! Which shard leases a worker should take, keep or give up: a pure function of what it read.
//!
//! Each worker aims at its fair share, `ceil(shards / live workers)`. It keeps the leases it
//! holds (up to that share), takes free or expired ones until it has its share, and gives back
//! what is over it so that a newly started worker finds shards to take. Workers prefer shards by
//! rendezvous rank of (worker, shard), so two workers rarely race for the same free lease.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `shardleases/<group>`: who holds the shard. Rewritten only when it changes hands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseHolder {
    pub worker: String,
    /// Differs between two runs of a worker with the same name.
    pub incarnation: String,
}

/// `shardleases/<group>/beat`: when the holder last renewed, by its clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaseBeat {
    pub renewed_at_ms: i64,
    pub ttl_ms: u64,
}

/// One shard's lease as read: holder and beat with the revisions they were read at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadLease {
    pub holder: LeaseHolder,
    /// The fencing token of whoever holds it.
    pub revision: u64,
    pub beat: Option<LeaseBeat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LeaseAction {
    /// Take the shard: the lease must still be at `expected` (0: absent).
    Acquire { group: u64, expected: u64 },
    /// Heartbeat a lease held at `revision`.
    Renew { group: u64, revision: u64 },
    /// Give a held lease back.
    Release { group: u64, revision: u64 },
}

/// A worker, as leases name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    pub worker: String,
    pub incarnation: String,
}

impl Me {
    fn holds(&self, lease: &ReadLease) -> bool {
        lease.holder.worker == self.worker && lease.holder.incarnation == self.incarnation
    }
}

/// Another clock may run this far ahead of ours: a lease counts as expired only this much after
/// its holder's own deadline.
pub const CLOCK_SKEW_MS: i64 = 1_000;

/// Whether `me` may take over `lease` at `now_ms`.
fn takeable(me: &Me, lease: &ReadLease, now_ms: i64) -> bool {
    if lease.holder.worker == me.worker {
        // An earlier run of this worker (it restarted): its leases are ours to take at once.
        return !me.holds(lease);
    }
    match &lease.beat {
        Some(beat) => now_ms > beat.renewed_at_ms + beat.ttl_ms as i64 + CLOCK_SKEW_MS,
        // Taken but never renewed: the holder died between its two writes.
        None => true,
    }
}

/// What `me` should do now, given every shard's lease (`None`: nobody holds it) and how many
/// workers are alive (itself included).
pub fn plan(me: &Me, now_ms: i64, leases: &BTreeMap<u64, Option<ReadLease>>, live_workers: usize) -> Vec<LeaseAction> {
    let shards = leases.len();
    let share = shards.div_ceil(live_workers.max(1));
    let mut held: Vec<(u64, u64)> =
        leases.iter().filter_map(|(group, lease)| lease.as_ref().filter(|l| me.holds(l)).map(|l| (*group, l.revision))).collect();
    held.sort_by_key(|(group, _)| std::cmp::Reverse(rank(&me.worker, *group)));
    let mut actions = Vec::new();
    for (i, (group, revision)) in held.iter().enumerate() {
        actions.push(if i < share {
            LeaseAction::Renew { group: *group, revision: *revision }
        } else {
            LeaseAction::Release { group: *group, revision: *revision }
        });
    }
    let mut free: Vec<(u64, u64)> = leases
        .iter()
        .filter_map(|(group, lease)| match lease {
            None => Some((*group, 0)),
            Some(lease) if takeable(me, lease, now_ms) => Some((*group, lease.revision)),
            Some(_) => None,
        })
        .collect();
    free.sort_by_key(|(group, _)| std::cmp::Reverse(rank(&me.worker, *group)));
    let wanted = share.saturating_sub(held.len());
    actions.extend(free.into_iter().take(wanted).map(|(group, expected)| LeaseAction::Acquire { group, expected }));
    actions
}

/// The worker's preference for a shard: a stable mix of both (FNV-1a).
fn rank(worker: &str, group: u64) -> u64 {
    let bytes = worker.bytes().chain(group.to_be_bytes());
    bytes.fold(0xcbf2_9ce4_8422_2325u64, |hash, b| (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;
    const TTL: u64 = 5_000;

    fn me(worker: &str) -> Me {
        Me { worker: worker.into(), incarnation: format!("{worker}-run") }
    }

    fn held_by(who: &Me, revision: u64, renewed_ago_ms: i64) -> Option<ReadLease> {
        Some(ReadLease {
            holder: LeaseHolder { worker: who.worker.clone(), incarnation: who.incarnation.clone() },
            revision,
            beat: Some(LeaseBeat { renewed_at_ms: NOW - renewed_ago_ms, ttl_ms: TTL }),
        })
    }

    fn acquired(actions: &[LeaseAction]) -> Vec<u64> {
        actions
            .iter()
            .filter_map(|a| match a {
                LeaseAction::Acquire { group, .. } => Some(*group),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_lone_worker_takes_every_free_shard() {
        let leases: BTreeMap<u64, Option<ReadLease>> = (1..=4).map(|g| (g, None)).collect();
        let mut taken = acquired(&plan(&me("a"), NOW, &leases, 1));
        taken.sort();
        assert_eq!(taken, vec![1, 2, 3, 4]);
    }

    #[test]
    fn live_leases_of_others_are_left_alone_and_expired_ones_taken_over() {
        let b = me("b");
        let leases = BTreeMap::from([
            (1, held_by(&b, 10, 1_000)),                          // fresh
            (2, held_by(&b, 11, TTL as i64 + CLOCK_SKEW_MS + 1)), // expired
            (3, held_by(&b, 12, TTL as i64)),                     // within skew margin: still b's
        ]);
        let actions = plan(&me("a"), NOW, &leases, 1);
        assert_eq!(actions, vec![LeaseAction::Acquire { group: 2, expected: 11 }]);
    }

    #[test]
    fn a_restarted_worker_takes_its_old_leases_at_once() {
        let old = Me { worker: "a".into(), incarnation: "before".into() };
        let leases = BTreeMap::from([(1, held_by(&old, 7, 0))]);
        assert_eq!(plan(&me("a"), NOW, &leases, 1), vec![LeaseAction::Acquire { group: 1, expected: 7 }]);
    }

    #[test]
    fn held_leases_are_renewed_up_to_the_fair_share_and_the_rest_released() {
        let a = me("a");
        let leases: BTreeMap<u64, Option<ReadLease>> = (1..=4).map(|g| (g, held_by(&a, 100 + g, 0))).collect();
        let actions = plan(&a, NOW, &leases, 2);
        let renewed = actions.iter().filter(|x| matches!(x, LeaseAction::Renew { .. })).count();
        let released: Vec<_> = actions.iter().filter(|x| matches!(x, LeaseAction::Release { .. })).collect();
        assert_eq!((renewed, released.len()), (2, 2));
        for action in released {
            let LeaseAction::Release { group, revision } = action else { unreachable!() };
            assert_eq!(*revision, 100 + group, "released at the revision it holds");
        }
    }

    #[test]
    fn two_workers_split_free_shards_without_both_wanting_all() {
        let leases: BTreeMap<u64, Option<ReadLease>> = (1..=16).map(|g| (g, None)).collect();
        let a = acquired(&plan(&me("a"), NOW, &leases, 2));
        let b = acquired(&plan(&me("b"), NOW, &leases, 2));
        assert_eq!((a.len(), b.len()), (8, 8));
        let overlap = a.iter().filter(|g| b.contains(g)).count();
        assert!(overlap < 8, "preferences differ between workers: {a:?} vs {b:?}");
    }
}
