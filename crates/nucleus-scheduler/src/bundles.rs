//! Which resource bundles a proton asks for, and what a Launch reserves with the chosen one.
//!
//! `resourceBundles` is an ordered preference (`bundleSelectionPolicy: availability`): the first
//! bundle of the list that a connected agent's nodes have room for is chosen (see
//! [`crate::allocations`]) and reported back as the group's `resolvedBundle`. Without
//! `resourceBundles` any connected agent will do and no bundle is reserved.

use nucleus_api::bundle::{ResourceBundle, default_catalogue};
use nucleus_api::workload::{GroupRuntime, Quantity, ResourceAllocation};
use nucleus_proto::agent::v1 as pb;

use crate::Error;
use crate::placement::units;

/// The runtime group that asks for bundles, if any.
pub fn requesting_group(groups: &[GroupRuntime]) -> Option<&GroupRuntime> {
    groups.iter().find(|g| g.resource_bundles.as_ref().is_some_and(|ids| !ids.is_empty()))
}

/// The catalogue entries of the group's `resourceBundles`, in its order of preference (ids the
/// catalogue lacks are skipped), or why there are none.
pub fn catalogue_entries(group: &GroupRuntime) -> Result<Vec<ResourceBundle>, Error> {
    let ids: Vec<&str> = group.resource_bundles.iter().flatten().map(String::as_str).collect();
    let catalogue = default_catalogue();
    let wanted: Vec<ResourceBundle> = ids.iter().filter_map(|id| catalogue.iter().find(|b| b.id == *id).cloned()).collect();
    if wanted.is_empty() {
        return Err(Error::UnknownBundles(ids.join(", ")));
    }
    Ok(wanted)
}

/// The id of the bundle made of a group's explicit `resourceAllocation`s (reported as its
/// `resolvedBundle`, like a catalogue bundle).
pub const ALLOCATION_BUNDLE: &str = "allocation";

/// The group that sets an explicit `resourceAllocation` on some container (when no group asks for
/// `resourceBundles`), and the one bundle its containers add up to: CPU, memory and GPUs summed,
/// GPU memory the largest asked for.
pub fn explicit_allocation(groups: &[GroupRuntime]) -> Option<(&GroupRuntime, Result<ResourceBundle, Error>)> {
    let group = groups.iter().find(|g| g.containers.iter().any(|c| c.resource_allocation.is_some()))?;
    let mut total = ResourceBundle {
        id: ALLOCATION_BUNDLE.to_owned(),
        name: "Explicit resource allocation".to_owned(),
        cpu_count: 0.0,
        memory_bytes: 0,
        gpu_count: 0,
        gpu_maker: None,
        gpu_type_label: None,
        gpu_memory_bytes: 0,
    };
    for container in &group.containers {
        let Some(value) = &container.resource_allocation else { continue };
        let parsed = parse_allocation(value).map_err(|reason| Error::InvalidAllocation {
            container: container.name.clone(),
            group: group.name.clone(),
            reason: Box::new(reason),
        });
        let one = match parsed {
            Ok(one) => one,
            Err(message) => return Some((group, Err(message))),
        };
        total.cpu_count += one.cpu;
        total.memory_bytes += one.memory_bytes;
        total.gpu_count += one.gpus;
        total.gpu_memory_bytes = total.gpu_memory_bytes.max(one.gpu_memory_bytes);
    }
    Some((group, Ok(total)))
}

struct OneAllocation {
    cpu: f64,
    memory_bytes: u64,
    gpus: u32,
    gpu_memory_bytes: u64,
}

/// Memory as bytes or a string with units; absent amounts are zero.
fn parse_allocation(allocation: &ResourceAllocation) -> Result<OneAllocation, Error> {
    let field_error = |field: &str, expected: String| Error::AllocationField { field: field.to_owned(), expected };
    let memory = |field: &str, amount: &Option<Quantity>| -> Result<u64, Error> {
        match amount {
            None => Ok(0),
            Some(Quantity::Bytes(bytes)) => Ok(*bytes),
            Some(Quantity::Text(text)) => units::parse_memory(text).map_err(|err| field_error(field, format!(": {err}"))),
        }
    };
    let number = |field: &str, value: Option<f64>| -> Result<f64, Error> {
        match value {
            None => Ok(0.0),
            Some(n) if n.is_finite() && n >= 0.0 => Ok(n),
            Some(_) => Err(field_error(field, "must be a number of at least 0".into())),
        }
    };
    let gpus = units::gpu_count(number("gpu", allocation.gpu)?).map_err(|err| field_error("gpu", format!(": {err}")))?;
    Ok(OneAllocation {
        cpu: number("cpu", allocation.cpu)?,
        memory_bytes: memory("memory", &allocation.memory)?,
        gpus,
        gpu_memory_bytes: memory("gpuMemory", &allocation.gpu_memory)?,
    })
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
        let message = catalogue_entries(&asking(&["no.such"])).unwrap_err().to_string();
        assert!(message.contains("no.such") && message.contains("/mlops/compute/bundles"), "{message}");
        assert!(requesting_group(&[asking(&[])]).is_none(), "an empty list asks for nothing");
    }

    #[test]
    fn explicit_allocations_add_up_to_one_bundle_or_name_the_bad_field() {
        let mut group = asking(&[]);
        group.resource_bundles = None;
        let container = |name: &str, allocation: serde_json::Value| {
            serde_json::from_value(serde_json::json!({"name": name, "resourceAllocation": allocation})).unwrap()
        };
        group.containers = vec![
            container("main", serde_json::json!({"cpu": 1.5, "memory": "2GiB", "gpu": 1, "gpuMemory": "24GiB"})),
            container("sidecar", serde_json::json!({"cpu": 0.5, "memory": 1_073_741_824u64})),
        ];
        let groups = [group];
        let (found, bundle) = explicit_allocation(&groups).unwrap();
        assert_eq!(found.name, "default");
        let bundle = bundle.unwrap();
        assert_eq!((bundle.id.as_str(), bundle.cpu_count, bundle.memory_bytes), (ALLOCATION_BUNDLE, 2.0, 3 * GIB));
        assert_eq!((bundle.gpu_count, bundle.gpu_memory_bytes, bundle.gpu_type_label), (1, 24 * GIB, None));

        let mut bad = groups[0].clone();
        bad.containers = vec![container("main", serde_json::json!({"cpu": 1, "memory": "12XB"}))];
        let message = explicit_allocation(std::slice::from_ref(&bad)).unwrap().1.unwrap_err().to_string();
        assert!(message.contains("main") && message.contains("memory") && message.contains("XB"), "{message}");
        assert!(explicit_allocation(&[asking(&["cpu.small"])]).is_none());
    }

    #[test]
    fn launch_resources_carry_the_bundle() {
        let bundle = default_catalogue().into_iter().find(|b| b.id == "gpu.l4.small").unwrap();
        let resources = resources(&bundle);
        assert_eq!((resources.cpu_millis, resources.gpu_count, resources.gpu_type.as_str()), (4000, 1, "nvidia-l4"));
        assert_eq!(resources.memory_bytes, 16 * GIB);
    }
}
