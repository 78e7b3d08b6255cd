//! `/otel/workload/{id}/...`: what a workload's replicas printed, read from the agents that run
//! them ([`logs`]), and the recent invoke spans this gateway made ([`traces`]).

mod agents;
pub mod logs;
pub mod traces;

pub use agents::AgentLinks;
