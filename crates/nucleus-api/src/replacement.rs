//! `Replacement` (docs/api/README.md, "Replacement"): a rolling replacement of a workload's proton, and the records of
//! the workload's history (past replacements and promotions).

use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};

use crate::WorkloadRuntime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplacementStatus {
    #[default]
    Unknown,
    Submitted,
    Initializing,
    Promoting,
    Finalizing,
    Completed,
    Errored,
    Deleting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplacementStrategy {
    #[default]
    Rolling,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplacementConfig {
    #[serde(default)]
    pub warmup_duration_minutes: u32,
    #[serde(default)]
    pub keep_old_version_minutes: u32,
    /// An SLO gate: the candidate is watched on a canary share of the traffic, then on all of it
    /// (the old proton kept running meanwhile), and rolled back on a breach. Without it a ready
    /// candidate takes all traffic at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackGate>,
}

/// `config.rollback`: what a candidate must hold to keep the traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackGate {
    /// The most server errors (5xx answers, and requests no replica answered) the candidate may
    /// give, as a share of its requests, 0 to 1.
    pub max_error_rate: f64,
    /// The slowest 95th-percentile response time the candidate may show, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p95_latency_ms: Option<u64>,
    /// How long each phase (canary, then all traffic) is watched: an ISO 8601 duration such as
    /// `PT1M` (the default) or `PT30S`, from 10 seconds to a day.
    #[serde(default = "default_window")]
    pub window: String,
    /// The share of requests the candidate gets while it is a canary, 1 to 99 (default 10).
    #[serde(default = "default_canary_percent")]
    pub canary_percent: u8,
    /// The fewest requests a phase must see before its measurements can fail the gate (default
    /// 20): a single error of a single request is not a 100% error rate.
    #[serde(default = "default_min_requests")]
    pub min_requests: u32,
}

fn default_window() -> String {
    "PT1M".to_owned()
}

fn default_canary_percent() -> u8 {
    10
}

fn default_min_requests() -> u32 {
    20
}

impl RollbackGate {
    /// The window, or why it cannot be read.
    pub fn window(&self) -> Result<std::time::Duration, String> {
        let seconds = iso_seconds(&self.window)
            .ok_or_else(|| format!("'{}' is not an ISO 8601 duration of hours, minutes and seconds, e.g. PT1M or PT30S", self.window))?;
        if !(10..=86_400).contains(&seconds) {
            return Err(format!("{} is {seconds} s; a window is from 10 seconds (PT10S) to a day (PT24H)", self.window));
        }
        Ok(std::time::Duration::from_secs(seconds))
    }

    /// Each field that is out of its range: (field, what is wrong).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !(0.0..=1.0).contains(&self.max_error_rate) {
            problems.push(("maxErrorRate", format!("{} is not a share from 0 to 1 (0.01 is 1%)", self.max_error_rate)));
        }
        if let Err(err) = self.window() {
            problems.push(("window", err));
        }
        if !(1..=99).contains(&self.canary_percent) {
            problems.push(("canaryPercent", format!("{} is not from 1 to 99", self.canary_percent)));
        }
        if self.min_requests == 0 {
            problems.push(("minRequests", "must be at least 1".to_owned()));
        }
        problems
    }

    /// What the candidate showed over a phase, if it breaks the gate: why.
    pub fn breach(&self, reading: &GateReading) -> Option<String> {
        if reading.requests < u64::from(self.min_requests) {
            return None;
        }
        if reading.error_rate() > self.max_error_rate {
            return Some(format!("error rate {:.1}% > {:.1}%", reading.error_rate() * 100.0, self.max_error_rate * 100.0));
        }
        match self.max_p95_latency_ms {
            Some(max) if reading.p95_ms > max as f64 => Some(format!("p95 latency {} ms > {max} ms", reading.p95_ms)),
            _ => None,
        }
    }
}

/// `PT1H30M`, `PT45S`, `PT1.5M`…: seconds; days and longer are not accepted.
fn iso_seconds(text: &str) -> Option<u64> {
    let rest = text.strip_prefix("PT")?;
    if rest.is_empty() {
        return None;
    }
    let (mut total, mut number) = (0.0f64, String::new());
    for c in rest.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'H' | 'M' | 'S' => {
                let value: f64 = number.parse().ok()?;
                total += value
                    * match c {
                        'H' => 3600.0,
                        'M' => 60.0,
                        _ => 1.0,
                    };
                number.clear();
            }
            _ => return None,
        }
    }
    (number.is_empty() && total.is_finite()).then_some(total.round() as u64)
}

/// A candidate's requests over one phase of the gate, summed from its per-minute statistics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GateReading {
    pub requests: u64,
    pub server_errors: u64,
    pub p95_ms: f64,
}

impl GateReading {
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 { 0.0 } else { self.server_errors as f64 / self.requests as f64 }
    }
}

impl std::fmt::Display for GateReading {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests, {} server errors ({:.1}%), p95 {} ms",
            self.requests,
            self.server_errors,
            self.error_rate() * 100.0,
            self.p95_ms
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Replacement {
    pub id: String,
    pub name: String,
    pub workload_id: String,
    pub candidate_artifact_id: String,
    #[serde(default)]
    pub candidate_proton_ids: Vec<String>,
    #[serde(default)]
    pub previous_proton_ids: Vec<String>,
    pub status: ReplacementStatus,
    pub strategy: ReplacementStrategy,
    #[serde(default)]
    pub config: ReplacementConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<WorkloadRuntime>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub switched_at: Option<DateTime<Utc>>,
    /// With a rollback gate: when the candidate started to take its canary share of the traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_started_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub deleted_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub is_deleted: bool,
    pub tenant_id: String,
    pub user_id: String,
}

impl Replacement {
    /// A new record, created `now` by `user_id`, of moving `workload_id` onto `candidate_artifact_id`;
    /// its id sorts by time like an event's. Callers set the proton ids, config, runtime and message.
    pub fn new(
        name: String,
        workload_id: &str,
        candidate_artifact_id: &str,
        status: ReplacementStatus,
        user_id: &str,
        tenant_id: &str,
        now: DateTime<Utc>,
    ) -> Replacement {
        Replacement {
            id: crate::event::event_id(now),
            name,
            workload_id: workload_id.to_owned(),
            candidate_artifact_id: candidate_artifact_id.to_owned(),
            candidate_proton_ids: Vec::new(),
            previous_proton_ids: Vec::new(),
            status,
            strategy: ReplacementStrategy::Rolling,
            config: ReplacementConfig::default(),
            runtime: None,
            message: None,
            switched_at: None,
            canary_started_at: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
            is_deleted: false,
            tenant_id: tenant_id.to_owned(),
            user_id: user_id.to_owned(),
        }
    }
}

impl ReplacementStatus {
    /// Finished: another replacement may start. (`errored` stays visible on the workload.)
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Errored)
    }
}

impl crate::Workload {
    /// The replacement recorded on the workload (under way, or the last one that errored).
    pub fn replacement_record(&self) -> Option<Replacement> {
        self.replacement.clone()
    }

    /// The replacement under way, if any.
    pub fn active_replacement(&self) -> Option<Replacement> {
        self.replacement_record().filter(|r| !r.status.is_terminal())
    }
}

/// `POST /workloads/{id}/replacement`. `strategy` is read as text so that a wrong value is a 422
/// naming the field rather than a parse error.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StartReplacementRequest {
    pub artifact_id: String,
    pub strategy: String,
    #[serde(default)]
    pub config: Option<ReplacementConfig>,
    #[serde(default)]
    pub runtime: Option<WorkloadRuntime>,
}

/// `PATCH /workloads/{id}/settings`: a rolling replacement onto the same artifact.
#[derive(Debug, Clone, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateSettingsRequest {
    pub runtime: WorkloadRuntime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_reads_and_writes_the_spec_field_names() {
        let json = serde_json::json!({
            "id": "r1", "name": "promote", "workloadId": "w1", "candidateArtifactId": "a1",
            "status": "completed", "strategy": "rolling", "config": {"warmupDurationMinutes": 2},
            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
            "tenantId": "00000000-0000-4000-8000-000000000000", "userId": "u1"
        });
        let parsed: Replacement = serde_json::from_value(json).unwrap();
        assert_eq!(
            (parsed.status, parsed.config.warmup_duration_minutes, parsed.config.keep_old_version_minutes),
            (ReplacementStatus::Completed, 2, 0)
        );
        let back = serde_json::to_value(&parsed).unwrap();
        assert_eq!(back["candidateArtifactId"], "a1");
        assert_eq!(back["isDeleted"], false);
        assert_eq!(back["candidateProtonIds"], serde_json::json!([]));
    }

    #[test]
    fn a_rollback_gate_reads_its_window_checks_its_fields_and_judges_readings() {
        let gate: RollbackGate = serde_json::from_value(serde_json::json!({"maxErrorRate": 0.05, "maxP95LatencyMs": 300})).unwrap();
        assert_eq!((gate.window.as_str(), gate.canary_percent, gate.min_requests), ("PT1M", 10, 20));
        assert_eq!(gate.window(), Ok(std::time::Duration::from_secs(60)));
        for (window, seconds) in
            [("PT30S", Some(30)), ("PT1H2M3S", Some(3723)), ("PT1.5M", Some(90)), ("P1D", None), ("PT", None), ("PT5", None)]
        {
            assert_eq!(iso_seconds(window), seconds, "{window}");
        }
        let bad = RollbackGate { max_error_rate: 2.0, window: "PT5S".into(), canary_percent: 100, min_requests: 0, ..gate.clone() };
        let fields: Vec<&str> = bad.problems().iter().map(|(field, _)| *field).collect();
        assert_eq!(fields, ["maxErrorRate", "window", "canaryPercent", "minRequests"]);
        assert!(gate.problems().is_empty());

        let failing = GateReading { requests: 40, server_errors: 4, p95_ms: 50.0 };
        assert_eq!(gate.breach(&failing).as_deref(), Some("error rate 10.0% > 5.0%"));
        assert_eq!(gate.breach(&GateReading { requests: 10, server_errors: 10, p95_ms: 0.0 }), None, "too few requests to judge");
        let slow = GateReading { requests: 40, server_errors: 0, p95_ms: 500.0 };
        assert_eq!(gate.breach(&slow).as_deref(), Some("p95 latency 500 ms > 300 ms"));
        assert_eq!(gate.breach(&GateReading { requests: 40, server_errors: 1, p95_ms: 200.0 }), None);
    }
}
