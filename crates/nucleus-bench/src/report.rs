//! The results table (Markdown, so it can be pasted into docs/benchmarks.md as printed).

use crate::load::Summary;

/// One measured row: which system, and what its run measured.
pub struct Row<'a> {
    pub system: &'a str,
    pub summary: &'a Summary,
}

const HEADER: &str = "| system | clients | writes/s | p50 ms | p99 ms | p99.9 ms |\n|---|---:|---:|---:|---:|---:|\n";

/// The table: one row per measured run, then, for every client count measured on both
/// `baseline` and another system, a ratio row `system/baseline` (writes/s: higher is better for
/// the first system; latencies: lower is).
pub fn table(rows: &[Row<'_>], baseline: Option<&str>) -> String {
    let mut out = String::from(HEADER);
    for row in rows {
        let s = row.summary;
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} |\n",
            row.system,
            s.clients,
            s.writes_per_sec(),
            s.latency_ms(0.5),
            s.latency_ms(0.99),
            s.latency_ms(0.999),
        ));
    }
    let Some(baseline) = baseline else { return out };
    for row in rows.iter().filter(|r| r.system != baseline) {
        let Some(base) = rows.iter().find(|b| b.system == baseline && b.summary.clients == row.summary.clients) else {
            continue;
        };
        let (s, b) = (row.summary, base.summary);
        out.push_str(&format!(
            "| {}/{} | {} | {} | {} | {} | {} |\n",
            row.system,
            baseline,
            s.clients,
            ratio(s.writes_per_sec(), b.writes_per_sec()),
            ratio(s.latency_ms(0.5), b.latency_ms(0.5)),
            ratio(s.latency_ms(0.99), b.latency_ms(0.99)),
            ratio(s.latency_ms(0.999), b.latency_ms(0.999)),
        ));
    }
    out
}

fn ratio(a: f64, b: f64) -> String {
    if b == 0.0 { "n/a".to_owned() } else { format!("{:.2}x", a / b) }
}

/// One line for the progress log after a run.
pub fn one_line(system: &str, s: &Summary) -> String {
    let mut line = format!(
        "{system}, {} client(s): {} writes in {:.1}s = {:.0} writes/s, p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms",
        s.clients,
        s.writes,
        s.elapsed.as_secs_f64(),
        s.writes_per_sec(),
        s.latency_ms(0.5),
        s.latency_ms(0.99),
        s.latency_ms(0.999),
    );
    if s.errors > 0 {
        line.push_str(&format!("; {} failed put(s), first: {}", s.errors, s.first_error.as_deref().unwrap_or("?")));
    }
    line
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::load::new_histogram;

    fn summary(clients: usize, writes: u64, latencies_us: &[u64]) -> Summary {
        let mut latency_us = new_histogram();
        for &l in latencies_us {
            latency_us.record(l).unwrap();
        }
        Summary { clients, writes, errors: 0, first_error: None, elapsed: Duration::from_secs(10), latency_us }
    }

    #[test]
    fn table_has_one_row_per_run_with_rates_and_quantiles_in_ms() {
        let s = summary(1, 5000, &[1000, 2000, 2000, 4000]);
        let table = table(&[Row { system: "nucleus", summary: &s }], None);
        assert_eq!(
            table,
            "| system | clients | writes/s | p50 ms | p99 ms | p99.9 ms |\n\
             |---|---:|---:|---:|---:|---:|\n\
             | nucleus | 1 | 500 | 2.00 | 4.00 | 4.00 |\n"
        );
    }

    #[test]
    fn ratio_rows_pair_runs_by_client_count() {
        let n1 = summary(1, 1000, &[2000]);
        let e1 = summary(1, 2000, &[1000]);
        let n64 = summary(64, 3000, &[8000]);
        let rows =
            [Row { system: "nucleus", summary: &n1 }, Row { system: "nucleus", summary: &n64 }, Row { system: "etcd", summary: &e1 }];
        let table = table(&rows, Some("etcd"));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2 + 3 + 1, "no ratio row for 64 clients: etcd has none");
        assert_eq!(lines[5], "| nucleus/etcd | 1 | 0.50x | 2.00x | 2.00x | 2.00x |");
    }

    #[test]
    fn one_line_mentions_failures() {
        let mut s = summary(64, 10, &[1000]);
        s.errors = 3;
        s.first_error = Some("unavailable".into());
        let line = one_line("etcd", &s);
        assert!(line.starts_with("etcd, 64 client(s): 10 writes in 10.0s = 1 writes/s"), "{line}");
        assert!(line.ends_with("; 3 failed put(s), first: unavailable"), "{line}");
    }

    #[test]
    fn ratio_of_nothing_is_not_a_number() {
        assert_eq!(ratio(1.0, 0.0), "n/a");
        assert_eq!(ratio(3.0, 2.0), "1.50x");
    }
}
