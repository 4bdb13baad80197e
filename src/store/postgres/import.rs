//! What `store migrate` (`crate::store::migrate`) writes into a PostgreSQL
//! database besides what the [`Store`] trait writes: every record of
//! another store as it is, in one transaction, into an empty database.
//! Rows start at version 1; audit records keep their seq and hash, and
//! the chain's head and anchor are the source's, so the chain goes on
//! where the source's stopped. Signing keys are not written here: they go
//! through `put_signing_keys`, like every other writer's.

use deadpool_postgres::{ClientWrapper, Object, Transaction};
use tokio_postgres::types::ToSql;

use super::{PostgresStore, json, pg, session_revoked};
use crate::store::model::*;
use crate::store::{Store, StoreError, StoreResult};

/// The advisory lock one import holds from its first check to its end
/// ("mcp_impt" in ASCII).
const IMPORT_LOCK: i64 = 0x6d63_705f_696d_7074;

/// Records read from the source, and written, per statement.
const BATCH: usize = 1000;

/// Every table of records, by what it holds (as the refusal names them).
const TABLES: &[(&str, &str)] = &[
    ("api keys", "api_keys"),
    ("sessions", "sessions"),
    ("identities", "identities"),
    ("revoked certificates", "revoked_certs"),
    ("oauth clients", "oauth_clients"),
    ("deleted oauth clients", "deleted_oauth_clients"),
    ("users", "users"),
    ("consents", "consents"),
    ("revoked tokens", "revoked_tokens"),
    ("signing keys", "signing_keys"),
    ("audit records", "audit"),
];

/// What names the signing keys in what [`PostgresStore::holdings`]
/// returns.
const SIGNING_KEYS: &str = "signing keys";

/// Held by the one import into a database; dropping it closes its
/// connection, which releases the lock.
pub(in crate::store) struct ImportLock {
    _client: ClientWrapper,
}

/// A value as a statement parameter.
fn i64_of(what: &str, v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("{what} {v} out of range")))
}

impl PostgresStore {
    /// Takes the import lock, or refuses if another import holds it.
    ///
    /// # Errors
    /// The database cannot be reached, or another import is running.
    pub(in crate::store) async fn import_lock(&self) -> StoreResult<ImportLock> {
        let client = Object::take(self.conn().await?);
        let got: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&IMPORT_LOCK])
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        if !got {
            return Err(StoreError::Backend(
                "another `store migrate` is copying into this database".to_owned(),
            ));
        }
        Ok(ImportLock { _client: client })
    }

    /// What the database holds: each kind of record it has rows of, with
    /// their count, and `audit anchor` if its audit trail was pruned.
    /// Empty for a database nothing was written to.
    ///
    /// # Errors
    /// The database cannot be read.
    pub(in crate::store) async fn holdings(&self) -> StoreResult<Vec<(&'static str, i64)>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(pg)?;
        holdings(&tx).await
    }

    /// Copies every record of `source` but its signing keys, and
    /// `consents` (which the trait cannot list), in one transaction:
    /// nothing of it stays if any of it fails. The database must hold
    /// nothing but the signing keys `signing_keys` counts (written just
    /// before, under the same [`ImportLock`]).
    ///
    /// # Errors
    /// The source cannot be read, the database refuses a row, or the
    /// database holds something else.
    pub(in crate::store) async fn import_rows(
        &self,
        _lock: &ImportLock,
        source: &dyn Store,
        consents: &[ConsentRecord],
        signing_keys: usize,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(pg)?;
        // Every audited write locks the head first: a server started on
        // this database meanwhile waits for the copy, then sees it.
        tx.execute("SELECT 1 FROM audit_head FOR UPDATE", &[])
            .await
            .map_err(pg)?;
        let held = holdings(&tx).await?;
        let expected: &[(&str, i64)] = match i64::try_from(signing_keys) {
            Ok(0) => &[],
            Ok(n) => &[(SIGNING_KEYS, n)],
            Err(_) => return Err(StoreError::Backend("too many signing keys".to_owned())),
        };
        if held != expected {
            return Err(StoreError::Backend(format!(
                "something else wrote to the database during the copy (it holds {}); stop it and empty the database",
                describe(&held)
            )));
        }
        for chunk in source.api_keys().await?.chunks(BATCH) {
            api_keys(&tx, chunk).await?;
        }
        for chunk in source.clients().await?.chunks(BATCH) {
            clients(&tx, chunk).await?;
        }
        for chunk in source.deleted_clients().await?.chunks(BATCH) {
            pairs(
                &tx,
                "deleted_oauth_clients",
                "client_id",
                "deleted_at",
                chunk,
            )
            .await?;
        }
        for chunk in source.users().await?.chunks(BATCH) {
            users(&tx, chunk).await?;
        }
        for chunk in consents.chunks(BATCH) {
            self::consents(&tx, chunk).await?;
        }
        for chunk in source.revoked_tokens().await?.chunks(BATCH) {
            pairs(&tx, "revoked_tokens", "jti", "expires_at", chunk).await?;
        }
        for chunk in source.identities().await?.chunks(BATCH) {
            identities(&tx, chunk).await?;
        }
        let certs: Vec<(String, i64)> = source
            .revoked_certs()
            .await?
            .into_iter()
            .map(|c| (c.serial, c.revoked_at))
            .collect();
        for chunk in certs.chunks(BATCH) {
            pairs(&tx, "revoked_certs", "serial", "revoked_at", chunk).await?;
        }
        let all = SessionFilter::default();
        let mut after = None;
        loop {
            let page = source.sessions_page(&all, after.as_ref(), BATCH).await?;
            sessions(&tx, &page.items).await?;
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        let anchor = source.audit_anchor().await?;
        let (mut last_seq, mut last_hash) = (anchor.seq, anchor.hash.clone());
        loop {
            let page = source.audit_page(last_seq, BATCH).await?;
            audit(&tx, &page).await?;
            if let Some(r) = page.last() {
                (last_seq, last_hash) = (r.seq, r.hash.clone());
            }
            if page.len() < BATCH {
                break;
            }
        }
        tx.execute(
            "UPDATE audit_head SET next_seq = $1, last_hash = $2, anchor_seq = $3,
                 anchor_hash = $4",
            &[
                &i64_of("audit seq", last_seq.saturating_add(1))?,
                &last_hash,
                &i64_of("audit anchor seq", anchor.seq)?,
                &anchor.hash,
            ],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)
    }
}

/// [`PostgresStore::holdings`], in `tx`.
async fn holdings(tx: &Transaction<'_>) -> StoreResult<Vec<(&'static str, i64)>> {
    let mut held = Vec::new();
    for (what, table) in TABLES {
        let n: i64 = tx
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        if n > 0 {
            held.push((*what, n));
        }
    }
    let anchor_seq: i64 = tx
        .query_one("SELECT anchor_seq FROM audit_head", &[])
        .await
        .map_err(pg)?
        .try_get(0)
        .map_err(pg)?;
    if anchor_seq != 0 {
        held.push(("audit anchor", 1));
    }
    Ok(held)
}

/// What [`PostgresStore::holdings`] found, in words: `api keys: 3,
/// audit records: 12`.
pub(in crate::store) fn describe(held: &[(&str, i64)]) -> String {
    held.iter()
        .map(|(what, n)| match *what {
            "audit anchor" => "a pruned audit trail's anchor".to_owned(),
            _ => format!("{what}: {n}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs one statement of `params` in `tx`.
async fn run(tx: &Transaction<'_>, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<()> {
    let stmt = tx.prepare_cached(sql).await.map_err(pg)?;
    tx.execute(&stmt, params).await.map_err(pg)?;
    Ok(())
}

/// Records as their stored JSON.
fn records<T: serde::Serialize>(items: &[T]) -> StoreResult<Vec<serde_json::Value>> {
    items.iter().map(json).collect()
}

async fn api_keys(tx: &Transaction<'_>, items: &[ApiKeyRecord]) -> StoreResult<()> {
    let ids: Vec<&str> = items.iter().map(|r| r.key_id.as_str()).collect();
    let hashes: Vec<&[u8]> = items
        .iter()
        .map(|r| r.secret_hash.as_bytes().as_slice())
        .collect();
    let expires: Vec<i64> = items.iter().map(|r| r.expires_at).collect();
    run(
        tx,
        "INSERT INTO api_keys (key_id, secret_hash, expires_at, version, record)
         SELECT k, h, e, 1, r FROM UNNEST($1::TEXT[], $2::BYTEA[], $3::BIGINT[], $4::JSONB[])
             AS t (k, h, e, r)",
        &[&ids, &hashes, &expires, &records(items)?],
    )
    .await
}

async fn clients(tx: &Transaction<'_>, items: &[OAuthClientRecord]) -> StoreResult<()> {
    let ids: Vec<&str> = items.iter().map(|r| r.client_id.as_str()).collect();
    run(
        tx,
        "INSERT INTO oauth_clients (client_id, version, record)
         SELECT c, 1, r FROM UNNEST($1::TEXT[], $2::JSONB[]) AS t (c, r)",
        &[&ids, &records(items)?],
    )
    .await
}

async fn users(tx: &Transaction<'_>, items: &[UserRecord]) -> StoreResult<()> {
    let ids: Vec<&str> = items.iter().map(|r| r.user_id.as_str()).collect();
    let names: Vec<&str> = items.iter().map(|r| r.username.as_str()).collect();
    run(
        tx,
        "INSERT INTO users (user_id, username, version, record)
         SELECT i, n, 1, r FROM UNNEST($1::TEXT[], $2::TEXT[], $3::JSONB[]) AS t (i, n, r)",
        &[&ids, &names, &records(items)?],
    )
    .await
}

async fn consents(tx: &Transaction<'_>, items: &[ConsentRecord]) -> StoreResult<()> {
    let subjects: Vec<&str> = items.iter().map(|r| r.subject.as_str()).collect();
    let clients: Vec<&str> = items.iter().map(|r| r.client_id.as_str()).collect();
    run(
        tx,
        "INSERT INTO consents (subject, client_id, record)
         SELECT s, c, r FROM UNNEST($1::TEXT[], $2::TEXT[], $3::JSONB[]) AS t (s, c, r)",
        &[&subjects, &clients, &records(items)?],
    )
    .await
}

async fn identities(tx: &Transaction<'_>, items: &[IdentityRecord]) -> StoreResult<()> {
    let names: Vec<&str> = items.iter().map(|r| r.name.as_str()).collect();
    run(
        tx,
        "INSERT INTO identities (name, record)
         SELECT n, r FROM UNNEST($1::TEXT[], $2::JSONB[]) AS t (n, r)",
        &[&names, &records(items)?],
    )
    .await
}

/// Rows of (text, BIGINT) into `table`'s two columns.
async fn pairs(
    tx: &Transaction<'_>,
    table: &str,
    key: &str,
    value: &str,
    items: &[(String, i64)],
) -> StoreResult<()> {
    let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
    let values: Vec<i64> = items.iter().map(|(_, v)| *v).collect();
    run(
        tx,
        &format!(
            "INSERT INTO {table} ({key}, {value})
             SELECT k, v FROM UNNEST($1::TEXT[], $2::BIGINT[]) AS t (k, v)"
        ),
        &[&keys, &values],
    )
    .await
}

async fn sessions(tx: &Transaction<'_>, items: &[SessionRecord]) -> StoreResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = items.iter().map(|r| r.session_id.as_str()).collect();
    let subjects: Vec<&str> = items.iter().map(|r| r.subject.as_str()).collect();
    let clients: Vec<&str> = items.iter().map(|r| r.client_id.as_str()).collect();
    let revoked: Vec<bool> = items.iter().map(session_revoked).collect();
    let expires: Vec<i64> = items.iter().map(|r| r.expires_at).collect();
    let ends: Vec<i64> = items.iter().map(|r| r.session_expires_at).collect();
    run(
        tx,
        "INSERT INTO sessions
             (session_id, subject, client_id, revoked, expires_at, session_expires_at, version,
              record)
         SELECT i, s, c, v, e, x, 1, r FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[],
             $4::BOOLEAN[], $5::BIGINT[], $6::BIGINT[], $7::JSONB[]) AS t (i, s, c, v, e, x, r)",
        &[
            &ids,
            &subjects,
            &clients,
            &revoked,
            &expires,
            &ends,
            &records(items)?,
        ],
    )
    .await
}

async fn audit(tx: &Transaction<'_>, items: &[AuditRecord]) -> StoreResult<()> {
    if items.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i64> = items
        .iter()
        .map(|r| i64_of("audit seq", r.seq))
        .collect::<StoreResult<_>>()?;
    let times: Vec<i64> = items.iter().map(|r| r.time).collect();
    run(
        tx,
        "INSERT INTO audit (seq, time, record)
         SELECT s, t, r FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::JSONB[]) AS u (s, t, r)",
        &[&seqs, &times, &records(items)?],
    )
    .await
}
