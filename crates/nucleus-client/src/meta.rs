use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use nucleus_proto::meta::v1 as pb;
use nucleus_proto::meta::v1::meta_client::MetaClient as Grpc;
use nucleus_tls::Dialer;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;
use tonic::transport::Channel;

use crate::keys;
use crate::members::Members;
use crate::watch::{ResumableWatch, WatchStream};
use crate::{Error, Txn, WriteOutcome};

/// One attempt's deadline. The chaos drills show what it costs: a leader that hangs (SIGSTOP) or is
/// cut off holds a call for this long before the next node is tried. 3 s made those drills lossless,
/// but then `meta_failover` saw the first write after a leader kill wait the full 3 s under load;
/// until that wait is understood (issue 17), it stays at 10 s.
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

/// Client of the metadata service: each call goes to the leader of the Raft group its key or
/// prefix belongs to ([`keys::group_of_key`]), wherever that leader moves.
#[derive(Debug, Clone)]
pub struct MetaClient {
    members: Arc<Members>,
    /// The cluster's shard count, asked of the root group on first use (fixed at cluster creation,
    /// so it never goes stale).
    shard_count: Arc<OnceCell<u64>>,
}

impl MetaClient {
    /// Connects lazily to the meta nodes at `addrs` (host:port each; any member will do, the
    /// client finds the leader of each group).
    /// `dialer` says how: mutual TLS with the caller's certificate, or plaintext.
    pub fn new(addrs: &[String], dialer: &Dialer) -> Result<MetaClient, Error> {
        Ok(MetaClient { members: Arc::new(Members::new(addrs, dialer.clone())?), shard_count: Arc::default() })
    }

    /// The addresses the client was given.
    pub fn seeds(&self) -> &[String] {
        self.members.seeds()
    }

    /// The number of shard groups (groups 1..=shard_count; 0 is the root). Asked once, then cached;
    /// a node that does not know it yet counts as not ready, and the call tries again.
    pub async fn shard_count(&self) -> Result<u64, Error> {
        let count = self
            .shard_count
            .get_or_try_init(|| async {
                let status = self
                    .retrying(keys::ROOT_GROUP, |mut grpc| async move {
                        let status = grpc.status(timed(pb::StatusRequest { group_id: keys::ROOT_GROUP })).await?;
                        if status.get_ref().shard_count == 0 {
                            return Err(tonic::Status::unavailable("meta node does not know the shard count yet"));
                        }
                        Ok(status)
                    })
                    .await?;
                // The root's members: nodes to try for shards the seeds do not host.
                self.members.discovered(status.members.iter().map(|m| m.addr.as_str()));
                Ok::<u64, Error>(status.shard_count)
            })
            .await?;
        Ok(*count)
    }

    pub async fn get(&self, key: &str) -> Result<Option<pb::KeyValue>, Error> {
        let group = keys::group_of_key(key, self.shard_count().await?);
        let response = self
            .retrying(group, |mut grpc| {
                let req = timed(pb::GetRequest { key: key.to_owned(), group_id: group });
                async move { grpc.get(req).await }
            })
            .await?;
        Ok(response.kv)
    }

    /// Every key under `prefix`, sorted by key, and the revision they were read at. A prefix
    /// that spans several groups (`workloads/`, unlike `protons/<workload>/`; see
    /// [`keys::groups_of_prefix`]) is read from all of them concurrently, each read linearizable;
    /// revisions are per group, so the revision returned is then 0.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<pb::KeyValue>, u64), Error> {
        let groups = keys::groups_of_prefix(prefix, self.shard_count().await?);
        if let [group] = groups[..] {
            return self.list_group(group, prefix).await;
        }
        let lists = futures::future::try_join_all(groups.iter().map(|group| self.list_group(*group, prefix))).await?;
        let mut kvs: Vec<pb::KeyValue> = lists.into_iter().flat_map(|(kvs, _)| kvs).collect();
        kvs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok((kvs, 0))
    }

    /// Page after page (meta answers about 1 MiB at a time). The revision is the first page's: a
    /// watch from just after it sees every change the later pages may or may not show.
    async fn list_group(&self, group: u64, prefix: &str) -> Result<(Vec<pb::KeyValue>, u64), Error> {
        let mut kvs = Vec::new();
        let mut revision = None;
        loop {
            let start_after = kvs.last().map(|kv: &pb::KeyValue| kv.key.clone()).unwrap_or_default();
            let response = self
                .retrying(group, |mut grpc| {
                    let req = timed(pb::ListRequest {
                        prefix: prefix.to_owned(),
                        group_id: group,
                        start_after: start_after.clone(),
                        page_bytes: 0,
                    });
                    async move { grpc.list(req).await }
                })
                .await?;
            let first = *revision.get_or_insert(response.revision);
            kvs.extend(response.kvs);
            if !response.more {
                return Ok((kvs, first));
            }
        }
    }

    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Versioned<T>>, Error> {
        self.get(key).await?.map(decode).transpose()
    }

    pub async fn list_json<T: DeserializeOwned>(&self, prefix: &str) -> Result<Vec<Versioned<T>>, Error> {
        let (kvs, _) = self.list(prefix).await?;
        kvs.into_iter().map(decode).collect()
    }

    /// Applies `txn` atomically in the group of its keys; a transaction whose keys span groups
    /// fails with [`Error::CrossGroup`] and sends nothing. Transient failures are retried with the
    /// same request id, so the write is applied at most once even if an earlier attempt did reach
    /// the leader. The revision of [`WriteOutcome::Applied`] is the group's.
    pub async fn write(&self, txn: Txn) -> Result<WriteOutcome, Error> {
        txn.scope()?; // refuse a cross-group transaction before asking anything
        let group = txn.group(self.shard_count().await?)?;
        let request = txn.into_request(uuid::Uuid::new_v4().to_string(), group);
        let response = self
            .retrying(group, |mut grpc| {
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
    /// then every change to it. One group only: a prefix that spans several fails with
    /// [`Error::MultiGroupWatch`] (use [`MetaClient::watch_resumable`]).
    pub async fn watch(&self, prefix: &str) -> Result<WatchStream, Error> {
        let group = self.single_group(prefix).await?;
        self.watch_group(group, prefix, None).await
    }

    /// Every change to `prefix` from `start_revision` (of the prefix's group) on, no Reset. Fails
    /// with an error for which [`Error::is_compacted`] holds if meta no longer keeps changes that
    /// old. One group only, like [`MetaClient::watch`].
    pub async fn watch_from(&self, prefix: &str, start_revision: u64) -> Result<WatchStream, Error> {
        let group = self.single_group(prefix).await?;
        self.watch_group(group, prefix, Some(start_revision)).await
    }

    /// A watch of `prefix` that outlives broken streams and may span groups: see [`ResumableWatch`].
    pub fn watch_resumable(&self, prefix: &str) -> ResumableWatch {
        ResumableWatch::new(self.clone(), prefix)
    }

    async fn single_group(&self, prefix: &str) -> Result<u64, Error> {
        match keys::groups_of_prefix(prefix, self.shard_count().await?)[..] {
            [group] => Ok(group),
            ref groups => Err(Error::MultiGroupWatch { prefix: prefix.to_owned(), groups: groups.len() }),
        }
    }

    /// A watch of `prefix` in one group: from a snapshot, or from `start_revision`.
    pub(crate) async fn watch_group(&self, group: u64, prefix: &str, start_revision: Option<u64>) -> Result<WatchStream, Error> {
        let request = pb::WatchRequest { prefix: prefix.to_owned(), start_revision, group_id: group };
        let stream = self
            .retrying(group, |mut grpc| {
                let req = request.clone();
                async move { grpc.watch(req).await }
            })
            .await?;
        Ok(WatchStream::new(stream))
    }

    /// Calls the leader of `group`, following leader hints and retrying transient failures. A
    /// node that does not host the group (NOT_FOUND) counts as transient: another node will.
    async fn retrying<R, F, Fut>(&self, group: u64, call: F) -> Result<R, Error>
    where
        F: Fn(Grpc<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<R>, tonic::Status>>,
    {
        let deadline = tokio::time::Instant::now() + RETRY_FOR;
        let mut backoff = Duration::from_millis(20);
        loop {
            let (addr, grpc) = self.members.target(group)?;
            match call(grpc).await {
                Ok(response) => {
                    self.members.succeeded(group, &addr);
                    return Ok(response.into_inner());
                }
                Err(status) => {
                    let redirected = self.members.failed(group, &addr, &status);
                    let not_hosted = status.code() == tonic::Code::NotFound;
                    let err = rpc(status);
                    if !(err.is_transient() || not_hosted) || tokio::time::Instant::now() + backoff > deadline {
                        return Err(err);
                    }
                    tracing::debug!(addr, group, error = %err, redirected, "meta call failed, retrying");
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
    nucleus_telemetry::trace::inject(&mut req);
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
    pub async fn update_json<T, E>(&self, key: &str, mut change: impl FnMut(&mut T) -> Result<(), E>) -> Result<Result<Option<T>, E>, Error>
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

/// The status of one meta node (not routed to the leader): its view of the root group, the
/// cluster's shard count and a summary of every group it hosts (`groups`).
pub async fn node_status(addr: &str, dialer: &Dialer) -> Result<pb::StatusResponse, Error> {
    node_status_of(addr, keys::ROOT_GROUP, dialer).await
}

/// Like [`node_status`], with the top-level fields describing `group`.
pub async fn node_status_of(addr: &str, group: u64, dialer: &Dialer) -> Result<pb::StatusResponse, Error> {
    let members = Members::new(&[addr.to_owned()], dialer.clone())?;
    let (_, mut grpc) = members.target(group)?;
    let response = grpc.status(timed(pb::StatusRequest { group_id: group })).await.map_err(rpc)?;
    Ok(response.into_inner())
}
