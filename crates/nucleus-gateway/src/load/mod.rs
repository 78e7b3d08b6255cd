//! The autoscaler's signals from this gateway: each workload's request load, sampled every
//! 100 ms and reported every second over the internal gRPC service (`nucleus.gateway.v1`) to the
//! schedulers, which sum the gateways; a request held at zero replicas is reported at once.
//! Nothing here writes to meta but the gateway's registration (`gateways/<name>`, every 10 s).

mod register;
mod reporter;
mod service;

pub use register::register;
pub use reporter::LoadReporter;
pub use service::serve_internal;
