//! Which resource bundles a proton asks for, and what a Launch reserves with the chosen one.
//!
//! `resourceBundles` is an ordered preference (`bundleSelectionPolicy: availability`): the first
//! bundle of the list that a connected agent's nodes have room for is chosen (see
//! [`crate::allocations`]) and reported back as the group's `resolvedBundle`. Without
//! `resourceBundles` any connected agent will do and no bundle is reserved.

use nucleus_api::bundle::{default_catalogue, ResourceBundle};
use nucleus_api::workload::GroupRuntime;
use nucleus_proto::agent::v1 as pb;

/// The runtime group that asks for bundles, if any.
pub fn requesting_group(groups: &[GroupRuntime]) -> Option<&GroupRuntime> {
    groups.iter().find(|g| g.resource_bundles.as_ref().is_some_and(|ids| !ids.is_empty()))
}

/// The catalogue entries of the group's `resourceBundles`, in its order of preference (ids the
/// catalogue lacks are skipped), or why there are none.
pub fn catalogue_entries(group: &GroupRuntime) -> Result<Vec<ResourceBundle>, String> {
    let ids: Vec<&str> = group.resource_bundles.iter().flatten().map(String::as_str).collect();
    let catalogue = default_catalogue();
    let wanted: Vec<ResourceBundle> = ids.iter().filter_map(|id| catalogue.iter().find(|b| b.id == *id).cloned()).collect();
    if wanted.is_empty() {
        return Err(format!(
            "None of the requested resource bundles ({}) exists; see GET /api/v2/mlops/compute/bundles/ for the catalogue",
            ids.join(", ")
        ));
    }
    Ok(wanted)
}

/// What a Launch reserves for each replica.
pub fn resources(bundle: &ResourceBundle) -> pb::Resources {
    pb::Resources {
        bundle_id: bundle.id.clone(),
        cpu_millis: (bundle.cpu_count * 1000.0).ceil() as u32,
        memory_bytes: bundle.memory_bytes,
        gpu_count: bundle.gpu_count,
        gpu_type: bundle.gpu_type_label.clone().unwrap_or_default(),
        gpu_memory_bytes: bundle.gpu_memory_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn asking(ids: &[&str]) -> GroupRuntime {
        let mut group: GroupRuntime = serde_json::from_value(serde_json::json!({"name": "default"})).unwrap();
        group.resource_bundles = Some(ids.iter().map(|id| id.to_string()).collect());
        group
    }

    #[test]
    fn catalogue_entries_keep_the_preference_order_and_name_unknown_ids() {
        let wanted = catalogue_entries(&asking(&["gpu.l4.medium", "no.such", "cpu.small"])).unwrap();
        assert_eq!(wanted.iter().map(|b| b.id.as_str()).collect::<Vec<_>>(), ["gpu.l4.medium", "cpu.small"]);
        let message = catalogue_entries(&asking(&["no.such"])).unwrap_err();
        assert!(message.contains("no.such") && message.contains("/mlops/compute/bundles"), "{message}");
        assert!(requesting_group(&[asking(&[])]).is_none(), "an empty list asks for nothing");
    }

    #[test]
    fn launch_resources_carry_the_bundle() {
        let bundle = default_catalogue().into_iter().find(|b| b.id == "gpu.l4.small").unwrap();
        let resources = resources(&bundle);
        assert_eq!((resources.cpu_millis, resources.gpu_count, resources.gpu_type.as_str()), (4000, 1, "nvidia-l4"));
        assert_eq!(resources.memory_bytes, 16 * GIB);
    }
}
