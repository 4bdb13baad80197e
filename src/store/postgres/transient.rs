//! Transient entries in the `transient` table (kind, key → value, end).
//! Each operation is one statement, committed on its own before it
//! returns. The conditional ones decide on the row under its lock: an
//! `UPDATE` or `DELETE ... WHERE value = $expected` that finds the row
//! locked by another writer waits for it, then evaluates its condition
//! again against the row that writer committed, so of two writers from
//! one value (on one replica or two) exactly one touches the row and the
//! other touches none. An insert over a live entry is refused the same way
//! (`ON CONFLICT ... WHERE` the entry ended).

use super::{PostgresStore, count, pg};
use crate::store::StoreResult;
use crate::store::model::{Swap, TransientKind};

/// The `kind` column of `kind`.
fn kind_of(kind: TransientKind) -> i16 {
    i16::from(kind.number())
}

/// Done if a statement touched a row.
fn swapped(rows: u64) -> Swap {
    if rows == 0 {
        Swap::Conflict
    } else {
        Swap::Done
    }
}

fn bigint(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PostgresStore {
    /// Runs the statement `sql` with `params` on a connection of the pool;
    /// how many rows it touched.
    async fn run(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> StoreResult<u64> {
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(sql).await.map_err(pg)?;
        conn.execute(&stmt, params).await.map_err(pg)
    }

    pub(super) async fn put_transient_row(
        &self,
        kind: TransientKind,
        key: &[u8],
        value: &[u8],
        expires_at: i64,
        now: i64,
    ) -> StoreResult<Swap> {
        self.run(
            "INSERT INTO transient (kind, key, value, expires_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (kind, key) DO UPDATE
                 SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at
                 WHERE transient.expires_at <= $5",
            &[&kind_of(kind), &key, &value, &expires_at, &now],
        )
        .await
        .map(swapped)
    }

    pub(super) async fn transient_row(
        &self,
        kind: TransientKind,
        key: &[u8],
        now: i64,
    ) -> StoreResult<Option<Vec<u8>>> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(
                "SELECT value FROM transient WHERE kind = $1 AND key = $2 AND expires_at > $3",
            )
            .await
            .map_err(pg)?;
        conn.query_opt(&stmt, &[&kind_of(kind), &key, &now])
            .await
            .map_err(pg)?
            .map(|row| row.try_get(0).map_err(pg))
            .transpose()
    }

    pub(super) async fn swap_transient_row(
        &self,
        kind: TransientKind,
        key: &[u8],
        expected: &[u8],
        new: &[u8],
        expires_at: i64,
    ) -> StoreResult<Swap> {
        self.run(
            "UPDATE transient SET value = $4, expires_at = $5
             WHERE kind = $1 AND key = $2 AND value = $3",
            &[&kind_of(kind), &key, &expected, &new, &expires_at],
        )
        .await
        .map(swapped)
    }

    pub(super) async fn remove_transient_row(
        &self,
        kind: TransientKind,
        key: &[u8],
        expected: &[u8],
    ) -> StoreResult<Swap> {
        self.run(
            "DELETE FROM transient WHERE kind = $1 AND key = $2 AND value = $3",
            &[&kind_of(kind), &key, &expected],
        )
        .await
        .map(swapped)
    }

    pub(super) async fn count_transient_rows(
        &self,
        kind: TransientKind,
        now: i64,
        limit: usize,
    ) -> StoreResult<usize> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(
                "SELECT count(*) FROM (
                     SELECT 1 FROM transient WHERE kind = $1 AND expires_at > $2 LIMIT $3
                 ) live",
            )
            .await
            .map_err(pg)?;
        let n: i64 = conn
            .query_one(&stmt, &[&kind_of(kind), &now, &bigint(limit)])
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    pub(super) async fn transient_rows(
        &self,
        kind: TransientKind,
        now: i64,
    ) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT key, value FROM transient WHERE kind = $1 AND expires_at > $2
                 ORDER BY key",
                &[&kind_of(kind), &now],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| Ok((r.try_get(0).map_err(pg)?, r.try_get(1).map_err(pg)?)))
            .collect()
    }

    pub(super) async fn evict_transient_rows(&self, now: i64) -> StoreResult<usize> {
        self.run("DELETE FROM transient WHERE expires_at <= $1", &[&now])
            .await
            .map(count)
    }
}
