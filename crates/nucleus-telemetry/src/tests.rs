use super::*;

#[test]
fn families_are_written_as_prometheus_text() {
    let registry = Registry::default();
    let requests = registry.counter_vec("demo_requests_total", "Requests served.", &["workload", "code"]);
    requests.with(&["w\"1", "200"]).inc();
    requests.with(&["w\"1", "200"]).inc_by(2.0);
    registry.gauge_vec("demo_leader", "1 when this node leads.", &[]).with(&[]).set(1.0);
    let latency = registry.histogram_vec("demo_seconds", "Latency.", &["route"], &[0.1, 1.0]);
    latency.with(&["api"]).observe(0.05);
    latency.with(&["api"]).observe(0.5);
    latency.with(&["api"]).observe(5.0);
    let text = registry.encode();
    assert!(text.contains("# TYPE demo_requests_total counter\ndemo_requests_total{workload=\"w\\\"1\",code=\"200\"} 3\n"), "{text}");
    assert!(text.contains("demo_leader 1\n"), "{text}");
    assert!(text.contains("demo_seconds_bucket{route=\"api\",le=\"0.1\"} 1\n"), "{text}");
    assert!(text.contains("demo_seconds_bucket{route=\"api\",le=\"1\"} 2\n"), "{text}");
    assert!(text.contains("demo_seconds_bucket{route=\"api\",le=\"+Inf\"} 3\n"), "{text}");
    assert!(text.contains("demo_seconds_sum{route=\"api\"} 5.55\ndemo_seconds_count{route=\"api\"} 3\n"), "{text}");
}

#[test]
fn asking_twice_gives_the_same_family_and_finished_collectors_go() {
    let registry = Registry::default();
    registry.counter_vec("demo_total", "x", &["a"]).with(&["1"]).inc();
    registry.counter_vec("demo_total", "x", &["a"]).with(&["1"]).inc();
    assert!(registry.encode().contains("demo_total{a=\"1\"} 2\n"));
    let alive = Arc::new(());
    let weak = Arc::downgrade(&alive);
    registry.collector("demo_term", "Raft term.", &["group"], Box::new(move || weak.upgrade().map(|_| vec![Sample::new(&["0"], 7.0)])));
    assert!(registry.encode().contains("demo_term{group=\"0\"} 7\n"));
    drop(alive);
    assert!(!registry.encode().contains("demo_term{"), "gone with what it read");
}

#[test]
fn a_removed_series_is_no_longer_written() {
    let registry = Registry::default();
    let requests = registry.counter_vec("demo_gone_total", "x", &["workload"]);
    requests.with(&["a"]).inc();
    requests.with(&["b"]).inc();
    requests.remove(&["a"]);
    let text = registry.encode();
    assert!(!text.contains("workload=\"a\"") && text.contains("demo_gone_total{workload=\"b\"} 1"), "{text}");
}
