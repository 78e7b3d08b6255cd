//! `/otel/workload/{id}/...`: what a workload's replicas printed, read from the agents that run
//! them ([`logs`], live in [`follow`]), the recent invoke spans this gateway made ([`traces`]) and the
//! metrics collected for every workload ([`metrics`]).

mod agents;
pub mod follow;
pub mod logs;
pub mod metrics;
pub mod traces;

pub use agents::AgentLinks;
