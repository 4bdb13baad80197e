//! The storage boundary.
//!
//! [`Store`] is the only type that knows the data lives in sled; its
//! interface speaks in domain records so a PostgreSQL backend can replace it
//! later. Every write that a caller is told about is flushed to disk before
//! the call returns, so it survives the process being killed right after.
//!
//! Trees: `api_keys` (key id → record), `api_key_hashes` (SHA-256 of a
//! secret → key id), `sessions` (session id → record), `signing_keys`
//! (kid → record, including the private key), `identities` (mTLS identity
//! name → grant), `revoked_certs` (certificate serial → revocation),
//! `refresh_tokens` (SHA-256 of a refresh token → record),
//! `sessions_by_subject` and `sessions_by_client` (indexes:
//! `subject\0session id` → session id), `revocations` (id of each revoked
//! session → its last token's expiry, so the revocation index loads
//! without reading every session), `audit` (seq → record) and `meta` (the
//! audit anchor, format markers). Records are JSON.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{Transactional, Tree};

use crate::audit::{AuditAnchor, AuditRecord};
use crate::limits::RateLimit;
use crate::secret::SecretHash;
use crate::token::SigningAlg;

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
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// A stored API key. The secret itself is never stored, only its hash.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ApiKeyRecord {
    pub key_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// `mcp_sk_` and the first characters of the current secret.
    pub prefix: String,
    pub created_at: i64,
    /// 0 means never.
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub rotated_at: Option<i64>,
    /// Hash of the current secret.
    pub secret_hash: SecretHash,
    /// The secret replaced by the last rotation, valid until `valid_until`.
    pub previous: Option<PreviousSecret>,
    /// Overrides the server's default request rate.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

/// A rotated-out secret still inside its grace period.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct PreviousSecret {
    pub secret_hash: SecretHash,
    /// Unix seconds; the secret fails from this instant on.
    pub valid_until: i64,
}

impl ApiKeyRecord {
    fn hashes(&self) -> impl Iterator<Item = &SecretHash> {
        std::iter::once(&self.secret_hash).chain(self.previous.as_ref().map(|p| &p.secret_hash))
    }
}

/// A stored session: what its tokens say, and whether it was revoked.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SessionRecord {
    pub session_id: String,
    pub subject: String,
    /// Key id of the credential that created it.
    pub client_id: String,
    pub scopes: Vec<String>,
    pub audience: String,
    pub created_at: i64,
    /// Expiry of the newest access token (no token of the session lives
    /// longer).
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    /// Absolute end of the session: no refresh after it.
    #[serde(default)]
    pub session_expires_at: i64,
    /// Last CreateSession or RefreshSession; the idle timeout counts from
    /// here.
    #[serde(default)]
    pub last_refreshed_at: i64,
    /// Hashes of every refresh token issued for the session (spent ones
    /// included, for reuse detection), so they go when the session goes.
    #[serde(default)]
    pub refresh_hashes: Vec<SecretHash>,
    /// Lifetime of the session's access tokens, as asked at creation;
    /// 0 (older records) means the server default.
    #[serde(default)]
    pub token_ttl: u32,
}

/// A refresh token, stored by the hash of its secret.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RefreshRecord {
    pub session_id: String,
    pub issued_at: i64,
    /// When it was exchanged; a second exchange after this (outside the
    /// grace window) is reuse.
    pub spent_at: Option<i64>,
}

/// What [`Store::refresh`] did.
pub(crate) enum RefreshOutcome<E> {
    /// A new refresh token was stored and the session updated (durably).
    Minted(SessionRecord),
    /// The session was revoked (durably), with the error to report.
    Revoked(SessionRecord, E),
    /// Nothing was written.
    Refused(E),
}

/// What [`Store::refresh`]'s decision function wants done, atomically.
pub(crate) enum RefreshDecision<E> {
    /// Spend the presented token (if not already spent), store `child` as a
    /// new refresh token, and write `session`.
    Mint {
        session: SessionRecord,
        child: SecretHash,
        child_record: RefreshRecord,
    },
    /// Write `session` (revoked): the presented token was reused.
    Revoke { session: SessionRecord, error: E },
    /// Change nothing and fail with this error.
    Refuse(E),
}

/// The scopes granted to an mTLS identity.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct IdentityRecord {
    pub name: String,
    pub scopes: Vec<String>,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Overrides the server's default request rate.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

/// A revoked client certificate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct RevokedCert {
    /// Lowercase hex.
    pub serial: String,
    pub revoked_at: i64,
}

/// A stored signing key, private part included. Lives only in the data
/// directory, which the server keeps at mode 0700.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct SigningKeyRecord {
    pub kid: String,
    pub alg: SigningAlg,
    /// PKCS#8 DER private key.
    pub private_pkcs8: Vec<u8>,
    pub created_at: i64,
    /// When it stopped being the active key; `None` while active.
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_pkcs8", &"[redacted]")
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

/// Group commit: concurrent callers of [`Store::flush`] share one disk
/// flush. A caller takes a ticket after its write; whoever holds the lock
/// flushes everything written so far and marks every ticket up to that
/// point done, so the callers queued behind it return without flushing
/// again. No timer, no background task.
#[derive(Default)]
struct GroupCommit {
    /// Tickets handed out (one per flush request).
    requested: AtomicU64,
    /// Every ticket up to this one is on disk.
    completed: AtomicU64,
    /// One flush at a time; FIFO, so waiters are served in order.
    lock: tokio::sync::Mutex<()>,
}

/// The data directory's database.
#[derive(Clone)]
pub(crate) struct Store {
    db: sled::Db,
    commit: Arc<GroupCommit>,
    /// `false` only under `--unsafe-no-fsync`: [`Store::flush`] returns
    /// at once and sled writes its log in the background.
    durable: bool,
    /// Every API key by the hash of each of its live secrets, so
    /// authenticating a request reads memory, not the tree. Kept in step by
    /// this type's own writes, under the write lock.
    key_cache: Arc<std::sync::RwLock<HashMap<[u8; 32], Arc<ApiKeyEntry>>>>,
    api_keys: Tree,
    api_key_hashes: Tree,
    sessions: Tree,
    signing_keys: Tree,
    identities: Tree,
    revoked_certs: Tree,
    refresh_tokens: Tree,
    sessions_by_subject: Tree,
    sessions_by_client: Tree,
    revocations: Tree,
    audit: Tree,
    meta: Tree,
}

/// Memory sled may use for its page cache. sled's own default (1 GiB)
/// would let the cache alone pass the server's memory budget with a few
/// million sessions; hot data (keys, the newest sessions) fits easily.
const CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// `meta` key set once the `revocations` tree holds every revoked session.
const REVOCATIONS_INDEXED: &[u8] = b"revocations_indexed";

fn revocation_value(expires_at: i64) -> [u8; 8] {
    expires_at.to_be_bytes()
}

/// Which sessions [`Store::sessions_page`] returns.
#[derive(Debug, Default)]
pub(crate) struct SessionFilter {
    pub subject: Option<String>,
    pub client_id: Option<String>,
}

fn ids_with_prefix(tree: &Tree, prefix: &str) -> Result<Vec<String>, StoreError> {
    tree.scan_prefix(index_key(prefix, ""))
        .values()
        .map(|v| {
            let v = v?;
            String::from_utf8(v.to_vec()).map_err(|_| StoreError::Corrupt {
                what: "session index",
                message: "session id is not UTF-8".to_owned(),
            })
        })
        .collect()
}

/// An API key as authentication reads it from memory: the record, and
/// its id and scopes ready to be shared (not copied) by each request's
/// caller.
pub(crate) struct ApiKeyEntry {
    pub record: ApiKeyRecord,
    pub id: Arc<str>,
    pub scopes: Arc<[String]>,
}

/// Indexes an API key under each of its live secrets' hashes.
fn cache_key(cache: &mut HashMap<[u8; 32], Arc<ApiKeyEntry>>, record: ApiKeyRecord) {
    let hashes: Vec<[u8; 32]> = record.hashes().map(|h| *h.as_bytes()).collect();
    let entry = Arc::new(ApiKeyEntry {
        id: record.key_id.as_str().into(),
        scopes: record.scopes.clone().into(),
        record,
    });
    for h in hashes {
        cache.insert(h, entry.clone());
    }
}

/// Key of a secondary index entry: `prefix`, a NUL, the session id.
fn index_key(prefix: &str, session_id: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(prefix.len() + 1 + session_id.len());
    k.extend_from_slice(prefix.as_bytes());
    k.push(0);
    k.extend_from_slice(session_id.as_bytes());
    k
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(format!("encode: {e}")))
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        what,
        message: e.to_string(),
    })
}

/// Maps a transaction outcome, keeping the caller's abort value apart.
fn tx_result<T, E>(r: Result<T, TransactionError<TxAbort<E>>>) -> Result<Result<T, E>, StoreError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(TransactionError::Abort(TxAbort::Caller(e))) => Ok(Err(e)),
        Err(TransactionError::Abort(TxAbort::Store(e))) => Err(e),
        Err(TransactionError::Storage(e)) => Err(e.into()),
    }
}

enum TxAbort<E> {
    Caller(E),
    Store(StoreError),
}

fn abort_store<E>(e: StoreError) -> ConflictableTransactionError<TxAbort<E>> {
    ConflictableTransactionError::Abort(TxAbort::Store(e))
}

impl Store {
    /// Opens (creating if needed) the database under `dir`.
    ///
    /// # Errors
    /// The directory cannot be used, or another process holds the database.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir.join("db"))
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(CACHE_BYTES)
            .open()?;
        let store = Store {
            api_keys: db.open_tree("api_keys")?,
            api_key_hashes: db.open_tree("api_key_hashes")?,
            sessions: db.open_tree("sessions")?,
            signing_keys: db.open_tree("signing_keys")?,
            identities: db.open_tree("identities")?,
            revoked_certs: db.open_tree("revoked_certs")?,
            refresh_tokens: db.open_tree("refresh_tokens")?,
            sessions_by_subject: db.open_tree("sessions_by_subject")?,
            sessions_by_client: db.open_tree("sessions_by_client")?,
            revocations: db.open_tree("revocations")?,
            audit: db.open_tree("audit")?,
            meta: db.open_tree("meta")?,
            commit: Arc::default(),
            durable: true,
            key_cache: Arc::default(),
            db,
        };
        {
            let mut cache = store.key_cache.write().unwrap_or_else(|p| p.into_inner());
            for record in store.list_api_keys()? {
                cache_key(&mut cache, record);
            }
        }
        store.index_revocations()?;
        Ok(store)
    }

    /// Data directories from before the `revocations` tree: fill it once
    /// from the sessions.
    fn index_revocations(&self) -> Result<(), StoreError> {
        if self.meta.contains_key(REVOCATIONS_INDEXED)? {
            return Ok(());
        }
        for v in self.sessions.iter().values() {
            let rec: SessionRecord = decode("session", &v?)?;
            if rec.revoked_at.is_some() {
                self.revocations
                    .insert(rec.session_id.as_bytes(), &revocation_value(rec.expires_at))?;
            }
        }
        self.meta.insert(REVOCATIONS_INDEXED, b"1".as_slice())?;
        self.db.flush()?;
        Ok(())
    }

    /// From now on [`Store::flush`] does nothing: writes reach the disk
    /// when sled's own background flusher gets to them (about every half
    /// second), and a crash loses what it had not. `--unsafe-no-fsync`.
    pub fn acknowledge_before_flush(&mut self) {
        self.durable = false;
    }

    /// Makes every write so far durable.
    ///
    /// # Errors
    /// The disk write failed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        if !self.durable {
            return Ok(());
        }
        let gc = &self.commit;
        let ticket = gc.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _turn = gc.lock.lock().await;
        if gc.completed.load(Ordering::SeqCst) >= ticket {
            return Ok(()); // a flush that started after our write covered it
        }
        let covers = gc.requested.load(Ordering::SeqCst);
        // sled's own `flush_async` runs on sled's small internal thread
        // pool and was seen to stall with many databases in one process;
        // a blocking flush on tokio's blocking pool does not.
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| StoreError::Backend(format!("flush task: {e}")))??;
        gc.completed.fetch_max(covers, Ordering::SeqCst);
        Ok(())
    }

    /// Whether any API key was ever created.
    pub fn has_api_keys(&self) -> Result<bool, StoreError> {
        Ok(self.api_keys.first()?.is_some())
    }

    /// Stores a new API key and indexes its secret's hash, durably.
    ///
    /// # Errors
    /// Storage failed.
    pub async fn insert_api_key(&self, record: &ApiKeyRecord) -> Result<(), StoreError> {
        let value = encode(record)?;
        {
            let mut cache = self.key_cache.write().unwrap_or_else(|p| p.into_inner());
            let r = (&self.api_keys, &self.api_key_hashes).transaction(|(keys, hashes)| {
                keys.insert(record.key_id.as_bytes(), value.as_slice())?;
                hashes.insert(
                    record.secret_hash.as_bytes().as_slice(),
                    record.key_id.as_bytes(),
                )?;
                Ok::<_, ConflictableTransactionError<TxAbort<()>>>(())
            });
            let _ = tx_result(r)?;
            cache_key(&mut cache, record.clone());
        }
        self.flush().await
    }

    /// The API key whose current or previous secret hashes to `hash`. The
    /// caller still compares the hash against the record in constant time.
    pub fn api_key_by_hash(
        &self,
        hash: &SecretHash,
    ) -> Result<Option<Arc<ApiKeyEntry>>, StoreError> {
        let cache = self.key_cache.read().unwrap_or_else(|p| p.into_inner());
        Ok(cache.get(hash.as_bytes()).cloned())
    }

    /// Every API key, in key-id order.
    pub fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.api_keys
            .iter()
            .values()
            .map(|v| decode("api key", &v?))
            .collect()
    }

    /// Atomically replaces the API key `key_id` with what `change` makes of
    /// it (`None` if there is no such key), keeping the hash index in step,
    /// and flushes. `change` may run more than once and may refuse with its
    /// own error, which is returned inside `Ok`.
    ///
    /// # Errors
    /// Storage failed.
    pub async fn update_api_key<E>(
        &self,
        key_id: &str,
        change: impl Fn(Option<ApiKeyRecord>) -> Result<ApiKeyRecord, E>,
    ) -> Result<Result<ApiKeyRecord, E>, StoreError> {
        let out = {
            let mut cache = self.key_cache.write().unwrap_or_else(|p| p.into_inner());
            let r = (&self.api_keys, &self.api_key_hashes).transaction(|(keys, hashes)| {
                let old: Option<ApiKeyRecord> = keys
                    .get(key_id.as_bytes())?
                    .map(|v| decode("api key", &v))
                    .transpose()
                    .map_err(abort_store)?;
                let old_hashes: Vec<SecretHash> =
                    old.iter().flat_map(|r| r.hashes().copied()).collect();
                let new = change(old)
                    .map_err(|e| ConflictableTransactionError::Abort(TxAbort::Caller(e)))?;
                for h in &old_hashes {
                    if !new.hashes().any(|n| n == h) {
                        hashes.remove(h.as_bytes().as_slice())?;
                    }
                }
                for h in new.hashes() {
                    hashes.insert(h.as_bytes().as_slice(), new.key_id.as_bytes())?;
                }
                keys.insert(new.key_id.as_bytes(), encode(&new).map_err(abort_store)?)?;
                Ok(new)
            });
            let out = tx_result(r)?;
            if let Ok(new) = &out {
                cache.retain(|_, cached| cached.record.key_id != new.key_id);
                cache_key(&mut cache, new.clone());
            }
            out
        };
        if out.is_ok() {
            self.flush().await?;
        }
        Ok(out)
    }

    /// Stores a new session, its first refresh token (if any) and its index
    /// entries, atomically. Not flushed: the caller flushes (with the audit
    /// record, in one group commit) before acknowledging.
    ///
    /// # Errors
    /// Storage failed.
    pub fn insert_session(
        &self,
        record: &SessionRecord,
        refresh: Option<(&SecretHash, &RefreshRecord)>,
    ) -> Result<(), StoreError> {
        let value = encode(record)?;
        let id = record.session_id.as_bytes();
        // No transaction: nothing is acknowledged before the flush, and
        // sled recovers a prefix of the writes in order, so writing the
        // session record last means a recovered session always has its
        // refresh token and index entries (orphaned ones are harmless:
        // listings skip them and maintenance never meets them).
        if let Some((hash, r)) = refresh {
            self.refresh_tokens
                .insert(hash.as_bytes().as_slice(), encode(r)?)?;
        }
        self.sessions_by_subject
            .insert(index_key(&record.subject, &record.session_id), id)?;
        self.sessions_by_client
            .insert(index_key(&record.client_id, &record.session_id), id)?;
        if record.revoked_at.is_some() {
            self.revocations
                .insert(id, &revocation_value(record.expires_at))?;
        }
        self.sessions.insert(id, value)?;
        Ok(())
    }

    /// Exchanges a refresh token atomically: `decide` sees the token's
    /// record and its session (or `None` if the token is unknown) and says
    /// what to write. Concurrent exchanges of one token are serialised by
    /// the transaction, so only one of them sees the token unspent. Not
    /// flushed: the caller flushes before acknowledging.
    ///
    /// # Errors
    /// Storage failed.
    pub async fn refresh<E>(
        &self,
        token: &SecretHash,
        now: i64,
        decide: impl Fn(Option<(&RefreshRecord, &SessionRecord)>) -> RefreshDecision<E>,
    ) -> Result<RefreshOutcome<E>, StoreError> {
        let trees = (&self.sessions, &self.refresh_tokens, &self.revocations);
        let r = trees.transaction(|(sessions, refresh_tokens, revocations)| {
            let key = token.as_bytes().as_slice();
            let found = match refresh_tokens.get(key)? {
                Some(bytes) => {
                    let rt: RefreshRecord = decode("refresh token", &bytes).map_err(abort_store)?;
                    let session = sessions
                        .get(rt.session_id.as_bytes())?
                        .map(|b| decode::<SessionRecord>("session", &b))
                        .transpose()
                        .map_err(abort_store)?;
                    session.map(|s| (rt, s))
                }
                None => None,
            };
            match decide(found.as_ref().map(|(rt, s)| (rt, s))) {
                RefreshDecision::Mint {
                    session,
                    child,
                    child_record,
                } => {
                    if let Some((mut rt, _)) = found {
                        rt.spent_at.get_or_insert(now);
                        refresh_tokens.insert(key, encode(&rt).map_err(abort_store)?)?;
                    }
                    refresh_tokens.insert(
                        child.as_bytes().as_slice(),
                        encode(&child_record).map_err(abort_store)?,
                    )?;
                    sessions.insert(
                        session.session_id.as_bytes(),
                        encode(&session).map_err(abort_store)?,
                    )?;
                    Ok(RefreshOutcome::Minted(session))
                }
                RefreshDecision::Revoke { session, error } => {
                    revocations.insert(
                        session.session_id.as_bytes(),
                        &revocation_value(session.expires_at),
                    )?;
                    sessions.insert(
                        session.session_id.as_bytes(),
                        encode(&session).map_err(abort_store)?,
                    )?;
                    Ok(RefreshOutcome::Revoked(session, error))
                }
                RefreshDecision::Refuse(error) => {
                    Err(ConflictableTransactionError::Abort(TxAbort::Caller(error)))
                }
            }
        });
        let outcome = match tx_result(r)? {
            Ok(written) => written,
            Err(refused) => return Ok(RefreshOutcome::Refused(refused)),
        };
        Ok(outcome)
    }

    /// The session with this id.
    pub fn session(&self, session_id: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.sessions
            .get(session_id.as_bytes())?
            .map(|v| decode("session", &v))
            .transpose()
    }

    /// Marks a session revoked at `at` (keeping an earlier revocation time
    /// if it was already revoked), durably. `None` if there is no such
    /// session.
    ///
    /// # Errors
    /// Storage failed.
    pub async fn revoke_session(
        &self,
        session_id: &str,
        at: i64,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let revoked = self.mark_revoked(session_id, at)?;
        if revoked.is_some() {
            self.flush().await?;
        }
        Ok(revoked.map(|(rec, _)| rec))
    }

    /// Revokes many sessions with one flush; returns the ids of those that
    /// were not revoked before.
    ///
    /// # Errors
    /// Storage failed.
    pub async fn revoke_sessions(
        &self,
        ids: &[String],
        at: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut newly = Vec::new();
        for id in ids {
            if let Some((rec, true)) = self.mark_revoked(id, at)? {
                newly.push(rec.session_id);
            }
        }
        if !ids.is_empty() {
            self.flush().await?;
        }
        Ok(newly)
    }

    /// The stored record after revoking, and whether this call revoked it.
    fn mark_revoked(
        &self,
        session_id: &str,
        at: i64,
    ) -> Result<Option<(SessionRecord, bool)>, StoreError> {
        let trees = (&self.sessions, &self.revocations);
        let r = trees.transaction(|(tx, revocations)| {
            let Some(bytes) = tx.get(session_id.as_bytes())? else {
                return Ok(None);
            };
            let mut rec: SessionRecord = decode("session", &bytes).map_err(abort_store::<()>)?;
            if rec.revoked_at.is_some() {
                return Ok(Some((rec, false)));
            }
            rec.revoked_at = Some(at);
            revocations.insert(session_id.as_bytes(), &revocation_value(rec.expires_at))?;
            tx.insert(session_id.as_bytes(), encode(&rec).map_err(abort_store)?)?;
            Ok(Some((rec, true)))
        });
        Ok(tx_result(r)?.unwrap_or(None))
    }

    /// Deletes sessions with their refresh tokens and index entries, in
    /// one transaction, and flushes. Returns how many refresh tokens went.
    ///
    /// # Errors
    /// Storage failed.
    pub async fn delete_sessions(&self, records: &[SessionRecord]) -> Result<usize, StoreError> {
        if records.is_empty() {
            return Ok(0);
        }
        let r = (
            &self.sessions,
            &self.refresh_tokens,
            &self.sessions_by_subject,
            &self.sessions_by_client,
            &self.revocations,
        )
            .transaction(
                |(sessions, refresh_tokens, by_subject, by_client, revocations)| {
                    let mut tokens = 0;
                    for rec in records {
                        sessions.remove(rec.session_id.as_bytes())?;
                        revocations.remove(rec.session_id.as_bytes())?;
                        by_subject.remove(index_key(&rec.subject, &rec.session_id))?;
                        by_client.remove(index_key(&rec.client_id, &rec.session_id))?;
                        for h in &rec.refresh_hashes {
                            if refresh_tokens.remove(h.as_bytes().as_slice())?.is_some() {
                                tokens += 1;
                            }
                        }
                    }
                    Ok::<_, ConflictableTransactionError<TxAbort<()>>>(tokens)
                },
            );
        let tokens = tx_result(r)?.unwrap_or(0);
        self.flush().await?;
        Ok(tokens)
    }

    /// Ids of the sessions created by `client_id`.
    pub fn session_ids_by_client(&self, client_id: &str) -> Result<Vec<String>, StoreError> {
        ids_with_prefix(&self.sessions_by_client, client_id)
    }

    /// Ids of the sessions of `subject`.
    pub fn session_ids_by_subject(&self, subject: &str) -> Result<Vec<String>, StoreError> {
        ids_with_prefix(&self.sessions_by_subject, subject)
    }

    /// One page of sessions matching `filter`, in a stable order, starting
    /// after `cursor`; returns the page and the cursor for the next one
    /// (`None` on the last page).
    ///
    /// # Errors
    /// Storage failed.
    pub fn sessions_page(
        &self,
        filter: &SessionFilter,
        cursor: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<SessionRecord>, Option<Vec<u8>>), StoreError> {
        // Walk the narrowest index: by creator, else by subject, else all.
        let (tree, prefix) = match (&filter.client_id, &filter.subject) {
            (Some(client), _) => (&self.sessions_by_client, index_key(client, "")),
            (None, Some(subject)) => (&self.sessions_by_subject, index_key(subject, "")),
            (None, None) => (&self.sessions, Vec::new()),
        };
        let start = match cursor {
            Some(c) if c.starts_with(&prefix) => std::ops::Bound::Excluded(sled::IVec::from(c)),
            _ => std::ops::Bound::Included(sled::IVec::from(prefix.as_slice())),
        };
        let mut out = Vec::new();
        let mut last = None;
        for item in tree.range::<sled::IVec, _>((start, std::ops::Bound::Unbounded)) {
            let (key, value) = item?;
            if !key.starts_with(&prefix) {
                break;
            }
            let id = if prefix.is_empty() {
                key.clone()
            } else {
                value
            };
            let Some(rec) = self.sessions.get(&id)? else {
                continue;
            };
            let rec: SessionRecord = decode("session", &rec)?;
            last = Some(key.to_vec());
            if filter.subject.as_ref().is_some_and(|s| *s != rec.subject) {
                continue;
            }
            out.push(rec);
            if out.len() == limit {
                break;
            }
        }
        let next = if out.len() == limit { last } else { None };
        Ok((out, next))
    }

    /// Ids and expiry of every revoked session, to build the in-memory
    /// revocation index at start.
    pub fn revoked_sessions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut out = Vec::new();
        for item in self.revocations.iter() {
            let (id, exp) = item?;
            let corrupt = |message: &str| StoreError::Corrupt {
                what: "revocation",
                message: message.to_owned(),
            };
            let id = String::from_utf8(id.to_vec()).map_err(|_| corrupt("id is not UTF-8"))?;
            let exp: [u8; 8] = exp
                .as_ref()
                .try_into()
                .map_err(|_| corrupt("expiry is not 8 bytes"))?;
            out.push((id, i64::from_be_bytes(exp)));
        }
        Ok(out)
    }

    /// Creates or replaces an identity grant, keeping its creation time,
    /// durably. Returns the stored record.
    ///
    /// # Errors
    /// Storage failed.
    pub async fn put_identity(&self, record: IdentityRecord) -> Result<IdentityRecord, StoreError> {
        let r = self.identities.transaction(|tx| {
            let mut rec = record.clone();
            if let Some(old) = tx.get(rec.name.as_bytes())? {
                let old: IdentityRecord = decode("identity", &old).map_err(abort_store::<()>)?;
                rec.created_at = old.created_at;
            }
            tx.insert(rec.name.as_bytes(), encode(&rec).map_err(abort_store)?)?;
            Ok(rec)
        });
        let stored = tx_result(r)?.unwrap_or(record);
        self.flush().await?;
        Ok(stored)
    }

    /// Deletes an identity grant, durably. `false` if there was none.
    ///
    /// # Errors
    /// Storage failed.
    pub async fn delete_identity(&self, name: &str) -> Result<bool, StoreError> {
        let existed = self.identities.remove(name.as_bytes())?.is_some();
        if existed {
            self.flush().await?;
        }
        Ok(existed)
    }

    /// Every identity grant, by name.
    pub fn identities(&self) -> Result<Vec<IdentityRecord>, StoreError> {
        self.identities
            .iter()
            .values()
            .map(|v| decode("identity", &v?))
            .collect()
    }

    /// Records a certificate revocation (keeping the first one's time),
    /// durably. Returns the stored record.
    ///
    /// # Errors
    /// Storage failed.
    pub async fn revoke_cert(&self, serial: &str, at: i64) -> Result<RevokedCert, StoreError> {
        let fresh = RevokedCert {
            serial: serial.to_owned(),
            revoked_at: at,
        };
        let value = encode(&fresh)?;
        let previous = self.revoked_certs.compare_and_swap(
            serial.as_bytes(),
            None as Option<&[u8]>,
            Some(value),
        )?;
        self.flush().await?;
        match previous {
            Ok(()) => Ok(fresh),
            Err(cas) => match cas.current {
                Some(bytes) => decode("revoked certificate", &bytes),
                None => Ok(fresh),
            },
        }
    }

    /// Every revoked certificate.
    pub fn revoked_certs(&self) -> Result<Vec<RevokedCert>, StoreError> {
        self.revoked_certs
            .iter()
            .values()
            .map(|v| decode("revoked certificate", &v?))
            .collect()
    }

    /// Appends an audit record (not flushed: the caller's flush, shared by
    /// group commit, makes it durable).
    ///
    /// # Errors
    /// Storage failed.
    pub fn put_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        self.audit
            .insert(record.seq.to_be_bytes(), encode(record)?)?;
        Ok(())
    }

    /// The newest audit record.
    pub fn last_audit(&self) -> Result<Option<AuditRecord>, StoreError> {
        self.audit
            .last()?
            .map(|(_, v)| decode("audit record", &v))
            .transpose()
    }

    /// Up to `limit` audit records with seq greater than `after`, in order.
    pub fn audit_page(&self, after: u64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit
            .range((after.saturating_add(1)).to_be_bytes()..)
            .values()
            .take(limit)
            .map(|v| decode("audit record", &v?))
            .collect()
    }

    /// The last pruned audit record's seq and hash.
    pub fn audit_anchor(&self) -> Result<AuditAnchor, StoreError> {
        self.meta
            .get(b"audit_anchor")?
            .map(|v| decode("audit anchor", &v))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// Removes audit records older than `before` (Unix seconds), oldest
    /// first, moving the anchor to the last one removed; durably. Returns
    /// how many went.
    ///
    /// # Errors
    /// Storage failed.
    pub async fn prune_audit(&self, before: i64, limit: usize) -> Result<usize, StoreError> {
        let mut gone = Vec::new();
        for v in self.audit.iter().values().take(limit) {
            let r: AuditRecord = decode("audit record", &v?)?;
            if r.time >= before {
                break;
            }
            gone.push(r);
        }
        let Some(last) = gone.last() else {
            return Ok(0);
        };
        let anchor = encode(&AuditAnchor {
            seq: last.seq,
            hash: last.hash.clone(),
        })?;
        let r = (&self.audit, &self.meta).transaction(|(audit, meta)| {
            for r in &gone {
                audit.remove(&r.seq.to_be_bytes())?;
            }
            meta.insert(b"audit_anchor".as_slice(), anchor.as_slice())?;
            Ok::<_, ConflictableTransactionError<TxAbort<()>>>(())
        });
        let _ = tx_result(r)?;
        self.flush().await?;
        Ok(gone.len())
    }

    /// Every signing key.
    pub fn signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        self.signing_keys
            .iter()
            .values()
            .map(|v| decode("signing key", &v?))
            .collect()
    }

    /// Deletes signing keys, durably.
    ///
    /// # Errors
    /// Storage failed.
    pub async fn delete_signing_keys(&self, kids: &[String]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for kid in kids {
            batch.remove(kid.as_bytes());
        }
        self.signing_keys.apply_batch(batch)?;
        self.flush().await
    }

    /// Writes signing keys (new or changed) in one batch, durably.
    ///
    /// # Errors
    /// Storage failed.
    pub async fn put_signing_keys(&self, records: &[SigningKeyRecord]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for r in records {
            batch.insert(r.kid.as_bytes(), encode(r)?);
        }
        self.signing_keys.apply_batch(batch)?;
        self.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str, secret: &[u8]) -> ApiKeyRecord {
        ApiKeyRecord {
            key_id: id.to_owned(),
            name: "n".to_owned(),
            scopes: vec!["admin".to_owned()],
            prefix: "mcp_sk_abcd".to_owned(),
            created_at: 1,
            expires_at: 0,
            revoked_at: None,
            rotated_at: None,
            secret_hash: SecretHash::of(secret),
            previous: None,
            rate_limit: None,
        }
    }

    #[tokio::test]
    async fn api_key_update_keeps_hash_index_in_step() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.insert_api_key(&key("k1", b"one")).await.unwrap();
        assert!(
            store
                .api_key_by_hash(&SecretHash::of(b"one"))
                .unwrap()
                .is_some()
        );

        // rotate: new secret, old one kept as previous
        let rotated = store
            .update_api_key("k1", |old| {
                let mut r = old.ok_or(())?;
                r.previous = Some(PreviousSecret {
                    secret_hash: r.secret_hash,
                    valid_until: 10,
                });
                r.secret_hash = SecretHash::of(b"two");
                Ok::<_, ()>(r)
            })
            .await
            .unwrap()
            .unwrap();
        assert!(rotated.previous.is_some());
        assert!(
            store
                .api_key_by_hash(&SecretHash::of(b"one"))
                .unwrap()
                .is_some()
        );
        assert!(
            store
                .api_key_by_hash(&SecretHash::of(b"two"))
                .unwrap()
                .is_some()
        );

        // rotate again: the oldest secret leaves the index
        store
            .update_api_key("k1", |old| {
                let mut r = old.ok_or(())?;
                r.previous = Some(PreviousSecret {
                    secret_hash: r.secret_hash,
                    valid_until: 20,
                });
                r.secret_hash = SecretHash::of(b"three");
                Ok::<_, ()>(r)
            })
            .await
            .unwrap()
            .unwrap();
        assert!(
            store
                .api_key_by_hash(&SecretHash::of(b"one"))
                .unwrap()
                .is_none()
        );

        // a refusing change writes nothing
        let refused = store
            .update_api_key("missing", |old| old.ok_or("nope"))
            .await
            .unwrap();
        assert_eq!(refused.unwrap_err(), "nope");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_flushes_share_the_work_and_all_complete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut rec = session(&format!("s{i}"));
                    rec.expires_at = i;
                    store.insert_session(&rec, None).unwrap();
                    store.flush().await.unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let gc = &store.commit;
        assert_eq!(gc.requested.load(Ordering::SeqCst), 64);
        assert_eq!(
            gc.completed.load(Ordering::SeqCst),
            64,
            "every ticket is covered"
        );
        drop(store);
        let reopened = Store::open(dir.path()).unwrap();
        assert!(reopened.session("s63").unwrap().is_some());
    }

    fn session(id: &str) -> SessionRecord {
        SessionRecord {
            session_id: id.to_owned(),
            subject: "u".to_owned(),
            client_id: "k".to_owned(),
            scopes: vec![],
            audience: "a".to_owned(),
            created_at: 1,
            expires_at: 100,
            revoked_at: None,
            session_expires_at: 100,
            last_refreshed_at: 1,
            refresh_hashes: vec![],
            token_ttl: 0,
        }
    }

    #[tokio::test]
    async fn revoking_a_session_is_idempotent_and_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.insert_session(&session("s1"), None).unwrap();
        assert!(store.revoked_sessions().unwrap().is_empty());
        let first = store.revoke_session("s1", 5).await.unwrap().unwrap();
        let again = store.revoke_session("s1", 9).await.unwrap().unwrap();
        assert_eq!(first.revoked_at, Some(5));
        assert_eq!(again.revoked_at, Some(5));
        assert!(store.revoke_session("nope", 5).await.unwrap().is_none());
        assert_eq!(
            store.revoked_sessions().unwrap(),
            vec![("s1".to_owned(), 100)]
        );
    }

    #[tokio::test]
    async fn revocations_survive_a_restart_leave_with_their_session_and_are_indexed_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for id in ["s1", "s2", "s3"] {
            store.insert_session(&session(id), None).unwrap();
        }
        store
            .revoke_sessions(&["s1".to_owned(), "s2".to_owned()], 5)
            .await
            .unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let mut revoked = store.revoked_sessions().unwrap();
        revoked.sort();
        assert_eq!(
            revoked,
            vec![("s1".to_owned(), 100), ("s2".to_owned(), 100)]
        );
        let s1 = store.session("s1").unwrap().unwrap();
        store.delete_sessions(&[s1]).await.unwrap();
        assert_eq!(
            store.revoked_sessions().unwrap(),
            vec![("s2".to_owned(), 100)]
        );

        // A data directory from before the index: a revoked session record
        // and no marker. Opening it builds the index from the sessions.
        let mut old = session("s4");
        old.revoked_at = Some(7);
        store.insert_session(&old, None).unwrap();
        store.revocations.clear().unwrap();
        store.meta.remove(REVOCATIONS_INDEXED).unwrap();
        store.flush().await.unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let mut revoked = store.revoked_sessions().unwrap();
        revoked.sort();
        assert_eq!(
            revoked,
            vec![("s2".to_owned(), 100), ("s4".to_owned(), 100)]
        );
    }
}
