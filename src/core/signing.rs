//! Signing keys over time: loading the ring at start (creating the first
//! key), rotating on demand or on schedule, and dropping retired keys
//! whose every token has expired.

use crate::core::Core;
use crate::core::error::Error;
use crate::core::principal::{ADMIN, Principal};
use crate::core::{Credentials, policy};
use crate::store::{AuditEntry, SigningAlg, Store};
use crate::token::{KeyRing, TokenIssuer, rotate_records};

/// Loads the ring from `store`. Creates and stores a key of `alg` if there
/// is no active key, or if the active key's algorithm differs from `alg`
/// (the old key is retired but stays to verify its tokens).
///
/// # Errors
/// Storage failed, or a stored key cannot be parsed.
pub(crate) async fn load_ring(
    store: &dyn Store,
    alg: SigningAlg,
    issuer: &str,
    now: i64,
) -> Result<KeyRing, Error> {
    let mut records = store.signing_keys().await?;
    let needs_new = match records.iter().find(|r| r.retired_at.is_none()) {
        Some(active) => active.alg != alg,
        None => true,
    };
    if needs_new {
        let changed = rotate_records(&mut records, alg, now)?;
        store.put_signing_keys(&changed, None).await?;
    }
    Ok(KeyRing::from_records(
        records,
        &TokenIssuer::accepted_issuers(issuer),
    )?)
}

impl Core {
    /// `KeyService.RotateSigningKey`: a new key is active at once; the old
    /// one is retired and keeps verifying. Needs `admin`. Returns (new kid,
    /// previous kid).
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, or key generation or storage
    /// failed.
    pub async fn rotate_signing_key(
        &self,
        creds: &Credentials<'_>,
    ) -> Result<(String, String), Error> {
        let caller = self.authenticate(creds).await?;
        policy::require(&caller, ADMIN)?;
        let (kid, previous) = self.rotate_now(Some((&caller, creds.request_id))).await?;
        tracing::info!(kid = %kid, previous = %previous, "signing key rotated");
        Ok((kid, previous))
    }

    /// Rotates the ring: by a caller, or by the schedule (`None`).
    pub(crate) async fn rotate_now(
        &self,
        by: Option<(&Principal, &str)>,
    ) -> Result<(String, String), Error> {
        let _one = self.key_changes.lock().await;
        let previous = self.tokens.ring().active_kid().to_owned();
        // The ring as stored, not as remembered: another replica may have
        // rotated it since this one last read the change feed.
        let mut records = self.store.signing_keys().await?;
        let now = self.clock.now();
        let changed = rotate_records(&mut records, self.tokens.alg(), now)?;
        let next = KeyRing::from_records(
            records,
            &TokenIssuer::accepted_issuers(self.tokens.issuer()),
        )?;
        let kid = next.active_kid().to_owned();
        let audit: AuditEntry = match by {
            Some((caller, rid)) => self.audit.ok(&caller.id, "signing_key.rotated", &kid, rid),
            None => self.audit.ok("system", "signing_key.rotated", &kid, ""),
        };
        self.store.put_signing_keys(&changed, Some(audit)).await?;
        self.tokens.swap(next);
        Ok((kid, previous))
    }

    /// Drops retired keys whose every token has expired: retired at or
    /// before `now - max_token_ttl`. Returns how many went.
    pub(crate) async fn prune_signing_keys(&self) -> Result<usize, Error> {
        let _one = self.key_changes.lock().await;
        let now = self.clock.now();
        let max_ttl = i64::from(self.settings.max_ttl);
        let ring = self.tokens.ring();
        let (gone, kept): (Vec<_>, Vec<_>) = ring
            .records()
            .into_iter()
            .partition(|r| r.retired_at.is_some_and(|t| t + max_ttl <= now));
        if gone.is_empty() {
            return Ok(0);
        }
        let kids: Vec<String> = gone.iter().map(|r| r.kid.clone()).collect();
        self.store.delete_signing_keys(&kids).await?;
        self.tokens.swap(KeyRing::from_records(
            kept,
            &TokenIssuer::accepted_issuers(self.tokens.issuer()),
        )?);
        for kid in &kids {
            tracing::info!(kid = %kid, "retired signing key removed from the JWKS");
        }
        Ok(kids.len())
    }

    /// The public keys as a JWK Set document (`GetJwks`; no credential).
    pub fn jwks_json(&self) -> String {
        self.tokens.ring().jwks_json().to_owned()
    }
}
