//! Reading a metric out of Prometheus text exposition, for the autoscaler's scraped metrics.

use std::collections::HashMap;
use std::time::Duration;

use nucleus_proto::agent::v1::ScrapedMetric;

/// The sum of `name`'s samples (over its label sets) in Prometheus text; `None` if it has none.
pub(crate) fn metric_value(text: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || !line.starts_with(name) {
            continue;
        }
        let rest = &line[name.len()..];
        let rest = match rest.chars().next() {
            Some('{') => &rest[rest.find('}')? + 1..],
            Some(c) if c.is_whitespace() => rest,
            _ => continue, // another metric whose name starts with this one
        };
        if let Some(value) = rest.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()).filter(|v| v.is_finite()) {
            total = Some(total.unwrap_or(0.0) + value);
        }
    }
    total
}

/// Scrapes the replica at `address` (`host:port`) for `metrics`, each path once, each within
/// `timeout`; the metrics it exported. A path that cannot be read yields none of its metrics.
pub(crate) async fn scrape(client: &reqwest::Client, address: &str, metrics: &[ScrapedMetric], timeout: Duration) -> HashMap<String, f64> {
    let mut by_path: HashMap<&str, Vec<&str>> = HashMap::new();
    for metric in metrics {
        by_path.entry(metric.path.as_str()).or_default().push(metric.name.as_str());
    }
    let mut found = HashMap::new();
    for (path, names) in by_path {
        let url = format!("http://{address}/{}", path.trim_start_matches('/'));
        let text = match client.get(&url).timeout(timeout).send().await {
            Ok(response) if response.status().is_success() => response.text().await.unwrap_or_default(),
            _ => continue,
        };
        found.extend(names.into_iter().filter_map(|name| Some((name.to_owned(), metric_value(&text, name)?))));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_summed_over_label_sets_and_prefixes_do_not_match() {
        let text =
            "# HELP q queue\n# TYPE q gauge\nq{model=\"a\"} 3\nq{model=\"b\"} 4.5\nq_total 100\nvllm:num_requests_waiting 7 1700000000\n";
        assert_eq!(metric_value(text, "q"), Some(7.5));
        assert_eq!(metric_value(text, "vllm:num_requests_waiting"), Some(7.0));
        assert_eq!(metric_value(text, "missing"), None);
    }
}
