//! What a gated replacement's candidate showed: its requests since the current phase began,
//! summed from the per-minute statistics every gateway writes (`stats/<workload>/<proton>/...`).

use nucleus_api::replacement::GateReading;
use nucleus_api::stats::MinuteStats;
use nucleus_client::{MetaClient, keys};

use crate::Error;

/// The candidate `proton`'s requests in the minutes from `since` on (the minute of `since`
/// included: the candidate took no traffic before its phase began).
pub(super) async fn gate_reading(
    meta: &MetaClient,
    workload: &str,
    proton: &str,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<GateReading, Error> {
    let first_minute = since.timestamp().div_euclid(60);
    let mut sum = MinuteStats::default();
    for doc in meta.list_json::<MinuteStats>(&keys::stats_of_proton(workload, proton)).await? {
        // stats/<workload>/<proton>/<minute>/<gateway>
        let minute = doc.key.rsplit('/').nth(1).and_then(|m| m.parse::<i64>().ok());
        if minute.is_some_and(|m| m >= first_minute) {
            sum.merge(&doc.value);
        }
    }
    Ok(GateReading { requests: sum.total, server_errors: sum.server_errors, p95_ms: sum.latency_quantile_ms(0.95) })
}
