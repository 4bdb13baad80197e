//! Issuing and checking access tokens with the current [`KeyRing`]:
//! signing with the active key, verifying through the ring's JWK Set, and
//! remembering tokens already verified.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use mcp_auth_token::{check_lifetime, check_window};

use super::ring::KeyRing;
use super::{AccessClaims, TokenError, TokenReason};
use crate::secret::{SecretHash, random_base62};
use crate::store::{SessionRecord, SigningAlg};

/// The `iss` of tokens issued before the issuer was a URL; still accepted
/// (from our own keys), so they verify until they expire.
pub(crate) const LEGACY_ISSUER: &str = "mcp-auth";

/// What a new access token says (its `iss`, `jti`, `iat` and `nbf` are
/// the issuer's to set).
#[derive(Clone, Debug)]
pub(crate) struct NewToken<'a> {
    /// `sub`.
    pub sub: &'a str,
    /// `aud`.
    pub aud: &'a str,
    /// `client_id`.
    pub client_id: &'a str,
    /// `sid`: the session, `None` for a token without one (a
    /// `client_credentials` token, whose `jti` then stands for it).
    pub sid: Option<&'a str>,
    /// `scope`, space-separated.
    pub scope: String,
    /// Issued at (and not before), Unix seconds.
    pub now: i64,
    /// `exp`, Unix seconds.
    pub exp: i64,
}

/// Signs and verifies access tokens with a swappable [`KeyRing`].
pub(crate) struct TokenIssuer {
    /// Swapped whole on rotation; readers take a snapshot.
    ring: RwLock<Arc<KeyRing>>,
    issuer: String,
    /// Algorithm of new keys.
    alg: SigningAlg,
    /// Longest lifetime (`exp - iat`) of a token this issuer signs, seconds.
    max_ttl: i64,
    /// Tokens already checked.
    verified: VerifiedCache,
}

impl TokenIssuer {
    /// An issuer of tokens with `iss` = `issuer`, over `ring`, that
    /// refuses tokens living longer than `max_ttl` seconds.
    pub fn new(ring: KeyRing, issuer: String, alg: SigningAlg, max_ttl: u32) -> Self {
        TokenIssuer {
            ring: RwLock::new(Arc::new(ring)),
            issuer,
            alg,
            max_ttl: i64::from(max_ttl),
            verified: VerifiedCache::default(),
        }
    }

    /// The issuers whose tokens a ring of this issuer accepts.
    pub fn accepted_issuers(issuer: &str) -> [&str; 2] {
        [issuer, LEGACY_ISSUER]
    }

    /// The configured issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Algorithm of new keys.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The current key ring.
    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Makes `ring` current; tokens remembered as verified are forgotten,
    /// so a removed key's tokens are never answered from memory.
    pub fn swap(&self, ring: KeyRing) {
        *self.ring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
        self.verified.clear();
    }

    /// Signs an access token for `session` carrying `scopes`, issued at
    /// `now`, expiring at `exp`, with a `jti` of its own and the session in
    /// `sid`.
    ///
    /// # Errors
    /// The active key is missing, the random source or signing failed.
    pub fn issue(
        &self,
        session: &SessionRecord,
        scopes: &[String],
        now: i64,
        exp: i64,
    ) -> Result<String, TokenError> {
        self.issue_new(NewToken {
            sub: &session.subject,
            aud: &session.audience,
            client_id: &session.client_id,
            sid: Some(&session.session_id),
            scope: scopes.join(" "),
            now,
            exp,
        })
        .map(|(token, _)| token)
    }

    /// Signs the access token `new` describes, with a fresh `jti`; returns
    /// the token and its `jti`.
    ///
    /// # Errors
    /// The active key is missing, the random source or signing failed.
    pub fn issue_new(&self, new: NewToken<'_>) -> Result<(String, String), TokenError> {
        let ring = self.ring();
        let key = ring.active()?;
        let jti = format!(
            "at_{}",
            random_base62(22).map_err(|e| TokenError::Sign(e.to_string()))?
        );
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: new.sub.to_owned(),
            aud: new.aud.to_owned(),
            exp: new.exp,
            iat: new.now,
            nbf: new.now,
            jti,
            sid: new.sid.map(str::to_owned),
            client_id: new.client_id.to_owned(),
            scope: new.scope,
        };
        let token = key.sign(&claims)?;
        Ok((token, claims.jti))
    }

    /// Checks a token's form, signature, issuer, lifetime (at most the
    /// maximum token TTL) and time window at `now`. Audience, scopes and
    /// revocation are the caller's to check on the returned claims.
    ///
    /// # Errors
    /// Why the token is not active.
    pub fn verify(&self, token: &str, now: i64) -> Result<Arc<AccessClaims>, TokenReason> {
        if token.is_empty() || token.len() > mcp_auth_token::MAX_TOKEN_LEN {
            return Err(TokenReason::Malformed);
        }
        // A token is immutable: once its signature and claims checked out,
        // only its time window needs checking again (revocation, audience
        // and scopes are the caller's to check on every call).
        let digest = SecretHash::of(token.as_bytes());
        if let Some(claims) = self.verified.get(&digest) {
            metrics::counter!(crate::telemetry::VERIFY_CACHE, "result" => "hit").increment(1);
            check_window(&claims, now)?;
            return Ok(claims);
        }
        metrics::counter!(crate::telemetry::VERIFY_CACHE, "result" => "miss").increment(1);
        let claims = Arc::new(self.verify_uncached(token)?);
        check_lifetime(&claims, self.max_ttl)?;
        check_window(&claims, now)?;
        self.verified.insert(digest, claims.clone());
        Ok(claims)
    }

    /// Form, key, signature and issuer; no time checks, no cache.
    ///
    /// # Errors
    /// Why the token is not acceptable.
    pub fn verify_uncached(&self, token: &str) -> Result<AccessClaims, TokenReason> {
        self.ring().verifier().verify(token)
    }
}

/// Most verified tokens remembered; past it the cache starts over.
const VERIFIED_CACHE_MAX: usize = 100_000;

/// Tokens whose signature and claims have been checked, by SHA-256 of the
/// token, so a token verified many times is parsed and checked once.
/// Bounded; cleared whenever the key ring changes, so a removed key's
/// tokens are never answered from memory.
#[derive(Default)]
struct VerifiedCache {
    map: std::sync::Mutex<HashMap<[u8; 32], Arc<AccessClaims>>>,
}

impl VerifiedCache {
    fn get(&self, digest: &SecretHash) -> Option<Arc<AccessClaims>> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(digest.as_bytes()).cloned()
    }

    fn insert(&self, digest: SecretHash, claims: Arc<AccessClaims>) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= VERIFIED_CACHE_MAX {
            map.clear();
        }
        map.insert(*digest.as_bytes(), claims);
    }

    fn clear(&self) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}
