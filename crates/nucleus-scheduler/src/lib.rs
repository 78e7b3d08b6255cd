//! The scheduler worker: reconciles what users asked for (workloads and protons in meta) with what
//! agents report (replicas), level-triggered.
//!
//! Inputs are three meta watches (protons, workloads, agents) and one status stream per agent;
//! outputs are agent calls (launch, stop) and fenced, conditional writes of proton status,
//! replica snapshots and workload status back to meta. The decision for one proton is the pure
//! function [`plan::plan`]; everything else here moves data in and out of it.

pub mod allocations;
pub mod autoscale;
mod bundles;
mod convert;
mod error;
mod exec;
mod inputs;
pub mod lease;
mod metrics;
pub mod placement;
pub mod plan;
pub mod replacement;
mod status_write;
#[cfg(test)]
mod test_support;
mod worker;

pub use error::Error;
pub use worker::{SchedulerConfig, run};
