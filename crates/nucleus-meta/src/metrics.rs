//! The meta role's Prometheus series, per Raft group: term, leadership and applied index (read
//! from the group's Raft metrics when scraped), leader changes, the latency of client writes and
//! the size of the last snapshot. Every node of the process shares the families; `node` and
//! `group` tell the series apart.

use std::sync::{Arc, LazyLock};

use nucleus_telemetry::{CounterVec, Gauge, GaugeVec, Histogram, HistogramVec, LATENCY_BUCKETS, Sample};
use openraft::{BasicNode, RaftMetrics};

use crate::groups::Group;
use crate::node::is_leader;
use crate::types::{GroupId, NodeId};

struct MetaMetrics {
    leader_changes: CounterVec,
    commit_seconds: HistogramVec,
    snapshot_bytes: GaugeVec,
}

static METRICS: LazyLock<MetaMetrics> = LazyLock::new(|| {
    let registry = nucleus_telemetry::global();
    MetaMetrics {
        leader_changes: registry.counter_vec(
            "nucleus_raft_leader_changes_total",
            "Times a node learned of a Raft group leader other than the last one it knew.",
            &["node", "group"],
        ),
        commit_seconds: registry.histogram_vec(
            "nucleus_raft_commit_seconds",
            "Time from proposing a client write to its being committed and applied, on the node that proposed it.",
            &["group"],
            LATENCY_BUCKETS,
        ),
        snapshot_bytes: registry.gauge_vec(
            "nucleus_raft_snapshot_bytes",
            "Size of the last snapshot a node built or installed for a Raft group.",
            &["node", "group"],
        ),
    }
});

type Metrics = RaftMetrics<NodeId, BasicNode>;

const RAFT_LABELS: &[&str] = &["node", "group"];

/// A series read from a group's Raft metrics at each scrape: name, help, value.
type ReadAtScrape = (&'static str, &'static str, fn(&Metrics) -> f64);

const READ_AT_SCRAPE: [ReadAtScrape; 4] = [
    ("nucleus_raft_term", "Current Raft term of a group on a node.", |m| m.current_term as f64),
    ("nucleus_raft_is_leader", "1 when the node leads the group, 0 otherwise.", |m| f64::from(u8::from(is_leader(m)))),
    ("nucleus_raft_has_leader", "1 when the node knows a leader of the group, 0 otherwise.", |m| {
        f64::from(u8::from(m.current_leader.is_some()))
    }),
    ("nucleus_raft_applied_index", "Index of the last log entry the node applied to the group's state machine.", |m| {
        m.last_applied.map_or(0.0, |id| id.index as f64)
    }),
];

/// Reports `group` as hosted by `node` for as long as the group lives: its Raft state at each
/// scrape, and its leader changes (followed by a task that ends with the group's Raft).
pub(crate) fn watch_group(node: NodeId, group: &Arc<Group>) {
    let labels = [node.to_string(), group.id.to_string()];
    for (name, help, value) in READ_AT_SCRAPE {
        let group = Arc::downgrade(group);
        let labels = labels.clone();
        let collect = move || {
            let group = group.upgrade()?;
            let value = value(&group.raft.metrics().borrow());
            Some(vec![Sample::new(&[&labels[0], &labels[1]], value)])
        };
        nucleus_telemetry::global().collector(name, help, RAFT_LABELS, Box::new(collect));
    }

    let changes = METRICS.leader_changes.with(&[&labels[0], &labels[1]]);
    let mut metrics = group.raft.metrics();
    // Read now, not in the task: a leader elected before the task first runs is still a change.
    let mut last = metrics.borrow_and_update().current_leader;
    tokio::spawn(async move {
        // Ends when the Raft core stops (its sender is dropped).
        while metrics.changed().await.is_ok() {
            let leader = metrics.borrow_and_update().current_leader;
            if leader.is_some() && leader != last {
                changes.inc();
                last = leader;
            }
        }
    });
}

/// Latency of client writes proposed to `group` on this node.
pub(crate) fn commit_seconds(group: GroupId) -> Histogram {
    METRICS.commit_seconds.with(&[&group.to_string()])
}

/// Size of the last snapshot of `group` that `node` built or installed.
pub(crate) fn snapshot_bytes(node: NodeId, group: GroupId) -> Gauge {
    METRICS.snapshot_bytes.with(&[&node.to_string(), &group.to_string()])
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use nucleus_proto::meta::v1 as pb;
    use nucleus_proto::meta::v1::meta_client::MetaClient;
    use nucleus_testkit::eventually;

    use crate::{MetaConfig, MetaNode};

    /// No other test of this crate starts node 7301, so its series are this test's alone.
    const NODE: u64 = 7301;

    /// The value of the series `series` (name and labels as written) in the process's metrics.
    fn value(series: &str) -> Option<f64> {
        let text = nucleus_telemetry::encode();
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[tokio::test]
    async fn a_group_reports_its_leader_commits_and_snapshot_until_it_stops() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = MetaConfig { shards: 1, ..MetaConfig::new(NODE, dir.path(), "127.0.0.1:0".parse().expect("addr")) };
        let node = MetaNode::start(config).await.expect("start meta node");
        let root = format!(r#"{{node="{NODE}",group="0"}}"#);

        assert_eq!(value(&format!("nucleus_raft_is_leader{root}")), Some(1.0), "{}", nucleus_telemetry::encode());
        assert_eq!(value(&format!("nucleus_raft_has_leader{root}")), Some(1.0));
        assert!(value(&format!("nucleus_raft_term{root}")).is_some_and(|term| term >= 1.0));
        assert_eq!(value(r#"nucleus_raft_is_leader{node="7301",group="1"}"#), Some(1.0), "the shard group is reported too");
        eventually("the election to be counted as a leader change", Duration::from_secs(5), || async {
            (value(&format!("nucleus_raft_leader_changes_total{root}")) == Some(1.0)).then_some(())
        })
        .await;

        let commits = r#"nucleus_raft_commit_seconds_count{group="0"}"#;
        let before = value(commits).unwrap_or(0.0);
        let applied_before = value(&format!("nucleus_raft_applied_index{root}")).expect("applied index");
        let mut client = MetaClient::connect(format!("http://{}", node.addr())).await.expect("connect");
        let put = pb::Op { op: Some(pb::op::Op::Put(pb::Put { key: "k".into(), value: b"v".to_vec() })) };
        let write = pb::WriteRequest { request_id: String::new(), conditions: vec![], ops: vec![put], group_id: 0 };
        assert!(client.write(write).await.expect("write").into_inner().succeeded);
        assert!(value(commits).is_some_and(|after| after >= before + 1.0), "{}", nucleus_telemetry::encode());
        assert!(value(&format!("nucleus_raft_applied_index{root}")).is_some_and(|applied| applied > applied_before));

        node.raft().trigger().snapshot().await.expect("trigger snapshot");
        node.raft().wait(Some(Duration::from_secs(10))).metrics(|m| m.snapshot.is_some(), "a snapshot").await.expect("snapshot built");
        assert!(value(&format!("nucleus_raft_snapshot_bytes{root}")).is_some_and(|bytes| bytes > 0.0), "{}", nucleus_telemetry::encode());

        drop(client);
        node.shutdown().await.expect("shutdown");
        assert_eq!(value(&format!("nucleus_raft_term{root}")), None, "a stopped group's state is no longer reported");
    }
}
