//! GPU model names: the bundle catalogue's (`nvidia-l4`, ...) against the `nvidia.com/gpu.product`
//! label that NVIDIA's GPU feature discovery puts on nodes (`NVIDIA-L4`, ...).

/// (catalogue GPU type, node label value).
const MODELS: [(&str, &str); 3] = [("nvidia-l4", "NVIDIA-L4"), ("nvidia-a10g", "NVIDIA-A10G"), ("nvidia-h100", "NVIDIA-H100-80GB-HBM3")];

/// The label value to select nodes of a catalogue GPU type by; any other name is taken as a
/// label value already.
pub(crate) fn product_label(gpu_type: &str) -> String {
    MODELS.iter().find(|(catalogue, _)| *catalogue == gpu_type).map_or(gpu_type, |(_, label)| label).to_owned()
}

/// The catalogue GPU type of a node's label value; unknown models are reported lower-cased.
pub(crate) fn catalogue_type(label: &str) -> String {
    MODELS
        .iter()
        .find(|(_, known)| known.eq_ignore_ascii_case(label))
        .map_or_else(|| label.to_ascii_lowercase(), |(catalogue, _)| (*catalogue).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_types_and_node_labels_map_both_ways() {
        for (catalogue, label) in MODELS {
            assert_eq!(product_label(catalogue), label);
            assert_eq!(catalogue_type(label), catalogue);
        }
        assert_eq!(product_label("NVIDIA-B200"), "NVIDIA-B200", "a label value passes through");
        assert_eq!(catalogue_type("NVIDIA-B200"), "nvidia-b200");
    }
}
