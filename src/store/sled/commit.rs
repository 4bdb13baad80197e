//! How the sled backend makes writes durable and audited: group commit
//! (concurrent writers share one disk flush), and the write lock under
//! which each change follows its audit record into the log.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sled::Tree;

use super::codec::encode;
use crate::store::model::{AuditEntry, AuditRecord};
use crate::store::{StoreError, StoreResult};
use crate::telemetry;

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
    /// callers. Each flush is timed, and the writes it covered counted,
    /// for the metrics.
    pub(super) async fn flush(&self, db: &sled::Db) -> StoreResult<()> {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _turn = self.lock.lock().await;
        let done = self.completed.load(Ordering::SeqCst);
        if done >= ticket {
            return Ok(()); // a flush that started after our write covered it
        }
        let covers = self.requested.load(Ordering::SeqCst);
        let started = std::time::Instant::now();
        // sled's own `flush_async` runs on sled's small internal thread
        // pool and was seen to stall with many databases in one process;
        // a blocking flush on tokio's blocking pool does not.
        let db = db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| StoreError::Backend(format!("flush task: {e}")))??;
        self.completed.fetch_max(covers, Ordering::SeqCst);
        metrics::histogram!(telemetry::STORE_COMMIT_SECONDS, "backend" => "sled")
            .record(started.elapsed());
        #[allow(clippy::cast_precision_loss)]
        metrics::histogram!(telemetry::STORE_COMMIT_BATCH, "backend" => "sled")
            .record(covers.saturating_sub(done) as f64);
        Ok(())
    }
}

/// The head of the audit chain: the next record's seq and the last hash.
pub(super) struct Chain {
    pub(super) next_seq: u64,
    pub(super) last_hash: String,
}

/// The audit tree and its chain head. The head's lock is the backend's
/// write lock: every write takes it, so a conditional write's read and
/// write are one step, and records reach the log in chain order.
pub(super) struct AuditChain {
    pub(super) tree: Tree,
    pub(super) head: Mutex<Chain>,
}

impl AuditChain {
    /// Records in the chain since it began: the newest one's seq.
    pub(super) fn length(&self) -> u64 {
        let head = self.head.lock().unwrap_or_else(|p| p.into_inner());
        head.next_seq.saturating_sub(1)
    }

    /// Takes the write lock.
    pub(super) fn lock(&self) -> Writer<'_> {
        Writer {
            tree: &self.tree,
            head: self.head.lock().unwrap_or_else(|p| p.into_inner()),
        }
    }
}

/// The write lock, held while a change and its audit record are written.
///
/// sled recovers a prefix of its log in log order (it will not recover a
/// later segment whose predecessor was lost), so writing the record before
/// the change, under this lock, means that a change that survives a crash
/// always has its record: no transaction is needed for that, and a write
/// costs two plain inserts.
pub(super) struct Writer<'a> {
    tree: &'a Tree,
    head: std::sync::MutexGuard<'a, Chain>,
}

impl Writer<'_> {
    /// Appends the record of `entry` to the chain. Call it before writing
    /// the change it records.
    pub(super) fn record(&mut self, entry: AuditEntry) -> StoreResult<()> {
        let r = AuditRecord::seal(entry, self.head.next_seq, self.head.last_hash.clone());
        self.tree.insert(r.seq.to_be_bytes(), encode(&r)?)?;
        self.head.next_seq = r.seq + 1;
        self.head.last_hash = r.hash;
        Ok(())
    }
}
