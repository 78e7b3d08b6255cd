//! The one clock every time-driven rule reads (draft TTLs, leases, event times, stats minutes).
//!
//! It is the wall clock shifted by how far tokio's clock has run ahead of the real one: in
//! production the two agree and this is `Utc::now()`; under `#[tokio::test(start_paused = true)]`
//! (or `tokio::time::pause`) it stops with tokio's clock and jumps with `tokio::time::advance`, so a
//! test of an 8-hour TTL takes no time. Code reads the time only through [`now`] (clippy's
//! `disallowed-methods` refuses `Utc::now` elsewhere).

use chrono::{DateTime, TimeDelta, Utc};

/// The current time.
#[allow(clippy::disallowed_methods)] // the one place that reads the wall clock
pub fn now() -> DateTime<Utc> {
    let wall = Utc::now();
    let virtual_now = tokio::time::Instant::now().into_std();
    let real_now = std::time::Instant::now();
    let ahead = match virtual_now.checked_duration_since(real_now) {
        Some(ahead) => TimeDelta::from_std(ahead).unwrap_or(TimeDelta::MAX),
        None => -TimeDelta::from_std(real_now.duration_since(virtual_now)).unwrap_or(TimeDelta::MAX),
    };
    wall.checked_add_signed(ahead).unwrap_or(wall)
}

/// Milliseconds since the Unix epoch, as [`now`] sees it.
pub fn now_millis() -> i64 {
    now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn outside_a_paused_runtime_it_is_the_wall_clock() {
        #[allow(clippy::disallowed_methods)]
        let wall = Utc::now();
        let ours = now();
        assert!((ours - wall).num_milliseconds().abs() < 1_000, "{ours} vs {wall}");
    }

    #[tokio::test(start_paused = true)]
    async fn on_paused_time_it_stands_still_and_jumps_with_tokio() {
        let before = now();
        std::thread::sleep(Duration::from_millis(20));
        let still = now();
        assert!((still - before).num_milliseconds().abs() <= 2, "stood still: {before} then {still}");
        tokio::time::advance(Duration::from_secs(8 * 3600)).await;
        let later = now();
        let moved = later - before;
        assert!((moved - TimeDelta::hours(8)).num_milliseconds().abs() <= 2, "moved by {moved}");
    }
}
