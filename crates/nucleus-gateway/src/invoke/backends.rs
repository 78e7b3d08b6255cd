//! The ready replicas of a workload, and how the proxy chooses one: the one with fewer requests
//! outstanding of two picked at random (power of two choices), skipping replicas that were ejected
//! after a failed connection (passive health checking, as Envoy's outlier detection does).
//!
//! An ejection lasts a back-off that doubles with each failure in a row (1 s up to 30 s), or until
//! the replica's next successful readiness report: a replica that leaves the ready set and comes
//! back is a new [`Backend`] with a clean record. When every replica left is ejected, they are
//! tried anyway: a request fails only when no ready replica exists or none of them answers.
//!
//! Ejection times are read from tokio's clock, so tests run them on paused time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use http::HeaderValue;
use http::uri::Authority;
use tokio::time::Instant;

use super::upstream::Pool;

/// The first ejection of a replica lasts this long; each further one in a row twice as long.
pub const EJECT_BASE: Duration = Duration::from_secs(1);
pub const EJECT_MAX: Duration = Duration::from_secs(30);

/// One ready replica, with what the proxy keeps about it.
#[derive(Debug)]
pub struct Backend {
    /// The replica's name, used in messages (its address is nobody's business outside).
    pub name: String,
    pub address: String,
    pub authority: Authority,
    /// `Host` of requests to it.
    pub host: HeaderValue,
    /// Requests sent to it whose answer has not ended.
    outstanding: AtomicU32,
    /// Failures in a row; 0 when its last request succeeded.
    streak: AtomicU32,
    /// Milliseconds after `since` until which it is ejected (0: not ejected).
    ejected_until_ms: AtomicU64,
    since: Instant,
    /// Idle connections to it.
    pub(super) pool: Pool,
}

impl Backend {
    /// `None` when the address is not a usable `host:port`.
    pub fn new(name: &str, address: &str) -> Option<Backend> {
        let authority = address.parse::<Authority>().ok()?;
        let host = HeaderValue::from_str(address).ok()?;
        Some(Backend {
            name: name.to_owned(),
            address: address.to_owned(),
            authority,
            host,
            outstanding: AtomicU32::new(0),
            streak: AtomicU32::new(0),
            ejected_until_ms: AtomicU64::new(0),
            since: Instant::now(),
            pool: Pool::default(),
        })
    }

    pub fn outstanding(&self) -> u32 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Counts a request to this replica until the returned guard is dropped.
    pub fn start(self: &Arc<Self>) -> Outstanding {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        Outstanding(self.clone())
    }

    pub fn is_ejected(&self, now: Instant) -> bool {
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        until != 0 && self.millis(now) < until
    }

    /// Takes the replica out of the pick after a failed connection; returns for how long.
    pub fn eject(&self, now: Instant) -> Duration {
        let streak = self.streak.fetch_add(1, Ordering::Relaxed).saturating_add(1);
        let backoff = EJECT_BASE.saturating_mul(1 << (streak - 1).min(10)).min(EJECT_MAX);
        let until = self.millis(now) + backoff.as_millis() as u64;
        self.ejected_until_ms.store(until.max(1), Ordering::Relaxed);
        backoff
    }

    /// The replica answered: its failure streak is over.
    pub fn succeeded(&self) {
        if self.streak.load(Ordering::Relaxed) != 0 {
            self.streak.store(0, Ordering::Relaxed);
            self.ejected_until_ms.store(0, Ordering::Relaxed);
        }
    }

    fn millis(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.since).as_millis() as u64
    }
}

/// A request counted as outstanding on a backend.
#[derive(Debug)]
pub struct Outstanding(Arc<Backend>);

impl Outstanding {
    pub fn backend(&self) -> &Arc<Backend> {
        &self.0
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Chooses the replica for the next attempt among `backends`, leaving out those already `tried`:
/// of two candidates picked at random, the one with fewer outstanding requests. Ejected replicas
/// are left out while another candidate remains.
pub fn pick(backends: &[Arc<Backend>], tried: &[Arc<Backend>], now: Instant) -> Option<Arc<Backend>> {
    let untried = |b: &&Arc<Backend>| !tried.iter().any(|t| Arc::ptr_eq(t, b));
    let healthy = |b: &&Arc<Backend>| !b.is_ejected(now);
    let count = backends.iter().filter(untried).filter(healthy).count();
    if count > 0 {
        choose(backends.iter().filter(untried).filter(healthy), count)
    } else {
        let count = backends.iter().filter(untried).count();
        choose(backends.iter().filter(untried), count)
    }
}

fn choose<'a>(candidates: impl Iterator<Item = &'a Arc<Backend>> + Clone, count: usize) -> Option<Arc<Backend>> {
    match count {
        0 => None,
        1 => candidates.clone().next().cloned(),
        _ => {
            let random = next_random();
            let first = (random % count as u64) as usize;
            // A second index, different from the first.
            let second = (first + 1 + ((random >> 32) % (count as u64 - 1)) as usize) % count;
            let a = candidates.clone().nth(first)?;
            let b = candidates.clone().nth(second)?;
            Some(if b.outstanding() < a.outstanding() { b.clone() } else { a.clone() })
        }
    }
}

/// A per-thread xorshift generator: the pick needs spread, not secrecy.
fn next_random() -> u64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            use std::hash::{BuildHasher, Hasher};
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(0x9e37_79b9_7f4a_7c15);
            hasher.finish() | 1
        });
    }
    STATE.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(n: usize) -> Vec<Arc<Backend>> {
        (0..n).map(|i| Arc::new(Backend::new(&format!("r{i}"), &format!("127.0.0.1:{}", 1000 + i)).unwrap())).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn the_less_loaded_of_two_wins_so_a_slow_replica_gets_less() {
        let all = backends(2);
        // r0 has three requests outstanding: with two replicas both are always the candidates.
        let _busy: Vec<Outstanding> = (0..3).map(|_| all[0].start()).collect();
        for _ in 0..50 {
            let chosen = pick(&all, &[], Instant::now()).unwrap();
            assert_eq!(chosen.name, "r1");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_replica_gets_picked_when_load_is_even() {
        let all = backends(3);
        let mut seen = [0; 3];
        for _ in 0..300 {
            let chosen = pick(&all, &[], Instant::now()).unwrap();
            seen[all.iter().position(|b| Arc::ptr_eq(b, &chosen)).unwrap()] += 1;
        }
        assert!(seen.iter().all(|&n| n > 30), "{seen:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn tried_and_ejected_replicas_are_left_out() {
        let all = backends(3);
        all[0].eject(Instant::now());
        for _ in 0..50 {
            let chosen = pick(&all, &[all[1].clone()], Instant::now()).unwrap();
            assert_eq!(chosen.name, "r2");
        }
        assert!(pick(&all, &all, Instant::now()).is_none(), "nothing left to try");
    }

    #[tokio::test(start_paused = true)]
    async fn when_every_replica_left_is_ejected_they_are_tried_anyway() {
        let all = backends(2);
        all[0].eject(Instant::now());
        all[1].eject(Instant::now());
        assert!(pick(&all, &[], Instant::now()).is_some());
        assert_eq!(pick(&all, &[all[0].clone()], Instant::now()).unwrap().name, "r1");
    }

    #[tokio::test(start_paused = true)]
    async fn ejection_backs_off_doubling_and_ends_with_time_or_success() {
        let backend = &backends(1)[0];
        assert_eq!(backend.eject(Instant::now()), Duration::from_secs(1));
        assert!(backend.is_ejected(Instant::now()));
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(!backend.is_ejected(Instant::now()), "over after its back-off");
        assert_eq!(backend.eject(Instant::now()), Duration::from_secs(2), "the second in a row lasts twice as long");
        tokio::time::advance(Duration::from_millis(1500)).await;
        assert!(backend.is_ejected(Instant::now()));
        backend.succeeded();
        assert!(!backend.is_ejected(Instant::now()), "an answer ends it");
        assert_eq!(backend.eject(Instant::now()), Duration::from_secs(1), "and starts the streak over");
        for _ in 0..10 {
            backend.eject(Instant::now());
        }
        assert_eq!(backend.eject(Instant::now()), EJECT_MAX);
    }

    #[test]
    fn outstanding_counts_until_the_guard_goes() {
        let backend = &backends(1)[0];
        let guard = backend.start();
        assert_eq!(backend.outstanding(), 1);
        drop(guard);
        assert_eq!(backend.outstanding(), 0);
    }
}
