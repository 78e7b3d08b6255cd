//! `/otel/workload/{id}/...`: what a workload's replicas printed, read from the agents that run
//! them ([`logs`]).

mod agents;
pub mod logs;

pub use agents::AgentLinks;
