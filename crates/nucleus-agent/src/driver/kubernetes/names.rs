//! The names, labels and annotations the Kubernetes driver puts on what it creates.

/// On every object the driver creates; the pod watcher selects by it.
pub(crate) const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub(crate) const MANAGER: &str = "nucleus";
/// `MANAGED_BY=MANAGER`, as a label selector.
pub(crate) const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=nucleus";
/// The object name derived from the proton id (a label value cannot hold every id).
pub(crate) const PROTON_LABEL: &str = "nucleus.dev/proton";
pub(crate) const WORKLOAD_LABEL: &str = "nucleus.dev/workload";
pub(crate) const SHARD_LABEL: &str = "nucleus.dev/shard";
/// The exact ids, which labels may only approximate.
pub(crate) const PROTON_ID_ANNOTATION: &str = "nucleus.dev/proton-id";
pub(crate) const WORKLOAD_ID_ANNOTATION: &str = "nucleus.dev/workload-id";
pub(crate) const ARTIFACT_ID_ANNOTATION: &str = "nucleus.dev/artifact-id";
/// The field manager of every server-side apply.
pub(crate) const FIELD_MANAGER: &str = "nucleus-agent";

/// Kubernetes names and label values are at most this long.
const MAX_LEN: usize = 63;
const PREFIX: &str = "proton-";

/// The name of a proton's Deployment and Service: `proton-<id>` when the id is lower-case
/// alphanumerics and dashes and short enough, else a cleaned, shortened id with a hash of the
/// exact id appended, so that distinct ids keep distinct names. Always a valid DNS-1035 label
/// (what a Service name must be).
pub(crate) fn resource_name(proton_id: &str) -> String {
    let cleaned = clean(proton_id, |c| c.is_ascii_lowercase() || c.is_ascii_digit(), true);
    let name = format!("{PREFIX}{cleaned}");
    if !cleaned.is_empty() && cleaned == proton_id && name.len() <= MAX_LEN {
        return name;
    }
    hashed(PREFIX, &cleaned, proton_id)
}

/// A container name (a DNS-1123 label) from the spec's: cleaned, cut short, "main" if nothing is
/// left. Lossy, which is fine: a pod has one container.
pub(crate) fn container_name(name: &str) -> String {
    let cleaned = clean(name, |c| c.is_ascii_lowercase() || c.is_ascii_digit(), true);
    match cleaned[..cleaned.len().min(MAX_LEN)].trim_end_matches('-') {
        "" => "main".to_owned(),
        name => name.to_owned(),
    }
}

/// `text` as a label value: itself when valid, else cleaned and suffixed with a hash.
pub(crate) fn label_value(text: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '_';
    let cleaned = clean(text, allowed, false);
    // A label value starts and ends with an alphanumeric.
    let cleaned = cleaned.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if cleaned == text && text.len() <= MAX_LEN {
        return cleaned.to_owned();
    }
    hashed("", cleaned, text)
}

/// Keeps `allowed` characters (lower-cased first when `lower`), turns runs of others into one
/// dash, and trims dashes at both ends.
fn clean(text: &str, allowed: impl Fn(char) -> bool, lower: bool) -> String {
    let mut cleaned = String::with_capacity(text.len());
    for c in text.chars() {
        let c = if lower { c.to_ascii_lowercase() } else { c };
        if allowed(c) {
            cleaned.push(c);
        } else if !cleaned.ends_with('-') {
            cleaned.push('-');
        }
    }
    cleaned.trim_matches('-').to_owned()
}

/// `<prefix><cleaned, cut short>-<8 hex digits of FNV-1a of original>`.
fn hashed(prefix: &str, cleaned: &str, original: &str) -> String {
    let hash = original.bytes().fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193));
    let room = MAX_LEN - prefix.len() - 9;
    let head = cleaned[..cleaned.len().min(room)].trim_end_matches(['-', '.', '_']);
    match head {
        "" => format!("{prefix}{hash:08x}"),
        head => format!("{prefix}{head}-{hash:08x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_dns_1035_label(name: &str) -> bool {
        name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }

    #[test]
    fn clean_ids_keep_their_name() {
        assert_eq!(resource_name("65f0a1b2c3d4e5f6a7b8c9d0"), "proton-65f0a1b2c3d4e5f6a7b8c9d0");
        assert_eq!(resource_name("web"), "proton-web");
    }

    #[test]
    fn other_ids_get_valid_distinct_names() {
        let ids = ["Web", "web_", "web.1", "-", "", "ÜBER service!", &"x".repeat(200), &format!("{}y", "x".repeat(199))];
        let names: Vec<String> = ids.iter().map(|id| resource_name(id)).collect();
        for (id, name) in ids.iter().zip(&names) {
            assert!(is_dns_1035_label(name), "{id:?} -> {name:?}");
        }
        let mut distinct = names.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
        assert_eq!(resource_name("Web"), resource_name("Web"), "deterministic");
        assert!(names[0].starts_with("proton-web-"), "{}", names[0]);
    }

    #[test]
    fn container_names() {
        assert_eq!(container_name("primary"), "primary");
        assert_eq!(container_name("Web_Server"), "web-server");
        assert_eq!(container_name("__"), "main");
        assert_eq!(container_name(&"a-".repeat(40)).len(), 63);
    }

    #[test]
    fn label_values() {
        assert_eq!(label_value("65f0a1b2c3d4e5f6a7b8c9d0"), "65f0a1b2c3d4e5f6a7b8c9d0");
        assert_eq!(label_value("My_Workload.v2"), "My_Workload.v2");
        let long = label_value(&"w".repeat(100));
        assert!(long.len() <= 63 && long.starts_with("www"), "{long}");
        let odd = label_value("a b/c");
        assert!(odd.starts_with("a-b-c-") && odd.len() == 6 + 8, "{odd}");
        assert_eq!(label_value("/").len(), 8);
        assert!(label_value("_x.").starts_with("x-"));
    }
}
