//! `/otel/workload/{id}/...`: what a workload's replicas printed, read from the agents that run
//! them ([`logs`], live in [`follow`]), and the recent invoke spans this gateway made ([`traces`]).

mod agents;
pub mod follow;
pub mod logs;
pub mod traces;

pub use agents::AgentLinks;
