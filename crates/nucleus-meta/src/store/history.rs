//! The bounded change log that watches replay from: revision -> the change set applied at it.
//!
//! It is written in the same batch as the apply and pruned by revision alone, so every replica
//! with the same retention keeps the same window. `KEY_COMPACT_REVISION` is the newest revision
//! whose change set is gone: a watch may start at any revision above it.

use rocksdb::WriteBatch;

use super::codec::to_json;
use super::reader::{KEY_COMPACT_REVISION, ReadView};
use super::{CF_HISTORY, CF_SM, Db, Keyspace};
use crate::error::Error;
use crate::types::ChangeSet;

pub(crate) fn history_key(revision: u64) -> [u8; 8] {
    revision.to_be_bytes()
}

/// Records `changes` and forgets what falls out of the last `keep` revisions.
pub(crate) fn record(
    db: &Db,
    keys: Keyspace,
    view: &ReadView<'_>,
    changes: &ChangeSet,
    keep: u64,
    batch: &mut WriteBatch,
) -> Result<(), Error> {
    let cf = db.cf(CF_HISTORY);
    batch.put_cf(cf, keys.key(&history_key(changes.revision)), to_json(changes).map_err(|e| Error::corrupt("change set", e))?);
    let compacted = view.compact_revision()?;
    let target = changes.revision.saturating_sub(keep).max(compacted);
    // Usually one revision; more only after the retention was lowered.
    for revision in compacted + 1..=target {
        batch.delete_cf(cf, keys.key(&history_key(revision)));
    }
    // Written every time: while it is absent, the horizon defaults to the current revision.
    let encoded = to_json(&target).map_err(|e| Error::corrupt("compact revision", e))?;
    batch.put_cf(db.cf(CF_SM), keys.key(KEY_COMPACT_REVISION), encoded);
    Ok(())
}

/// Forgets all history: after a snapshot install, nothing before `revision` is known.
pub(crate) fn reset(db: &Db, keys: Keyspace, revision: u64, batch: &mut WriteBatch) -> Result<(), Error> {
    let (start, end) = keys.bounds();
    batch.delete_range_cf(db.cf(CF_HISTORY), start, end);
    let encoded = to_json(&revision).map_err(|e| Error::corrupt("compact revision", e))?;
    batch.put_cf(db.cf(CF_SM), keys.key(KEY_COMPACT_REVISION), encoded);
    Ok(())
}
