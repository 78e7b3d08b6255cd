//! Drivers run protons. The process driver runs each replica as a host process; a Kubernetes
//! driver can later implement the same [`Driver`] trait.

pub mod process;
mod spec;

use std::time::Duration;

use futures::future::BoxFuture;

pub use spec::{ContainerSpec, ProbeScheme, ProbeSpec, ProtonSpec};

use crate::error::Error;

/// Runs protons and publishes their status (through the status hub it is built with).
pub trait Driver: Send + Sync + 'static {
    /// Reported by `Info`, e.g. "process".
    fn kind(&self) -> &'static str;
    /// Starts a proton, re-scales it when it runs with the same spec, or replaces its replicas
    /// when the spec differs. Returns once the replicas are under way, not when they are ready.
    fn launch(&self, spec: ProtonSpec) -> BoxFuture<'_, Result<(), Error>>;
    /// Begins stopping a proton: SIGTERM (or the driver's equivalent), forced after `grace`.
    fn stop(&self, proton_id: String, grace: Duration) -> BoxFuture<'_, Result<(), Error>>;
    /// Stops every proton with a short grace and resolves once all of them are gone.
    fn shutdown(&self) -> BoxFuture<'_, ()>;
}
