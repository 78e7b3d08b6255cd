use serde::{Deserialize, Serialize};

use chrono::{DateTime, Utc};

/// One step of a workload's story (`GET /workloads/{id}/events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEvent {
    pub id: String,
    pub workload_id: String,
    /// e.g. `workloadCreated`, `protonStatusChanged`, `workloadStopRequested`.
    pub event_type: String,
    pub timestamp: DateTime<Utc>,
    #[serde(default)]
    pub actor_id: Option<String>,
    /// `message` (human text) plus event-specific fields.
    #[serde(default)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl WorkloadEvent {
    /// A new event of `workload_id`, now, with a fresh [`event_id`]; `details` is a JSON object
    /// (`message` plus event-specific fields; anything else is dropped).
    pub fn new(workload_id: &str, event_type: &str, details: serde_json::Value) -> WorkloadEvent {
        let timestamp = crate::clock::now();
        WorkloadEvent {
            id: event_id(timestamp),
            workload_id: workload_id.to_owned(),
            event_type: event_type.to_owned(),
            timestamp,
            actor_id: None,
            details: match details {
                serde_json::Value::Object(map) => map,
                _ => Default::default(),
            },
        }
    }
}

/// Event ids sort by time within a workload (they are the keys' last part): 16 hex digits of
/// milliseconds since the epoch, then 8 random ones.
pub fn event_id(at: DateTime<Utc>) -> String {
    let millis = at.timestamp_millis().max(0) as u64;
    let random = uuid::Uuid::new_v4().as_u128() as u32;
    format!("{millis:016x}{random:08x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_details_keep_only_an_object() {
        let earlier = event_id(DateTime::from_timestamp_millis(1_000).unwrap());
        let later = event_id(DateTime::from_timestamp_millis(2_000).unwrap());
        assert_eq!(earlier.len(), 24);
        assert!(earlier < later, "{earlier} then {later}");
        let event = WorkloadEvent::new("w", "workloadCreated", serde_json::json!({"message": "hi"}));
        assert_eq!((event.workload_id.as_str(), event.event_type.as_str()), ("w", "workloadCreated"));
        assert_eq!(event.details["message"], "hi");
        assert!(WorkloadEvent::new("w", "x", serde_json::json!([1])).details.is_empty());
    }
}
