//! Generated gRPC code for Nucleus' internal services, built from `proto/` by protox (no system
//! `protoc` needed).

pub mod meta {
    pub mod v1 {
        tonic::include_proto!("nucleus.meta.v1");
    }
}

pub mod raft {
    pub mod v1 {
        tonic::include_proto!("nucleus.raft.v1");
    }
}

pub mod agent {
    pub mod v1 {
        tonic::include_proto!("nucleus.agent.v1");
    }
}

pub mod gateway {
    pub mod v1 {
        tonic::include_proto!("nucleus.gateway.v1");
    }
}

/// gRPC metadata keys that servers set and clients read: defined here once for both.
pub mod metadata {
    /// On UNAVAILABLE from a meta node that does not lead the group: the leader's node id (decimal).
    pub const LEADER_ID: &str = "nucleus-leader-id";
    /// On UNAVAILABLE from a meta node that does not lead the group: the leader's `host:port`.
    pub const LEADER_ADDR: &str = "nucleus-leader-addr";
    /// On OUT_OF_RANGE from a watch whose start is compacted: the newest revision whose changes are gone.
    pub const COMPACT_REVISION: &str = "nucleus-compact-revision";
}
