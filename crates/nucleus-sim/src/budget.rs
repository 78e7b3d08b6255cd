//! Bounds on the search, so that pathological histories end in a timeout instead of hanging.

use std::time::{Duration, Instant};

/// How much work a check may do before giving up with [`Verdict::Timeout`](crate::Verdict).
///
/// The budget is shared by all keys of one [`check_history`](crate::check_history) call.
/// Prefer [`Budget::Steps`] in deterministic simulations: its verdicts do not depend on the
/// speed of the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// At most this many search steps (one step tries or undoes one operation).
    Steps(u64),
    /// At most this much wall-clock time.
    Time(Duration),
    /// No bound.
    Unlimited,
}

/// How often (in steps) a time budget reads the clock.
const CLOCK_EVERY: u32 = 1024;

/// The remaining budget of a running check.
#[derive(Debug)]
pub(crate) struct Meter {
    steps_left: Option<u64>,
    deadline: Option<Instant>,
    until_clock: u32,
    exhausted: bool,
}

impl Meter {
    /// Starts spending `budget` now.
    pub(crate) fn start(budget: Budget) -> Self {
        let (steps_left, deadline) = match budget {
            Budget::Steps(n) => (Some(n), None),
            // A deadline too far to represent is no deadline.
            Budget::Time(d) => (None, Instant::now().checked_add(d)),
            Budget::Unlimited => (None, None),
        };
        Meter { steps_left, deadline, until_clock: 0, exhausted: false }
    }

    /// Spends one step; false once the budget is exhausted.
    pub(crate) fn tick(&mut self) -> bool {
        if self.exhausted {
            return false;
        }
        if let Some(left) = self.steps_left.as_mut() {
            match left.checked_sub(1) {
                Some(rest) => *left = rest,
                None => self.exhausted = true,
            }
        }
        if let Some(deadline) = self.deadline {
            if self.until_clock == 0 {
                self.until_clock = CLOCK_EVERY;
                self.exhausted |= Instant::now() >= deadline;
            }
            self.until_clock -= 1;
        }
        !self.exhausted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_budget_allows_exactly_that_many_steps() {
        let mut meter = Meter::start(Budget::Steps(3));
        assert!((0..3).all(|_| meter.tick()));
        assert!(!meter.tick());
        assert!(!meter.tick());
    }

    #[test]
    fn zero_time_budget_is_exhausted_at_once() {
        let mut meter = Meter::start(Budget::Time(Duration::ZERO));
        assert!(!meter.tick());
    }

    #[test]
    fn huge_time_budget_is_unlimited() {
        let mut meter = Meter::start(Budget::Time(Duration::MAX));
        assert!((0..5000).all(|_| meter.tick()));
    }
}
