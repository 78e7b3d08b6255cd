//! What a drill showed users, and whether that is within its thresholds.

use std::time::Duration;

use crate::load::{Kind, Outcome};

/// What a drill must hold to pass. Acknowledged writes lost and replicas placed twice must be 0
/// in every drill.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub min_write_availability: f64,
    pub min_invoke_availability: f64,
    pub max_recovery: Duration,
}

#[derive(Debug)]
pub struct Report {
    pub drill: &'static str,
    pub writes: (usize, usize),
    pub invokes: (usize, usize),
    pub longest_error_window: Duration,
    /// The slowest request (a stall shows here even when nothing failed).
    pub slowest: Duration,
    /// From the fault's removal (or, for a fault that is not removed, its start) to the last
    /// failed request; `None` when requests were still failing at the end.
    pub recovery: Option<Duration>,
    pub acked_writes: usize,
    pub lost: Vec<String>,
    pub placed_twice: Vec<String>,
    pub thresholds: Thresholds,
    pub notes: Vec<String>,
}

fn share(ok_total: (usize, usize)) -> f64 {
    if ok_total.1 == 0 { 1.0 } else { ok_total.0 as f64 / ok_total.1 as f64 }
}

impl Report {
    pub fn write_availability(&self) -> f64 {
        share(self.writes)
    }

    pub fn invoke_availability(&self) -> f64 {
        share(self.invokes)
    }

    /// Why it failed, if it did.
    pub fn failures(&self) -> Vec<String> {
        let t = &self.thresholds;
        let mut failures = Vec::new();
        if !self.lost.is_empty() {
            failures.push(format!(
                "{} acknowledged writes lost: {}",
                self.lost.len(),
                self.lost.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        if !self.placed_twice.is_empty() {
            failures.push(format!("replicas placed twice: {}", self.placed_twice.join(", ")));
        }
        if self.write_availability() < t.min_write_availability {
            failures.push(format!(
                "write availability {:.2}% < {:.0}%",
                self.write_availability() * 100.0,
                t.min_write_availability * 100.0
            ));
        }
        if self.invoke_availability() < t.min_invoke_availability {
            failures.push(format!(
                "invoke availability {:.2}% < {:.0}%",
                self.invoke_availability() * 100.0,
                t.min_invoke_availability * 100.0
            ));
        }
        match self.recovery {
            None => failures.push("requests were still failing when the drill ended".to_owned()),
            Some(r) if r > t.max_recovery => {
                failures.push(format!("recovered in {:.1} s > {:.0} s", r.as_secs_f64(), t.max_recovery.as_secs_f64()))
            }
            Some(_) => {}
        }
        failures
    }
}

/// (ok, total) of `kind`.
pub fn counts(outcomes: &[Outcome], kind: Kind) -> (usize, usize) {
    let of_kind = outcomes.iter().filter(|o| o.kind == kind);
    (of_kind.clone().filter(|o| o.ok).count(), of_kind.count())
}

/// The longest time requests of one kind kept failing: from a failure to the next success of
/// that kind (or to `end`).
pub fn longest_error_window(outcomes: &[Outcome], end: Duration) -> Duration {
    let mut longest = Duration::ZERO;
    for kind in [Kind::Write, Kind::Invoke] {
        let mut sorted: Vec<&Outcome> = outcomes.iter().filter(|o| o.kind == kind).collect();
        sorted.sort_by_key(|o| o.at);
        let mut failing_since = None;
        for outcome in sorted {
            match (outcome.ok, failing_since) {
                (false, None) => failing_since = Some(outcome.at),
                (true, Some(since)) => {
                    longest = longest.max(outcome.at.saturating_sub(since));
                    failing_since = None;
                }
                _ => {}
            }
        }
        if let Some(since) = failing_since {
            longest = longest.max(end.saturating_sub(since));
        }
    }
    longest
}

/// Time from `healed` to the last failure after it; `None` if one came in the last `quiet`
/// before `end` (not known to have recovered).
pub fn recovery(outcomes: &[Outcome], healed: Duration, end: Duration, quiet: Duration) -> Option<Duration> {
    let last_failure = outcomes.iter().filter(|o| !o.ok && o.at >= healed).map(|o| o.at).max();
    match last_failure {
        None => Some(Duration::ZERO),
        Some(at) if at + quiet > end => None,
        Some(at) => Some(at - healed),
    }
}

pub fn print(reports: &[Report]) {
    println!();
    println!(
        "{:<18} {:>9} {:>9} {:>12} {:>9} {:>9} {:>6} {:>5} {:>6}  result",
        "drill", "writes", "invokes", "worst error", "slowest", "recovery", "acked", "lost", "twice"
    );
    for r in reports {
        let recovery = r.recovery.map_or("never".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()));
        let failures = r.failures();
        let verdict = if failures.is_empty() { "PASS".to_owned() } else { format!("FAIL: {}", failures.join("; ")) };
        println!(
            "{:<18} {:>8.2}% {:>8.2}% {:>10.1} s {:>7.2} s {:>9} {:>6} {:>5} {:>6}  {verdict}",
            r.drill,
            r.write_availability() * 100.0,
            r.invoke_availability() * 100.0,
            r.longest_error_window.as_secs_f64(),
            r.slowest.as_secs_f64(),
            recovery,
            r.acked_writes,
            r.lost.len(),
            r.placed_twice.len(),
        );
        for note in &r.notes {
            println!("{:<18} {note}", "");
        }
    }
    println!();
    println!(
        "writes/invokes: share of requests that succeeded over the drill (faults included); worst error: the longest time one kind of"
    );
    println!("request kept failing; slowest: the longest any request took (a stall that ended in success shows here); recovery: from");
    println!("the fault's end to the last failed request; acked: writes acknowledged and read back;");
    println!("lost: acknowledged writes missing afterwards; twice: replica names running as two processes once the drill settled.");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64, kind: Kind, ok: bool) -> Outcome {
        Outcome { at: Duration::from_millis(ms), kind, ok, took: Duration::ZERO }
    }

    #[test]
    fn windows_and_recovery_are_read_from_the_outcomes() {
        let outcomes = [
            at(0, Kind::Write, true),
            at(100, Kind::Write, false),
            at(900, Kind::Write, false),
            at(1500, Kind::Write, true),
            at(200, Kind::Invoke, false),
            at(400, Kind::Invoke, true),
            at(5000, Kind::Write, true),
        ];
        assert_eq!(longest_error_window(&outcomes, Duration::from_secs(6)), Duration::from_millis(1400));
        assert_eq!(counts(&outcomes, Kind::Write), (3, 5));
        assert_eq!(
            recovery(&outcomes, Duration::from_millis(50), Duration::from_secs(6), Duration::from_secs(3)),
            Some(Duration::from_millis(850))
        );
        assert_eq!(recovery(&outcomes, Duration::from_millis(50), Duration::from_millis(2000), Duration::from_secs(3)), None);
        assert_eq!(recovery(&outcomes, Duration::from_secs(2), Duration::from_secs(6), Duration::from_secs(3)), Some(Duration::ZERO));
        let still_failing = [at(0, Kind::Invoke, false)];
        assert_eq!(longest_error_window(&still_failing, Duration::from_secs(2)), Duration::from_secs(2));
    }
}
