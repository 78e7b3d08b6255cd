//! Scheduler workers split the meta shards between them by leases held in Raft.
//!
//! The lease of shard `g` lives in shard `g` itself (`shardleases/<g>`, plus a heartbeat key), so
//! every write a worker makes there is conditioned on the lease still being at the revision it
//! took it at: that revision is the worker's fencing token for the shard, and meta refuses the
//! writes of a worker that lost it. Agents refuse calls with a token older than the newest they
//! have seen for the shard. A worker that dies stops renewing; others take its shards once the
//! lease has expired (TTL plus a clock-skew margin).

mod fence;
mod plan;

use std::collections::BTreeMap;
use std::time::Duration;

use nucleus_client::{MetaClient, Txn, WriteOutcome, keys};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub(crate) use self::fence::Fence;
pub use self::plan::{CLOCK_SKEW_MS, LeaseAction, LeaseBeat, LeaseHolder, Me, ReadLease, plan};
use crate::Error;
use crate::metrics::SchedulerMetrics;

/// How long a lease lasts without renewal. A dead worker's shards are taken over after this
/// (plus [`CLOCK_SKEW_MS`]).
pub const LEASE_TTL: Duration = Duration::from_secs(5);
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// Stop acting on leases not renewed for this long: another worker may take them soon after.
const SELF_EXPIRY: Duration = Duration::from_secs(4);

/// The shards a worker holds: group -> fencing token (the revision of the lease it took).
pub type Held = BTreeMap<u64, u64>;

/// `schedulers/<name>`: a worker's heartbeat, so that workers know how many share the shards.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerRecord {
    pub name: String,
    pub incarnation: String,
    pub renewed_at_ms: i64,
    pub ttl_ms: u64,
}

/// Keeps this worker's leases: takes its share, renews, gives back; publishes what it holds.
pub struct LeaseKeeper {
    meta: MetaClient,
    me: Me,
    shard_count: u64,
    metrics: SchedulerMetrics,
}

impl LeaseKeeper {
    /// Starts keeping leases for worker `name`; the receiver always has the current holdings.
    pub async fn spawn(meta: MetaClient, name: &str) -> Result<(watch::Receiver<Held>, JoinHandle<()>), Error> {
        let shard_count = meta.shard_count().await?;
        let me = Me { worker: name.to_owned(), incarnation: uuid::Uuid::new_v4().to_string() };
        let keeper = LeaseKeeper { meta, me, shard_count, metrics: SchedulerMetrics::of(name) };
        let (tx, rx) = watch::channel(Held::new());
        let task = tokio::spawn(keeper.run(tx));
        Ok((rx, task))
    }

    async fn run(self, tx: watch::Sender<Held>) {
        let mut held = Held::new();
        let mut renewed = Instant::now();
        let mut tick = tokio::time::interval(RENEW_EVERY);
        loop {
            tick.tick().await;
            let before = held.clone();
            match self.round(&mut held).await {
                Ok(()) => renewed = Instant::now(),
                Err(err) => {
                    tracing::warn!(worker = self.me.worker, error = %err, "lease round failed; retrying");
                    if renewed.elapsed() >= SELF_EXPIRY && !held.is_empty() {
                        tracing::warn!(worker = self.me.worker, shards = ?held.keys(), "leases not renewed in time; stop acting on them");
                        held.clear();
                    }
                }
            }
            self.metrics.leases(&before, &held);
            tx.send_if_modified(|current| {
                let changed = *current != held;
                if changed {
                    tracing::info!(worker = self.me.worker, shards = ?held.keys().collect::<Vec<_>>(), "holding shards");
                    current.clone_from(&held);
                }
                changed
            });
        }
    }

    async fn round(&self, held: &mut Held) -> Result<(), Error> {
        let now_ms = nucleus_api::clock::now_millis();
        let ttl_ms = LEASE_TTL.as_millis() as u64;
        let record = WorkerRecord { name: self.me.worker.clone(), incarnation: self.me.incarnation.clone(), renewed_at_ms: now_ms, ttl_ms };
        self.meta.write(Txn::new().put_json(&keys::scheduler(&self.me.worker), &record)?).await?;
        let workers = self.meta.list_json::<WorkerRecord>(keys::SCHEDULERS).await?;
        let live = workers.iter().filter(|w| w.value.renewed_at_ms + w.value.ttl_ms as i64 + CLOCK_SKEW_MS >= now_ms).count().max(1);
        let leases = self.read_leases().await?;
        // Whatever the store no longer shows as ours is lost.
        held.retain(|group, token| {
            leases.get(group).and_then(Option::as_ref).is_some_and(|l| l.revision == *token && l.holder.incarnation == self.me.incarnation)
        });
        let beat = LeaseBeat { renewed_at_ms: now_ms, ttl_ms };
        for action in plan(&self.me, now_ms, &leases, live) {
            match action {
                LeaseAction::Acquire { group, expected } => {
                    let holder = LeaseHolder { worker: self.me.worker.clone(), incarnation: self.me.incarnation.clone() };
                    let txn = Txn::new()
                        .require(&keys::shard_lease(group), expected)
                        .put_json(&keys::shard_lease(group), &holder)?
                        .put_json(&keys::shard_lease_beat(group), &beat)?;
                    if let WriteOutcome::Applied { revision } = self.meta.write(txn).await? {
                        tracing::info!(worker = self.me.worker, group, fencing_token = revision, "took shard lease");
                        held.insert(group, revision);
                    }
                }
                LeaseAction::Renew { group, revision } => {
                    let txn = Txn::new().require(&keys::shard_lease(group), revision).put_json(&keys::shard_lease_beat(group), &beat)?;
                    if !self.meta.write(txn).await?.applied() {
                        tracing::warn!(worker = self.me.worker, group, "shard lease lost");
                        held.remove(&group);
                    }
                }
                LeaseAction::Release { group, revision } => {
                    held.remove(&group);
                    let txn = Txn::new()
                        .require(&keys::shard_lease(group), revision)
                        .delete(&keys::shard_lease(group))
                        .delete(&keys::shard_lease_beat(group));
                    self.meta.write(txn).await?;
                    tracing::info!(worker = self.me.worker, group, "gave shard lease back (over the fair share)");
                }
            }
        }
        Ok(())
    }

    /// Every shard's lease as stored (one linearizable read per shard).
    async fn read_leases(&self) -> Result<BTreeMap<u64, Option<ReadLease>>, Error> {
        let mut leases: BTreeMap<u64, Option<ReadLease>> = (1..=self.shard_count).map(|g| (g, None)).collect();
        let mut beats: BTreeMap<u64, LeaseBeat> = BTreeMap::new();
        let (kvs, _) = self.meta.list(keys::SHARD_LEASES).await?;
        for kv in kvs {
            let Some(rest) = kv.key.strip_prefix(keys::SHARD_LEASES) else { continue };
            let (group, is_beat) = match rest.split_once('/') {
                Some((group, "beat")) => (group, true),
                Some(_) => continue,
                None => (rest, false),
            };
            let Ok(group) = group.parse::<u64>() else { continue };
            let decode = |what| Error::Lease(format!("{what} of shard {group} is not valid JSON; delete {} to reset it", kv.key));
            if is_beat {
                beats.insert(group, serde_json::from_slice(&kv.value).map_err(|_| decode("lease beat"))?);
            } else {
                let holder = serde_json::from_slice(&kv.value).map_err(|_| decode("lease"))?;
                leases.insert(group, Some(ReadLease { holder, revision: kv.mod_revision, beat: None }));
            }
        }
        for (group, beat) in beats {
            if let Some(Some(lease)) = leases.get_mut(&group) {
                lease.beat = Some(beat);
            }
        }
        Ok(leases)
    }
}
