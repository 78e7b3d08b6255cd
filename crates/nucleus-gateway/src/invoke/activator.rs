//! The activator: a request for a workload resting at zero replicas (or whose replicas are all
//! still starting after a wake) is held here, the schedulers are told at once (not on their next
//! tick), and the request goes on as soon as the route has a ready replica. Bounded per workload
//! (`Limits::max_held_per_workload`) and in time (`Limits::activator_timeout`); past either, 503
//! with `Retry-After`, never a dropped connection.

use std::sync::Arc;
use std::time::Duration;

use nucleus_api::DesiredState;
use tokio::time::Instant;

use crate::AppState;
use crate::error::ApiError;
use crate::route_table::Route;

/// How often a held request asks again (meta, and the schedulers) in case a notification was lost.
const RECHECK_EVERY: Duration = Duration::from_millis(250);

/// Holds the request until `route`'s workload has a ready replica; returns the route with it.
pub(crate) async fn hold(state: &AppState, workload_id: &str, route: Arc<Route>) -> Result<Arc<Route>, ApiError> {
    let limits = &state.config.limits;
    let load = route.load.clone();
    let Some(_held) = load.hold(limits.max_held_per_workload) else {
        return Err(ApiError::Unavailable(format!(
            "Workload {workload_id} is starting from zero replicas and {} requests already wait for it at this gateway \
             (--max-held-per-workload); retry in a few seconds",
            limits.max_held_per_workload
        )));
    };
    let _counted = crate::metrics::metrics().held(workload_id);
    let proton = route.proton.clone().unwrap_or_default();
    state.load.wake(workload_id, &proton, load.queued());
    let deadline = Instant::now() + limits.activator_timeout;
    let mut woken_at = Instant::now();
    loop {
        let ready = load.ready.notified();
        tokio::pin!(ready);
        ready.as_mut().enable();
        let current = state.routes.serving(workload_id).await?.ok_or_else(|| ApiError::workload_not_found(workload_id))?;
        if !current.backends.is_empty() {
            return Ok(current);
        }
        if current.desired == DesiredState::Stopped {
            return Err(super::no_ready_replica(workload_id, &current));
        }
        if Instant::now() >= deadline {
            return Err(ApiError::Unavailable(format!(
                "Workload {workload_id} has no ready replica after {}s of waiting for one to start (--activator-timeout): \
                 see GET /api/v2/workloads/{workload_id} for its status, then retry",
                limits.activator_timeout.as_secs()
            )));
        }
        if woken_at.elapsed() >= Duration::from_secs(1) {
            // A scheduler that connected after the first wake hears of it too.
            state.load.wake(workload_id, &proton, load.queued());
            woken_at = Instant::now();
        }
        tokio::select! {
            () = &mut ready => {}
            () = tokio::time::sleep(RECHECK_EVERY) => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}
