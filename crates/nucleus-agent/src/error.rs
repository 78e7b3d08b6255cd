use tonic::Status;

/// Everything the agent library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid launch request: {0}")]
    InvalidSpec(String),
    #[error("fencing token {got} is older than {newest}, the newest this agent has seen")]
    StaleFencingToken { got: u64, newest: u64 },
    #[error("the agent is shutting down")]
    ShuttingDown,
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        match &err {
            Error::InvalidSpec(_) => Status::invalid_argument(err.to_string()),
            Error::StaleFencingToken { .. } => Status::failed_precondition(err.to_string()),
            Error::ShuttingDown => Status::unavailable(err.to_string()),
            Error::Transport(_) => Status::internal(err.to_string()),
        }
    }
}
