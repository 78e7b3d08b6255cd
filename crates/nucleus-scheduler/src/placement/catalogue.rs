//! The default resource bundle catalogue (what `GET /mlops/compute/bundles/` lists).

use super::model::Bundle;

/// NVIDIA L4 (24 GiB).
pub const GPU_TYPE_L4: &str = "nvidia-l4";
/// NVIDIA A10G (24 GiB).
pub const GPU_TYPE_A10G: &str = "nvidia-a10g";
/// NVIDIA H100 (80 GiB).
pub const GPU_TYPE_H100: &str = "nvidia-h100";

const GIB: u64 = 1024 * 1024 * 1024;

/// The default catalogue, CPU-only sizes first:
///
/// | id | CPU | memory | GPUs |
/// |---|---|---|---|
/// | `cpu.small` / `cpu.medium` / `cpu.large` | 1 / 2 / 4 cores | 2 / 8 / 16 GiB | — |
/// | `gpu.l4.small` / `.medium` / `.large` | 4 cores per GPU | 16 GiB per GPU | 1 / 2 / 4 × L4 (24 GiB) |
/// | `gpu.a10g.small` / `.medium` / `.large` | 4 cores per GPU | 16 GiB per GPU | 1 / 2 / 4 × A10G (24 GiB) |
/// | `gpu.h100.small` / `.medium` / `.large` | 8 cores per GPU | 64 GiB per GPU | 1 / 4 / 8 × H100 (80 GiB) |
pub fn default_bundles() -> Vec<Bundle> {
    let mut bundles = vec![
        Bundle::cpu_only("cpu.small", 1000, 2 * GIB),
        Bundle::cpu_only("cpu.medium", 2000, 8 * GIB),
        Bundle::cpu_only("cpu.large", 4000, 16 * GIB),
    ];
    let families = [
        // (short name, model, memory per GPU, cores per GPU, memory per GPU of host RAM, GPU counts)
        ("l4", GPU_TYPE_L4, 24 * GIB, 4, 16 * GIB, [1, 2, 4]),
        ("a10g", GPU_TYPE_A10G, 24 * GIB, 4, 16 * GIB, [1, 2, 4]),
        ("h100", GPU_TYPE_H100, 80 * GIB, 8, 64 * GIB, [1, 4, 8]),
    ];
    for (short, model, gpu_memory, cores_per_gpu, memory_per_gpu, counts) in families {
        for (size, count) in ["small", "medium", "large"].into_iter().zip(counts) {
            bundles.push(Bundle::with_gpus(
                format!("gpu.{short}.{size}"),
                cores_per_gpu * 1000 * u64::from(count),
                memory_per_gpu * u64::from(count),
                count,
                model,
                gpu_memory,
            ));
        }
    }
    bundles
}
