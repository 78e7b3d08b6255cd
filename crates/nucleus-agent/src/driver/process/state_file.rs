//! The process driver's state file, `<data dir>/process-driver/state.json`: every proton that
//! is not stopped, with its launch spec and, per replica, the process it runs (pid and start
//! time), its port and log file. Written atomically after every change, read once at start to
//! adopt the replicas an earlier agent left running.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::pid::ProcessId;
use crate::driver::ProtonSpec;
use crate::durable;
use crate::error::Error;

/// Bumped when a change of the format would make an older agent misread the file.
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StateRecord {
    pub version: u32,
    pub protons: BTreeMap<String, ProtonRecord>,
}

impl Default for StateRecord {
    fn default() -> StateRecord {
        StateRecord { version: VERSION, protons: BTreeMap::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProtonRecord {
    /// The spec of its last launch, to compare a repeated launch with.
    pub spec: ProtonSpec,
    /// While a stop is under way: the grace it asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopping: Option<Duration>,
    /// The replicas reported, by index.
    pub replicas: BTreeMap<u32, ReplicaRecord>,
    /// Replicas being stopped after a scale-down or a replacement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retiring: Vec<ReplicaRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReplicaRecord {
    pub name: String,
    pub port: u16,
    pub log: PathBuf,
    /// Its running process; none while it waits to be (re)started or once it has failed.
    pub process: Option<ProcessId>,
    pub created_at: DateTime<Utc>,
    pub process_started_at: Option<DateTime<Utc>>,
    pub restart_count: u32,
    /// Whether any of its processes was ever ready: then a crash is restarted, not a failure.
    pub ever_ready: bool,
    pub ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

/// Why a replica failed for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Failure {
    pub reason: String,
    pub message: String,
}

pub(crate) struct StateFile {
    path: PathBuf,
    /// What the file holds, to skip writes that would change nothing.
    written: Mutex<Option<StateRecord>>,
}

impl StateFile {
    pub(crate) fn in_dir(dir: &Path) -> StateFile {
        StateFile { path: dir.join("state.json"), written: Mutex::new(None) }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// What an earlier agent left; empty when there is no file.
    pub(crate) fn load(&self) -> Result<StateRecord, Error> {
        let record: StateRecord = durable::read_json(&self.path)?.unwrap_or_default();
        if record.version != VERSION {
            return Err(Error::CorruptStateFile {
                path: self.path.clone(),
                problem: format!("format version {} is not the one this agent reads ({VERSION})", record.version),
            });
        }
        *self.written() = Some(record.clone());
        Ok(record)
    }

    /// Replaces the file's content with `record` unless it holds that already.
    pub(crate) fn save(&self, record: &StateRecord) -> Result<(), Error> {
        let mut written = self.written();
        if written.as_ref() == Some(record) {
            return Ok(());
        }
        *written = None; // unknown until the write succeeds
        durable::write_json(&self.path, record)?;
        *written = Some(record.clone());
        Ok(())
    }

    /// Removes the file: the next agent starts with nothing to adopt.
    pub(crate) fn clear(&self) -> Result<(), Error> {
        let mut written = self.written();
        *written = None;
        durable::remove(&self.path)
    }

    fn written(&self) -> std::sync::MutexGuard<'_, Option<StateRecord>> {
        self.written.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::driver::{ContainerSpec, Gpus, ProbeScheme, ProbeSpec, Resources};

    fn spec() -> ProtonSpec {
        ProtonSpec {
            proton_id: "web".into(),
            workload_id: "w".into(),
            artifact_id: "a".into(),
            replica_count: 2,
            container: ContainerSpec {
                name: "main".into(),
                image_uri: "registry.example/web:1".into(),
                entrypoint: vec!["sh".into(), "-c".into(), "exec server --port $PORT".into()],
                env: BTreeMap::from([("GREETING".into(), "hello".into())]),
                port: 8080,
                startup_probe: None,
                readiness_probe: Some(ProbeSpec {
                    path: "/ready".into(),
                    port: 8080,
                    scheme: ProbeScheme::Http,
                    http_headers: BTreeMap::from([("x-probe".into(), "1".into())]),
                    initial_delay: Duration::from_secs(2),
                    period: Duration::from_millis(1500),
                    timeout: Duration::from_secs(1),
                    failure_threshold: 3,
                    success_threshold: 1,
                }),
                liveness_probe: None,
                security: None,
            },
            resources: Resources {
                bundle_id: "gpu-small".into(),
                cpu_millis: 500,
                memory_bytes: 1 << 30,
                gpus: Some(Gpus { count: 1, gpu_type: "nvidia-l4".into(), memory_bytes: 24 << 30 }),
            },
            meta_shard: 3,
            log_retention_seconds: 0,
            fencing_token: 0,
        }
    }

    fn replica(index: u32, process: Option<ProcessId>) -> ReplicaRecord {
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456789Z").expect("a time").with_timezone(&Utc);
        ReplicaRecord {
            name: format!("web-{index}"),
            port: 40_000 + u16::try_from(index).expect("small"),
            log: PathBuf::from(format!("/data/process-driver/logs/web/{index}-1.log")),
            process,
            created_at: at,
            process_started_at: process.map(|_| at + chrono::Duration::seconds(1)),
            restart_count: index,
            ever_ready: true,
            ready: index == 0,
            failure: None,
        }
    }

    fn record() -> StateRecord {
        let running = ProcessId { pid: 4242, start_time: 987_654 };
        let mut failed = replica(1, None);
        failed.failure = Some(Failure { reason: "StartupProbeFailed".into(), message: "startup probe failed 3 times in a row".into() });
        StateRecord {
            version: VERSION,
            protons: BTreeMap::from([
                (
                    "web".to_owned(),
                    ProtonRecord {
                        spec: spec(),
                        stopping: None,
                        replicas: BTreeMap::from([(0, replica(0, Some(running))), (1, failed)]),
                        retiring: vec![replica(2, Some(running))],
                    },
                ),
                (
                    "old".to_owned(),
                    ProtonRecord {
                        spec: ProtonSpec { proton_id: "old".into(), ..spec() },
                        stopping: Some(Duration::from_secs(10)),
                        replicas: BTreeMap::new(),
                        retiring: Vec::new(),
                    },
                ),
            ]),
        }
    }

    #[test]
    fn a_saved_state_loads_back_the_same_specs_and_replicas() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = StateFile::in_dir(dir.path());
        assert_eq!(file.load().expect("no file yet"), StateRecord::default());
        file.save(&record()).expect("save");

        let loaded = StateFile::in_dir(dir.path()).load().expect("load");
        assert_eq!(loaded, record());
        // What makes a repeated launch of an adopted proton a no-op.
        assert!(loaded.protons["web"].spec.same_except_replicas(&spec()));
    }

    #[test]
    fn a_save_replaces_the_file_atomically_and_clear_removes_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = StateFile::in_dir(dir.path());
        file.save(&record()).expect("save");
        let mut smaller = record();
        smaller.protons.remove("old");
        file.save(&smaller).expect("replace");
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("list").map(|entry| entry.expect("entry").file_name()).collect();
        assert_eq!(names, ["state.json"], "no temporary file is left");
        assert_eq!(StateFile::in_dir(dir.path()).load().expect("load"), smaller);

        file.clear().expect("clear");
        assert!(!file.path().exists());
        assert_eq!(StateFile::in_dir(dir.path()).load().expect("load"), StateRecord::default());
        // A save after a clear writes, although the content is what was written before it.
        file.save(&smaller).expect("save again");
        assert_eq!(StateFile::in_dir(dir.path()).load().expect("load"), smaller);
    }

    #[test]
    fn a_file_of_another_format_version_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = StateFile::in_dir(dir.path());
        file.save(&StateRecord { version: VERSION + 1, ..record() }).expect("save");
        let err = file.load().expect_err("another version");
        assert!(matches!(err, Error::CorruptStateFile { .. }), "{err}");
        assert!(err.to_string().contains("state.json"), "{err}");
    }
}
