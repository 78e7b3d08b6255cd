//! Taking over what an earlier agent on the same data dir left: its protons are reported again,
//! their running replica processes are followed (not started again), and the ones that ended
//! while no agent watched are handled as crashed.

use std::sync::Arc;

use super::logs::LogFile;
use super::replica::ReplicaHandle;
use super::state_file::{ReplicaRecord, StateRecord};
use super::{Inner, Proton, RETIRE_GRACE};

impl Inner {
    /// Adopts every proton of `left` (what the state file held at start).
    pub(super) fn adopt(self: &Arc<Self>, left: StateRecord) {
        if left.protons.is_empty() {
            return;
        }
        let mut stopping = Vec::new();
        let mut state = self.state();
        for (id, record) in left.protons {
            let spec = Arc::new(record.spec);
            let mut proton = Proton::new(spec.clone());
            self.logs.set_retention(&id, spec.log_retention());
            let adopt = |replica: ReplicaRecord, stop| {
                let log = LogFile::at(replica.log.clone()).with_sink(&self.logs, &id, &replica.name);
                ReplicaHandle::adopt(spec.clone(), replica, log, stop, self.client.clone(), self.sandbox.clone(), self.publisher(&id))
            };
            for (index, replica) in record.replicas {
                proton.replicas.insert(index, adopt(replica, record.stopping));
            }
            for replica in record.retiring {
                let grace = record.stopping.map_or(RETIRE_GRACE, |grace| grace.min(RETIRE_GRACE));
                proton.retiring.push(adopt(replica, Some(grace)));
            }
            tracing::info!(
                proton = %id,
                replicas = proton.replicas.len(),
                retiring = proton.retiring.len(),
                stopping = record.stopping.is_some(),
                "adopted a proton an earlier agent ran"
            );
            state.protons.insert(id.clone(), proton);
            self.publish_locked(&state, &id);
            if let Some(grace) = record.stopping {
                stopping.push((id, grace));
            }
        }
        drop(state);
        // The stops under way go on; they mark their protons stopped once the processes are gone.
        for (id, grace) in stopping {
            if let Some(stopped) = self.begin_stop(&id, grace) {
                tokio::spawn(stopped);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::Duration;

    use super::super::ProcessDriver;
    use super::super::pid::ProcessId;
    use super::super::state_file::{ProtonRecord, ReplicaRecord, StateFile};
    use super::*;
    use crate::driver::{ContainerSpec, ProtonSpec, Resources};
    use crate::status::StatusHub;

    fn spec() -> ProtonSpec {
        ProtonSpec {
            proton_id: "p".into(),
            workload_id: "w".into(),
            artifact_id: "a".into(),
            replica_count: 1,
            container: ContainerSpec {
                name: "main".into(),
                image_uri: "image".into(),
                entrypoint: vec!["sleep".into(), "30".into()],
                env: BTreeMap::new(),
                port: 8080,
                startup_probe: None,
                readiness_probe: None,
                liveness_probe: None,
                security: None,
            },
            resources: Resources::default(),
            meta_shard: 0,
            log_retention_seconds: 0,
            fencing_token: 0,
        }
    }

    #[tokio::test]
    async fn a_recorded_pid_that_another_process_has_now_is_not_adopted() {
        let dir = tempfile::tempdir().expect("temp dir");
        // This test's own pid, but not its start time: the recorded process is gone and its pid
        // was given to another process.
        let me = ProcessId::of(std::process::id()).expect("this process is in /proc");
        let recycled = ProcessId { start_time: me.start_time + 1, ..me };
        let replica = ReplicaRecord {
            name: "p-0".into(),
            port: 1,
            log: dir.path().join("p-0.log"),
            process: Some(recycled),
            created_at: nucleus_api::clock::now(),
            process_started_at: Some(nucleus_api::clock::now()),
            restart_count: 0,
            ever_ready: false,
            ready: false,
            failure: None,
        };
        let record = StateRecord {
            protons: BTreeMap::from([(
                "p".to_owned(),
                ProtonRecord { spec: spec(), stopping: None, replicas: BTreeMap::from([(0, replica)]), retiring: Vec::new() },
            )]),
            ..StateRecord::default()
        };
        let process_dir: PathBuf = dir.path().join("process-driver");
        StateFile::in_dir(&process_dir).save(&record).expect("save");

        let hub = StatusHub::new();
        let (_, mut changes) = hub.subscribe();
        let _driver =
            ProcessDriver::new("node".into(), dir.path(), hub.clone(), crate::driver::process::ProcessSettings::default()).expect("driver");
        let failed = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let report = changes.recv().await.expect("reports");
                if report.replicas.first().is_some_and(|replica| replica.phase == "failed") {
                    return report;
                }
            }
        })
        .await
        .expect("the replica is handled as a process that ended before becoming ready");
        let error = &failed.replicas[0].error;
        assert!(error.contains("before becoming ready"), "{error}");
        let kept = StateFile::in_dir(&process_dir).load().expect("load");
        let replica = &kept.protons["p"].replicas[&0];
        assert_eq!(replica.process, None, "the other process's pid is no longer recorded");
        assert!(replica.failure.is_some());
    }
}
