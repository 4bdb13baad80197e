//! API keys: creating, listing, revoking (with the sessions they created),
//! updating and rotating them, and the in-memory index that
//! authentication reads instead of the store.
//!
//! Every operation needs `keys:admin`; a caller may grant only scopes it
//! holds itself, and may change only keys whose scopes it holds.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::core::error::{Error, Reason};
use crate::core::fields::{check_id, check_text, new_id};
use crate::core::principal::{ADMIN, KEYS_ADMIN, Principal, parse_scopes};
use crate::core::{Core, Credentials, limits, policy};
use crate::secret::{API_KEY_PREFIX, Secret, SecretHash};
use crate::store::{ApiKeyRecord, PreviousSecret, RateLimit, Store, Swap};
use crate::untrusted::{Echo, Escaped};

/// Longest key name, in bytes.
pub(crate) const MAX_KEY_NAME_LEN: usize = 128;
/// Longest grace period for a rotated-out secret: 30 days.
pub(crate) const MAX_ROTATION_GRACE: u32 = 30 * 24 * 60 * 60;

/// An API key as authentication reads it from memory: the record, and its
/// id and scopes ready to be shared (not copied) by each request's caller.
pub(crate) struct ApiKeyEntry {
    pub record: ApiKeyRecord,
    pub id: Arc<str>,
    pub scopes: Arc<[String]>,
}

/// Every API key by the hash of each of its live secrets, so
/// authenticating a request reads memory, not the store. Kept in step by
/// the core's own writes.
#[derive(Default)]
pub(crate) struct ApiKeyIndex {
    by_hash: RwLock<HashMap<[u8; 32], Arc<ApiKeyEntry>>>,
}

impl ApiKeyIndex {
    /// The index of `records`.
    pub fn new(records: Vec<ApiKeyRecord>) -> Self {
        let index = ApiKeyIndex::default();
        for r in records {
            index.set(r);
        }
        index
    }

    /// Indexes `record` under its live secrets, replacing what was indexed
    /// for its key id.
    pub fn set(&self, record: ApiKeyRecord) {
        let mut map = self.by_hash.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, cached| cached.record.key_id != record.key_id);
        let hashes: Vec<[u8; 32]> = record.hashes().map(|h| *h.as_bytes()).collect();
        let entry = Arc::new(ApiKeyEntry {
            id: record.key_id.as_str().into(),
            scopes: record.scopes.clone().into(),
            record,
        });
        for h in hashes {
            map.insert(h, entry.clone());
        }
    }

    /// How many keys are accepted at `now` (neither revoked nor expired),
    /// for the metrics.
    pub fn live(&self, now: i64) -> usize {
        let map = self.by_hash.read().unwrap_or_else(|p| p.into_inner());
        let ids: std::collections::HashSet<&str> = map
            .values()
            .filter(|e| {
                e.record.revoked_at.is_none()
                    && (e.record.expires_at == 0 || now < e.record.expires_at)
            })
            .map(|e| &*e.id)
            .collect();
        ids.len()
    }

    /// The key whose current or previous secret hashes to `hash`. The
    /// caller still compares the hash against the record in constant time.
    pub fn get(&self, hash: &SecretHash) -> Option<Arc<ApiKeyEntry>> {
        let map = self.by_hash.read().unwrap_or_else(|p| p.into_inner());
        map.get(hash.as_bytes()).cloned()
    }

    /// The one decision whether `secret` is a good API key secret at `now`
    /// (Unix seconds), for authenticating a caller and for `VerifyToken`
    /// alike: the key whose live secret it is, or why not. The secret is
    /// hashed where it lies (no copy) and looked up by its hash; the match
    /// is confirmed in constant time.
    ///
    /// # Errors
    /// The [`KeyRefusal`]: not of a key's form, unknown, revoked, expired,
    /// or a rotated-out secret past its grace period.
    pub fn check(&self, secret: &str, now: i64) -> Result<Arc<ApiKeyEntry>, KeyRefusal> {
        if !secret.starts_with(API_KEY_PREFIX) || secret.len() > MAX_SECRET_LEN {
            return Err(KeyRefusal::Malformed);
        }
        let hash = SecretHash::of(secret.as_bytes());
        let entry = self.get(&hash).ok_or(KeyRefusal::Unknown)?;
        let record = &entry.record;
        let current = record.secret_hash == hash;
        let previous = record
            .previous
            .as_ref()
            .filter(|p| p.secret_hash == hash)
            .map(|p| p.valid_until);
        let key_id = || entry.id.clone();
        if record.revoked_at.is_some() {
            return Err(KeyRefusal::Revoked(key_id()));
        }
        if record.expires_at != 0 && now >= record.expires_at {
            return Err(KeyRefusal::Expired(key_id()));
        }
        match (current, previous) {
            (true, _) => Ok(entry),
            (false, Some(valid_until)) if now < valid_until => Ok(entry),
            (false, Some(_)) => Err(KeyRefusal::RotatedOut(key_id())),
            (false, None) => Err(KeyRefusal::Unknown),
        }
    }
}

/// Longest API key secret hashed and looked up; anything longer is
/// [`KeyRefusal::Malformed`].
const MAX_SECRET_LEN: usize = 256;

/// Why a presented API key secret is not good, as [`ApiKeyIndex::check`]
/// decides it. Authentication and `VerifyToken` each word it their way
/// ([`KeyRefusal::reason`], and the token reasons of `VerifyToken`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyRefusal {
    /// Not `mcp_sk_...`, or longer than any secret.
    Malformed,
    /// No key has this secret (never issued, mistyped, or a secret rotated
    /// out twice over).
    Unknown,
    /// The key was revoked.
    Revoked(Arc<str>),
    /// The key is past its `expires_at`.
    Expired(Arc<str>),
    /// The key's previous secret, presented after its grace period ended.
    RotatedOut(Arc<str>),
}

impl KeyRefusal {
    /// The reason an authentication with this secret is refused with.
    pub fn reason(&self) -> Reason {
        match self {
            KeyRefusal::Malformed | KeyRefusal::Unknown | KeyRefusal::RotatedOut(_) => {
                Reason::ApiKeyInvalid
            }
            KeyRefusal::Revoked(_) => Reason::ApiKeyRevoked,
            KeyRefusal::Expired(_) => Reason::ApiKeyExpired,
        }
    }

    /// The refusal of an authentication with this secret (never naming
    /// the secret).
    pub fn to_error(&self) -> Error {
        let message = match self {
            KeyRefusal::Malformed => {
                "malformed credentials: expected `Bearer mcp_sk_...`".to_owned()
            }
            KeyRefusal::Unknown => "invalid API key".to_owned(),
            KeyRefusal::Revoked(id) => format!("API key {id} was revoked"),
            KeyRefusal::Expired(id) => format!("API key {id} has expired"),
            KeyRefusal::RotatedOut(id) => format!(
                "this secret of API key {id} was rotated out and its grace period has ended"
            ),
        };
        Error::refused(self.reason(), message)
    }
}

/// What CreateApiKey asks for.
#[derive(Clone, Debug)]
pub struct NewApiKey {
    /// A name for people.
    pub name: String,
    /// Scopes to grant.
    pub scopes: Vec<String>,
    /// Unix seconds; 0 never.
    pub expires_at: i64,
    /// Overrides the default request rate.
    pub rate_limit: Option<RateLimit>,
}

/// A key with its secret, shown once.
#[derive(Debug)]
pub struct CreatedApiKey {
    /// The stored key.
    pub record: ApiKeyRecord,
    /// Its secret, never stored.
    pub secret: Secret,
}

fn key_not_found(key_id: &str) -> Error {
    Error::refused(
        Reason::ApiKeyNotFound,
        format!("no API key {}", Echo(key_id)),
    )
}

/// A new key record and its secret.
fn mint(
    name: String,
    scopes: Vec<String>,
    expires_at: i64,
    rate_limit: Option<RateLimit>,
    now: i64,
) -> Result<(ApiKeyRecord, Secret), Error> {
    let secret = Secret::generate_api_key()?;
    let record = ApiKeyRecord {
        key_id: new_id("key_")?,
        name,
        scopes,
        prefix: secret.display_prefix(),
        created_at: now,
        expires_at,
        revoked_at: None,
        rotated_at: None,
        secret_hash: secret.hash(),
        previous: None,
        rate_limit,
    };
    Ok((record, secret))
}

/// Creates a key with scope `admin` named `name` directly in `store`, with
/// its audit record by `actor`: the primary key on an empty data
/// directory, or a recovery key made offline by `mcp-auth recover-admin`.
///
/// # Errors
/// Storage or the random source failed.
pub(crate) async fn create_admin_key(
    store: &dyn Store,
    audit: &crate::core::audit::AuditTrail,
    now: i64,
    name: &str,
    actor: &str,
) -> Result<CreatedApiKey, Error> {
    let (record, secret) = mint(name.to_owned(), vec![ADMIN.to_owned()], 0, None, now)?;
    let target = format!("{} ({name})", record.key_id);
    store
        .insert_api_key(&record, audit.ok(actor, "api_key.created", &target, ""))
        .await?;
    tracing::info!(key_id = %record.key_id, name = %Escaped(&record.name), "api key created");
    Ok(CreatedApiKey { record, secret })
}

impl Core {
    async fn key_admin(&self, creds: &Credentials<'_>) -> Result<Principal, Error> {
        let caller = self.authenticate(creds).await?;
        policy::require(&caller, KEYS_ADMIN)?;
        Ok(caller)
    }

    /// `CreateApiKey`.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT, storage.
    pub async fn create_api_key(
        &self,
        creds: &Credentials<'_>,
        req: NewApiKey,
    ) -> Result<CreatedApiKey, Error> {
        let caller = self.key_admin(creds).await?;
        check_text("name", &req.name, MAX_KEY_NAME_LEN)?;
        let scopes = parse_scopes("scopes", &req.scopes, false)?;
        policy::may_grant(&caller, &scopes)?;
        let now = self.clock.now();
        if req.expires_at < 0 || (req.expires_at != 0 && req.expires_at <= now) {
            return Err(Error::invalid(
                "expires_at",
                "must be 0 (never) or in the future",
            ));
        }
        let rate_limit = req
            .rate_limit
            .map(|l| limits::validate(l, "rate_limit"))
            .transpose()?;
        let (record, secret) = mint(req.name, scopes, req.expires_at, rate_limit, now)?;
        let _one = self.key_writes.lock().await;
        self.store
            .insert_api_key(
                &record,
                self.audit.ok(
                    &caller.id,
                    "api_key.created",
                    &record.key_id,
                    creds.request_id,
                ),
            )
            .await?;
        self.keys.set(record.clone());
        tracing::info!(key_id = %record.key_id, name = %Escaped(&record.name), "api key created");
        Ok(CreatedApiKey { record, secret })
    }

    /// `ListApiKeys`.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, storage.
    pub async fn list_api_keys(&self, creds: &Credentials<'_>) -> Result<Vec<ApiKeyRecord>, Error> {
        self.key_admin(creds).await?;
        Ok(self.store.api_keys().await?)
    }

    /// `GetApiKey`.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT, NOT_FOUND,
    /// storage.
    pub async fn get_api_key(
        &self,
        creds: &Credentials<'_>,
        key_id: &str,
    ) -> Result<ApiKeyRecord, Error> {
        self.key_admin(creds).await?;
        check_id("key_id", key_id)?;
        Ok(self
            .store
            .api_key(key_id)
            .await?
            .ok_or_else(|| key_not_found(key_id))?
            .record)
    }

    /// Applies `change` to the key `key_id` as `caller` may, writing it
    /// with an audit record of `action`: load, decide, write.
    async fn change_key(
        &self,
        creds: &Credentials<'_>,
        caller: &Principal,
        key_id: &str,
        action: &str,
        change: impl Fn(&ApiKeyRecord) -> Result<ApiKeyRecord, Error>,
    ) -> Result<ApiKeyRecord, Error> {
        check_id("key_id", key_id)?;
        // One writer at a time, so the index sees changes in order; a
        // conflict can then only come from another process.
        let _one = self.key_writes.lock().await;
        loop {
            let current = self
                .store
                .api_key(key_id)
                .await?
                .ok_or_else(|| key_not_found(key_id))?;
            policy::may_manage_key(caller, &current.record)?;
            let new = change(&current.record)?;
            let audit = self.audit.ok(&caller.id, action, key_id, creds.request_id);
            if self.store.replace_api_key(&current, &new, audit).await? == Swap::Done {
                self.keys.set(new.clone());
                return Ok(new);
            }
        }
    }

    /// `RevokeApiKey`; with `cascade`, the sessions it created are revoked
    /// too. Returns the key and how many sessions this call revoked.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, NOT_FOUND, storage.
    pub async fn revoke_api_key(
        &self,
        creds: &Credentials<'_>,
        key_id: &str,
        cascade: bool,
    ) -> Result<(ApiKeyRecord, u32), Error> {
        let caller = self.key_admin(creds).await?;
        let now = self.clock.now();
        let record = self
            .change_key(creds, &caller, key_id, "api_key.revoked", |old| {
                let mut r = old.clone();
                r.revoked_at.get_or_insert(now);
                Ok(r)
            })
            .await?;
        self.revocations
            .revoke_api_key(&record.key_id, record.expires_at);
        tracing::info!(key_id = %record.key_id, "api key revoked");
        // Idempotent: revoking again re-runs the cascade, so a retry after
        // a crash between the two steps finishes the job.
        let sessions_revoked = if cascade {
            self.revoke_sessions_of_client(&caller.id, &record.key_id, creds.request_id)
                .await?
        } else {
            0
        };
        Ok((record, sessions_revoked))
    }

    /// `UpdateApiKey`: sets (or clears) the key's own rate limit.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, NOT_FOUND, INVALID_ARGUMENT,
    /// storage.
    pub async fn update_api_key(
        &self,
        creds: &Credentials<'_>,
        key_id: &str,
        rate_limit: Option<RateLimit>,
    ) -> Result<ApiKeyRecord, Error> {
        let caller = self.key_admin(creds).await?;
        let rate_limit = rate_limit
            .map(|l| limits::validate(l, "rate_limit"))
            .transpose()?;
        let record = self
            .change_key(creds, &caller, key_id, "api_key.updated", |old| {
                let mut r = old.clone();
                r.rate_limit = rate_limit;
                Ok(r)
            })
            .await?;
        tracing::info!(key_id = %record.key_id, "api key updated");
        Ok(record)
    }

    /// `RotateApiKey`: a new secret; the old one keeps working for
    /// `grace_seconds`.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, NOT_FOUND, FAILED_PRECONDITION
    /// for a revoked key, INVALID_ARGUMENT, storage.
    pub async fn rotate_api_key(
        &self,
        creds: &Credentials<'_>,
        key_id: &str,
        grace_seconds: u32,
    ) -> Result<CreatedApiKey, Error> {
        let caller = self.key_admin(creds).await?;
        if grace_seconds > MAX_ROTATION_GRACE {
            return Err(Error::invalid(
                "grace_seconds",
                format!("must be at most {MAX_ROTATION_GRACE} (30 days)"),
            ));
        }
        let secret = Secret::generate_api_key()?;
        let now = self.clock.now();
        let record = self
            .change_key(creds, &caller, key_id, "api_key.rotated", |old| {
                if old.revoked_at.is_some() {
                    return Err(Error::refused(
                        Reason::ApiKeyNotActive,
                        format!("API key {} is revoked and cannot be rotated", old.key_id),
                    ));
                }
                let mut r = old.clone();
                r.previous = (grace_seconds > 0).then(|| PreviousSecret {
                    secret_hash: r.secret_hash,
                    valid_until: now + i64::from(grace_seconds),
                });
                r.secret_hash = secret.hash();
                r.prefix = secret.display_prefix();
                r.rotated_at = Some(now);
                Ok(r)
            })
            .await?;
        tracing::info!(key_id = %record.key_id, grace_seconds, "api key rotated");
        Ok(CreatedApiKey { record, secret })
    }
}
