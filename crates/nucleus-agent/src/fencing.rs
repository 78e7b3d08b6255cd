//! The newest scheduler fencing token seen per metadata shard, kept in the data dir so that a
//! scheduler that lost its lease is still refused after the agent restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::durable;
use crate::error::Error;

const FILE_NAME: &str = "fencing-tokens.json";

/// The file's content.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Newest {
    /// Per shard (tokens of different shards are revisions of different Raft groups, so they are
    /// only compared within a shard).
    shards: BTreeMap<u64, u64>,
}

pub(crate) struct FencingTokens {
    path: PathBuf,
    newest: Mutex<Newest>,
    /// Per shard, held from a call's check until its driver call returned: a call with an older
    /// token that passed its check cannot reach the driver after one with a newer token did.
    turns: Mutex<BTreeMap<u64, Arc<tokio::sync::Mutex<()>>>>,
}

/// A shard's turn: the driver call it admitted runs before any later call of that shard is checked.
pub(crate) type Turn = tokio::sync::OwnedMutexGuard<()>;

impl FencingTokens {
    /// Reads the tokens kept in `data_dir` (none when the agent never saw one).
    pub(crate) fn load(data_dir: &Path) -> Result<FencingTokens, Error> {
        let path = data_dir.join(FILE_NAME);
        let newest: Newest = durable::read_json(&path)?.unwrap_or_default();
        if !newest.shards.is_empty() {
            tracing::info!(path = %path.display(), shards = ?newest.shards, "newest fencing tokens restored");
        }
        Ok(FencingTokens { path, newest: Mutex::new(newest), turns: Mutex::default() })
    }

    /// Waits for `shard`'s turn, then [checks](Self::check) `token`: the call goes on to the
    /// driver holding the returned turn.
    pub(crate) async fn admit(&self, shard: u64, token: u64) -> Result<Turn, Error> {
        let lock = self.turns.lock().unwrap_or_else(|p| p.into_inner()).entry(shard).or_default().clone();
        let turn = lock.lock_owned().await;
        self.check(shard, token)?;
        Ok(turn)
    }

    /// Records `token` as the newest seen for `shard` unless an even newer one was seen before.
    /// A newer token is on disk before this returns Ok.
    pub(crate) fn check(&self, shard: u64, token: u64) -> Result<(), Error> {
        let mut newest = self.newest.lock().unwrap_or_else(|p| p.into_inner());
        let seen = newest.shards.get(&shard).copied().unwrap_or(0);
        if token < seen {
            tracing::warn!(shard, token, newest = seen, "refusing a request with a stale fencing token");
            return Err(Error::StaleFencingToken { shard, got: token, newest: seen });
        }
        if token > seen {
            newest.shards.insert(shard, token);
            if let Err(err) = durable::write_json(&self.path, &*newest) {
                // Not kept, so not enforced: the next request with this token tries again.
                newest.shards.insert(shard, seen);
                tracing::error!(error = %err, "cannot keep the newest fencing token");
                return Err(err);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_token_survives_a_reload() {
        let dir = tempfile::tempdir().expect("temp dir");
        let tokens = FencingTokens::load(dir.path()).expect("load");
        tokens.check(0, 5).expect("first token");
        tokens.check(3, 1).expect("another shard");
        drop(tokens);

        let tokens = FencingTokens::load(dir.path()).expect("reload");
        let err = tokens.check(0, 4).expect_err("stale after the reload");
        assert!(matches!(err, Error::StaleFencingToken { shard: 0, got: 4, newest: 5 }), "{err}");
        tokens.check(3, 1).expect("the same token again");
        tokens.check(0, 5).expect("the newest token again");
    }

    #[tokio::test]
    async fn an_older_call_admitted_first_reaches_the_driver_before_a_newer_one_is_checked() {
        let dir = tempfile::tempdir().expect("temp dir");
        let tokens = Arc::new(FencingTokens::load(dir.path()).expect("load"));
        let older = tokens.admit(0, 4).await.expect("token 4 admitted");
        let newer = {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.admit(0, 5).await.map(drop) })
        };
        tokio::task::yield_now().await;
        assert!(!newer.is_finished(), "the newer call waits for the older one's driver call");
        tokens.admit(1, 1).await.expect("another shard does not wait");
        drop(older);
        newer.await.expect("task").expect("token 5 admitted after");
        let err = tokens.admit(0, 4).await.expect_err("token 4 is stale now");
        assert!(matches!(err, Error::StaleFencingToken { shard: 0, got: 4, newest: 5 }), "{err}");
    }
}
