#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Client(#[from] nucleus_client::Error),
    #[error("shard lease: {0}")]
    Lease(String),
}
