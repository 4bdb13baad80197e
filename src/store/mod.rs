//! The storage boundary: what the core asks of a database, as one async
//! trait over the records of [`model`], and the backends that answer it.
//!
//! The contract every backend keeps (and [`conformance`] checks):
//! - A write that returns `Ok` is durable: it survives the process being
//!   killed right after.
//! - A write that carries an [`AuditEntry`] commits the change and its
//!   audit record together: no durable change lacks its record. The backend
//!   gives the record its place in the hash chain.
//! - Conditional writes (`replace_*`) compare against the [`Version`] a
//!   read returned, so of two writers that read the same version exactly
//!   one wins; the other gets [`Swap::Conflict`] and nothing is written.
//! - Cursors are opaque; listing order is stable.
//! - Transient entries ([`Store::put_transient`] and the rest: the browser
//!   flow's state in progress) are opaque bytes under a key of a
//!   [`TransientKind`], each with its end; their writes are conditional on
//!   the bytes a read returned, so of two writers from one value exactly
//!   one wins, across processes sharing the store. They carry no audit
//!   record and no change.
//!
//! Only this module names a storage engine: [`sled`](self::sled) is the
//! embedded default, for one process; [`postgres`] keeps the store in a
//! PostgreSQL database that several processes (replicas) share.
//! [`migrate`] copies a stopped server's data directory into an empty
//! PostgreSQL database (`mcp-auth store migrate`); [`backup`] is the
//! file format of `mcp-auth store backup` (a running embedded store at
//! one point in time, [`Store::backup`]) and restoring one into a new
//! data directory (`mcp-auth store restore`).

pub mod backup;
pub mod changes;
pub mod migrate;
pub mod model;
pub mod postgres;
pub mod ring_key;
pub mod sled;

#[cfg(test)]
pub(crate) mod conformance;

use async_trait::async_trait;

pub use changes::{Change, ChangePage};
pub use model::{
    ApiKeyRecord, AuditAnchor, AuditEntry, AuditRecord, AuthMethod, ClientOrigin, ConsentRecord,
    Cursor, GrantType, IdentityRecord, OAuthClientRecord, Page, PreviousSecret, REFRESH_HISTORY,
    RateLimit, RefreshToken, RevokedCert, SessionFilter, SessionRecord, SigningAlg,
    SigningKeyRecord, Standing, Swap, TransientKind, UserRecord, Version, Versioned,
};
pub use ring_key::{RingKey, RingKeyError};

/// Storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database reported an error (I/O, corruption, lock held).
    #[error("storage: {0}")]
    Backend(String),
    /// A stored record could not be decoded.
    #[error("corrupt {what} record: {message}")]
    Corrupt {
        /// Which kind of record.
        what: &'static str,
        /// The decoder's message.
        message: String,
    },
    /// The database cannot be reached (refused, timed out, the connection
    /// lost, shutting down): the write did not happen, or its outcome is
    /// unknown; nothing was acknowledged. Retrying later may succeed.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// Another process has the data directory open.
    #[error(
        "another mcp-auth process is using the data directory {} (a running server, or an offline command on it): stop it first",
        .0.display()
    )]
    InUse(std::path::PathBuf),
    /// The database was migrated by a newer mcp-auth than this one.
    #[error(
        "the database's schema is version {found}, newer than this mcp-auth knows ({known}): run the newer mcp-auth, or restore a backup from before it"
    )]
    SchemaTooNew {
        /// The database's schema version.
        found: i64,
        /// The newest this binary knows.
        known: i64,
    },
    /// The key-ring key (`store_key_file`) is missing or cannot be read.
    #[error(transparent)]
    RingKey(#[from] RingKeyError),
    /// This backend has no online backup through mcp-auth: its database
    /// is backed up with its own tools.
    #[error(
        "the {0} store is backed up with its database's own tools (pg_dump), not through mcp-auth"
    )]
    BackupUnsupported(&'static str),
    /// The database's signing keys do not open with the key-ring key
    /// given: it is another replica's, or the rows were altered.
    #[error("the signing keys in the database cannot be opened with this store_key_file: {0}")]
    Unsealable(String),
}

/// Shorthand for a storage result.
pub type StoreResult<T> = Result<T, StoreError>;

/// The database behind the core. Every method is async, so a networked
/// backend fits; every write is durable when it returns.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // ---- API keys

    /// Every API key, in key-id order.
    async fn api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>>;

    /// The API key with this id, and its version.
    async fn api_key(&self, key_id: &str) -> StoreResult<Option<Versioned<ApiKeyRecord>>>;

    /// Stores a new API key with its audit record.
    async fn insert_api_key(&self, record: &ApiKeyRecord, audit: AuditEntry) -> StoreResult<()>;

    /// Replaces the API key `current` was read as with `new`, with its
    /// audit record, unless it changed since.
    async fn replace_api_key(
        &self,
        current: &Versioned<ApiKeyRecord>,
        new: &ApiKeyRecord,
        audit: AuditEntry,
    ) -> StoreResult<Swap>;

    // ---- OAuth clients

    /// Every OAuth client, in client-id order.
    async fn clients(&self) -> StoreResult<Vec<OAuthClientRecord>>;

    /// The OAuth client with this id, and its version.
    async fn client(&self, client_id: &str) -> StoreResult<Option<Versioned<OAuthClientRecord>>>;

    /// Stores a new OAuth client with its audit record.
    async fn insert_client(&self, record: &OAuthClientRecord, audit: AuditEntry)
    -> StoreResult<()>;

    /// Replaces the client `current` was read as with `new`, with its
    /// audit record, unless it changed since.
    async fn replace_client(
        &self,
        current: &Versioned<OAuthClientRecord>,
        new: &OAuthClientRecord,
        audit: AuditEntry,
    ) -> StoreResult<Swap>;

    /// Deletes the client `current` was read as, unless it changed since,
    /// and remembers its id as deleted at `at` (see
    /// [`Store::deleted_clients`]), with its audit record: one step.
    async fn delete_client(
        &self,
        current: &Versioned<OAuthClientRecord>,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<Swap>;

    /// Ids and deletion times of the deleted clients not yet forgotten,
    /// so their tokens keep verifying as revoked after a restart.
    async fn deleted_clients(&self) -> StoreResult<Vec<(String, i64)>>;

    /// Forgets deleted clients (maintenance, once their tokens have all
    /// expired); returns how many went.
    async fn forget_deleted_clients(&self, ids: &[String]) -> StoreResult<usize>;

    // ---- built-in user accounts

    /// Every user, in username order.
    async fn users(&self) -> StoreResult<Vec<UserRecord>>;

    /// The user with this id, and its version.
    async fn user(&self, user_id: &str) -> StoreResult<Option<Versioned<UserRecord>>>;

    /// The user with this (normalized) username, and its version.
    async fn user_by_name(&self, username: &str) -> StoreResult<Option<Versioned<UserRecord>>>;

    /// Stores a new user with its audit record, unless its username (or
    /// its id) is already taken: then [`Swap::Conflict`] and nothing is
    /// written. The check and the write are one step, so of two inserts
    /// of one username exactly one succeeds.
    async fn insert_user(&self, record: &UserRecord, audit: AuditEntry) -> StoreResult<Swap>;

    /// Replaces the user `current` was read as with `new`, with its audit
    /// record, unless it changed since (or `new` takes a username another
    /// user holds).
    async fn replace_user(
        &self,
        current: &Versioned<UserRecord>,
        new: &UserRecord,
        audit: AuditEntry,
    ) -> StoreResult<Swap>;

    /// Deletes the user `current` was read as, and frees its username,
    /// unless it changed since, with its audit record: one step.
    async fn delete_user(
        &self,
        current: &Versioned<UserRecord>,
        audit: AuditEntry,
    ) -> StoreResult<Swap>;

    // ---- remembered consents

    /// The consent `subject` gave `client_id`, if remembered.
    async fn consent(&self, subject: &str, client_id: &str) -> StoreResult<Option<ConsentRecord>>;

    /// Every remembered consent of `subject`, in client-id order.
    async fn consents_of(&self, subject: &str) -> StoreResult<Vec<ConsentRecord>>;

    /// Stores (or replaces) a consent, with its audit record.
    async fn put_consent(&self, record: &ConsentRecord, audit: AuditEntry) -> StoreResult<()>;

    /// Forgets the consent `subject` gave `client_id`, with its audit
    /// record; whether there was one.
    async fn delete_consent(
        &self,
        subject: &str,
        client_id: &str,
        audit: AuditEntry,
    ) -> StoreResult<bool>;

    // ---- revoked access tokens

    /// Notes the access token `jti` revoked (RFC 7009) until its
    /// `expires_at`, with its audit record; revoking it again keeps the
    /// first note.
    async fn revoke_token(&self, jti: &str, expires_at: i64, audit: AuditEntry) -> StoreResult<()>;

    /// Every revoked access token's `jti` and expiry, to build the
    /// revocation index at start.
    async fn revoked_tokens(&self) -> StoreResult<Vec<(String, i64)>>;

    /// Forgets revoked tokens (maintenance, once they have expired);
    /// returns how many went.
    async fn forget_revoked_tokens(&self, jtis: &[String]) -> StoreResult<usize>;

    // ---- sessions

    /// Stores a new session (its first refresh token included) with its
    /// audit record: one write.
    async fn insert_session(&self, record: &SessionRecord, audit: AuditEntry) -> StoreResult<()>;

    /// The session with this id, and its version.
    async fn session(&self, session_id: &str) -> StoreResult<Option<Versioned<SessionRecord>>>;

    /// Replaces the session `current` was read as with `new` (a refresh, a
    /// revocation), with its audit record, unless it changed since.
    async fn replace_session(
        &self,
        current: &Versioned<SessionRecord>,
        new: &SessionRecord,
        audit: AuditEntry,
    ) -> StoreResult<Swap>;

    /// Marks the sessions `ids` revoked at `at` (those already revoked keep
    /// their time), with one audit record for all; returns the ids this
    /// call revoked, each with its newest token's expiry (as
    /// [`Store::revoked_sessions`] has them).
    async fn revoke_sessions(
        &self,
        ids: &[String],
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<Vec<(String, i64)>>;

    /// One page of the sessions `filter` selects, after `after`.
    async fn sessions_page(
        &self,
        filter: &SessionFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> StoreResult<Page<SessionRecord>>;

    /// Ids of every session `filter` selects.
    async fn session_ids(&self, filter: &SessionFilter) -> StoreResult<Vec<String>>;

    /// Removes sessions that can no longer matter (maintenance); returns
    /// how many went.
    async fn delete_sessions(&self, ids: &[String]) -> StoreResult<usize>;

    /// The session of a refresh token issued before refresh tokens named
    /// their session (`mcp_rt_` and 43 characters), by the token's hash;
    /// `None` for a backend that never had such tokens.
    async fn legacy_refresh_session(
        &self,
        _token: &crate::secret::SecretHash,
    ) -> StoreResult<Option<String>> {
        Ok(None)
    }

    /// Ids and newest-token expiry of every revoked session, to build the
    /// revocation index at start.
    async fn revoked_sessions(&self) -> StoreResult<Vec<(String, i64)>>;

    // ---- identities and certificates

    /// Every identity grant, by name.
    async fn identities(&self) -> StoreResult<Vec<IdentityRecord>>;

    /// Creates or replaces a grant (keeping an existing one's creation
    /// time) with its audit record; returns what was stored.
    async fn put_identity(
        &self,
        record: &IdentityRecord,
        audit: AuditEntry,
    ) -> StoreResult<IdentityRecord>;

    /// Deletes a grant with its audit record; `false` (and nothing
    /// written) if there was none.
    async fn delete_identity(&self, name: &str, audit: AuditEntry) -> StoreResult<bool>;

    /// Every revoked client certificate.
    async fn revoked_certs(&self) -> StoreResult<Vec<RevokedCert>>;

    /// Records a certificate revocation (keeping the first one's time)
    /// with its audit record; returns what is stored.
    async fn revoke_cert(
        &self,
        serial: &str,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<RevokedCert>;

    // ---- signing keys

    /// Every signing key.
    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;

    /// Writes new or changed signing keys together, with an audit record
    /// when there is one.
    async fn put_signing_keys(
        &self,
        records: &[SigningKeyRecord],
        audit: Option<AuditEntry>,
    ) -> StoreResult<()>;

    /// Deletes signing keys.
    async fn delete_signing_keys(&self, kids: &[String]) -> StoreResult<()>;

    // ---- the audit trail

    /// Appends a record on its own. With `durable` false it becomes durable
    /// with the next write (for flood-prone events: failed
    /// authentications, rate limiting).
    async fn append_audit(&self, entry: AuditEntry, durable: bool) -> StoreResult<()>;

    /// Up to `limit` records with seq greater than `after`, in order.
    async fn audit_page(&self, after: u64, limit: usize) -> StoreResult<Vec<AuditRecord>>;

    /// The last pruned record's seq and hash.
    async fn audit_anchor(&self) -> StoreResult<AuditAnchor>;

    /// Removes up to `limit` of the oldest records older than `before`
    /// (Unix seconds), moving the anchor to the last one removed; returns
    /// how many went.
    async fn prune_audit(&self, before: i64, limit: usize) -> StoreResult<usize>;

    // ---- transient entries: the browser flow in progress

    /// Stores `value` under `key` of `kind` until `expires_at`, unless a
    /// live entry (one ending after `now`) holds that key: then
    /// [`Swap::Conflict`] and nothing is written. An ended entry not yet
    /// evicted is replaced.
    async fn put_transient(
        &self,
        kind: TransientKind,
        key: &[u8],
        value: &[u8],
        expires_at: i64,
        now: i64,
    ) -> StoreResult<Swap>;

    /// The value under `key` of `kind`, unless there is none or it ended
    /// (its end is not after `now`).
    async fn transient(
        &self,
        kind: TransientKind,
        key: &[u8],
        now: i64,
    ) -> StoreResult<Option<Vec<u8>>>;

    /// Replaces the value under `key` of `kind` with `new`, ending at
    /// `expires_at`, if it still is `expected`: else (another writer came
    /// first, or the entry is gone) [`Swap::Conflict`] and nothing is
    /// written. Of two swaps from one value exactly one wins, also from two
    /// processes.
    async fn swap_transient(
        &self,
        kind: TransientKind,
        key: &[u8],
        expected: &[u8],
        new: &[u8],
        expires_at: i64,
    ) -> StoreResult<Swap>;

    /// Removes the entry under `key` of `kind` if its value still is
    /// `expected`; [`Swap::Conflict`] if it is not (or there is none).
    async fn remove_transient(
        &self,
        kind: TransientKind,
        key: &[u8],
        expected: &[u8],
    ) -> StoreResult<Swap>;

    /// How many live entries of `kind` there are, counting no further
    /// than `limit` (for a cap: the answer is at most `limit`).
    async fn count_transients(
        &self,
        kind: TransientKind,
        now: i64,
        limit: usize,
    ) -> StoreResult<usize>;

    /// Every live entry of `kind`, as (key, value) pairs.
    async fn transients(
        &self,
        kind: TransientKind,
        now: i64,
    ) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Removes the entries of every kind that ended by `now`
    /// (maintenance); how many went.
    async fn evict_transients(&self, now: i64) -> StoreResult<usize>;

    // ---- the change feed, of a store several processes share

    /// Whether other processes may write this store too: then the core
    /// follows [`Store::changes_after`] to keep its memory current.
    fn shared(&self) -> bool {
        false
    }

    /// The position of the newest change in the feed (0: none).
    async fn change_position(&self) -> StoreResult<u64> {
        Ok(0)
    }

    /// Up to `limit` changes after position `after`, in commit order.
    async fn changes_after(&self, after: u64, _limit: usize) -> StoreResult<ChangePage> {
        Ok(ChangePage::empty(after))
    }

    /// Waits until another process may have committed a change, or
    /// `timeout` passed (a hint only: the feed is read after either).
    ///
    /// # Errors
    /// The database's notifications cannot be listened to now; the caller
    /// waits `timeout` itself and reads the feed anyway.
    async fn wait_for_change(&self, timeout: std::time::Duration) -> StoreResult<()> {
        tokio::time::sleep(timeout).await;
        Ok(())
    }

    /// Forgets all but the newest `keep` changes; returns how many went.
    /// A reader further behind than that reads everything again.
    async fn prune_changes(&self, _keep: usize) -> StoreResult<usize> {
        Ok(0)
    }

    /// Makes this process the only one starting on the store until
    /// [`Store::end_startup`] (or its death): so replicas started together
    /// create the first signing key and the primary API key once.
    async fn begin_startup(&self) -> StoreResult<()> {
        Ok(())
    }

    /// Ends [`Store::begin_startup`].
    async fn end_startup(&self) {}

    // ---- what the metrics show

    /// Records in the audit chain since it began (the newest record's
    /// seq), as this process last saw it, from memory; `None` when it
    /// cannot tell without a query.
    fn audit_chain_length(&self) -> Option<u64> {
        None
    }

    /// Which backend this is: `sled` or `postgres` (for `GetStatus`).
    fn backend(&self) -> &'static str;

    // ---- backups

    /// A backup of the whole store at one point in time, in the format of
    /// [`backup`](self::backup), with `audit` (the backup's own record)
    /// the newest record of the chain it holds; `created_at` goes in its
    /// header. Every write acknowledged before the call is in it.
    ///
    /// # Errors
    /// [`StoreError::BackupUnsupported`] for a backend backed up with its
    /// database's own tools (PostgreSQL: `pg_dump`); storage failed.
    async fn backup(&self, _audit: AuditEntry, _created_at: i64) -> StoreResult<Vec<u8>> {
        Err(StoreError::BackupUnsupported(self.backend()))
    }

    // ---- lifecycle

    /// Makes every write so far durable (at shutdown).
    async fn flush(&self) -> StoreResult<()>;
}

pub use self::sled::Durability;

/// Whether `dir` holds a database (offline commands must not create one).
pub fn exists(dir: &std::path::Path) -> bool {
    self::sled::exists(dir)
}

/// Opens the store of a data directory: the embedded backend.
///
/// # Errors
/// The directory cannot be used, another process holds the database, or a
/// record is corrupt.
pub fn open(
    dir: &std::path::Path,
    durability: Durability,
) -> StoreResult<std::sync::Arc<dyn Store>> {
    self::sled::open(dir, durability)
}

/// Where the server keeps its store (config `store`, `--store`,
/// `MCP_AUTH_STORE`): `sled`, the embedded database in the data directory
/// (the default, for one process), or a `postgres://` (`postgresql://`)
/// URL, a PostgreSQL database several replicas share. `Debug` never shows
/// the URL (it may carry a password).
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Location {
    /// The embedded database in `<data_dir>/db`.
    #[default]
    DataDir,
    /// A PostgreSQL database, by its URL.
    Postgres(String),
}

impl Location {
    /// Parses `sled` or a PostgreSQL URL.
    ///
    /// # Errors
    /// What is wrong, without repeating the value (it may hold a password).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "sled" {
            return Ok(Location::DataDir);
        }
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return Err("expected sled (the data directory) or a postgres:// URL".to_owned());
        }
        text.parse::<tokio_postgres::Config>()
            .map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
        Ok(Location::Postgres(text.to_owned()))
    }

    /// `sled` or `postgres`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Location::DataDir => "sled",
            Location::Postgres(_) => "postgres",
        }
    }
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::DataDir => f.write_str("DataDir"),
            Location::Postgres(_) => f.write_str("Postgres([redacted])"),
        }
    }
}

/// Opens the store `location` names: the data directory's embedded
/// database (with `durability`), or a PostgreSQL database (whose
/// durability is the server's `synchronous_commit`), its signing keys
/// sealed with the key-ring key in `store_key_file` (which the embedded
/// database does not use).
///
/// # Errors
/// As [`open`] or [`open_postgres`]; for PostgreSQL also
/// [`StoreError::RingKey`] when `store_key_file` is `None` or cannot be
/// read.
pub async fn open_location(
    location: &Location,
    store_key_file: Option<&std::path::Path>,
    dir: &std::path::Path,
    durability: Durability,
) -> StoreResult<std::sync::Arc<dyn Store>> {
    match location {
        Location::DataDir => open(dir, durability),
        Location::Postgres(url) => {
            let key = RingKey::from_file(store_key_file.ok_or(RingKeyError::Missing)?)?;
            open_postgres(url, key).await
        }
    }
}

/// Opens the store in a PostgreSQL database (`postgres://…`, TLS to it
/// with `sslmode=require`), migrating its schema to this binary's first;
/// `ring_key` seals and opens the signing keys' private parts.
///
/// # Errors
/// The URL does not parse, the database cannot be reached, a migration
/// fails, or the schema is newer than this binary
/// ([`StoreError::SchemaTooNew`]).
pub async fn open_postgres(url: &str, ring_key: RingKey) -> StoreResult<std::sync::Arc<dyn Store>> {
    self::postgres::open(url, ring_key).await
}

/// Rewrites audit record `seq` of a stopped server's data directory in
/// place, without fixing its hash: what someone with write access to the
/// disk could do. For tests of tamper detection only.
///
/// # Errors
/// The database cannot be opened, or has no such record.
#[doc(hidden)]
pub fn tamper_with_audit_record(
    dir: &std::path::Path,
    seq: u64,
    edit: impl FnOnce(&mut AuditRecord),
) -> StoreResult<()> {
    self::sled::tamper_with_audit_record(dir, seq, edit)
}

/// A data directory as an earlier version left it (see the embedded
/// backend's `legacy` module): returns a spent and a live refresh token of
/// its one session.
#[cfg(test)]
pub(crate) fn legacy_fixture(dir: &std::path::Path, now: i64) -> (String, String) {
    self::sled::legacy_fixture(dir, now)
}
