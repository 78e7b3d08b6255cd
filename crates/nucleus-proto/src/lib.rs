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
