//! Shard leases against a real meta node: workers split the shards, a dead worker's shards are
//! taken over after the lease expires, and the late write of a worker that lost its lease is
//! refused by meta. On paused time: the 5 s lease TTL passes without waiting for it.

use std::collections::BTreeSet;
use std::time::Duration;

use nucleus_client::{Txn, WriteOutcome, keys};
use nucleus_scheduler::lease::{Held, LEASE_TTL, LeaseKeeper};
use tokio::sync::watch;

const SHARDS: u64 = 4;

/// A workload id that lives in shard `group`.
fn workload_in(group: u64) -> String {
    (0..).map(|i| format!("w{i}")).find(|id| keys::group_of_key(&keys::workload(id), SHARDS) == group).unwrap()
}

/// Waits until `held` satisfies `what`, returning it.
async fn held_until(held: &mut watch::Receiver<Held>, wait: Duration, what: impl Fn(&Held) -> bool) -> Held {
    let result = tokio::time::timeout(wait, held.wait_for(|h| what(h))).await;
    result.expect("lease holdings did not settle in time").expect("keeper running").clone()
}

#[tokio::test(start_paused = true)]
async fn two_workers_split_the_shards_and_a_dead_workers_shards_are_taken_over() {
    let fixture = nucleus_testkit::Meta::start(SHARDS).await;
    let meta = fixture.client.clone();
    let node = fixture.node;

    let (mut a, a_task) = LeaseKeeper::spawn(meta.clone(), "a").await.unwrap();
    let a_all = held_until(&mut a, Duration::from_secs(10), |h| h.len() as u64 == SHARDS).await;

    // A second worker: the first gives back what is over its fair share, the second takes it.
    let (mut b, _b_task) = LeaseKeeper::spawn(meta.clone(), "b").await.unwrap();
    let b_half = held_until(&mut b, Duration::from_secs(10), |h| h.len() as u64 == SHARDS / 2).await;
    let a_half = held_until(&mut a, Duration::from_secs(10), |h| h.len() as u64 == SHARDS / 2).await;
    let a_groups: BTreeSet<u64> = a_half.keys().copied().collect();
    let b_groups: BTreeSet<u64> = b_half.keys().copied().collect();
    assert!(a_groups.is_disjoint(&b_groups), "a {a_groups:?} and b {b_groups:?} never share a shard");
    assert_eq!(a_groups.union(&b_groups).count() as u64, SHARDS);
    for (group, token) in &a_half {
        assert_eq!(a_all.get(group), Some(token), "a kept the tokens of the shards it kept");
    }

    // Worker a stops renewing (a crash, or a long pause): b takes its shards once they expire.
    a_task.abort();
    let before = tokio::time::Instant::now();
    let b_all = held_until(&mut b, LEASE_TTL * 3, |h| h.len() as u64 == SHARDS).await;
    assert!(before.elapsed() >= LEASE_TTL - Duration::from_secs(1), "not before the lease expired");
    for (group, a_token) in &a_half {
        let b_token = b_all[group];
        assert!(b_token > *a_token, "shard {group}: the new token {b_token} is newer than {a_token}");
        // A late write by the paused a, fenced by its old token, changes nothing.
        let key = keys::proton(&workload_in(*group), "p");
        let late = Txn::new().require(&keys::shard_lease(*group), *a_token).put_json(&key, &"late").unwrap();
        assert_eq!(meta.write(late).await.unwrap(), WriteOutcome::Conflict { key: keys::shard_lease(*group) });
        assert!(meta.get(&key).await.unwrap().is_none(), "the refused write changed nothing");
    }
    // Writes fenced with b's tokens go through, for some workload in each shard.
    let mut fenced_writes = 0;
    for i in 0..64 {
        let workload = format!("w{i}");
        let key = keys::proton(&workload, "p");
        let group = keys::group_of_key(&key, SHARDS);
        let txn = Txn::new().require(&keys::shard_lease(group), b_all[&group]).put_json(&key, &"ok").unwrap();
        assert!(meta.write(txn).await.unwrap().applied(), "b's token is current for shard {group}");
        fenced_writes += 1;
    }
    assert_eq!(fenced_writes, 64);
    node.shutdown().await.unwrap();
}
