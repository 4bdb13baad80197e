//! How the sled backend makes writes durable and audited: group commit
//! (concurrent writers share one disk flush) and the audit chain head,
//! under which each audited change and its record are written in one
//! transaction.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};
use sled::{Transactional, Tree};

use super::codec::encode;
use crate::store::model::{AuditEntry, AuditRecord};
use crate::store::{StoreError, StoreResult};

/// Why a transaction body gave up.
pub(super) enum Abort {
    /// The record changed since it was read (or is not there): nothing is
    /// written and the caller is told.
    Conflict,
    /// Storage failed.
    Store(StoreError),
}

/// What a transaction body returns.
pub(super) type TxResult<T> = Result<T, ConflictableTransactionError<Abort>>;

/// Aborts a transaction with a storage error.
pub(super) fn abort(e: StoreError) -> ConflictableTransactionError<Abort> {
    ConflictableTransactionError::Abort(Abort::Store(e))
}

/// Aborts a transaction because the record changed.
pub(super) fn conflict() -> ConflictableTransactionError<Abort> {
    ConflictableTransactionError::Abort(Abort::Conflict)
}

/// Maps sled's unabortable errors inside a body.
pub(super) fn tx(e: UnabortableTransactionError) -> ConflictableTransactionError<Abort> {
    e.into()
}

/// Group commit: concurrent callers of [`GroupCommit::flush`] share one
/// disk flush. A caller takes a ticket after its write; whoever holds the
/// lock flushes everything written so far and marks every ticket up to
/// that point done, so the callers queued behind it return without
/// flushing again. No timer, no background task.
#[derive(Default)]
pub(super) struct GroupCommit {
    /// Tickets handed out (one per flush request).
    pub(super) requested: AtomicU64,
    /// Every ticket up to this one is on disk.
    pub(super) completed: AtomicU64,
    /// One flush at a time; FIFO, so waiters are served in order.
    lock: tokio::sync::Mutex<()>,
}

impl GroupCommit {
    /// Makes every write so far durable, sharing the flush with concurrent
    /// callers.
    pub(super) async fn flush(&self, db: &sled::Db) -> StoreResult<()> {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _turn = self.lock.lock().await;
        if self.completed.load(Ordering::SeqCst) >= ticket {
            return Ok(()); // a flush that started after our write covered it
        }
        let covers = self.requested.load(Ordering::SeqCst);
        // sled's own `flush_async` runs on sled's small internal thread
        // pool and was seen to stall with many databases in one process;
        // a blocking flush on tokio's blocking pool does not.
        let db = db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| StoreError::Backend(format!("flush task: {e}")))??;
        self.completed.fetch_max(covers, Ordering::SeqCst);
        Ok(())
    }
}

/// The head of the audit chain: the next record's seq and the last hash.
pub(super) struct Chain {
    pub(super) next_seq: u64,
    pub(super) last_hash: String,
}

/// The audit tree and its chain head.
pub(super) struct AuditChain {
    pub(super) tree: Tree,
    pub(super) head: Mutex<Chain>,
}

impl AuditChain {
    /// Runs `change` on `tree` and writes the audit record of `audit` in
    /// one transaction, with the chain head held, so records reach the log
    /// in chain order and a durable change always has its record. The chain
    /// moves on only if the transaction committed.
    ///
    /// Returns `Ok(None)` when `change` gave up with [`Abort::Conflict`].
    pub(super) fn write<T>(
        &self,
        tree: &Tree,
        audit: Option<AuditEntry>,
        change: impl Fn(&TransactionalTree) -> TxResult<T>,
    ) -> StoreResult<Option<T>> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        let record = audit.map(|e| AuditRecord::seal(e, head.next_seq, head.last_hash.clone()));
        let encoded = record.as_ref().map(encode).transpose()?;
        let result = (tree, &self.tree).transaction(|(t, audit_tree)| {
            let out = change(t)?;
            if let (Some(r), Some(bytes)) = (&record, &encoded) {
                audit_tree.insert(&r.seq.to_be_bytes(), bytes.as_slice())?;
            }
            Ok(out)
        });
        let out = match result {
            Ok(v) => v,
            Err(TransactionError::Abort(Abort::Conflict)) => return Ok(None),
            Err(TransactionError::Abort(Abort::Store(e))) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        };
        if let Some(r) = record {
            head.next_seq = r.seq + 1;
            head.last_hash = r.hash;
        }
        Ok(Some(out))
    }

    /// Appends a record on its own.
    pub(super) fn append(&self, entry: AuditEntry) -> StoreResult<()> {
        let mut head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        let r = AuditRecord::seal(entry, head.next_seq, head.last_hash.clone());
        self.tree.insert(r.seq.to_be_bytes(), encode(&r)?)?;
        head.next_seq = r.seq + 1;
        head.last_hash = r.hash;
        Ok(())
    }
}
