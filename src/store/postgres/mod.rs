//! The PostgreSQL backend, for more than one process on one database:
//! tokio-postgres through a deadpool pool, TLS to the database (rustls on
//! aws-lc-rs, the server checked against the system's roots) when the URL
//! says `sslmode=require`, plaintext otherwise.
//!
//! The schema and its migrations are in `schema`. Every write is one
//! transaction, committed before it returns (as durable as the server's
//! `synchronous_commit` makes it); a write with an audit record first
//! locks the chain's head row, appends the record and makes the change in
//! that transaction, so chain order is commit order across connections
//! and processes. Conditional writes are `UPDATE ... WHERE version = $n`:
//! of two writers of one read, the second finds the version moved on and
//! gets [`Swap::Conflict`]. Transient entries (the browser flow in
//! progress) are written outside the chain, one statement each, compared
//! on their value (see `transient`).

mod group;
pub(super) mod import;
mod listen;
mod schema;
mod seal;
#[doc(hidden)]
pub mod test_db;
mod transient;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::Row;
use tokio_postgres::config::SslMode;
use tokio_rustls::rustls;

use super::model::*;
use super::ring_key::RingKey;
use super::{Change, ChangePage, Store, StoreError, StoreResult};

/// Connections the pool keeps at most.
const POOL_SIZE: usize = 16;

/// How long opening a connection may take when the URL does not say
/// (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a caller waits for a free connection before the write fails.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// A PostgreSQL database holding the store.
pub struct PostgresStore {
    pool: Pool,
    /// Where the database is, for the connection that listens for changes.
    config: tokio_postgres::Config,
    /// TLS to the database, if the URL asks for it.
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    /// The connection listening for other replicas' changes, once one was
    /// asked for.
    listener: tokio::sync::Mutex<Option<listen::Listener>>,
    /// The committer of the unconditional writes.
    group: group::GroupCommit,
    /// The connection holding the startup lock, between
    /// [`Store::begin_startup`] and [`Store::end_startup`].
    startup: tokio::sync::Mutex<Option<Object>>,
    /// Seals the signing keys' private parts in `signing_keys` (see
    /// `seal`).
    ring_key: RingKey,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may carry a password.
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool.status())
            .finish()
    }
}

/// A database error in words: the server's message when it sent one,
/// else the error and its causes (a refused connection, a certificate).
///
/// An error that says the database could not be reached or went away (a
/// refused or lost connection, a server shutting down or not yet up, too
/// many connections) is [`StoreError::Unavailable`]: the write was not
/// acknowledged, and retrying later may succeed.
pub(super) fn pg(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let text = format!("postgres: {} ({code})", db.message());
        return if unreachable_state(code) {
            StoreError::Unavailable(text)
        } else {
            StoreError::Backend(text)
        };
    }
    let mut text = format!("postgres: {e}");
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    // No answer from the server at all: the connection failed or closed.
    StoreError::Unavailable(text)
}

/// SQLSTATEs of a server that is going away or not taking connections:
/// class 08 (connection exception), 57P01-57P03 (shutting down, crash
/// recovery, cannot connect now), 53300 (too many connections).
fn unreachable_state(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
}

fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => pg(e),
        // No connection in time, or none could be made.
        other => StoreError::Unavailable(format!("postgres pool: {other}")),
    }
}

/// A record's stored form.
fn json<T: Serialize>(value: &T) -> StoreResult<serde_json::Value> {
    serde_json::to_value(value).map_err(|e| StoreError::Backend(format!("encode: {e}")))
}

/// The record in column `record` of `row`.
fn record<T: DeserializeOwned>(what: &'static str, row: &Row) -> StoreResult<T> {
    let value: serde_json::Value = row.try_get("record").map_err(pg)?;
    serde_json::from_value(value).map_err(|e| StoreError::Corrupt {
        what,
        message: e.to_string(),
    })
}

/// The record and version of `row`.
fn versioned<T: DeserializeOwned>(what: &'static str, row: &Row) -> StoreResult<Versioned<T>> {
    let version: i64 = row.try_get("version").map_err(pg)?;
    Ok(Versioned {
        record: record(what, row)?,
        version: Version(version.to_be_bytes().to_vec()),
    })
}

/// The row version a [`Version`] of this backend names; `None` for one it
/// did not hand out (which then matches no row).
fn row_version(v: &Version) -> Option<i64> {
    <[u8; 8]>::try_from(v.0.as_slice())
        .ok()
        .map(i64::from_be_bytes)
}

/// How many rows a statement touched, as a count.
fn count(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// The head of the audit chain, locked by the transaction that read it.
#[derive(PartialEq, Eq)]
struct Head {
    next_seq: i64,
    last_hash: String,
}

impl Head {
    /// Locks the head row: from here to the commit no other audited write
    /// runs.
    async fn lock(tx: &Transaction<'_>) -> StoreResult<Head> {
        let lock = tx
            .prepare_cached("SELECT next_seq, last_hash FROM audit_head FOR UPDATE")
            .await
            .map_err(pg)?;
        let row = tx.query_one(&lock, &[]).await.map_err(pg)?;
        Ok(Head {
            next_seq: row.try_get(0).map_err(pg)?,
            last_hash: row.try_get(1).map_err(pg)?,
        })
    }

    /// Appends the record of `entry` to the chain, in `tx`.
    async fn append(&mut self, tx: &Transaction<'_>, entry: AuditEntry) -> StoreResult<()> {
        let seq = u64::try_from(self.next_seq).map_err(|_| {
            StoreError::Backend(format!("audit seq {} out of range", self.next_seq))
        })?;
        let r = AuditRecord::seal(entry, seq, std::mem::take(&mut self.last_hash));
        // One statement: the record, and the head moved past it.
        let append = tx
            .prepare_cached(
                "WITH appended AS (
                     INSERT INTO audit (seq, time, record) VALUES ($1, $2, $3)
                 )
                 UPDATE audit_head SET next_seq = $1 + 1, last_hash = $4",
            )
            .await
            .map_err(pg)?;
        tx.execute(&append, &[&self.next_seq, &r.time, &json(&r)?, &r.hash])
            .await
            .map_err(pg)?;
        self.next_seq += 1;
        self.last_hash = r.hash;
        Ok(())
    }

    /// Adds `changes` to the feed, in `tx` (which holds the lock, so their
    /// positions follow commit order), and tells the listening replicas at
    /// commit.
    async fn note(&self, tx: &Transaction<'_>, changes: &[Change]) -> StoreResult<()> {
        note_changes(tx, changes).await
    }
}

/// Adds `changes` to the feed in `tx`, which must hold the audit head's
/// lock; `NOTIFY` is sent at commit (and not at all on rollback).
async fn note_changes(tx: &Transaction<'_>, changes: &[Change]) -> StoreResult<()> {
    if changes.is_empty() {
        return Ok(());
    }
    let values = changes.iter().map(json).collect::<StoreResult<Vec<_>>>()?;
    let stmt = tx.prepare_cached(NOTE).await.map_err(pg)?;
    tx.execute(&stmt, &[&values]).await.map_err(pg)?;
    Ok(())
}

/// Adds changes ($1, JSONB[]) to the feed and tells the listening replicas
/// at commit.
pub(super) const NOTE: &str =
    "WITH noted AS (INSERT INTO changes (change) SELECT unnest($1::JSONB[]))
     SELECT pg_notify('mcp_auth_changes', '')";

/// The TLS connector of `sslmode=require`: rustls on aws-lc-rs, the
/// server's certificate checked against the system's roots.
fn tls() -> StoreResult<tokio_postgres_rustls::MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(StoreError::Backend(
            "sslmode=require: no trusted root certificates found on this system".to_owned(),
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Backend(format!("TLS to the database: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl PostgresStore {
    /// Connects to the database `url` names (a `postgres://` URL or a
    /// libpq key=value string) and brings its schema up to date; the
    /// signing keys' private parts are sealed with `ring_key`.
    ///
    /// # Errors
    /// The URL does not parse, the database cannot be reached, a
    /// migration fails, or [`StoreError::SchemaTooNew`].
    pub async fn open(url: &str, ring_key: RingKey) -> StoreResult<Self> {
        // The parser's message never repeats the URL (or its password).
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("the store URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let tls = match config.get_ssl_mode() {
            SslMode::Require => Some(tls()?),
            // `prefer` with no TLS connector is plaintext.
            _ => None,
        };
        let manager = match &tls {
            Some(tls) => Manager::from_config(config.clone(), tls.clone(), manager_config),
            None => Manager::from_config(config.clone(), tokio_postgres::NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Backend(format!("postgres pool: {e}")))?;
        let store = PostgresStore {
            ring_key,
            config,
            tls,
            listener: tokio::sync::Mutex::new(None),
            group: group::GroupCommit::start(pool.clone()),
            startup: tokio::sync::Mutex::new(None),
            pool,
        };
        let mut conn = store.conn().await?;
        schema::migrate(&mut conn).await?;
        drop(conn);
        Ok(store)
    }

    async fn conn(&self) -> StoreResult<Object> {
        self.pool.get().await.map_err(pool_error)
    }

    /// The records `sql` selects (column `record`), in its order.
    async fn all<T: DeserializeOwned>(&self, what: &'static str, sql: &str) -> StoreResult<Vec<T>> {
        let conn = self.conn().await?;
        let rows = conn.query(sql, &[]).await.map_err(pg)?;
        rows.iter().map(|r| record(what, r)).collect()
    }

    /// The one record (with its version) `sql` selects with `key`.
    async fn one_versioned<T: DeserializeOwned>(
        &self,
        what: &'static str,
        sql: &str,
        key: &str,
    ) -> StoreResult<Option<Versioned<T>>> {
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(sql).await.map_err(pg)?;
        conn.query_opt(&stmt, &[&key])
            .await
            .map_err(pg)?
            .map(|r| versioned(what, &r))
            .transpose()
    }

    /// Pairs of (text, BIGINT) that `sql` selects.
    async fn pairs(&self, sql: &str) -> StoreResult<Vec<(String, i64)>> {
        let conn = self.conn().await?;
        let rows = conn.query(sql, &[]).await.map_err(pg)?;
        rows.iter()
            .map(|r| Ok((r.try_get(0).map_err(pg)?, r.try_get(1).map_err(pg)?)))
            .collect()
    }

    /// Runs `sql` (a statement with one text-array parameter) on `ids`
    /// alone, no audit record; how many rows it touched.
    async fn forget(&self, sql: &str, ids: &[String]) -> StoreResult<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        let conn = self.conn().await?;
        conn.execute(sql, &[&ids]).await.map(count).map_err(pg)
    }

    /// A conditional update: `sql` takes the values `params`, its last
    /// parameter the expected version; done if it touched a row, with the
    /// audit record and `changes` in the same transaction.
    async fn swap(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        audit: AuditEntry,
        changes: &[Change],
    ) -> StoreResult<Swap> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(pg)?;
        let mut head = Head::lock(&tx).await?;
        let stmt = tx.prepare_cached(sql).await.map_err(pg)?;
        if tx.execute(&stmt, params).await.map_err(pg)? == 0 {
            return Ok(Swap::Conflict); // dropped: rolled back
        }
        head.append(&tx, audit).await?;
        head.note(&tx, changes).await?;
        tx.commit().await.map_err(pg)?;
        Ok(Swap::Done)
    }

    /// An unconditional write `sql` of `params`, with its audit record and
    /// `changes`: committed with the others waiting (see `group`).
    async fn write(
        &self,
        sql: &'static str,
        params: group::Params,
        audit: AuditEntry,
        changes: Vec<Change>,
    ) -> StoreResult<()> {
        self.group.write(sql, params, audit, changes).await
    }

    /// Whether a username is held by a user other than `user_id`.
    async fn username_taken(
        client: &Transaction<'_>,
        username: &str,
        user_id: &str,
    ) -> StoreResult<bool> {
        Ok(client
            .query_opt(
                "SELECT 1 FROM users WHERE username = $1 AND user_id <> $2",
                &[&username, &user_id],
            )
            .await
            .map_err(pg)?
            .is_some())
    }
}

/// Whether a failed statement broke a unique constraint.
fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// The columns of `sessions` besides the record, as they must be stored.
fn session_revoked(r: &SessionRecord) -> bool {
    r.revoked_at.is_some()
}

const SESSION_UPSERT: &str = "INSERT INTO sessions
    (session_id, subject, client_id, revoked, expires_at, session_expires_at, version, record)
    VALUES ($1, $2, $3, $4, $5, $6, 1, $7)
    ON CONFLICT (session_id) DO UPDATE SET subject = $2, client_id = $3, revoked = $4,
        expires_at = $5, session_expires_at = $6, version = sessions.version + 1, record = $7";

#[async_trait]
impl Store for PostgresStore {
    async fn api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        self.all("api key", "SELECT record FROM api_keys ORDER BY key_id")
            .await
    }

    async fn api_key(&self, key_id: &str) -> StoreResult<Option<Versioned<ApiKeyRecord>>> {
        self.one_versioned(
            "api key",
            "SELECT version, record FROM api_keys WHERE key_id = $1",
            key_id,
        )
        .await
    }

    async fn insert_api_key(&self, record: &ApiKeyRecord, audit: AuditEntry) -> StoreResult<()> {
        self.write(
            "INSERT INTO api_keys (key_id, secret_hash, expires_at, version, record)
             VALUES ($1, $2, $3, 1, $4)
             ON CONFLICT (key_id) DO UPDATE SET secret_hash = $2, expires_at = $3,
                 version = api_keys.version + 1, record = $4",
            vec![
                Box::new(record.key_id.clone()),
                Box::new(record.secret_hash.as_bytes().to_vec()),
                Box::new(record.expires_at),
                Box::new(json(record)?),
            ],
            audit,
            vec![Change::ApiKey {
                key_id: record.key_id.clone(),
            }],
        )
        .await
    }

    async fn replace_api_key(
        &self,
        current: &Versioned<ApiKeyRecord>,
        new: &ApiKeyRecord,
        audit: AuditEntry,
    ) -> StoreResult<Swap> {
        self.swap(
            "UPDATE api_keys SET secret_hash = $2, expires_at = $3, version = version + 1,
                 record = $4
             WHERE key_id = $1 AND version = $5",
            &[
                &new.key_id,
                &new.secret_hash.as_bytes().as_slice(),
                &new.expires_at,
                &json(new)?,
                &row_version(&current.version),
            ],
            audit,
            &[Change::ApiKey {
                key_id: new.key_id.clone(),
            }],
        )
        .await
    }

    async fn clients(&self) -> StoreResult<Vec<OAuthClientRecord>> {
        self.all(
            "oauth client",
            "SELECT record FROM oauth_clients ORDER BY client_id",
        )
        .await
    }

    async fn client(&self, client_id: &str) -> StoreResult<Option<Versioned<OAuthClientRecord>>> {
        self.one_versioned(
            "oauth client",
            "SELECT version, record FROM oauth_clients WHERE client_id = $1",
            client_id,
        )
        .await
    }

    async fn insert_client(
        &self,
        record: &OAuthClientRecord,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        self.write(
            "INSERT INTO oauth_clients (client_id, version, record) VALUES ($1, 1, $2)
             ON CONFLICT (client_id) DO UPDATE SET
                 version = oauth_clients.version + 1, record = $2",
            vec![Box::new(record.client_id.clone()), Box::new(json(record)?)],
            audit,
            vec![Change::Client {
                client_id: record.client_id.clone(),
            }],
        )
        .await
    }

    async fn replace_client(
        &self,
        current: &Versioned<OAuthClientRecord>,
        new: &OAuthClientRecord,
        audit: AuditEntry,
    ) -> StoreResult<Swap> {
        self.swap(
            "UPDATE oauth_clients SET version = version + 1, record = $2
             WHERE client_id = $1 AND version = $3",
            &[&new.client_id, &json(new)?, &row_version(&current.version)],
            audit,
            &[Change::Client {
                client_id: new.client_id.clone(),
            }],
        )
        .await
    }

    async fn delete_client(
        &self,
        current: &Versioned<OAuthClientRecord>,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<Swap> {
        let id = &current.record.client_id;
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(pg)?;
        let mut head = Head::lock(&tx).await?;
        let deleted = tx
            .execute(
                "DELETE FROM oauth_clients WHERE client_id = $1 AND version = $2",
                &[id, &row_version(&current.version)],
            )
            .await
            .map_err(pg)?;
        if deleted == 0 {
            return Ok(Swap::Conflict);
        }
        tx.execute(
            "INSERT INTO deleted_oauth_clients (client_id, deleted_at) VALUES ($1, $2)
             ON CONFLICT (client_id) DO UPDATE SET deleted_at = $2",
            &[id, &at],
        )
        .await
        .map_err(pg)?;
        head.append(&tx, audit).await?;
        let deleted = Change::ClientDeleted {
            client_id: id.clone(),
            deleted_at: at,
        };
        head.note(&tx, &[deleted]).await?;
        tx.commit().await.map_err(pg)?;
        Ok(Swap::Done)
    }

    async fn deleted_clients(&self) -> StoreResult<Vec<(String, i64)>> {
        self.pairs("SELECT client_id, deleted_at FROM deleted_oauth_clients ORDER BY client_id")
            .await
    }

    async fn forget_deleted_clients(&self, ids: &[String]) -> StoreResult<usize> {
        self.forget(
            "DELETE FROM deleted_oauth_clients WHERE client_id = ANY($1)",
            ids,
        )
        .await
    }

    async fn users(&self) -> StoreResult<Vec<UserRecord>> {
        self.all("user", "SELECT record FROM users ORDER BY username")
            .await
    }

    async fn user(&self, user_id: &str) -> StoreResult<Option<Versioned<UserRecord>>> {
        self.one_versioned(
            "user",
            "SELECT version, record FROM users WHERE user_id = $1",
            user_id,
        )
        .await
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<Versioned<UserRecord>>> {
        self.one_versioned(
            "user",
            "SELECT version, record FROM users WHERE username = $1",
            username,
        )
        .await
    }

    async fn insert_user(&self, record: &UserRecord, audit: AuditEntry) -> StoreResult<Swap> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(pg)?;
        let mut head = Head::lock(&tx).await?;
        // Taken id or taken username: either unique constraint refuses.
        let inserted = tx
            .execute(
                "INSERT INTO users (user_id, username, version, record) VALUES ($1, $2, 1, $3)
                 ON CONFLICT DO NOTHING",
                &[&record.user_id, &record.username, &json(record)?],
            )
            .await
            .map_err(pg)?;
        if inserted == 0 {
            return Ok(Swap::Conflict);
        }
        head.append(&tx, audit).await?;
        tx.commit().await.map_err(pg)?;
        Ok(Swap::Done)
    }

    async fn replace_user(
        &self,
        current: &Versioned<UserRecord>,
        new: &UserRecord,
        audit: AuditEntry,
    ) -> StoreResult<Swap> {
        if new.user_id != current.record.user_id {
            return Ok(Swap::Conflict);
        }
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(pg)?;
        let mut head = Head::lock(&tx).await?;
        if Self::username_taken(&tx, &new.username, &new.user_id).await? {
            return Ok(Swap::Conflict);
        }
        let updated = tx
            .execute(
                "UPDATE users SET username = $2, version = version + 1, record = $3
                 WHERE user_id = $1 AND version = $4",
                &[
                    &new.user_id,
                    &new.username,
                    &json(new)?,
                    &row_version(&current.version),
                ],
            )
            .await;
        match updated {
            Ok(0) => return Ok(Swap::Conflict),
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(Swap::Conflict),
            Err(e) => return Err(pg(e)),
        }
        head.append(&tx, audit).await?;
        tx.commit().await.map_err(pg)?;
        Ok(Swap::Done)
    }

    async fn delete_user(
        &self,
        current: &Versioned<UserRecord>,
        audit: AuditEntry,
    ) -> StoreResult<Swap> {
        self.swap(
            "DELETE FROM users WHERE user_id = $1 AND version = $2",
            &[&current.record.user_id, &row_version(&current.version)],
            audit,
            &[],
        )
        .await
    }

    async fn consent(&self, subject: &str, client_id: &str) -> StoreResult<Option<ConsentRecord>> {
        let conn = self.conn().await?;
        conn.query_opt(
            "SELECT record FROM consents WHERE subject = $1 AND client_id = $2",
            &[&subject, &client_id],
        )
        .await
        .map_err(pg)?
        .map(|r| record("consent", &r))
        .transpose()
    }

    async fn consents_of(&self, subject: &str) -> StoreResult<Vec<ConsentRecord>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT record FROM consents WHERE subject = $1 ORDER BY client_id",
                &[&subject],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(|r| record("consent", r)).collect()
    }

    async fn put_consent(&self, record: &ConsentRecord, audit: AuditEntry) -> StoreResult<()> {
        self.write(
            "INSERT INTO consents (subject, client_id, record) VALUES ($1, $2, $3)
             ON CONFLICT (subject, client_id) DO UPDATE SET record = $3",
            vec![
                Box::new(record.subject.clone()),
                Box::new(record.client_id.clone()),
                Box::new(json(record)?),
            ],
            audit,
            Vec::new(),
        )
        .await
    }

    async fn delete_consent(
        &self,
        subject: &str,
        client_id: &str,
        audit: AuditEntry,
    ) -> StoreResult<bool> {
        let swap = self
            .swap(
                "DELETE FROM consents WHERE subject = $1 AND client_id = $2",
                &[&subject, &client_id],
                audit,
                &[],
            )
            .await?;
        Ok(swap == Swap::Done)
    }

    async fn revoke_token(&self, jti: &str, expires_at: i64, audit: AuditEntry) -> StoreResult<()> {
        // A second revocation keeps the first and writes no record.
        let _ = self
            .swap(
                "INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2)
                 ON CONFLICT (jti) DO NOTHING",
                &[&jti, &expires_at],
                audit,
                &[Change::TokenRevoked {
                    jti: jti.to_owned(),
                    expires_at,
                }],
            )
            .await?;
        Ok(())
    }

    async fn revoked_tokens(&self) -> StoreResult<Vec<(String, i64)>> {
        self.pairs("SELECT jti, expires_at FROM revoked_tokens ORDER BY jti")
            .await
    }

    async fn forget_revoked_tokens(&self, jtis: &[String]) -> StoreResult<usize> {
        self.forget("DELETE FROM revoked_tokens WHERE jti = ANY($1)", jtis)
            .await
    }

    async fn insert_session(&self, record: &SessionRecord, audit: AuditEntry) -> StoreResult<()> {
        self.write(
            SESSION_UPSERT,
            vec![
                Box::new(record.session_id.clone()),
                Box::new(record.subject.clone()),
                Box::new(record.client_id.clone()),
                Box::new(session_revoked(record)),
                Box::new(record.expires_at),
                Box::new(record.session_expires_at),
                Box::new(json(record)?),
            ],
            audit,
            Vec::new(),
        )
        .await
    }

    async fn session(&self, session_id: &str) -> StoreResult<Option<Versioned<SessionRecord>>> {
        self.one_versioned(
            "session",
            "SELECT version, record FROM sessions WHERE session_id = $1",
            session_id,
        )
        .await
    }

    async fn replace_session(
        &self,
        current: &Versioned<SessionRecord>,
        new: &SessionRecord,
        audit: AuditEntry,
    ) -> StoreResult<Swap> {
        let revoked: Vec<Change> = new
            .revoked_at
            .map(|_| Change::SessionRevoked {
                session_id: new.session_id.clone(),
                expires_at: new.expires_at,
            })
            .into_iter()
            .collect();
        self.swap(
            "UPDATE sessions SET subject = $2, client_id = $3, revoked = $4, expires_at = $5,
                 session_expires_at = $6, version = version + 1, record = $7
             WHERE session_id = $1 AND version = $8",
            &[
                &new.session_id,
                &new.subject,
                &new.client_id,
                &session_revoked(new),
                &new.expires_at,
                &new.session_expires_at,
                &json(new)?,
                &row_version(&current.version),
            ],
            audit,
            &revoked,
        )
        .await
    }

    async fn revoke_sessions(
        &self,
        ids: &[String],
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<Vec<(String, i64)>> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(pg)?;
        let mut head = Head::lock(&tx).await?;
        let rows = tx
            .query(
                "UPDATE sessions SET revoked = TRUE, version = version + 1,
                     record = jsonb_set(record, '{revoked_at}', to_jsonb($2::BIGINT))
                 WHERE session_id = ANY($1) AND NOT revoked
                 RETURNING session_id, expires_at",
                &[&ids, &at],
            )
            .await
            .map_err(pg)?;
        let mut changed = HashMap::with_capacity(rows.len());
        for r in &rows {
            let id: String = r.try_get(0).map_err(pg)?;
            let exp: i64 = r.try_get(1).map_err(pg)?;
            changed.insert(id, exp);
        }
        head.append(&tx, audit).await?;
        let revoked: Vec<Change> = changed
            .iter()
            .map(|(id, exp)| Change::SessionRevoked {
                session_id: id.clone(),
                expires_at: *exp,
            })
            .collect();
        head.note(&tx, &revoked).await?;
        tx.commit().await.map_err(pg)?;
        // In the order asked, as the embedded backend returns them.
        Ok(ids
            .iter()
            .filter_map(|id| changed.remove(id).map(|exp| (id.clone(), exp)))
            .collect())
    }

    async fn sessions_page(
        &self,
        filter: &SessionFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> StoreResult<Page<SessionRecord>> {
        let limit = limit.max(1);
        let after = after.map(|c| c.0.as_str());
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT record FROM sessions
                 WHERE ($1::TEXT IS NULL OR subject = $1)
                   AND ($2::TEXT IS NULL OR client_id = $2)
                   AND ($3::TEXT IS NULL OR session_id > $3)
                 ORDER BY session_id LIMIT $4",
                &[
                    &filter.subject,
                    &filter.client_id,
                    &after,
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(pg)?;
        let items: Vec<SessionRecord> = rows
            .iter()
            .map(|r| record("session", r))
            .collect::<StoreResult<_>>()?;
        let next = if items.len() == limit {
            items.last().map(|s| Cursor(s.session_id.clone()))
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn session_ids(&self, filter: &SessionFilter) -> StoreResult<Vec<String>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT session_id FROM sessions
                 WHERE ($1::TEXT IS NULL OR subject = $1)
                   AND ($2::TEXT IS NULL OR client_id = $2)
                 ORDER BY session_id",
                &[&filter.subject, &filter.client_id],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(|r| r.try_get(0).map_err(pg)).collect()
    }

    async fn delete_sessions(&self, ids: &[String]) -> StoreResult<usize> {
        self.forget("DELETE FROM sessions WHERE session_id = ANY($1)", ids)
            .await
    }

    async fn revoked_sessions(&self) -> StoreResult<Vec<(String, i64)>> {
        self.pairs("SELECT session_id, expires_at FROM sessions WHERE revoked ORDER BY session_id")
            .await
    }

    async fn identities(&self) -> StoreResult<Vec<IdentityRecord>> {
        self.all("identity", "SELECT record FROM identities ORDER BY name")
            .await
    }

    async fn put_identity(
        &self,
        record: &IdentityRecord,
        audit: AuditEntry,
    ) -> StoreResult<IdentityRecord> {
        let mut stored = record.clone();
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(pg)?;
        let mut head = Head::lock(&tx).await?;
        if let Some(row) = tx
            .query_opt(
                "SELECT record FROM identities WHERE name = $1 FOR UPDATE",
                &[&record.name],
            )
            .await
            .map_err(pg)?
        {
            let old: IdentityRecord = self::record("identity", &row)?;
            stored.created_at = old.created_at;
        }
        tx.execute(
            "INSERT INTO identities (name, record) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET record = $2",
            &[&stored.name, &json(&stored)?],
        )
        .await
        .map_err(pg)?;
        head.append(&tx, audit).await?;
        let changed = Change::Identity {
            name: stored.name.clone(),
        };
        head.note(&tx, &[changed]).await?;
        tx.commit().await.map_err(pg)?;
        Ok(stored)
    }

    async fn delete_identity(&self, name: &str, audit: AuditEntry) -> StoreResult<bool> {
        let swap = self
            .swap(
                "DELETE FROM identities WHERE name = $1",
                &[&name],
                audit,
                &[Change::Identity {
                    name: name.to_owned(),
                }],
            )
            .await?;
        Ok(swap == Swap::Done)
    }

    async fn revoked_certs(&self) -> StoreResult<Vec<RevokedCert>> {
        let rows = self
            .pairs("SELECT serial, revoked_at FROM revoked_certs ORDER BY serial")
            .await?;
        Ok(rows
            .into_iter()
            .map(|(serial, revoked_at)| RevokedCert { serial, revoked_at })
            .collect())
    }

    async fn revoke_cert(
        &self,
        serial: &str,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<RevokedCert> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(pg)?;
        let mut head = Head::lock(&tx).await?;
        tx.execute(
            "INSERT INTO revoked_certs (serial, revoked_at) VALUES ($1, $2)
             ON CONFLICT (serial) DO NOTHING",
            &[&serial, &at],
        )
        .await
        .map_err(pg)?;
        let revoked_at: i64 = tx
            .query_one(
                "SELECT revoked_at FROM revoked_certs WHERE serial = $1",
                &[&serial],
            )
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        head.append(&tx, audit).await?;
        let revoked = Change::CertRevoked {
            serial: serial.to_owned(),
        };
        head.note(&tx, &[revoked]).await?;
        tx.commit().await.map_err(pg)?;
        Ok(RevokedCert {
            serial: serial.to_owned(),
            revoked_at,
        })
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        let rows: Vec<serde_json::Value> = self
            .all(
                "signing key",
                "SELECT record FROM signing_keys ORDER BY kid",
            )
            .await?;
        rows.into_iter()
            .map(|row| seal::open(&self.ring_key, row))
            .collect()
    }

    async fn put_signing_keys(
        &self,
        records: &[SigningKeyRecord],
        audit: Option<AuditEntry>,
    ) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(pg)?;
        // Locked audited or not: the change's position needs it.
        let mut head = Head::lock(&tx).await?;
        for r in records {
            tx.execute(
                "INSERT INTO signing_keys (kid, record) VALUES ($1, $2)
                 ON CONFLICT (kid) DO UPDATE SET record = $2",
                &[&r.kid, &seal::seal(&self.ring_key, r)?],
            )
            .await
            .map_err(pg)?;
        }
        if let Some(audit) = audit {
            head.append(&tx, audit).await?;
        }
        head.note(&tx, &[Change::SigningKeys]).await?;
        tx.commit().await.map_err(pg)
    }

    async fn delete_signing_keys(&self, kids: &[String]) -> StoreResult<()> {
        if kids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(pg)?;
        let head = Head::lock(&tx).await?;
        tx.execute("DELETE FROM signing_keys WHERE kid = ANY($1)", &[&kids])
            .await
            .map_err(pg)?;
        head.note(&tx, &[Change::SigningKeys]).await?;
        tx.commit().await.map_err(pg)
    }

    async fn append_audit(&self, entry: AuditEntry, durable: bool) -> StoreResult<()> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(pg)?;
        if !durable {
            // Committed without waiting for the WAL flush: the next
            // durable commit (or the WAL writer, within a moment) covers
            // it.
            tx.batch_execute("SET LOCAL synchronous_commit = off")
                .await
                .map_err(pg)?;
        }
        let mut head = Head::lock(&tx).await?;
        head.append(&tx, entry).await?;
        tx.commit().await.map_err(pg)
    }

    async fn audit_page(&self, after: u64, limit: usize) -> StoreResult<Vec<AuditRecord>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT record FROM audit WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[
                    &i64::try_from(after).unwrap_or(i64::MAX),
                    &i64::try_from(limit).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(pg)?;
        rows.iter().map(|r| record("audit record", r)).collect()
    }

    async fn audit_anchor(&self) -> StoreResult<AuditAnchor> {
        let conn = self.conn().await?;
        let row = conn
            .query_one("SELECT anchor_seq, anchor_hash FROM audit_head", &[])
            .await
            .map_err(pg)?;
        let seq: i64 = row.try_get(0).map_err(pg)?;
        Ok(AuditAnchor {
            seq: u64::try_from(seq).unwrap_or(0),
            hash: row.try_get(1).map_err(pg)?,
        })
    }

    async fn prune_audit(&self, before: i64, limit: usize) -> StoreResult<usize> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(pg)?;
        let _head = Head::lock(&tx).await?;
        let rows = tx
            .query(
                "SELECT seq, time, record->>'hash' FROM audit ORDER BY seq LIMIT $1",
                &[&i64::try_from(limit).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(pg)?;
        // The oldest records, up to the first one not older than `before`.
        let mut last: Option<(i64, String)> = None;
        let mut gone = 0;
        for r in &rows {
            let time: i64 = r.try_get(1).map_err(pg)?;
            if time >= before {
                break;
            }
            last = Some((r.try_get(0).map_err(pg)?, r.try_get(2).map_err(pg)?));
            gone += 1;
        }
        let Some((seq, hash)) = last else {
            return Ok(0);
        };
        tx.execute("DELETE FROM audit WHERE seq <= $1", &[&seq])
            .await
            .map_err(pg)?;
        tx.execute(
            "UPDATE audit_head SET anchor_seq = $1, anchor_hash = $2",
            &[&seq, &hash],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(gone)
    }

    async fn put_transient(
        &self,
        kind: TransientKind,
        key: &[u8],
        value: &[u8],
        expires_at: i64,
        now: i64,
    ) -> StoreResult<Swap> {
        self.put_transient_row(kind, key, value, expires_at, now)
            .await
    }

    async fn transient(
        &self,
        kind: TransientKind,
        key: &[u8],
        now: i64,
    ) -> StoreResult<Option<Vec<u8>>> {
        self.transient_row(kind, key, now).await
    }

    async fn swap_transient(
        &self,
        kind: TransientKind,
        key: &[u8],
        expected: &[u8],
        new: &[u8],
        expires_at: i64,
    ) -> StoreResult<Swap> {
        self.swap_transient_row(kind, key, expected, new, expires_at)
            .await
    }

    async fn remove_transient(
        &self,
        kind: TransientKind,
        key: &[u8],
        expected: &[u8],
    ) -> StoreResult<Swap> {
        self.remove_transient_row(kind, key, expected).await
    }

    async fn count_transients(
        &self,
        kind: TransientKind,
        now: i64,
        limit: usize,
    ) -> StoreResult<usize> {
        self.count_transient_rows(kind, now, limit).await
    }

    async fn transients(
        &self,
        kind: TransientKind,
        now: i64,
    ) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.transient_rows(kind, now).await
    }

    async fn evict_transients(&self, now: i64) -> StoreResult<usize> {
        self.evict_transient_rows(now).await
    }

    fn shared(&self) -> bool {
        true
    }

    async fn change_position(&self) -> StoreResult<u64> {
        let conn = self.conn().await?;
        let row = conn
            .query_one(
                "SELECT COALESCE(MAX(position), (SELECT pruned_through FROM change_feed))
                 FROM changes",
                &[],
            )
            .await
            .map_err(pg)?;
        let position: i64 = row.try_get(0).map_err(pg)?;
        Ok(u64::try_from(position).unwrap_or(0))
    }

    async fn changes_after(&self, after: u64, limit: usize) -> StoreResult<ChangePage> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(
                "SELECT f.pruned_through, c.position, c.change FROM change_feed f
                 LEFT JOIN LATERAL (
                     SELECT position, change FROM changes WHERE position > $1
                     ORDER BY position LIMIT $2
                 ) c ON TRUE",
            )
            .await
            .map_err(pg)?;
        let rows = conn
            .query(
                &stmt,
                &[
                    &i64::try_from(after).unwrap_or(i64::MAX),
                    &i64::try_from(limit.max(1)).unwrap_or(i64::MAX),
                ],
            )
            .await
            .map_err(pg)?;
        let mut page = ChangePage::empty(after);
        for row in &rows {
            let pruned: i64 = row.try_get(0).map_err(pg)?;
            page.gap = u64::try_from(pruned).unwrap_or(0) > after;
            let Some(position) = row.try_get::<_, Option<i64>>(1).map_err(pg)? else {
                continue;
            };
            let value: serde_json::Value = row.try_get(2).map_err(pg)?;
            let change = serde_json::from_value(value).map_err(|e| StoreError::Corrupt {
                what: "change",
                message: e.to_string(),
            })?;
            let position = u64::try_from(position).unwrap_or(0);
            page.position = position;
            page.changes.push((position, change));
        }
        Ok(page)
    }

    async fn wait_for_change(&self, timeout: Duration) -> StoreResult<()> {
        let signal = {
            let mut listener = self.listener.lock().await;
            match listener.as_ref() {
                Some(l) if l.alive() => l.signal(),
                _ => {
                    let l = listen::Listener::start(&self.config, self.tls.as_ref()).await?;
                    let signal = l.signal();
                    *listener = Some(l);
                    signal
                }
            }
        };
        // Woken or not, the caller reads the feed next.
        let _ = tokio::time::timeout(timeout, signal.notified()).await;
        Ok(())
    }

    async fn prune_changes(&self, keep: usize) -> StoreResult<usize> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(pg)?;
        let rows = tx
            .query(
                "DELETE FROM changes
                 WHERE position <= (SELECT MAX(position) FROM changes) - $1
                 RETURNING position",
                &[&i64::try_from(keep).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(pg)?;
        let mut through = 0i64;
        for r in &rows {
            through = through.max(r.try_get(0).map_err(pg)?);
        }
        if !rows.is_empty() {
            tx.execute(
                "UPDATE change_feed SET pruned_through = GREATEST(pruned_through, $1)",
                &[&through],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(rows.len())
    }

    async fn begin_startup(&self) -> StoreResult<()> {
        let conn = self.conn().await?;
        conn.execute("SELECT pg_advisory_lock($1)", &[&schema::STARTUP_LOCK])
            .await
            .map_err(pg)?;
        *self.startup.lock().await = Some(conn);
        Ok(())
    }

    async fn end_startup(&self) {
        if let Some(conn) = self.startup.lock().await.take() {
            // Never back to the pool: closing the connection releases the
            // lock whatever happens to the unlock.
            let client = Object::take(conn);
            let _ = client
                .execute("SELECT pg_advisory_unlock($1)", &[&schema::STARTUP_LOCK])
                .await;
        }
    }

    fn audit_chain_length(&self) -> Option<u64> {
        self.group.last_seq()
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn flush(&self) -> StoreResult<()> {
        // A durable commit that writes (so waits for the WAL flush) covers
        // every commit before it, the non-durable audit records included.
        let conn = self.conn().await?;
        conn.execute("UPDATE audit_head SET next_seq = next_seq", &[])
            .await
            .map_err(pg)?;
        Ok(())
    }
}

/// Opens the store in the PostgreSQL database `url` names, its signing
/// keys sealed with `ring_key`.
///
/// # Errors
/// As [`PostgresStore::open`].
pub async fn open(url: &str, ring_key: RingKey) -> StoreResult<Arc<dyn Store>> {
    Ok(Arc::new(PostgresStore::open(url, ring_key).await?))
}

#[cfg(test)]
mod tests;
