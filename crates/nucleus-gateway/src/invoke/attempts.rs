//! The replicas one request tries, in order, and what the caller hears when none answers. Both
//! ways into the proxy (hyper's server and the fast HTTP/1.1 path) follow the same rules: at most
//! three replicas, retries only within the workload's budget, a failing replica ejected.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::backends::{self, Backend};
use crate::ApiError;
use crate::route_table::Route;

/// A request is tried on at most this many replicas.
const MAX_TRIES: usize = 3;

/// The replicas tried so far and why each failed.
#[derive(Debug)]
pub struct Attempts<'a> {
    route: &'a Route,
    workload_id: &'a str,
    tried: Vec<Arc<Backend>>,
    failures: Vec<String>,
}

impl<'a> Attempts<'a> {
    pub fn new(route: &'a Route, workload_id: &'a str) -> Attempts<'a> {
        Attempts { route, workload_id, tried: Vec::new(), failures: Vec::new() }
    }

    /// Whether no replica was tried yet.
    pub fn is_first(&self) -> bool {
        self.tried.is_empty()
    }

    /// The replica to try next; or, when none is left (or no retry is), the answer to give.
    pub fn next(&mut self, now: Instant) -> Result<Arc<Backend>, ApiError> {
        if self.tried.len() == MAX_TRIES {
            return Err(self.none_answered());
        }
        if !self.tried.is_empty() && !self.route.load.budget.withdraw(now) {
            self.failures.push("no retry left in the workload's retry budget".to_owned());
            return Err(self.none_answered());
        }
        backends::pick(&self.route.backends, &self.tried, now).ok_or_else(|| self.none_answered())
    }

    /// `backend` failed before answering: it is ejected for a while and not tried again.
    pub fn failed(&mut self, backend: Arc<Backend>, reason: &str) {
        let ejected_for = backend.eject(Instant::now());
        tracing::warn!(
            workload_id = self.workload_id,
            replica = backend.name,
            reason,
            ?ejected_for,
            "replica failed; ejected, retrying elsewhere"
        );
        self.failures.push(format!("replica {}: {reason}", backend.name));
        self.tried.push(backend);
    }

    fn none_answered(&self) -> ApiError {
        let id = self.workload_id;
        ApiError::Unavailable(format!(
            "No ready replica of workload {id} answered ({}); they may be restarting. Retry in a moment, or see GET \
             /api/v2/workloads/{id}/protons for their state.",
            self.failures.join("; ")
        ))
    }

    /// `backend` sent no answer within `timeout`.
    pub fn timed_out(&self, backend: &Backend, timeout: Duration) -> ApiError {
        ApiError::GatewayTimeout(format!(
            "Replica {} of workload {} sent no answer within {} s (runtime.invokeTimeoutSeconds, or the gateway's \
             --upstream-timeout); it may still be working on the request. Raise the timeout for slow calls.",
            backend.name,
            self.workload_id,
            timeout.as_secs()
        ))
    }

    /// `backend` closed the connection after the request (or part of it) went out.
    pub fn lost(&self, backend: &Backend, reason: &str) -> ApiError {
        ApiError::BadGateway(format!(
            "Replica {} of workload {} closed the connection before answering ({reason}); the request may have \
             been processed, so it was not sent again. Retry if it is safe to repeat.",
            backend.name, self.workload_id
        ))
    }
}
