//! End-to-end tests: each starts the real `nucleus dev` binary on ephemeral ports in a temp dir
//! and drives it over HTTP. Real RocksDB, real gRPC, real child processes.

mod autoscaling;
mod bundles;
mod cli;
mod deployments;
mod errors;
mod failures;
mod full_disk;
mod harness;
mod invoke;
mod isolation;
mod lifecycle;
mod lifetime;
mod limits;
mod logs;
mod meta_failover;
mod metrics;
mod multi_host;
mod openapi;
mod persistence;
mod replacement;
mod repositories;
mod roles;
mod scale_out;
mod sharing;
mod stats;
mod tls;
mod traces;
