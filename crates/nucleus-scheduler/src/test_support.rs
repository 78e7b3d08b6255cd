//! Documents the unit tests of plans and status writes build on.

use chrono::{DateTime, TimeZone, Utc};
use nucleus_api::{Container, DesiredState, Proton, ProtonStatus, WorkloadRuntime};

/// A fixed instant `seconds` after a reference time.
pub(crate) fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0).unwrap()
}

/// Proton `p` of workload `w`, generation 3, one replica, created at [`at`]`(0)`.
pub(crate) fn proton(desired: DesiredState, status: ProtonStatus, agent: Option<&str>) -> Proton {
    Proton {
        id: "p".into(),
        name: "p".into(),
        workload_id: "w".into(),
        artifact_id: "a".into(),
        role: None,
        status,
        status_details: Default::default(),
        endpoint: None,
        runtime: WorkloadRuntime::default(),
        running_since: None,
        replica_count: 1,
        created_at: at(0),
        updated_at: at(0),
        desired_state: desired,
        generation: 3,
        container: Container::default(),
        agent: agent.map(str::to_owned),
        message: None,
        traceparent: None,
    }
}
