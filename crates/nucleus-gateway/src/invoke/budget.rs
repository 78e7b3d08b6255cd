//! How many retries a workload may have: like Linkerd's retry budget, each request adds a fifth of
//! a retry to its workload's budget and each retry spends a whole one, plus a floor of 10 retries a
//! second so a quiet workload can still retry. A broken deployment therefore sees at most about
//! 20 % more requests than its callers send, not three times as many.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use tokio::time::Instant;

/// Retries earned per request, in thousandths.
const PER_REQUEST: i64 = 200;
const RETRY: i64 = 1000;
/// Retries a second allowed whatever the traffic.
const FLOOR_PER_SECOND: i64 = 10;
/// What can be saved up: a burst of this many retries.
const CAP: i64 = 100 * RETRY;

#[derive(Debug)]
pub struct RetryBudget {
    /// Thousandths of a retry available.
    balance: AtomicI64,
    /// Milliseconds after `since` of the last floor top-up.
    topped_up_ms: AtomicU64,
    since: Instant,
}

impl Default for RetryBudget {
    fn default() -> RetryBudget {
        RetryBudget { balance: AtomicI64::new(FLOOR_PER_SECOND * RETRY), topped_up_ms: AtomicU64::new(0), since: Instant::now() }
    }
}

impl RetryBudget {
    /// A request was made.
    pub fn deposit(&self) {
        if self.balance.load(Ordering::Relaxed) < CAP {
            self.balance.fetch_add(PER_REQUEST, Ordering::Relaxed);
        }
    }

    /// Takes one retry if the budget has one.
    pub fn withdraw(&self, now: Instant) -> bool {
        self.top_up(now);
        let mut balance = self.balance.load(Ordering::Relaxed);
        while balance >= RETRY {
            match self.balance.compare_exchange_weak(balance, balance - RETRY, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now_balance) => balance = now_balance,
            }
        }
        false
    }

    /// Adds the floor's retries for the whole seconds since the last top-up, up to a second's worth
    /// more than the floor (so idle time does not save up a flood).
    fn top_up(&self, now: Instant) {
        let now_ms = now.saturating_duration_since(self.since).as_millis() as u64;
        let last = self.topped_up_ms.load(Ordering::Relaxed);
        let seconds = (now_ms.saturating_sub(last) / 1000) as i64;
        if seconds == 0
            || self.topped_up_ms.compare_exchange(last, last + seconds as u64 * 1000, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
            return;
        }
        let floor = FLOOR_PER_SECOND * RETRY;
        let mut balance = self.balance.load(Ordering::Relaxed);
        while balance < floor {
            let topped = (balance + seconds * floor).min(floor);
            match self.balance.compare_exchange_weak(balance, topped, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return,
                Err(now_balance) => balance = now_balance,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn retries_are_about_a_fifth_of_requests_beyond_the_floor() {
        let budget = RetryBudget::default();
        let mut granted = 0;
        // The floor: 10 at once.
        while budget.withdraw(Instant::now()) {
            granted += 1;
        }
        assert_eq!(granted, 10);
        // 1,000 requests in the same second earn 200 retries.
        for _ in 0..1000 {
            budget.deposit();
        }
        granted = 0;
        while budget.withdraw(Instant::now()) {
            granted += 1;
        }
        assert_eq!(granted, 100, "capped at a burst of 100");
        for _ in 0..100 {
            budget.deposit();
        }
        granted = 0;
        while budget.withdraw(Instant::now()) {
            granted += 1;
        }
        assert_eq!(granted, 20);
    }

    #[tokio::test(start_paused = true)]
    async fn the_floor_comes_back_each_second_without_saving_up() {
        let budget = RetryBudget::default();
        while budget.withdraw(Instant::now()) {}
        assert!(!budget.withdraw(Instant::now()));
        tokio::time::advance(Duration::from_secs(60)).await;
        let mut granted = 0;
        while budget.withdraw(Instant::now()) {
            granted += 1;
        }
        assert_eq!(granted, 10, "a minute of quiet gives one second's floor, not sixty");
    }
}
