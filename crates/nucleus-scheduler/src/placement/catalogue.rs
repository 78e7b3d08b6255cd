//! The default resource bundle catalogue (what `GET /mlops/compute/bundles/` lists), as placement
//! bundles. The figures live in `nucleus_api::bundle`, the one source for the API and placement.

use nucleus_api::bundle::{ResourceBundle, default_catalogue};

pub use nucleus_api::bundle::{GPU_TYPE_A10G, GPU_TYPE_H100, GPU_TYPE_L4};

use super::model::Bundle;

/// The catalogue of [`nucleus_api::bundle::default_catalogue`] in placement terms.
pub fn default_bundles() -> Vec<Bundle> {
    default_catalogue().iter().map(from_api).collect()
}

fn from_api(b: &ResourceBundle) -> Bundle {
    let cpu_millicores = (b.cpu_count * 1000.0).round() as u64;
    match &b.gpu_type_label {
        Some(model) if b.gpu_count > 0 => {
            Bundle::with_gpus(b.id.clone(), cpu_millicores, b.memory_bytes, b.gpu_count, model.clone(), b.gpu_memory_bytes)
        }
        _ => Bundle::cpu_only(b.id.clone(), cpu_millicores, b.memory_bytes),
    }
}
