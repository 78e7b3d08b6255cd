//! Prometheus text exposition format 0.0.4.

use std::fmt::Write;

use crate::family::{Family, Kind, Sample};

pub(crate) fn family(out: &mut String, family: &Family) {
    let name = &family.name;
    let kind = match family.kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram(_) => "histogram",
    };
    let _ = writeln!(out, "# HELP {name} {}", family.help.replace('\\', "\\\\").replace('\n', "\\n"));
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let names = &family.series.labels;
    match &family.kind {
        Kind::Counter | Kind::Gauge => {
            for Sample { labels, value } in family.series.samples() {
                let _ = writeln!(out, "{name}{} {}", label_set(names, &labels, None), number(value));
            }
        }
        Kind::Histogram(bounds) => {
            for (labels, buckets) in family.series.histogram_samples() {
                let mut cumulative = 0;
                for (bound, count) in bounds.iter().zip(&buckets.counts) {
                    cumulative += count;
                    let le = number(*bound);
                    let _ = writeln!(out, "{name}_bucket{} {cumulative}", label_set(names, &labels, Some(&le)));
                }
                let _ = writeln!(out, "{name}_bucket{} {}", label_set(names, &labels, Some("+Inf")), buckets.count);
                let _ = writeln!(out, "{name}_sum{} {}", label_set(names, &labels, None), number(buckets.sum));
                let _ = writeln!(out, "{name}_count{} {}", label_set(names, &labels, None), buckets.count);
            }
        }
    }
}

fn label_set(names: &[String], values: &[String], le: Option<&str>) -> String {
    let mut pairs: Vec<String> =
        names.iter().zip(values).map(|(name, value)| format!("{name}=\"{}\"", escape_label_value(value))).collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{le}\""));
    }
    if pairs.is_empty() { String::new() } else { format!("{{{}}}", pairs.join(",")) }
}

fn escape_label_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        format!("{value}")
    }
}
