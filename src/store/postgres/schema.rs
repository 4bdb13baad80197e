//! The PostgreSQL backend's schema: migrations embedded as SQL, applied in
//! order at open under an advisory lock (so replicas starting together
//! apply each once), and the refusal to open a database a newer binary
//! has migrated.
//!
//! One table per kind of record: the columns the queries select or order
//! by, `version` (bumped by every write) for conditional writes, and the
//! record itself as JSONB, the same serde JSON the embedded backend stores.
//! `audit` holds the chain (seq → record); the one row of `audit_head` is
//! its head (next seq, last hash) and the anchor of pruning, and every
//! audited write locks it first, which orders the chain across
//! connections and replicas. `changes` is the feed replicas follow
//! (position → what changed); every write adding to it holds the same
//! lock, so positions are in commit order and a reader never sees a later
//! one before an earlier one commits. `transient` holds the browser flow
//! in progress, by kind and key, outside the chain and the feed.

use tokio_postgres::Client;

use crate::store::{StoreError, StoreResult};

/// The advisory lock migrations run under ("mcp_auth" in ASCII).
const MIGRATION_LOCK: i64 = 0x6d63_705f_6175_7468;

/// The advisory lock a replica holds while it starts (creating the first
/// signing key and the primary API key): "mcp_star".
pub(super) const STARTUP_LOCK: i64 = 0x6d63_705f_7374_6172;

/// The schema, one step per version: `MIGRATIONS[i]` takes a database from
/// version `i` to `i + 1`. Steps are only ever appended.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "
    CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY,
        secret_hash BYTEA NOT NULL,
        expires_at BIGINT NOT NULL,
        version BIGINT NOT NULL,
        record JSONB NOT NULL
    );
    CREATE INDEX api_keys_by_secret_hash ON api_keys (secret_hash);

    CREATE TABLE oauth_clients (
        client_id TEXT PRIMARY KEY,
        version BIGINT NOT NULL,
        record JSONB NOT NULL
    );
    CREATE TABLE deleted_oauth_clients (
        client_id TEXT PRIMARY KEY,
        deleted_at BIGINT NOT NULL
    );

    CREATE TABLE users (
        user_id TEXT PRIMARY KEY,
        username TEXT NOT NULL UNIQUE,
        version BIGINT NOT NULL,
        record JSONB NOT NULL
    );

    CREATE TABLE consents (
        subject TEXT NOT NULL,
        client_id TEXT NOT NULL,
        record JSONB NOT NULL,
        PRIMARY KEY (subject, client_id)
    );

    CREATE TABLE revoked_tokens (
        jti TEXT PRIMARY KEY,
        expires_at BIGINT NOT NULL
    );

    CREATE TABLE sessions (
        session_id TEXT PRIMARY KEY,
        subject TEXT NOT NULL,
        client_id TEXT NOT NULL,
        revoked BOOLEAN NOT NULL,
        expires_at BIGINT NOT NULL,
        session_expires_at BIGINT NOT NULL,
        version BIGINT NOT NULL,
        record JSONB NOT NULL
    );
    CREATE INDEX sessions_by_subject ON sessions (subject, session_id);
    CREATE INDEX sessions_by_client ON sessions (client_id, session_id);
    CREATE INDEX sessions_revoked ON sessions (session_id) WHERE revoked;
    CREATE INDEX sessions_by_end ON sessions (session_expires_at);

    CREATE TABLE identities (
        name TEXT PRIMARY KEY,
        record JSONB NOT NULL
    );

    CREATE TABLE revoked_certs (
        serial TEXT PRIMARY KEY,
        revoked_at BIGINT NOT NULL
    );

    CREATE TABLE signing_keys (
        kid TEXT PRIMARY KEY,
        record JSONB NOT NULL
    );

    CREATE TABLE audit (
        seq BIGINT PRIMARY KEY,
        time BIGINT NOT NULL,
        record JSONB NOT NULL
    );
    CREATE TABLE audit_head (
        one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
        next_seq BIGINT NOT NULL,
        last_hash TEXT NOT NULL,
        anchor_seq BIGINT NOT NULL,
        anchor_hash TEXT NOT NULL
    );
    INSERT INTO audit_head (next_seq, last_hash, anchor_seq, anchor_hash)
        VALUES (1, '', 0, '');
    ",
    // 2: the change feed replicas follow (`changes`, in commit order: every
    // write that adds to it holds the audit head's lock), and how far it
    // was pruned.
    "
    CREATE TABLE changes (
        position BIGSERIAL PRIMARY KEY,
        change JSONB NOT NULL
    );
    CREATE TABLE change_feed (
        one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
        pruned_through BIGINT NOT NULL
    );
    INSERT INTO change_feed (pruned_through) VALUES (0);
    ",
    // 3: the browser flow in progress (interactions, login sessions, login
    // challenges and verifiers, authorization codes), so every replica
    // sees it: opaque values by kind and key (a hash or an id, never a
    // secret), each with its end; conditional writes compare `value`.
    "
    CREATE TABLE transient (
        kind SMALLINT NOT NULL,
        key BYTEA NOT NULL,
        value BYTEA NOT NULL,
        expires_at BIGINT NOT NULL,
        PRIMARY KEY (kind, key)
    );
    CREATE INDEX transient_by_end ON transient (kind, expires_at);
    ",
];

/// The schema version this binary writes.
pub(super) fn known() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// Brings the database to [`known`], in one transaction.
///
/// # Errors
/// [`StoreError::SchemaTooNew`] if a newer binary migrated it; the
/// database's error if a step fails (then nothing of it stays).
pub(super) async fn migrate(client: &mut Client) -> StoreResult<()> {
    let tx = client.transaction().await.map_err(super::pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(super::pg)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .await
        .map_err(super::pg)?;
    let found: i64 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .await
        .map_err(super::pg)?
        .try_get(0)
        .map_err(super::pg)?;
    let known = known();
    if found > known {
        return Err(StoreError::SchemaTooNew { found, known });
    }
    let from = usize::try_from(found).unwrap_or(0);
    for (i, step) in MIGRATIONS.iter().enumerate().skip(from) {
        tx.batch_execute(step).await.map_err(super::pg)?;
        let version = i64::try_from(i + 1).unwrap_or(i64::MAX);
        tx.execute("DELETE FROM schema_version", &[])
            .await
            .map_err(super::pg)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(super::pg)?;
        tracing::info!(version, "migrated the PostgreSQL schema");
    }
    tx.commit().await.map_err(super::pg)
}
