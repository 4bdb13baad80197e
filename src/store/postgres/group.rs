//! Group commit of the unconditional writes (a new session, API key, OAuth
//! client, consent): they queue for one committer, which writes every
//! write waiting at that moment in one transaction, under one lock of the
//! audit chain's head and with one commit, then answers each. Every audited
//! write holds that lock through its commit, so one at a time they are
//! bounded by the lock's hand-off between backends; together they share
//! it. Each is acknowledged only after the commit that holds it; a batch
//! that fails on a statement is written again one by one, so one bad
//! write fails alone.
//!
//! A batch is one round trip: `BEGIN`, the head moved (which locks it), the
//! records, the writes, the changes and `COMMIT` are sent at once, with the
//! records chained from the head the committer's last batch left. The
//! head's move checks that it is still there; when another write (a
//! conditional one, or another replica's) moved it meanwhile, that
//! statement fails, the transaction rolls back at its `COMMIT`, and the
//! batch is sent again after reading the head under its lock. So the lock
//! is held only while the database runs the batch, never across a round
//! trip, as long as the committer is the chain's only writer. Once it is
//! not (another replica writes too), the committer reads the head under
//! the lock first, until it finds the head where its last batch left it
//! again: a round trip under the lock rather than a batch sent in vain.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use deadpool_postgres::Object;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::{Head, NOTE, Pool, json, pg, pool_error};
use crate::store::{AuditEntry, AuditRecord, Change, StoreError, StoreResult};
use crate::telemetry;

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
    /// The seq of the newest audit record a batch committed (0: none
    /// yet), for the metrics.
    last_seq: Arc<AtomicU64>,
}

impl GroupCommit {
    /// Starts the committer, on connections of `pool`; it ends when this
    /// is dropped.
    pub fn start(pool: Pool) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        let last_seq = Arc::new(AtomicU64::new(0));
        tokio::spawn(run(pool, waiting, last_seq.clone()));
        GroupCommit { queue, last_seq }
    }

    /// The seq of the newest audit record the committer committed; `None`
    /// before its first batch.
    pub fn last_seq(&self) -> Option<u64> {
        Some(self.last_seq.load(Ordering::Relaxed)).filter(|&seq| seq > 0)
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
async fn run(pool: Pool, mut waiting: mpsc::UnboundedReceiver<Pending>, last_seq: Arc<AtomicU64>) {
    let mut chain = Chain::default();
    while let Some(first) = waiting.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match waiting.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let result = commit(&pool, &batch, &mut chain).await;
        metrics::histogram!(telemetry::STORE_COMMIT_SECONDS, "backend" => "postgres")
            .record(started.elapsed());
        #[allow(clippy::cast_precision_loss)]
        metrics::histogram!(telemetry::STORE_COMMIT_BATCH, "backend" => "postgres")
            .record(batch.len() as f64);
        if let Some(head) = &chain.head {
            let seq = u64::try_from(head.next_seq - 1).unwrap_or(0);
            last_seq.fetch_max(seq, Ordering::Relaxed);
        }
        match result {
            // A statement failed, so nothing was committed: each alone, so
            // only the one that fails fails.
            Err(StoreError::Backend(_) | StoreError::Corrupt { .. }) if batch.len() > 1 => {
                for p in batch {
                    let alone = commit(&pool, std::slice::from_ref(&p), &mut chain).await;
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

/// What the committer knows of the chain.
#[derive(Default)]
struct Chain {
    /// The head as its last batch left it.
    head: Option<Head>,
    /// Whether its last batches found the head where they left it: no
    /// other writer (another replica, a conditional write) moved it
    /// between them, so sending at once is likely to work.
    alone: bool,
}

/// Commits `batch`: at once from the head `chain` last left, when it is
/// likely still there, or else (or when it was not) from the head read
/// under its lock. The chain learns the head the commit left.
async fn commit(pool: &Pool, batch: &[Pending], chain: &mut Chain) -> StoreResult<()> {
    let conn = pool.get().await.map_err(pool_error)?;
    if chain.alone
        && let Some(from) = chain.head.take()
    {
        match send(&conn, batch, &from, true).await {
            Ok(to) => {
                chain.head = Some(to);
                return Ok(());
            }
            // Another writer: under the lock until it is seen alone again.
            Err(Sent::Moved) => chain.alone = false,
            Err(Sent::Failed(e)) => return Err(e),
        }
    }
    // Sent together: the lock is taken in the transaction BEGIN opens.
    let (begun, locked) =
        futures_util::future::join(conn.batch_execute("BEGIN"), locked_head(&conn)).await;
    let sent = match begun.map_err(pg).and(locked) {
        Ok(from) => {
            chain.alone = chain.head.as_ref() == Some(&from);
            send(&conn, batch, &from, false).await
        }
        Err(e) => Err(Sent::Failed(e)),
    };
    chain.head = None;
    match sent {
        Ok(to) => {
            chain.head = Some(to);
            Ok(())
        }
        Err(failure) => {
            // A transaction may still be open on it: the connection goes,
            // and the database rolls that back.
            drop(Object::take(conn));
            Err(match failure {
                Sent::Moved => StoreError::Backend("the audit head moved while locked".to_owned()),
                Sent::Failed(e) => e,
            })
        }
    }
}

/// The head, locked until the transaction ends.
async fn locked_head(conn: &Object) -> StoreResult<Head> {
    let lock = conn
        .prepare_cached("SELECT next_seq, last_hash FROM audit_head FOR UPDATE")
        .await
        .map_err(pg)?;
    let row = conn.query_one(&lock, &[]).await.map_err(pg)?;
    Ok(Head {
        next_seq: row.try_get(0).map_err(pg)?,
        last_hash: row.try_get(1).map_err(pg)?,
    })
}

/// Why a batch was not committed.
enum Sent {
    /// The head was not at `from`: nothing was written.
    Moved,
    /// The database's error, or the connection's.
    Failed(StoreError),
}

type Reply<'a> = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send + 'a>>;

/// Sends `batch` chained from `from`, with `BEGIN` when `begin` (else the
/// connection is in a transaction holding the head's lock), and `COMMIT`,
/// all at once; returns the head it leaves. When it fails before sending,
/// a transaction the caller opened is still open.
async fn send(conn: &Object, batch: &[Pending], from: &Head, begin: bool) -> Result<Head, Sent> {
    let failed = |e| Sent::Failed(pg(e));
    let prepared = async {
        let mut statements = Vec::with_capacity(batch.len());
        for p in batch {
            statements.push(conn.prepare_cached(p.sql).await?);
        }
        Ok::<_, tokio_postgres::Error>((
            conn.prepare_cached(MOVE_HEAD).await?,
            conn.prepare_cached(APPEND).await?,
            conn.prepare_cached(NOTE).await?,
            statements,
        ))
    };
    let (move_head, append, note, statements) = prepared.await.map_err(failed)?;

    // The records, chained from `from`; the changes, in order.
    let mut seqs = Vec::with_capacity(batch.len());
    let mut times = Vec::with_capacity(batch.len());
    let mut records = Vec::with_capacity(batch.len());
    let mut changes = Vec::new();
    let mut last_hash = from.last_hash.clone();
    let mut seq = from.next_seq;
    for p in batch {
        let at = u64::try_from(seq).map_err(|_| {
            Sent::Failed(StoreError::Backend(format!("audit seq {seq} out of range")))
        })?;
        let r = AuditRecord::seal(p.audit.clone(), at, std::mem::take(&mut last_hash));
        seqs.push(seq);
        times.push(r.time);
        records.push(json(&r).map_err(Sent::Failed)?);
        last_hash = r.hash;
        seq += 1;
        for c in &p.changes {
            changes.push(json(c).map_err(Sent::Failed)?);
        }
    }
    let to = Head {
        next_seq: seq,
        last_hash,
    };
    let data: Vec<Vec<&(dyn ToSql + Sync)>> = batch
        .iter()
        .map(|p| {
            p.params
                .iter()
                .map(|b| b.as_ref() as &(dyn ToSql + Sync))
                .collect()
        })
        .collect();

    // In order: the head moved (its lock taken, so the changes' positions
    // follow commit order), the records, the writes, the changes, COMMIT.
    let moving: [&(dyn ToSql + Sync); 4] =
        [&from.next_seq, &from.last_hash, &to.next_seq, &to.last_hash];
    let moved = conn.execute(&move_head, &moving);
    let mut rest: Vec<Reply<'_>> = Vec::with_capacity(batch.len() + 3);
    rest.push(Box::pin(async {
        conn.execute(&append, &[&seqs, &times, &records])
            .await
            .map(drop)
    }));
    for (statement, params) in statements.iter().zip(&data) {
        rest.push(Box::pin(async move {
            conn.execute(statement, params).await.map(drop)
        }));
    }
    if !changes.is_empty() {
        rest.push(Box::pin(async {
            conn.execute(&note, &[&changes]).await.map(drop)
        }));
    }
    rest.push(Box::pin(conn.batch_execute("COMMIT")));
    let begun: Reply<'_> = if begin {
        Box::pin(conn.batch_execute("BEGIN"))
    } else {
        Box::pin(async { Ok(()) })
    };
    // Sent in this order when first polled; every answer is awaited, so
    // the connection is idle when it returns to the pool.
    let (begun, moved, rest) =
        futures_util::future::join3(begun, moved, futures_util::future::join_all(rest)).await;
    begun.map_err(failed)?;
    match moved {
        Ok(1) => {}
        Ok(n) => {
            return Err(Sent::Failed(StoreError::Backend(format!(
                "the audit head has {n} rows"
            ))));
        }
        // The head moved past `from`: the transaction failed there and its
        // COMMIT rolled it back.
        Err(e) if e.code() == Some(&SqlState::NOT_NULL_VIOLATION) => return Err(Sent::Moved),
        Err(e) => return Err(failed(e)),
    }
    // Everything answered without error only when COMMIT committed.
    for answer in rest {
        answer.map_err(failed)?;
    }
    Ok(to)
}

/// Moves the head from ($1, $2) to ($3, $4), locking it; fails (NOT NULL)
/// when it is not at ($1, $2).
const MOVE_HEAD: &str = "UPDATE audit_head SET
         next_seq = CASE WHEN next_seq = $1::BIGINT AND last_hash = $2::TEXT THEN $3::BIGINT END,
         last_hash = $4::TEXT";

/// Appends the records of a batch.
const APPEND: &str = "INSERT INTO audit (seq, time, record)
     SELECT * FROM unnest($1::BIGINT[], $2::BIGINT[], $3::JSONB[])";

/// The batch's error, for each of its writes.
fn again(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        other => StoreError::Backend(other.to_string()),
    }
}
