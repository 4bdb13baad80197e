//! Backups of the embedded store while the server runs, and restoring one
//! into a new data directory (the format is [`crate::store::backup`]'s).
//!
//! sled 0.34 has no snapshot read: an iterator (and `Db::export`, which
//! is one per tree) sees writes made while it runs. What makes the copy
//! one point in time is this backend's write lock (`commit::Writer`):
//! every write of every tree but `transient` takes it, audited or not
//! (maintenance's removals, signing keys, pruning), and the writes to the
//! old layout's `refresh_tokens` tree take the legacy lock. The backup
//! takes both, appends its own audit record, copies every tree into
//! memory (references to sled's buffers, not the bytes), and lets go;
//! writers wait only for that copy. Encoding and sending come after.
//!
//! The `transient` tree (the browser flow in progress: interactions,
//! login sessions, authorization codes) is left out: its writes are
//! sled's compare-and-swap outside the lock, and restoring them would
//! bring back codes already exchanged. After a restore, a browser that
//! was signing in starts again.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use super::{SledStore, open_db};
use crate::store::backup::{Collection, encode};
use crate::store::migrate::{Counts, count};
use crate::store::model::AuditEntry;
use crate::store::{Store, StoreError, StoreResult};

/// The tree left out of backups (see the module's comment).
const TRANSIENT: &[u8] = b"transient";

/// sled's name for the database's default tree.
const DEFAULT_TREE: &[u8] = b"__sled__default";

impl SledStore {
    /// A backup of every tree but `transient` at one point in time, its
    /// own audit record `audit` the newest of the chain it holds; durable
    /// (that record included) before it returns.
    pub(super) async fn take_backup(
        &self,
        audit: AuditEntry,
        created_at: i64,
    ) -> StoreResult<Vec<u8>> {
        let db = self.db.clone();
        let chain = self.audit.clone();
        let legacy = self.legacy.clone();
        let bytes = tokio::task::spawn_blocking(move || -> StoreResult<Vec<u8>> {
            let trees = {
                let mut writer = chain.lock();
                let _legacy = legacy.lock().unwrap_or_else(|p| p.into_inner());
                writer.record(audit)?;
                let mut trees = Vec::new();
                for name in db.tree_names() {
                    if name.as_ref() == TRANSIENT {
                        continue;
                    }
                    let tree = db.open_tree(&name)?;
                    let pairs = tree.iter().collect::<Result<Vec<_>, _>>()?;
                    if name.as_ref() == DEFAULT_TREE && pairs.is_empty() {
                        continue;
                    }
                    let name = String::from_utf8(name.to_vec()).map_err(|_| {
                        StoreError::Backend("a tree name that is not UTF-8".to_owned())
                    })?;
                    trees.push((name, pairs));
                }
                trees
            };
            encode("sled", created_at, &trees).map_err(|e| StoreError::Backend(e.to_string()))
        })
        .await
        .map_err(|e| StoreError::Backend(format!("backup task: {e}")))??;
        self.durable().await?;
        Ok(bytes)
    }
}

/// Writes `collections` into a new database in `dir/db` and flushes it.
/// `dir` holds nothing yet (the caller checked).
///
/// # Errors
/// The database cannot be created or written.
pub(in crate::store) fn import(dir: &Path, collections: Vec<Collection>) -> StoreResult<()> {
    let db = open_db(dir)?;
    for c in collections {
        let tree = if c.name.as_bytes() == DEFAULT_TREE {
            (*db).clone()
        } else {
            db.open_tree(c.name.as_bytes())?
        };
        let mut batch = sled::Batch::default();
        for (k, v) in c.pairs {
            batch.insert(k, v);
        }
        tree.apply_batch(batch)?;
    }
    db.flush()?;
    Ok(())
}

/// Opens the store in `dir` as a server would (rebuilding its indexes),
/// and counts every kind of record it holds.
///
/// # Errors
/// The store cannot be opened or read, or a record is corrupt.
pub(in crate::store) async fn open_counted(dir: &Path) -> StoreResult<(Arc<dyn Store>, Counts)> {
    let store = SledStore::open(dir, super::Durability::Durable)?;
    let consents = store.all_consents()?;
    let subjects: BTreeSet<&str> = consents.iter().map(|c| c.subject.as_str()).collect();
    let counts = count(&store, &subjects).await?;
    Ok((Arc::new(store), counts))
}
