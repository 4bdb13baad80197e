//! The embedded backend: sled, in `<data-dir>/db`.
//!
//! Trees: `api_keys` (key id → record), `sessions` (session id → record,
//! its refresh tokens included), `signing_keys` (kid → record, private key
//! included), `identities` (name → grant), `revoked_certs` (serial →
//! revocation), `oauth_clients` (client id → record, its secret only
//! hashed), `deleted_oauth_clients` (client id → deletion time), `users`
//! (user id → account, its password only hashed), `usernames` (username →
//! user id: the index that keeps usernames unique), `consents` (subject,
//! NUL, client id → remembered consent), `audit` (seq → record),
//! `meta` (the audit anchor) and `transient` (the browser flow in
//! progress: the kind's number and the key → the end, eight bytes big
//! endian, and the value; see `transient`).
//! Records are JSON. The session indexes (by subject, by creator, revoked)
//! live in memory and are rebuilt at open. Data directories written before
//! this layout also hold `api_key_hashes`, `refresh_tokens`,
//! `sessions_by_subject`, `sessions_by_client` and `revocations`, which are
//! no longer read.
//!
//! Every write takes one write lock, appends its audit record and then
//! writes the change (see `commit::Writer` for why that order is enough);
//! every write is flushed (group commit) before it returns, unless the
//! store was opened with [`Durability::Unsafe`]. Transient entries carry
//! no audit record: their writes are sled's own compare-and-swap on their
//! tree, outside the write lock, flushed likewise.

mod backup;
mod codec;
mod commit;
mod export;
mod index;
mod legacy;
mod transient;

use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use sled::transaction::ConflictableTransactionError;
use sled::{Transactional, Tree};

pub(in crate::store) use self::backup::{import, open_counted};
use self::codec::{decode, encode};
use self::commit::{AuditChain, Chain, GroupCommit};
use self::index::{Indexed, SessionIndex};
use super::model::*;
use super::{Store, StoreError, StoreResult};
use crate::secret::SecretHash;

/// Memory sled may use for its page cache. sled's own default (1 GiB)
/// would let the cache alone pass the server's memory budget with a few
/// million sessions; hot data (keys, the newest sessions) fits easily.
const CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// Key of the audit anchor in `meta`.
const AUDIT_ANCHOR: &[u8] = b"audit_anchor";

/// Whether writes wait for the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Every acknowledged write is on disk (the default).
    Durable,
    /// Writes are acknowledged before they reach the disk; sled writes its
    /// log in the background (about every half second) and a crash loses
    /// what it had not. `--unsafe-no-fsync`, for measuring what durability
    /// costs.
    Unsafe,
}

/// The sled database of a data directory.
pub struct SledStore {
    db: sled::Db,
    durability: Durability,
    commit: GroupCommit,
    /// The audit chain and the write lock (shared with a backup's
    /// snapshot, which runs on a blocking thread).
    audit: Arc<AuditChain>,
    index: RwLock<SessionIndex>,
    /// Refresh tokens issued before tokens named their session.
    legacy: Arc<Mutex<legacy::Legacy>>,
    api_keys: Tree,
    sessions: Tree,
    signing_keys: Tree,
    identities: Tree,
    revoked_certs: Tree,
    clients: Tree,
    deleted_clients: Tree,
    /// Revoked access tokens: `jti` → expiry.
    revoked_tokens: Tree,
    /// User accounts: user id → record.
    users: Tree,
    /// The username index: username → user id, written with `users` in
    /// one transaction.
    usernames: Tree,
    /// Remembered consents: `subject \0 client_id` → record.
    consents: Tree,
    meta: Tree,
    /// The browser flow in progress (see `transient`).
    transient: Tree,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens (creating if needed) the database under `dir`, and rebuilds
    /// the session indexes.
    ///
    /// # Errors
    /// The directory cannot be used, another process holds the database,
    /// or a record is corrupt.
    pub fn open(dir: &Path, durability: Durability) -> StoreResult<Self> {
        let db = open_db(dir)?;
        let audit_tree = db.open_tree("audit")?;
        let meta = db.open_tree("meta")?;
        let head = match audit_tree.last()? {
            Some((_, v)) => {
                let r: AuditRecord = decode("audit record", &v)?;
                Chain {
                    next_seq: r.seq + 1,
                    last_hash: r.hash,
                }
            }
            None => {
                let anchor = read_anchor(&meta)?;
                Chain {
                    next_seq: anchor.seq + 1,
                    last_hash: anchor.hash,
                }
            }
        };
        let sessions = db.open_tree("sessions")?;
        let legacy = legacy::migrate(&db, &sessions)?;
        let mut index = SessionIndex::default();
        for v in sessions.iter().values() {
            let v = v?;
            let s: Indexed<'_> = serde_json::from_slice(&v).map_err(|e| StoreError::Corrupt {
                what: "session",
                message: e.to_string(),
            })?;
            index.insert(&s);
        }
        Ok(SledStore {
            api_keys: db.open_tree("api_keys")?,
            signing_keys: db.open_tree("signing_keys")?,
            identities: db.open_tree("identities")?,
            revoked_certs: db.open_tree("revoked_certs")?,
            clients: db.open_tree("oauth_clients")?,
            deleted_clients: db.open_tree("deleted_oauth_clients")?,
            revoked_tokens: db.open_tree("revoked_tokens")?,
            users: db.open_tree("users")?,
            usernames: db.open_tree("usernames")?,
            consents: db.open_tree("consents")?,
            transient: db.open_tree("transient")?,
            sessions,
            meta,
            audit: Arc::new(AuditChain {
                tree: audit_tree,
                head: Mutex::new(head),
            }),
            index: RwLock::new(index),
            legacy: Arc::new(Mutex::new(legacy)),
            commit: GroupCommit::default(),
            durability,
            db,
        })
    }

    /// Makes every write so far durable (shared with concurrent writers),
    /// unless the store is [`Durability::Unsafe`].
    async fn durable(&self) -> StoreResult<()> {
        match self.durability {
            Durability::Durable => self.commit.flush(&self.db).await,
            Durability::Unsafe => Ok(()),
        }
    }

    fn index_read(&self) -> std::sync::RwLockReadGuard<'_, SessionIndex> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    fn index_write(&self) -> std::sync::RwLockWriteGuard<'_, SessionIndex> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    fn get_session(&self, id: &str) -> StoreResult<Option<SessionRecord>> {
        self.sessions
            .get(id.as_bytes())?
            .map(|v| decode("session", &v))
            .transpose()
    }

    /// Replaces `key` in `tree` if it still holds `current`'s bytes, after
    /// the audit record; `after` runs under the write lock once replaced.
    fn swap(
        &self,
        tree: &Tree,
        key: &str,
        current: &Version,
        new: Vec<u8>,
        audit: AuditEntry,
    ) -> StoreResult<Swap> {
        let mut w = self.audit.lock();
        match tree.get(key.as_bytes())? {
            Some(now) if *now == *current.0 => {}
            _ => return Ok(Swap::Conflict),
        }
        w.record(audit)?;
        tree.insert(key.as_bytes(), new)?;
        Ok(Swap::Done)
    }

    /// Stores `value` at `key` in `tree` after its audit record, and
    /// returns once both are durable.
    async fn insert_durably(
        &self,
        tree: &Tree,
        key: &str,
        value: Vec<u8>,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        {
            let mut w = self.audit.lock();
            w.record(audit)?;
            tree.insert(key.as_bytes(), value)?;
        }
        self.durable().await
    }

    /// [`Self::swap`], durable before it returns when it replaced.
    async fn swap_durably(
        &self,
        tree: &Tree,
        key: &str,
        current: &Version,
        new: Vec<u8>,
        audit: AuditEntry,
    ) -> StoreResult<Swap> {
        let swap = self.swap(tree, key, current, new, audit)?;
        if swap == Swap::Done {
            self.durable().await?;
        }
        Ok(swap)
    }

    /// Removes those of `keys` that `tree` holds, under the write lock,
    /// durably; how many it removed.
    async fn forget(&self, tree: &Tree, keys: &[String]) -> StoreResult<usize> {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for key in keys {
            if tree.contains_key(key.as_bytes())? {
                batch.remove(key.as_bytes());
                n += 1;
            }
        }
        if n == 0 {
            return Ok(0);
        }
        {
            let _w = self.audit.lock();
            tree.apply_batch(batch)?;
        }
        self.durable().await?;
        Ok(n)
    }

    fn versioned<T: serde::de::DeserializeOwned>(
        tree: &Tree,
        what: &'static str,
        key: &str,
    ) -> StoreResult<Option<Versioned<T>>> {
        tree.get(key.as_bytes())?
            .map(|v| {
                Ok(Versioned {
                    record: decode(what, &v)?,
                    version: Version(v.to_vec()),
                })
            })
            .transpose()
    }
}

/// Every `(key, Unix time)` pair of a tree of timestamps.
/// The key of a consent: the subject, NUL, the client id (neither holds
/// NUL), so one subject's consents are one prefix.
fn consent_key(subject: &str, client_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(subject.len() + 1 + client_id.len());
    key.extend_from_slice(subject.as_bytes());
    key.push(0);
    key.extend_from_slice(client_id.as_bytes());
    key
}

fn timestamps(tree: &Tree, what: &'static str) -> StoreResult<Vec<(String, i64)>> {
    tree.iter()
        .map(|item| {
            let (k, v) = item?;
            Ok((String::from_utf8_lossy(&k).into_owned(), decode(what, &v)?))
        })
        .collect()
}

/// How long [`open_db`] waits for a lock that this process's own
/// previous handle may still hold.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Opens the sled database under `dir`. sled releases its file lock only
/// when the last of its background writes of a closed handle has
/// finished, a moment after the handle is dropped; so a lock found held is
/// tried again for up to [`LOCK_WAIT`] before it counts as another
/// process's ([`StoreError::InUse`]).
fn open_db(dir: &Path) -> StoreResult<sled::Db> {
    let started = std::time::Instant::now();
    loop {
        let opened = sled::Config::new()
            .path(dir.join("db"))
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(CACHE_BYTES)
            .open()
            .map_err(|e| in_use(dir, e));
        match opened {
            Err(StoreError::InUse(_)) if started.elapsed() < LOCK_WAIT => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

fn read_anchor(meta: &Tree) -> StoreResult<AuditAnchor> {
    meta.get(AUDIT_ANCHOR)?
        .map(|v| decode("audit anchor", &v))
        .transpose()
        .map(Option::unwrap_or_default)
}

/// A failed sled transaction as a storage error, saying what it was doing.
fn transaction_error(doing: &str, e: sled::transaction::TransactionError<()>) -> StoreError {
    let cause = match e {
        sled::transaction::TransactionError::Storage(e) => e.to_string(),
        sled::transaction::TransactionError::Abort(()) => "aborted".to_owned(),
    };
    StoreError::Backend(format!("{doing}: {cause}"))
}

fn all<T: serde::de::DeserializeOwned>(tree: &Tree, what: &'static str) -> StoreResult<Vec<T>> {
    tree.iter().values().map(|v| decode(what, &v?)).collect()
}

#[async_trait]
impl Store for SledStore {
    async fn api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        all(&self.api_keys, "api key")
    }

    async fn api_key(&self, key_id: &str) -> StoreResult<Option<Versioned<ApiKeyRecord>>> {
        Self::versioned(&self.api_keys, "api key", key_id)
    }

    async fn insert_api_key(&self, record: &ApiKeyRecord, audit: AuditEntry) -> StoreResult<()> {
        self.insert_durably(&self.api_keys, &record.key_id, encode(record)?, audit)
            .await
    }

    async fn replace_api_key(
        &self,
        current: &Versioned<ApiKeyRecord>,
        new: &ApiKeyRecord,
        audit: AuditEntry,
    ) -> StoreResult<Swap> {
        self.swap_durably(
            &self.api_keys,
            &new.key_id,
            &current.version,
            encode(new)?,
            audit,
        )
        .await
    }

    async fn clients(&self) -> StoreResult<Vec<OAuthClientRecord>> {
        all(&self.clients, "oauth client")
    }

    async fn client(&self, client_id: &str) -> StoreResult<Option<Versioned<OAuthClientRecord>>> {
        Self::versioned(&self.clients, "oauth client", client_id)
    }

    async fn insert_client(
        &self,
        record: &OAuthClientRecord,
        audit: AuditEntry,
    ) -> StoreResult<()> {
        self.insert_durably(&self.clients, &record.client_id, encode(record)?, audit)
            .await
    }

    async fn replace_client(
        &self,
        current: &Versioned<OAuthClientRecord>,
        new: &OAuthClientRecord,
        audit: AuditEntry,
    ) -> StoreResult<Swap> {
        self.swap_durably(
            &self.clients,
            &new.client_id,
            &current.version,
            encode(new)?,
            audit,
        )
        .await
    }

    async fn delete_client(
        &self,
        current: &Versioned<OAuthClientRecord>,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<Swap> {
        let id = current.record.client_id.as_bytes();
        let when = encode(&at)?;
        {
            let mut w = self.audit.lock();
            match self.clients.get(id)? {
                Some(now) if *now == *current.version.0 => {}
                _ => return Ok(Swap::Conflict),
            }
            w.record(audit)?;
            // One transaction: a crash never leaves the client both
            // deleted and still there, or gone without its tombstone.
            (&self.clients, &self.deleted_clients)
                .transaction(|(clients, deleted)| {
                    clients.remove(id)?;
                    deleted.insert(id, when.as_slice())?;
                    Ok::<_, ConflictableTransactionError<()>>(())
                })
                .map_err(|e| transaction_error("deleting an oauth client", e))?;
        }
        self.durable().await?;
        Ok(Swap::Done)
    }

    async fn deleted_clients(&self) -> StoreResult<Vec<(String, i64)>> {
        timestamps(&self.deleted_clients, "deleted oauth client")
    }

    async fn forget_deleted_clients(&self, ids: &[String]) -> StoreResult<usize> {
        self.forget(&self.deleted_clients, ids).await
    }

    async fn users(&self) -> StoreResult<Vec<UserRecord>> {
        let mut users = Vec::new();
        for item in self.usernames.iter() {
            let (_, id) = item?;
            if let Some(v) = self.users.get(&id)? {
                users.push(decode("user", &v)?);
            }
        }
        Ok(users)
    }

    async fn consent(&self, subject: &str, client_id: &str) -> StoreResult<Option<ConsentRecord>> {
        self.consents
            .get(consent_key(subject, client_id))?
            .map(|v| decode("consent", &v))
            .transpose()
    }

    async fn consents_of(&self, subject: &str) -> StoreResult<Vec<ConsentRecord>> {
        let mut prefix = subject.as_bytes().to_vec();
        prefix.push(0);
        self.consents
            .scan_prefix(prefix)
            .map(|item| {
                let (_, v) = item?;
                decode("consent", &v)
            })
            .collect()
    }

    async fn put_consent(&self, record: &ConsentRecord, audit: AuditEntry) -> StoreResult<()> {
        let value = encode(record)?;
        {
            let mut w = self.audit.lock();
            w.record(audit)?;
            self.consents
                .insert(consent_key(&record.subject, &record.client_id), value)?;
        }
        self.durable().await
    }

    async fn delete_consent(
        &self,
        subject: &str,
        client_id: &str,
        audit: AuditEntry,
    ) -> StoreResult<bool> {
        let key = consent_key(subject, client_id);
        let removed = {
            let mut w = self.audit.lock();
            if !self.consents.contains_key(&key)? {
                return Ok(false);
            }
            w.record(audit)?;
            self.consents.remove(&key)?.is_some()
        };
        self.durable().await?;
        Ok(removed)
    }

    async fn user(&self, user_id: &str) -> StoreResult<Option<Versioned<UserRecord>>> {
        Self::versioned(&self.users, "user", user_id)
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<Versioned<UserRecord>>> {
        let Some(id) = self.usernames.get(username.as_bytes())? else {
            return Ok(None);
        };
        self.users
            .get(&id)?
            .map(|v| {
                Ok(Versioned {
                    record: decode("user", &v)?,
                    version: Version(v.to_vec()),
                })
            })
            .transpose()
    }

    async fn insert_user(&self, record: &UserRecord, audit: AuditEntry) -> StoreResult<Swap> {
        let id = record.user_id.as_bytes();
        let name = record.username.as_bytes();
        let value = encode(record)?;
        {
            let mut w = self.audit.lock();
            // Under the write lock, so no other write slips in between the
            // check and the insert.
            if self.usernames.contains_key(name)? || self.users.contains_key(id)? {
                return Ok(Swap::Conflict);
            }
            w.record(audit)?;
            (&self.users, &self.usernames)
                .transaction(|(users, usernames)| {
                    users.insert(id, value.as_slice())?;
                    usernames.insert(name, id)?;
                    Ok::<_, ConflictableTransactionError<()>>(())
                })
                .map_err(|e| transaction_error("inserting a user", e))?;
        }
        self.durable().await?;
        Ok(Swap::Done)
    }

    async fn replace_user(
        &self,
        current: &Versioned<UserRecord>,
        new: &UserRecord,
        audit: AuditEntry,
    ) -> StoreResult<Swap> {
        let id = current.record.user_id.as_bytes();
        if new.user_id != current.record.user_id {
            return Ok(Swap::Conflict);
        }
        let old_name = current.record.username.as_bytes();
        let new_name = new.username.as_bytes();
        let value = encode(new)?;
        {
            let mut w = self.audit.lock();
            match self.users.get(id)? {
                Some(now) if *now == *current.version.0 => {}
                _ => return Ok(Swap::Conflict),
            }
            let renamed = old_name != new_name;
            if renamed && self.usernames.contains_key(new_name)? {
                return Ok(Swap::Conflict);
            }
            w.record(audit)?;
            (&self.users, &self.usernames)
                .transaction(|(users, usernames)| {
                    users.insert(id, value.as_slice())?;
                    if renamed {
                        usernames.remove(old_name)?;
                        usernames.insert(new_name, id)?;
                    }
                    Ok::<_, ConflictableTransactionError<()>>(())
                })
                .map_err(|e| transaction_error("replacing a user", e))?;
        }
        self.durable().await?;
        Ok(Swap::Done)
    }

    async fn delete_user(
        &self,
        current: &Versioned<UserRecord>,
        audit: AuditEntry,
    ) -> StoreResult<Swap> {
        let id = current.record.user_id.as_bytes();
        let name = current.record.username.as_bytes();
        {
            let mut w = self.audit.lock();
            match self.users.get(id)? {
                Some(now) if *now == *current.version.0 => {}
                _ => return Ok(Swap::Conflict),
            }
            w.record(audit)?;
            // One transaction: a crash never leaves the user gone with its
            // username still taken, or the other way round.
            (&self.users, &self.usernames)
                .transaction(|(users, usernames)| {
                    users.remove(id)?;
                    usernames.remove(name)?;
                    Ok::<_, ConflictableTransactionError<()>>(())
                })
                .map_err(|e| transaction_error("deleting a user", e))?;
        }
        self.durable().await?;
        Ok(Swap::Done)
    }

    async fn revoke_token(&self, jti: &str, expires_at: i64, audit: AuditEntry) -> StoreResult<()> {
        let when = encode(&expires_at)?;
        {
            let mut w = self.audit.lock();
            if self.revoked_tokens.contains_key(jti.as_bytes())? {
                return Ok(());
            }
            w.record(audit)?;
            self.revoked_tokens.insert(jti.as_bytes(), when)?;
        }
        self.durable().await
    }

    async fn revoked_tokens(&self) -> StoreResult<Vec<(String, i64)>> {
        timestamps(&self.revoked_tokens, "revoked token")
    }

    async fn forget_revoked_tokens(&self, jtis: &[String]) -> StoreResult<usize> {
        self.forget(&self.revoked_tokens, jtis).await
    }

    async fn insert_session(&self, record: &SessionRecord, audit: AuditEntry) -> StoreResult<()> {
        let value = encode(record)?;
        {
            let mut w = self.audit.lock();
            w.record(audit)?;
            self.sessions.insert(record.session_id.as_bytes(), value)?;
        }
        self.index_write().insert_record(record);
        self.durable().await
    }

    async fn session(&self, session_id: &str) -> StoreResult<Option<Versioned<SessionRecord>>> {
        Self::versioned(&self.sessions, "session", session_id)
    }

    async fn replace_session(
        &self,
        current: &Versioned<SessionRecord>,
        new: &SessionRecord,
        audit: AuditEntry,
    ) -> StoreResult<Swap> {
        let swap = self.swap(
            &self.sessions,
            &new.session_id,
            &current.version,
            encode(new)?,
            audit,
        )?;
        if swap == Swap::Done {
            if new.revoked_at.is_some() {
                self.index_write()
                    .set_revoked(&new.session_id, new.expires_at);
            }
            self.durable().await?;
        }
        Ok(swap)
    }

    async fn revoke_sessions(
        &self,
        ids: &[String],
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<Vec<(String, i64)>> {
        let mut revoked = Vec::new();
        {
            let mut w = self.audit.lock();
            let mut batch = sled::Batch::default();
            for id in ids {
                let Some(mut rec) = self.get_session(id)? else {
                    continue;
                };
                if rec.revoked_at.is_some() {
                    continue;
                }
                rec.revoked_at = Some(at);
                batch.insert(id.as_bytes(), encode(&rec)?);
                revoked.push((rec.session_id, rec.expires_at));
            }
            w.record(audit)?;
            self.sessions.apply_batch(batch)?;
        }
        {
            let mut index = self.index_write();
            for (id, exp) in &revoked {
                index.set_revoked(id, *exp);
            }
        }
        self.durable().await?;
        Ok(revoked)
    }

    async fn sessions_page(
        &self,
        filter: &SessionFilter,
        after: Option<&Cursor>,
        limit: usize,
    ) -> StoreResult<Page<SessionRecord>> {
        let limit = limit.max(1);
        let mut items = Vec::new();
        let mut last: Option<String> = after.map(|c| c.0.clone());
        let wanted = |r: &SessionRecord| {
            filter.subject.as_ref().is_none_or(|s| *s == r.subject)
                && filter.client_id.as_ref().is_none_or(|c| *c == r.client_id)
        };
        let indexed = match (&filter.client_id, &filter.subject) {
            (Some(client), _) => Some((true, client)),
            (None, Some(subject)) => Some((false, subject)),
            (None, None) => None,
        };
        match indexed {
            Some((by_client, key)) => loop {
                let ids = self
                    .index_read()
                    .ids_after(by_client, key, last.as_deref(), limit);
                let exhausted = ids.len() < limit;
                for id in ids {
                    last = Some(id.to_string());
                    if let Some(r) = self.get_session(&id)? {
                        if wanted(&r) {
                            items.push(r);
                            if items.len() == limit {
                                break;
                            }
                        }
                    }
                }
                if items.len() == limit || exhausted {
                    break;
                }
            },
            None => {
                let start = match &last {
                    Some(c) => Bound::Excluded(sled::IVec::from(c.as_bytes())),
                    None => Bound::Unbounded,
                };
                for item in self
                    .sessions
                    .range::<sled::IVec, _>((start, Bound::Unbounded))
                {
                    let (_, v) = item?;
                    let r: SessionRecord = decode("session", &v)?;
                    last = Some(r.session_id.clone());
                    items.push(r);
                    if items.len() == limit {
                        break;
                    }
                }
            }
        }
        let next = if items.len() == limit {
            last.map(Cursor)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn session_ids(&self, filter: &SessionFilter) -> StoreResult<Vec<String>> {
        let index = self.index_read();
        Ok(match (&filter.client_id, &filter.subject) {
            (Some(client), None) => index.all_ids(true, client),
            (None, Some(subject)) => index.all_ids(false, subject),
            (Some(client), Some(subject)) => {
                let of_client: std::collections::HashSet<String> =
                    index.all_ids(true, client).into_iter().collect();
                index
                    .all_ids(false, subject)
                    .into_iter()
                    .filter(|id| of_client.contains(id))
                    .collect()
            }
            (None, None) => {
                drop(index);
                let mut ids = Vec::new();
                for k in self.sessions.iter().keys() {
                    ids.push(String::from_utf8_lossy(&k?).into_owned());
                }
                ids
            }
        })
    }

    async fn delete_sessions(&self, ids: &[String]) -> StoreResult<usize> {
        let mut batch = sled::Batch::default();
        let mut gone = Vec::new();
        // Maintenance removes only dead sessions, which no one writes any
        // more; reading them outside the write lock is safe.
        for id in ids {
            if let Some(r) = self.get_session(id)? {
                batch.remove(id.as_bytes());
                gone.push(r);
            }
        }
        if gone.is_empty() {
            return Ok(0);
        }
        {
            let _w = self.audit.lock();
            self.sessions.apply_batch(batch)?;
        }
        {
            let mut index = self.index_write();
            for r in &gone {
                index.remove(r);
            }
        }
        {
            let mut legacy = self.legacy.lock().unwrap_or_else(|p| p.into_inner());
            for r in &gone {
                legacy::forget(&self.db, &mut legacy, r)?;
            }
        }
        self.durable().await?;
        Ok(gone.len())
    }

    async fn legacy_refresh_session(&self, token: &SecretHash) -> StoreResult<Option<String>> {
        let legacy = self.legacy.lock().unwrap_or_else(|p| p.into_inner());
        Ok(legacy.get(token.as_bytes()).cloned())
    }

    async fn revoked_sessions(&self) -> StoreResult<Vec<(String, i64)>> {
        Ok(self.index_read().revoked())
    }

    async fn identities(&self) -> StoreResult<Vec<IdentityRecord>> {
        all(&self.identities, "identity")
    }

    async fn put_identity(
        &self,
        record: &IdentityRecord,
        audit: AuditEntry,
    ) -> StoreResult<IdentityRecord> {
        let mut stored = record.clone();
        {
            let mut w = self.audit.lock();
            if let Some(old) = self.identities.get(record.name.as_bytes())? {
                let old: IdentityRecord = decode("identity", &old)?;
                stored.created_at = old.created_at;
            }
            w.record(audit)?;
            self.identities
                .insert(stored.name.as_bytes(), encode(&stored)?)?;
        }
        self.durable().await?;
        Ok(stored)
    }

    async fn delete_identity(&self, name: &str, audit: AuditEntry) -> StoreResult<bool> {
        let deleted = {
            let mut w = self.audit.lock();
            if self.identities.get(name.as_bytes())?.is_some() {
                w.record(audit)?;
                self.identities.remove(name.as_bytes())?;
                true
            } else {
                false
            }
        };
        if deleted {
            self.durable().await?;
        }
        Ok(deleted)
    }

    async fn revoked_certs(&self) -> StoreResult<Vec<RevokedCert>> {
        all(&self.revoked_certs, "revoked certificate")
    }

    async fn revoke_cert(
        &self,
        serial: &str,
        at: i64,
        audit: AuditEntry,
    ) -> StoreResult<RevokedCert> {
        let fresh = RevokedCert {
            serial: serial.to_owned(),
            revoked_at: at,
        };
        let stored = {
            let mut w = self.audit.lock();
            w.record(audit)?;
            match self.revoked_certs.get(serial.as_bytes())? {
                Some(old) => decode("revoked certificate", &old)?,
                None => {
                    self.revoked_certs
                        .insert(serial.as_bytes(), encode(&fresh)?)?;
                    fresh
                }
            }
        };
        self.durable().await?;
        Ok(stored)
    }

    async fn signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        all(&self.signing_keys, "signing key")
    }

    async fn put_signing_keys(
        &self,
        records: &[SigningKeyRecord],
        audit: Option<AuditEntry>,
    ) -> StoreResult<()> {
        let mut batch = sled::Batch::default();
        for r in records {
            batch.insert(r.kid.as_bytes(), encode(r)?);
        }
        {
            let mut w = self.audit.lock();
            if let Some(audit) = audit {
                w.record(audit)?;
            }
            self.signing_keys.apply_batch(batch)?;
        }
        self.durable().await
    }

    async fn delete_signing_keys(&self, kids: &[String]) -> StoreResult<()> {
        let mut batch = sled::Batch::default();
        for kid in kids {
            batch.remove(kid.as_bytes());
        }
        {
            let _w = self.audit.lock();
            self.signing_keys.apply_batch(batch)?;
        }
        self.durable().await
    }

    async fn append_audit(&self, entry: AuditEntry, durable: bool) -> StoreResult<()> {
        self.audit.lock().record(entry)?;
        if durable {
            self.durable().await?;
        }
        Ok(())
    }

    async fn audit_page(&self, after: u64, limit: usize) -> StoreResult<Vec<AuditRecord>> {
        self.audit
            .tree
            .range((after.saturating_add(1)).to_be_bytes()..)
            .values()
            .take(limit)
            .map(|v| decode("audit record", &v?))
            .collect()
    }

    async fn audit_anchor(&self) -> StoreResult<AuditAnchor> {
        read_anchor(&self.meta)
    }

    async fn prune_audit(&self, before: i64, limit: usize) -> StoreResult<usize> {
        let mut gone = Vec::new();
        for v in self.audit.tree.iter().values().take(limit) {
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
        let r = {
            let _w = self.audit.lock();
            (&self.audit.tree, &self.meta).transaction(|(audit, meta)| {
                for r in &gone {
                    audit.remove(&r.seq.to_be_bytes())?;
                }
                meta.insert(AUDIT_ANCHOR, anchor.as_slice())?;
                Ok::<_, ConflictableTransactionError<()>>(())
            })
        };
        r.map_err(|e| transaction_error("pruning the audit trail", e))?;
        self.durable().await?;
        Ok(gone.len())
    }

    async fn put_transient(
        &self,
        kind: TransientKind,
        key: &[u8],
        value: &[u8],
        expires_at: i64,
        now: i64,
    ) -> StoreResult<Swap> {
        self.put_transient_entry(kind, key, value, expires_at, now)
            .await
    }

    async fn transient(
        &self,
        kind: TransientKind,
        key: &[u8],
        now: i64,
    ) -> StoreResult<Option<Vec<u8>>> {
        self.transient_entry(kind, key, now)
    }

    async fn swap_transient(
        &self,
        kind: TransientKind,
        key: &[u8],
        expected: &[u8],
        new: &[u8],
        expires_at: i64,
    ) -> StoreResult<Swap> {
        self.swap_transient_entry(kind, key, expected, Some((new, expires_at)))
            .await
    }

    async fn remove_transient(
        &self,
        kind: TransientKind,
        key: &[u8],
        expected: &[u8],
    ) -> StoreResult<Swap> {
        self.swap_transient_entry(kind, key, expected, None).await
    }

    async fn count_transients(
        &self,
        kind: TransientKind,
        now: i64,
        limit: usize,
    ) -> StoreResult<usize> {
        self.count_transient_entries(kind, now, limit)
    }

    async fn transients(
        &self,
        kind: TransientKind,
        now: i64,
    ) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.transient_entries(kind, now)
    }

    async fn evict_transients(&self, now: i64) -> StoreResult<usize> {
        self.evict_transient_entries(now).await
    }

    fn audit_chain_length(&self) -> Option<u64> {
        Some(self.audit.length())
    }

    fn backend(&self) -> &'static str {
        "sled"
    }

    async fn backup(&self, audit: AuditEntry, created_at: i64) -> StoreResult<Vec<u8>> {
        self.take_backup(audit, created_at).await
    }

    async fn flush(&self) -> StoreResult<()> {
        self.commit.flush(&self.db).await
    }
}

/// Whether `dir` holds a database (for offline commands that must not
/// create one).
pub fn exists(dir: &Path) -> bool {
    dir.join("db").exists()
}

/// Opens the store of a data directory for the server.
///
/// # Errors
/// As [`SledStore::open`].
pub fn open(dir: &Path, durability: Durability) -> StoreResult<Arc<dyn Store>> {
    Ok(Arc::new(SledStore::open(dir, durability)?))
}

/// sled's refusal to open a database another process holds (its file
/// lock answers `WouldBlock`), in words; any other error as it is.
fn in_use(dir: &Path, err: sled::Error) -> StoreError {
    match &err {
        sled::Error::Io(io)
            if io.kind() == std::io::ErrorKind::WouldBlock
                || io.to_string().contains("could not acquire lock") =>
        {
            StoreError::InUse(dir.to_path_buf())
        }
        _ => StoreError::from(err),
    }
}

/// See [`crate::store::legacy_fixture`].
#[cfg(test)]
pub(super) fn legacy_fixture(dir: &Path, now: i64) -> (String, String) {
    legacy::write_fixture(dir, now)
}

/// See [`crate::store::tamper_with_audit_record`].
pub(super) fn tamper_with_audit_record(
    dir: &Path,
    seq: u64,
    edit: impl FnOnce(&mut AuditRecord),
) -> StoreResult<()> {
    let db = open_db(dir)?;
    let audit = db.open_tree("audit")?;
    let key = seq.to_be_bytes();
    let bytes = audit
        .get(key)?
        .ok_or_else(|| StoreError::Backend(format!("no audit record {seq}")))?;
    let mut record: AuditRecord = decode("audit record", &bytes)?;
    edit(&mut record);
    audit.insert(key, encode(&record)?)?;
    db.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::store::conformance;

    fn fresh() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), Durability::Durable).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn conformance_api_keys() {
        conformance::api_keys(&fresh().1).await;
    }

    #[tokio::test]
    async fn conformance_sessions() {
        conformance::sessions(&fresh().1).await;
    }

    #[tokio::test]
    async fn conformance_session_pages() {
        conformance::session_pages(&fresh().1).await;
    }

    #[tokio::test]
    async fn conformance_identities_and_certificates() {
        conformance::identities(&fresh().1).await;
    }

    #[tokio::test]
    async fn conformance_clients() {
        conformance::clients(&fresh().1).await;
    }

    #[tokio::test]
    async fn conformance_users() {
        conformance::users(&fresh().1).await;
    }

    #[tokio::test]
    async fn conformance_consents() {
        conformance::consents(&fresh().1).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_one_username_one_user() {
        let (_dir, store) = fresh();
        conformance::one_username_one_user(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn revoked_tokens_conform() {
        conformance::revoked_tokens(&fresh().1).await;
    }

    #[tokio::test]
    async fn conformance_signing_keys() {
        conformance::signing_keys(&fresh().1).await;
    }

    #[tokio::test]
    async fn conformance_audit_chain() {
        conformance::audit_chain(&fresh().1).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_one_winner() {
        let (_dir, store) = fresh();
        conformance::one_winner(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn conformance_transients() {
        conformance::transients(&fresh().1).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance_one_transient_winner() {
        let (_dir, store) = fresh();
        conformance::one_transient_winner(Arc::new(store)).await;
    }

    #[tokio::test]
    async fn conformance_everything_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = SledStore::open(dir.path(), Durability::Durable).unwrap();
        let written = conformance::write_some(&store).await;
        drop(store);
        let store = SledStore::open(dir.path(), Durability::Durable).unwrap();
        conformance::check_written(&store, &written).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_flushes_share_the_work_and_all_complete() {
        let (dir, store) = fresh();
        let store = Arc::new(store);
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let rec = conformance::session(&format!("ses_{i}"), "u", "k");
                    store
                        .insert_session(&rec, conformance::entry("session.created"))
                        .await
                        .unwrap();
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
        let reopened = SledStore::open(dir.path(), Durability::Durable).unwrap();
        assert!(reopened.session("ses_63").await.unwrap().is_some());
    }
}
