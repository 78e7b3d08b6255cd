//! Proton and workload status vocabulary, and "worst state wins" aggregation.

use serde::{Deserialize, Serialize};

/// The full proton vocabulary; the workload shows a subset of it (see [`ProtonStatus::for_workload`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ProtonStatus {
    #[default]
    Unknown,
    Submitted,
    Initializing,
    Provisioning,
    Launching,
    Running,
    Suspended,
    Warming,
    Draining,
    Interrupted,
    Restarting,
    Stopping,
    Stopped,
    Errored,
    Terminated,
}

impl ProtonStatus {
    pub const ALL: [ProtonStatus; 15] = [
        Self::Unknown,
        Self::Submitted,
        Self::Initializing,
        Self::Provisioning,
        Self::Launching,
        Self::Running,
        Self::Suspended,
        Self::Warming,
        Self::Draining,
        Self::Interrupted,
        Self::Restarting,
        Self::Stopping,
        Self::Stopped,
        Self::Errored,
        Self::Terminated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Submitted => "submitted",
            Self::Initializing => "initializing",
            Self::Provisioning => "provisioning",
            Self::Launching => "launching",
            Self::Running => "running",
            Self::Suspended => "suspended",
            Self::Warming => "warming",
            Self::Draining => "draining",
            Self::Interrupted => "interrupted",
            Self::Restarting => "restarting",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Errored => "errored",
            Self::Terminated => "terminated",
        }
    }

    pub fn parse(text: &str) -> Option<ProtonStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// How bad a replica in this state is for its proton: the highest rank wins the aggregate.
    /// Order from the spec's decisions: errored > terminated > interrupted > unknown > submitted >
    /// provisioning > launching > initializing > restarting > warming > running.
    fn severity(self) -> u8 {
        match self {
            Self::Errored => 14,
            Self::Terminated => 13,
            Self::Interrupted => 12,
            Self::Stopping => 11,
            Self::Unknown => 10,
            Self::Submitted => 9,
            Self::Provisioning => 8,
            Self::Launching => 7,
            Self::Initializing => 6,
            Self::Restarting => 5,
            Self::Warming => 4,
            Self::Suspended => 3,
            Self::Draining => 2,
            Self::Stopped => 1,
            Self::Running => 0,
        }
    }

    /// The workload-level view of a proton status: proton-only states never reach the workload.
    pub fn for_workload(self) -> ProtonStatus {
        match self {
            Self::Initializing | Self::Restarting => Self::Launching,
            Self::Warming | Self::Draining => Self::Running,
            other => other,
        }
    }

    /// Terminal for clients that wait for `running`.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Errored | Self::Terminated)
    }
}

impl std::fmt::Display for ProtonStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Worst state wins; `None` for no states at all.
pub fn worst(states: impl IntoIterator<Item = ProtonStatus>) -> Option<ProtonStatus> {
    states.into_iter().max_by_key(|s| s.severity())
}

#[cfg(test)]
mod tests {
    use super::ProtonStatus::*;
    use super::*;

    #[test]
    fn one_bad_replica_decides() {
        assert_eq!(worst([Running, Errored, Running]), Some(Errored));
        assert_eq!(worst([Running, Launching]), Some(Launching));
        assert_eq!(worst([Running, Running]), Some(Running));
        assert_eq!(worst([Launching, Provisioning]), Some(Provisioning));
        assert_eq!(worst([]), None);
    }

    #[test]
    fn workload_never_shows_proton_only_states() {
        for s in ProtonStatus::ALL {
            let w = s.for_workload();
            assert!(!matches!(w, Initializing | Restarting | Warming | Draining), "{s} -> {w}");
        }
    }

    #[test]
    fn names_round_trip() {
        for s in ProtonStatus::ALL {
            assert_eq!(ProtonStatus::parse(s.as_str()), Some(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
    }
}
