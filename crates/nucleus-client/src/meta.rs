use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use nucleus_proto::meta::v1 as pb;
use nucleus_proto::meta::v1::meta_client::MetaClient as Grpc;
use serde::de::DeserializeOwned;
use tonic::transport::Channel;

use crate::members::Members;
use crate::watch::{ResumableWatch, WatchStream};
use crate::{Error, Txn, WriteOutcome};

const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long transient failures (no leader yet, connection refused) are retried before giving up.
const RETRY_FOR: Duration = Duration::from_secs(15);
/// Kept short: during a leader election the next try should come soon after the new leader exists.
const MAX_BACKOFF: Duration = Duration::from_millis(200);

/// A stored document with the revision it was last written at (for conditional updates).
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub key: String,
    pub value: T,
    pub mod_revision: u64,
}

/// Client of the metadata service: calls go to the group's leader, wherever it moves.
#[derive(Debug, Clone)]
pub struct MetaClient {
    members: Arc<Members>,
}

impl MetaClient {
    /// Connects lazily to the meta nodes at `addrs` (host:port each; any member will do, the
    /// client finds the leader).
    pub fn new(addrs: &[String]) -> Result<MetaClient, Error> {
        Ok(MetaClient { members: Arc::new(Members::new(addrs)?) })
    }

    /// The addresses the client was given.
    pub fn seeds(&self) -> &[String] {
        self.members.seeds()
    }

    pub async fn get(&self, key: &str) -> Result<Option<pb::KeyValue>, Error> {
        let response = self
            .retrying(|mut grpc| {
                let req = timed(pb::GetRequest { key: key.to_owned() });
                async move { grpc.get(req).await }
            })
            .await?;
        Ok(response.kv)
    }

    pub async fn list(&self, prefix: &str) -> Result<(Vec<pb::KeyValue>, u64), Error> {
        let response = self
            .retrying(|mut grpc| {
                let req = timed(pb::ListRequest { prefix: prefix.to_owned() });
                async move { grpc.list(req).await }
            })
            .await?;
        Ok((response.kvs, response.revision))
    }

    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Versioned<T>>, Error> {
        self.get(key).await?.map(decode).transpose()
    }

    pub async fn list_json<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<Versioned<T>>, Error> {
        let (kvs, _) = self.list(prefix).await?;
        kvs.into_iter().map(decode).collect()
    }

    /// Applies `txn` atomically. Transient failures are retried with the same request id, so the
    /// write is applied at most once even if an earlier attempt did reach the leader.
    pub async fn write(&self, txn: Txn) -> Result<WriteOutcome, Error> {
        let request = txn.into_request(uuid::Uuid::new_v4().to_string());
        let response = self
            .retrying(|mut grpc| {
                let req = timed(request.clone());
                async move { grpc.write(req).await }
            })
            .await?;
        Ok(if response.succeeded {
            WriteOutcome::Applied { revision: response.revision }
        } else {
            WriteOutcome::Conflict { key: response.failed_key }
        })
    }

    /// The current contents of `prefix` (one [`WatchEvent::Reset`](crate::WatchEvent::Reset)),
    /// then every change to it.
    pub async fn watch(&self, prefix: &str) -> Result<WatchStream, Error> {
        self.open_watch(pb::WatchRequest { prefix: prefix.to_owned(), start_revision: None }).await
    }

    /// Every change to `prefix` from `start_revision` on (no Reset). Fails with an error for
    /// which [`Error::is_compacted`] holds if meta no longer keeps changes that old.
    pub async fn watch_from(&self, prefix: &str, start_revision: u64) -> Result<WatchStream, Error> {
        let request = pb::WatchRequest { prefix: prefix.to_owned(), start_revision: Some(start_revision) };
        self.open_watch(request).await
    }

    /// A watch of `prefix` that outlives broken streams: see [`ResumableWatch`].
    pub fn watch_resumable(&self, prefix: &str) -> ResumableWatch {
        ResumableWatch::new(self.clone(), prefix)
    }

    async fn open_watch(&self, request: pb::WatchRequest) -> Result<WatchStream, Error> {
        let stream = self
            .retrying(|mut grpc| {
                let req = request.clone();
                async move { grpc.watch(req).await }
            })
            .await?;
        Ok(WatchStream::new(stream))
    }

    async fn retrying<R, F, Fut>(&self, call: F) -> Result<R, Error>
    where
        F: Fn(Grpc<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let deadline = tokio::time::Instant::now() + RETRY_FOR;
        let mut backoff = Duration::from_millis(20);
        loop {
            let (addr, grpc) = self.members.target()?;
            match call(grpc).await {
                Ok(response) => {
                    self.members.succeeded(&addr);
                    return Ok(response.into_inner());
                }
                Err(status) => {
                    let redirected = self.members.failed(&addr, &status);
                    let err = rpc(status);
                    if !err.is_transient() || tokio::time::Instant::now() + backoff > deadline {
                        return Err(err);
                    }
                    tracing::debug!(addr, error = %err, redirected, "meta call failed, retrying");
                    if !redirected {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                }
            }
        }
    }
}

fn timed<T>(message: T) -> tonic::Request<T> {
    let mut req = tonic::Request::new(message);
    req.set_timeout(CALL_TIMEOUT);
    req
}

pub(crate) fn rpc(status: tonic::Status) -> Error {
    Error::Rpc { service: "meta", status }
}

/// Decodes a stored JSON document.
pub fn decode<T: DeserializeOwned>(kv: pb::KeyValue) -> Result<Versioned<T>, Error> {
    let value = serde_json::from_slice(&kv.value).map_err(|source| Error::Decode { key: kv.key.clone(), source })?;
    Ok(Versioned { key: kv.key, value, mod_revision: kv.mod_revision })
}

impl MetaClient {
    /// Read-modify-write of one document under optimistic concurrency: `change` is re-run on a
    /// fresh copy whenever someone else wrote the document in between. Returns `Ok(None)` if the
    /// document does not exist, and whatever `change` refuses with as `Err(Refused)`.
    pub async fn update_json<T, E>(
        &self,
        key: &str,
        mut change: impl FnMut(&mut T) -> Result<(), E>,
    ) -> Result<Result<Option<T>, E>, Error>
    where
        T: DeserializeOwned + serde::Serialize,
    {
        loop {
            let Some(mut doc) = self.get_json::<T>(key).await? else {
                return Ok(Ok(None));
            };
            if let Err(refused) = change(&mut doc.value) {
                return Ok(Err(refused));
            }
            let txn = Txn::new().require(key, doc.mod_revision).put_json(key, &doc.value)?;
            if self.write(txn).await?.applied() {
                return Ok(Ok(Some(doc.value)));
            }
        }
    }
}

/// The status of one meta node (not routed to the leader): its view of the group.
pub async fn node_status(addr: &str) -> Result<pb::StatusResponse, Error> {
    let members = Members::new(&[addr.to_owned()])?;
    let (_, mut grpc) = members.target()?;
    let response = grpc.status(timed(pb::StatusRequest {})).await.map_err(rpc)?;
    Ok(response.into_inner())
}
