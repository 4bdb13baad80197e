//! Group commit of the unconditional writes (a new session, API key, OAuth
//! client, consent): they queue for one committer, which writes every
//! write waiting at that moment in one transaction, under one lock of the
//! audit chain's head and with one commit, then answers each. Every audited
//! write holds that lock through its commit, so one at a time they are
//! bounded by the lock's hand-off between backends; together they share
//! it. Each is acknowledged only after the commit that holds it; a batch
//! that fails on a statement is written again one by one, so one bad
//! write fails alone.

use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;

use super::{Head, Pool, json, pg, pool_error};
use crate::store::{AuditEntry, AuditRecord, Change, StoreError, StoreResult};

/// Most writes committed together.
const MAX_BATCH: usize = 256;

/// A statement's parameters, owned so the write can wait in the queue.
pub(super) type Params = Vec<Box<dyn ToSql + Send + Sync>>;

/// A write waiting for its commit.
struct Pending {
    sql: &'static str,
    params: Params,
    audit: AuditEntry,
    changes: Vec<Change>,
    done: oneshot::Sender<StoreResult<()>>,
}

/// The queue of the committer task.
pub(super) struct GroupCommit {
    queue: mpsc::UnboundedSender<Pending>,
}

impl GroupCommit {
    /// Starts the committer, on connections of `pool`; it ends when this
    /// is dropped.
    pub fn start(pool: Pool) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, waiting));
        GroupCommit { queue }
    }

    /// Writes `sql` with `params`, its audit record and `changes`,
    /// durable when it returns.
    ///
    /// # Errors
    /// The database's, for the batch it was in or for itself alone.
    pub async fn write(
        &self,
        sql: &'static str,
        params: Params,
        audit: AuditEntry,
        changes: Vec<Change>,
    ) -> StoreResult<()> {
        let (done, answer) = oneshot::channel();
        let pending = Pending {
            sql,
            params,
            audit,
            changes,
            done,
        };
        self.queue
            .send(pending)
            .map_err(|_| StoreError::Unavailable("the store is closing".to_owned()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the store is closing".to_owned()))?
    }
}

/// Commits what is waiting, batch after batch, until the queue closes.
async fn run(pool: Pool, mut waiting: mpsc::UnboundedReceiver<Pending>) {
    while let Some(first) = waiting.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match waiting.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let result = commit(&pool, &batch).await;
        match result {
            // A statement failed, so nothing was committed: each alone, so
            // only the one that fails fails.
            Err(StoreError::Backend(_) | StoreError::Corrupt { .. }) if batch.len() > 1 => {
                for p in batch {
                    let alone = commit(&pool, std::slice::from_ref(&p)).await;
                    let _ = p.done.send(alone);
                }
            }
            result => {
                for p in batch {
                    let _ = p.done.send(match &result {
                        Ok(()) => Ok(()),
                        Err(e) => Err(again(e)),
                    });
                }
            }
        }
    }
}

/// One transaction: the head locked, each write with its record and
/// changes, one commit. Every statement is prepared (or cached) first and
/// the records sealed in order, then all are sent at once: one round trip
/// for the batch while the head is locked, not three a write.
async fn commit(pool: &Pool, batch: &[Pending]) -> StoreResult<()> {
    let mut conn = pool.get().await.map_err(pool_error)?;
    let tx = conn.transaction().await.map_err(pg)?;
    let head = Head::lock(&tx).await?;
    let append = tx.prepare_cached(APPEND).await.map_err(pg)?;
    let note = tx.prepare_cached(NOTE).await.map_err(pg)?;
    let mut statements = Vec::with_capacity(batch.len());
    for p in batch {
        statements.push(tx.prepare_cached(p.sql).await.map_err(pg)?);
    }
    let (mut seq, mut last_hash) = (head.next_seq, head.last_hash);
    let mut appends = Vec::with_capacity(batch.len());
    let mut notes = Vec::new();
    for p in batch {
        let at = u64::try_from(seq)
            .map_err(|_| StoreError::Backend(format!("audit seq {seq} out of range")))?;
        let r = AuditRecord::seal(p.audit.clone(), at, std::mem::take(&mut last_hash));
        appends.push((seq, r.time, json(&r)?, r.hash.clone()));
        last_hash = r.hash;
        seq += 1;
        notes.push(
            p.changes
                .iter()
                .map(json)
                .collect::<StoreResult<Vec<_>>>()?,
        );
    }
    let data: Vec<Vec<&(dyn ToSql + Sync)>> = batch
        .iter()
        .map(|p| {
            p.params
                .iter()
                .map(|b| b.as_ref() as &(dyn ToSql + Sync))
                .collect()
        })
        .collect();
    let appended: Vec<[&(dyn ToSql + Sync); 4]> = appends
        .iter()
        .map(|(seq, time, record, hash)| -> [&(dyn ToSql + Sync); 4] { [seq, time, record, hash] })
        .collect();
    let noted: Vec<[&(dyn ToSql + Sync); 1]> = notes
        .iter()
        .map(|values| -> [&(dyn ToSql + Sync); 1] { [values] })
        .collect();
    // In order: each write, its record, its changes.
    let mut sent = Vec::with_capacity(batch.len() * 3);
    for i in 0..batch.len() {
        sent.push(tx.execute(&statements[i], &data[i]));
        sent.push(tx.execute(&append, &appended[i]));
        if !notes[i].is_empty() {
            sent.push(tx.execute(&note, &noted[i]));
        }
    }
    futures_util::future::try_join_all(sent).await.map_err(pg)?;
    tx.commit().await.map_err(pg)
}

/// Appends one audit record and moves the head past it.
const APPEND: &str = "WITH appended AS (
         INSERT INTO audit (seq, time, record) VALUES ($1, $2, $3)
     )
     UPDATE audit_head SET next_seq = $1 + 1, last_hash = $4";

/// Adds changes to the feed and tells the listening replicas at commit.
const NOTE: &str = "WITH noted AS (INSERT INTO changes (change) SELECT unnest($1::JSONB[]))
     SELECT pg_notify('mcp_auth_changes', '')";

/// The batch's error, for each of its writes.
fn again(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        other => StoreError::Backend(other.to_string()),
    }
}
