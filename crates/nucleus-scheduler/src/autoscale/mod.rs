//! Autoscaling: the signals of every group (gateways' request load, agents' CPU and scraped
//! metrics, in memory only), the pure [`decider`], and the per-proton state the worker keeps.

pub mod decider;

pub use decider::{Decision, Group, Observation, Scaler, Settings};
