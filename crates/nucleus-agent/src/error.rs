use std::io;
use std::path::PathBuf;

use tonic::Status;

/// Everything the agent library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid launch request: {0}")]
    InvalidSpec(String),
    #[error(
        "fencing token {got} of meta shard {shard} is older than {newest}, the newest this agent has seen \
         for that shard: the calling scheduler lost the shard's lease to another worker"
    )]
    StaleFencingToken { shard: u64, got: u64, newest: u64 },
    #[error("the agent is shutting down")]
    ShuttingDown,
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error(
        "cannot reach the Kubernetes API: check the kubeconfig (KUBECONFIG, ~/.kube/config) or, \
         in a pod, the in-cluster service account: {0}"
    )]
    KubernetesConfig(#[source] kube::Error),
    /// A call to the Kubernetes API failed; `action` says which, e.g. "apply Deployment
    /// nucleus/proton-x".
    #[error("cannot {action}: {}", kube_advice(source))]
    Kubernetes {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "proton {0} is still being stopped (its Deployment is being deleted): launch it again once \
         it is reported stopped"
    )]
    StillStopping(String),
    /// The agent cannot keep its state (process driver state, fencing tokens) in its data dir.
    #[error(
        "cannot {action} {}: {source}; the agent keeps what it runs in its data dir: make sure \
         that directory is writable by the agent and its disk is not full",
        path.display()
    )]
    DataDir {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the agent state file {} is unreadable ({problem}); the replicas it lists may still be running: \
         stop their process groups (the pids in the file) and move the file away, then start the agent again",
        path.display()
    )]
    CorruptStateFile { path: PathBuf, problem: String },

    // Why a replica failed, as its status message shows it.
    #[error("the container has an empty entrypoint: nothing to run")]
    EmptyEntrypoint,
    #[error("cannot open the replica's log file {}: {source}", path.display())]
    ReplicaLog {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot prepare the replica's working directory {}: {source}", path.display())]
    WorkDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("this agent does not run `{program}`: {rule}; ask its operator, or use an allowed program")]
    ExecNotAllowed { program: String, rule: String },
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: io::Error,
    },
    #[error("GET {url}: HTTPS probes are not supported (this agent is built without TLS)")]
    HttpsProbe { url: String },
    #[error("GET {url} answered HTTP status {status}")]
    ProbeStatus { url: String, status: u16 },
    #[error("GET {url} failed: {detail}")]
    ProbeUnreachable { url: String, detail: String },
    #[error("startup probe failed {failures} times in a row: {last}")]
    StartupProbe { failures: u32, last: Box<Error> },
}

impl Error {
    pub(crate) fn kubernetes(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let action = action.into();
        move |source| Error::Kubernetes { action, source }
    }
}

/// What the API server said and what to do about it.
fn kube_advice(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let hint = match status.code {
                401 => "; the credentials were refused: refresh the kubeconfig or the service account token",
                403 => {
                    "; the agent's service account lacks RBAC permission: it needs get/list/watch on \
                        pods and nodes and get/patch/delete on deployments and services in its namespace"
                }
                404 => "; does the namespace exist? (kubectl create namespace <namespace>)",
                409 => "; another field manager owns these fields",
                422 => "; the cluster rejected the manifest",
                _ => "",
            };
            format!("the API server answered {} {}: {}{hint}", status.code, status.reason, status.message)
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => format!(
            "cannot reach the Kubernetes API: check the kubeconfig or in-cluster service account and \
             the network to the API server ({error})"
        ),
        kube::Error::Auth(_) => format!("cannot authenticate to the Kubernetes API: refresh the kubeconfig credentials ({error})"),
        other => other.to_string(),
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        match &err {
            Error::InvalidSpec(_) => Status::invalid_argument(err.to_string()),
            Error::StaleFencingToken { .. } => Status::failed_precondition(err.to_string()),
            Error::ShuttingDown | Error::StillStopping(_) | Error::KubernetesConfig(_) | Error::DataDir { .. } => {
                Status::unavailable(err.to_string())
            }
            Error::CorruptStateFile { .. } => Status::internal(err.to_string()),
            // A replica's own failures are reported in its status, never as a call's answer.
            Error::EmptyEntrypoint
            | Error::ReplicaLog { .. }
            | Error::WorkDir { .. }
            | Error::ExecNotAllowed { .. }
            | Error::Spawn { .. }
            | Error::HttpsProbe { .. }
            | Error::ProbeStatus { .. }
            | Error::ProbeUnreachable { .. }
            | Error::StartupProbe { .. } => Status::internal(err.to_string()),
            Error::Transport(_) => Status::internal(err.to_string()),
            Error::Kubernetes { source, .. } => match source {
                kube::Error::Api(status) if status.code == 422 || status.code == 400 => Status::invalid_argument(err.to_string()),
                kube::Error::Api(status) if matches!(status.code, 401 | 403 | 404 | 409) => Status::failed_precondition(err.to_string()),
                kube::Error::Api(status) if status.code < 500 && status.code != 429 => Status::internal(err.to_string()),
                _ => Status::unavailable(err.to_string()),
            },
        }
    }
}
