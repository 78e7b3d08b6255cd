//! Resource bundles: the sizes a runtime can ask for (`resourceBundles`), as listed by
//! `GET /mlops/compute/bundles/`. The scheduler places replicas by these same figures.

use serde::{Deserialize, Serialize};

/// NVIDIA L4 (24 GiB).
pub const GPU_TYPE_L4: &str = "nvidia-l4";
/// NVIDIA A10G (24 GiB).
pub const GPU_TYPE_A10G: &str = "nvidia-a10g";
/// NVIDIA H100 (80 GiB).
pub const GPU_TYPE_H100: &str = "nvidia-h100";

const GIB: u64 = 1024 * 1024 * 1024;

/// One catalogue entry, in the shape of the spec's `resolvedBundle` plus what placement needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceBundle {
    pub id: String,
    #[serde(default)]
    pub name: String,
    /// Cores, possibly fractional.
    pub cpu_count: f64,
    pub memory_bytes: u64,
    #[serde(default)]
    pub gpu_count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_maker: Option<String>,
    /// The GPU model (`nvidia-l4`, ...), matched against the nodes' GPU product label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_type_label: Option<String>,
    /// Memory of each GPU.
    #[serde(default)]
    pub gpu_memory_bytes: u64,
}

/// The default catalogue, CPU-only sizes first:
///
/// | id | CPU | memory | GPUs |
/// |---|---|---|---|
/// | `cpu.small` / `cpu.medium` / `cpu.large` | 1 / 2 / 4 cores | 2 / 8 / 16 GiB | — |
/// | `gpu.l4.small` / `.medium` / `.large` | 4 cores per GPU | 16 GiB per GPU | 1 / 2 / 4 × L4 (24 GiB) |
/// | `gpu.a10g.small` / `.medium` / `.large` | 4 cores per GPU | 16 GiB per GPU | 1 / 2 / 4 × A10G (24 GiB) |
/// | `gpu.h100.small` / `.medium` / `.large` | 8 cores per GPU | 64 GiB per GPU | 1 / 4 / 8 × H100 (80 GiB) |
pub fn default_catalogue() -> Vec<ResourceBundle> {
    let cpu = |id: &str, cores: f64, memory: u64| ResourceBundle {
        id: id.to_owned(),
        name: format!("{cores} CPU, {} GiB", memory / GIB),
        cpu_count: cores,
        memory_bytes: memory,
        gpu_count: 0,
        gpu_maker: None,
        gpu_type_label: None,
        gpu_memory_bytes: 0,
    };
    let mut bundles = vec![cpu("cpu.small", 1.0, 2 * GIB), cpu("cpu.medium", 2.0, 8 * GIB), cpu("cpu.large", 4.0, 16 * GIB)];
    let families = [
        // (short name, model, memory per GPU, cores per GPU, host memory per GPU, GPU counts)
        ("l4", GPU_TYPE_L4, 24 * GIB, 4, 16 * GIB, [1, 2, 4]),
        ("a10g", GPU_TYPE_A10G, 24 * GIB, 4, 16 * GIB, [1, 2, 4]),
        ("h100", GPU_TYPE_H100, 80 * GIB, 8, 64 * GIB, [1, 4, 8]),
    ];
    for (short, model, gpu_memory, cores_per_gpu, memory_per_gpu, counts) in families {
        for (size, count) in ["small", "medium", "large"].into_iter().zip(counts) {
            bundles.push(ResourceBundle {
                id: format!("gpu.{short}.{size}"),
                name: format!("{count} x {model}"),
                cpu_count: f64::from(cores_per_gpu * count),
                memory_bytes: memory_per_gpu * u64::from(count),
                gpu_count: count,
                gpu_maker: Some("nvidia".to_owned()),
                gpu_type_label: Some(model.to_owned()),
                gpu_memory_bytes: gpu_memory,
            });
        }
    }
    bundles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_ids_are_unique_and_gpu_sizes_grow() {
        let bundles = default_catalogue();
        let mut ids: Vec<&str> = bundles.iter().map(|b| b.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), bundles.len());
        let h100: Vec<u32> = bundles.iter().filter(|b| b.id.starts_with("gpu.h100")).map(|b| b.gpu_count).collect();
        assert_eq!(h100, vec![1, 4, 8]);
        let json = serde_json::to_value(&bundles[3]).unwrap();
        assert_eq!(json["id"], "gpu.l4.small");
        assert_eq!(json["gpuTypeLabel"], "nvidia-l4");
    }
}
