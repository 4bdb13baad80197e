//! Access tokens: signing keys, the key ring, issuing and verifying JWTs
//! (RFC 9068 `at+jwt`), the JWK Set, and the in-memory revocation index.
//!
//! Tokens are signed with the ring's active key; any key still in the ring
//! verifies. Claim checks (`exp`, `nbf`, `aud`, scopes) use the server's
//! [`Clock`](crate::Clock), never the system time directly.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use crate::secret::SecretHash;
use crate::store::{SessionRecord, SigningKeyRecord, Store, StoreError};

/// The JOSE `typ` of access tokens (RFC 9068 section 2.1).
pub(crate) const TOKEN_TYPE: &str = "at+jwt";

/// Longest token VerifyToken will look at; anything longer is MALFORMED.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Algorithm of a signing key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigningAlg {
    /// Ed25519 (JOSE `EdDSA`).
    #[default]
    EdDSA,
    /// ECDSA P-256 with SHA-256.
    ES256,
}

impl SigningAlg {
    fn jwt(self) -> Algorithm {
        match self {
            SigningAlg::EdDSA => Algorithm::EdDSA,
            SigningAlg::ES256 => Algorithm::ES256,
        }
    }

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::EdDSA => "EdDSA",
            SigningAlg::ES256 => "ES256",
        }
    }
}

/// Signing or key handling failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A key could not be generated or parsed.
    #[error("signing key: {0}")]
    Key(String),
    /// Signing failed.
    #[error("signing: {0}")]
    Sign(String),
    /// The key ring has no active key.
    #[error("no active signing key")]
    NoActiveKey,
    /// Storage failed while loading or saving keys.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a token is not active (mirrors `pb::TokenReason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenReason {
    Expired,
    Revoked,
    BadSignature,
    Malformed,
    WrongAudience,
    InsufficientScope,
    NotYetValid,
    UnknownKey,
    WrongIssuer,
}

/// The claims of an access token (RFC 9068 section 2.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    /// The session id.
    pub jti: String,
    /// Key id of the credential that created the session.
    pub client_id: String,
    /// Space-separated scopes.
    pub scope: String,
}

impl AccessClaims {
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }
}

/// A private key parsed once, when the ring is loaded. (jsonwebtoken
/// takes the PKCS#8 bytes and parses them again on every signature, which
/// for Ed25519 costs as much as the signature itself; so tokens are
/// assembled here and only verified with jsonwebtoken.)
enum Signer {
    Ed25519(Ed25519KeyPair),
    Es256(EcdsaKeyPair),
}

/// A signing key ready to use.
struct LoadedKey {
    record: SigningKeyRecord,
    signer: Signer,
    /// The JOSE header of this key's tokens, base64url-encoded.
    header_b64: String,
    decoding: DecodingKey,
    jwk: serde_json::Value,
}

/// The JOSE header of every token (RFC 9068 section 2.1).
#[derive(Serialize)]
struct JoseHeader<'a> {
    typ: &'a str,
    alg: &'a str,
    kid: &'a str,
}

impl LoadedKey {
    fn from_record(record: SigningKeyRecord) -> Result<Self, TokenError> {
        let (public, jwk_members) = public_jwk(record.alg, &record.private_pkcs8)?;
        let (signer, decoding) = match record.alg {
            SigningAlg::EdDSA => (
                Signer::Ed25519(
                    Ed25519KeyPair::from_pkcs8(&record.private_pkcs8)
                        .map_err(|e| TokenError::Key(format!("ed25519: {e}")))?,
                ),
                DecodingKey::from_ed_der(&public),
            ),
            SigningAlg::ES256 => (
                Signer::Es256(
                    EcdsaKeyPair::from_pkcs8(
                        &ECDSA_P256_SHA256_FIXED_SIGNING,
                        &record.private_pkcs8,
                    )
                    .map_err(|e| TokenError::Key(format!("p-256: {e}")))?,
                ),
                DecodingKey::from_ec_der(&public),
            ),
        };
        let header = serde_json::to_vec(&JoseHeader {
            typ: TOKEN_TYPE,
            alg: record.alg.as_str(),
            kid: &record.kid,
        })
        .map_err(|e| TokenError::Sign(e.to_string()))?;
        let mut jwk = jwk_members;
        if let Some(obj) = jwk.as_object_mut() {
            obj.insert("kid".to_owned(), record.kid.clone().into());
            obj.insert("alg".to_owned(), record.alg.as_str().into());
            obj.insert("use".to_owned(), "sig".into());
        }
        Ok(LoadedKey {
            record,
            signer,
            header_b64: URL_SAFE_NO_PAD.encode(header),
            decoding,
            jwk,
        })
    }

    /// A compact JWS (RFC 7515 section 7.1) of `claims` under this key.
    fn sign(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        let payload = serde_json::to_vec(claims).map_err(|e| TokenError::Sign(e.to_string()))?;
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 100);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = match &self.signer {
            Signer::Ed25519(kp) => kp.sign(token.as_bytes()).as_ref().to_vec(),
            Signer::Es256(kp) => kp
                .sign(&SystemRandom::new(), token.as_bytes())
                .map_err(|e| TokenError::Sign(format!("p-256: {e}")))?
                .as_ref()
                .to_vec(),
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}

/// The public key bytes and the required JWK members (RFC 7638 order) of a
/// PKCS#8 private key.
fn public_jwk(alg: SigningAlg, pkcs8: &[u8]) -> Result<(Vec<u8>, serde_json::Value), TokenError> {
    match alg {
        SigningAlg::EdDSA => {
            let kp = Ed25519KeyPair::from_pkcs8(pkcs8)
                .map_err(|e| TokenError::Key(format!("ed25519: {e}")))?;
            let public = kp.public_key().as_ref().to_vec();
            let jwk = serde_json::json!({
                "crv": "Ed25519",
                "kty": "OKP",
                "x": URL_SAFE_NO_PAD.encode(&public),
            });
            Ok((public, jwk))
        }
        SigningAlg::ES256 => {
            let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                .map_err(|e| TokenError::Key(format!("p-256: {e}")))?;
            let public = kp.public_key().as_ref().to_vec();
            // Uncompressed point: 0x04 || x (32) || y (32).
            if public.len() != 65 || public[0] != 4 {
                return Err(TokenError::Key(
                    "p-256 public key is not uncompressed".to_owned(),
                ));
            }
            let jwk = serde_json::json!({
                "crv": "P-256",
                "kty": "EC",
                "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&public[33..]),
            });
            Ok((public, jwk))
        }
    }
}

/// The RFC 7638 JWK thumbprint: SHA-256 of the required members in
/// lexicographic order, without whitespace, base64url-encoded.
fn thumbprint(alg: SigningAlg, public: &[u8]) -> String {
    let canonical = match alg {
        SigningAlg::EdDSA => format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(public)
        ),
        SigningAlg::ES256 => format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(public.get(1..33).unwrap_or_default()),
            URL_SAFE_NO_PAD.encode(public.get(33..).unwrap_or_default())
        ),
    };
    URL_SAFE_NO_PAD.encode(SecretHash::of(canonical.as_bytes()).as_bytes())
}

/// A new signing key; its `kid` is its RFC 7638 JWK thumbprint.
///
/// # Errors
/// Key generation failed.
pub(crate) fn generate_signing_key(
    alg: SigningAlg,
    now: i64,
) -> Result<SigningKeyRecord, TokenError> {
    let rng = SystemRandom::new();
    let pkcs8 = match alg {
        SigningAlg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|e| TokenError::Key(format!("ed25519: {e}")))?,
        SigningAlg::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| TokenError::Key(format!("p-256: {e}")))?,
    };
    let private_pkcs8 = pkcs8.as_ref().to_vec();
    let (public, _) = public_jwk(alg, &private_pkcs8)?;
    let kid = thumbprint(alg, &public);
    Ok(SigningKeyRecord {
        kid,
        alg,
        private_pkcs8,
        created_at: now,
        retired_at: None,
    })
}

/// Retires the active key in `records` (if any) and appends a new key of
/// `alg`; returns the records that changed.
fn rotate_records(
    records: &mut Vec<SigningKeyRecord>,
    alg: SigningAlg,
    now: i64,
) -> Result<Vec<SigningKeyRecord>, TokenError> {
    let mut changed = Vec::new();
    for r in records.iter_mut().filter(|r| r.retired_at.is_none()) {
        r.retired_at = Some(now);
        changed.push(r.clone());
    }
    let new = generate_signing_key(alg, now)?;
    tracing::info!(kid = %new.kid, alg = alg.as_str(), "created signing key");
    changed.push(new.clone());
    records.push(new);
    Ok(changed)
}

/// The signing keys: one active, plus retired ones that still verify.
pub(crate) struct KeyRing {
    active: String,
    keys: HashMap<String, LoadedKey>,
    /// The JWK Set document, built once.
    jwks: String,
}

impl KeyRing {
    /// Loads the ring from the store. Creates and stores a key of `alg` if
    /// there is no active key, or if the active key's algorithm differs from
    /// `alg` (the old key is retired but stays to verify its tokens).
    ///
    /// # Errors
    /// Storage failed, or a stored key cannot be parsed.
    pub async fn load_or_create(
        store: &Store,
        alg: SigningAlg,
        now: i64,
    ) -> Result<Self, TokenError> {
        let mut records = store.signing_keys()?;
        let needs_new = match records.iter().find(|r| r.retired_at.is_none()) {
            Some(active) => active.alg != alg,
            None => true,
        };
        if needs_new {
            let changed = rotate_records(&mut records, alg, now)?;
            store.put_signing_keys(&changed).await?;
        }
        Self::from_records(records)
    }

    fn from_records(records: Vec<SigningKeyRecord>) -> Result<Self, TokenError> {
        let mut keys = HashMap::new();
        let mut active_kid = None;
        for r in records {
            if r.retired_at.is_none() {
                active_kid = Some(r.kid.clone());
            }
            keys.insert(r.kid.clone(), LoadedKey::from_record(r)?);
        }
        let jwks = jwks_json(&keys);
        Ok(KeyRing {
            active: active_kid.ok_or(TokenError::NoActiveKey)?,
            keys,
            jwks,
        })
    }

    fn records(&self) -> Vec<SigningKeyRecord> {
        self.keys.values().map(|k| k.record.clone()).collect()
    }

    /// The active key's id and when it was created.
    pub fn active_key(&self) -> Option<(&str, i64)> {
        self.keys
            .get(&self.active)
            .map(|k| (k.record.kid.as_str(), k.record.created_at))
    }

    fn active(&self) -> Result<&LoadedKey, TokenError> {
        self.keys.get(&self.active).ok_or(TokenError::NoActiveKey)
    }

    /// The public keys as a JWK Set document, active key first.
    pub fn jwks_json(&self) -> &str {
        &self.jwks
    }
}

fn jwks_json(keys: &HashMap<String, LoadedKey>) -> String {
    let mut keys: Vec<&LoadedKey> = keys.values().collect();
    keys.sort_by_key(|k| (k.record.retired_at.is_some(), -k.record.created_at));
    let set = serde_json::json!({ "keys": keys.iter().map(|k| &k.jwk).collect::<Vec<_>>() });
    set.to_string()
}

/// Signs and verifies access tokens with a [`KeyRing`], and rotates it.
pub(crate) struct TokenIssuer {
    /// Swapped whole on rotation; readers take a snapshot.
    ring: RwLock<Arc<KeyRing>>,
    issuer: String,
    /// Algorithm of new keys.
    alg: SigningAlg,
    /// One rotation or pruning at a time.
    changing: tokio::sync::Mutex<()>,
    /// Tokens already checked.
    verified: VerifiedCache,
}

impl TokenIssuer {
    pub fn new(ring: KeyRing, issuer: String, alg: SigningAlg) -> Self {
        TokenIssuer {
            ring: RwLock::new(Arc::new(ring)),
            issuer,
            alg,
            changing: tokio::sync::Mutex::new(()),
            verified: VerifiedCache::default(),
        }
    }

    /// The current key ring.
    pub fn ring(&self) -> Arc<KeyRing> {
        self.ring.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn swap(&self, ring: KeyRing) {
        *self.ring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
        self.verified.clear();
    }

    /// Makes a new key active at once; the old one is retired and keeps
    /// verifying. Returns (new kid, previous kid).
    ///
    /// # Errors
    /// Key generation or storage failed.
    pub async fn rotate(&self, store: &Store, now: i64) -> Result<(String, String), TokenError> {
        let _one = self.changing.lock().await;
        let ring = self.ring();
        let previous = ring.active.clone();
        let mut records = ring.records();
        let changed = rotate_records(&mut records, self.alg, now)?;
        store.put_signing_keys(&changed).await?;
        let next = KeyRing::from_records(records)?;
        let kid = next.active.clone();
        self.swap(next);
        Ok((kid, previous))
    }

    /// Drops retired keys whose every token has expired: retired at or
    /// before `now - max_token_ttl`. Returns how many went.
    ///
    /// # Errors
    /// Storage failed.
    pub async fn prune(
        &self,
        store: &Store,
        now: i64,
        max_token_ttl: i64,
    ) -> Result<usize, TokenError> {
        let _one = self.changing.lock().await;
        let ring = self.ring();
        let (gone, kept): (Vec<_>, Vec<_>) = ring
            .records()
            .into_iter()
            .partition(|r| r.retired_at.is_some_and(|t| t + max_token_ttl <= now));
        if gone.is_empty() {
            return Ok(0);
        }
        let kids: Vec<String> = gone.iter().map(|r| r.kid.clone()).collect();
        store.delete_signing_keys(&kids).await?;
        self.swap(KeyRing::from_records(kept)?);
        for kid in &kids {
            tracing::info!(kid = %kid, "retired signing key removed from the JWKS");
        }
        Ok(kids.len())
    }

    /// Signs an access token for `session` carrying `scopes`, issued at
    /// `now`, expiring at `exp`.
    ///
    /// # Errors
    /// The active key is missing or signing failed.
    pub fn issue(
        &self,
        session: &SessionRecord,
        scopes: &[String],
        now: i64,
        exp: i64,
    ) -> Result<String, TokenError> {
        let ring = self.ring();
        let key = ring.active()?;
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: session.subject.clone(),
            aud: session.audience.clone(),
            exp,
            iat: now,
            nbf: now,
            jti: session.session_id.clone(),
            client_id: session.client_id.clone(),
            scope: scopes.join(" "),
        };
        key.sign(&claims)
    }

    /// Checks a token's form, signature, issuer and time window at `now`.
    /// Audience, scopes and revocation are the caller's to check on the
    /// returned claims.
    pub fn verify(&self, token: &str, now: i64) -> Result<Arc<AccessClaims>, TokenReason> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(TokenReason::Malformed);
        }
        // A token is immutable: once its signature and claims checked out,
        // only its time window needs checking again (revocation, audience
        // and scopes are the caller's to check on every call).
        let digest = SecretHash::of(token.as_bytes());
        if let Some(claims) = self.verified.get(&digest) {
            return check_window(claims, now);
        }
        let claims = check_window(Arc::new(self.verify_uncached(token)?), now)?;
        self.verified.insert(digest, claims.clone());
        Ok(claims)
    }

    /// Form, key, signature and issuer; no time checks.
    pub(crate) fn verify_uncached(&self, token: &str) -> Result<AccessClaims, TokenReason> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenReason::Malformed)?;
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case(TOKEN_TYPE) || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(TokenReason::Malformed);
        }
        let kid = header.kid.as_deref().ok_or(TokenReason::Malformed)?;
        let ring = self.ring();
        let key = ring.keys.get(kid).ok_or(TokenReason::UnknownKey)?;
        let alg = key.record.alg.jwt();
        if header.alg != alg {
            return Err(TokenReason::BadSignature);
        }
        let mut validation = Validation::new(alg);
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                    TokenReason::BadSignature
                }
                _ => TokenReason::Malformed,
            })?;
        let claims = data.claims;
        if claims.iss != self.issuer {
            return Err(TokenReason::WrongIssuer);
        }
        Ok(claims)
    }
}

fn check_window(claims: Arc<AccessClaims>, now: i64) -> Result<Arc<AccessClaims>, TokenReason> {
    if claims.nbf > now {
        return Err(TokenReason::NotYetValid);
    }
    if claims.exp <= now {
        return Err(TokenReason::Expired);
    }
    Ok(claims)
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

/// Revoked session ids, held in memory so VerifyToken never reads storage.
/// Loaded from the store at start and updated on every revoke.
#[derive(Default)]
pub(crate) struct RevocationIndex {
    revoked: RwLock<HashSet<String>>,
}

impl RevocationIndex {
    /// The index of every revoked session in `store`.
    ///
    /// # Errors
    /// Storage failed.
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        let revoked = store
            .revoked_sessions()?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        Ok(RevocationIndex {
            revoked: RwLock::new(revoked),
        })
    }

    pub fn insert(&self, session_id: &str) {
        let mut set = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        set.insert(session_id.to_owned());
    }

    pub fn remove(&self, session_id: &str) -> bool {
        let mut set = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        set.remove(session_id)
    }

    pub fn len(&self) -> usize {
        let set = self.revoked.read().unwrap_or_else(|p| p.into_inner());
        set.len()
    }

    pub fn contains(&self, session_id: &str) -> bool {
        let set = self.revoked.read().unwrap_or_else(|p| p.into_inner());
        set.contains(session_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer_with(alg: SigningAlg) -> (TokenIssuer, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let ring = rt
            .block_on(KeyRing::load_or_create(&store, alg, 1_000))
            .unwrap();
        (TokenIssuer::new(ring, "iss".to_owned(), alg), dir)
    }

    fn session() -> SessionRecord {
        SessionRecord {
            session_id: "ses_1".to_owned(),
            subject: "user-1".to_owned(),
            client_id: "key_1".to_owned(),
            scopes: vec!["tools:read".to_owned(), "tools:call".to_owned()],
            audience: "https://mcp.example".to_owned(),
            created_at: 1_000,
            expires_at: 1_900,
            revoked_at: None,
            session_expires_at: 1_900,
            last_refreshed_at: 1_000,
            refresh_hashes: vec![],
            token_ttl: 0,
        }
    }

    fn issue(issuer: &TokenIssuer, s: &SessionRecord) -> String {
        issuer.issue(s, &s.scopes, 1_000, s.expires_at).unwrap()
    }

    #[test]
    fn round_trip_for_both_algorithms() {
        for alg in [SigningAlg::EdDSA, SigningAlg::ES256] {
            let (issuer, _dir) = issuer_with(alg);
            let token = issue(&issuer, &session());
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            let claims = issuer.verify(&token, 1_001).unwrap();
            assert_eq!(claims.sub, "user-1");
            assert_eq!(claims.jti, "ses_1");
            assert_eq!(claims.scope, "tools:read tools:call");
            assert_eq!(claims.exp, 1_900);
        }
    }

    #[test]
    fn remembered_tokens_still_get_their_time_window_checked() {
        let (issuer, _dir) = issuer_with(SigningAlg::EdDSA);
        let token = issue(&issuer, &session());
        assert!(issuer.verify(&token, 1_001).is_ok());
        assert!(issuer.verify(&token, 1_002).is_ok(), "from the cache");
        assert_eq!(issuer.verify(&token, 1_900), Err(TokenReason::Expired));
        assert_eq!(issuer.verify(&token, 999), Err(TokenReason::NotYetValid));
        // A tampered copy is not the same token.
        let tampered = format!("{token}x");
        assert_ne!(
            issuer.verify(&tampered, 1_001),
            issuer.verify(&token, 1_001)
        );
    }

    #[test]
    fn time_window_is_enforced_with_the_given_clock() {
        let (issuer, _dir) = issuer_with(SigningAlg::EdDSA);
        let token = issue(&issuer, &session());
        assert_eq!(issuer.verify(&token, 999), Err(TokenReason::NotYetValid));
        assert_eq!(issuer.verify(&token, 1_900), Err(TokenReason::Expired));
    }

    #[test]
    fn tampering_and_foreign_keys_are_caught() {
        let (issuer, _dir) = issuer_with(SigningAlg::EdDSA);
        let (other, _dir2) = issuer_with(SigningAlg::EdDSA);
        let token = issue(&issuer, &session());

        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let mut claims = session();
        claims.subject = "admin".to_owned();
        let forged_payload = issue(&other, &claims);
        parts[1] = forged_payload.split('.').nth(1).unwrap().to_owned();
        assert_eq!(
            issuer.verify(&parts.join("."), 1_001),
            Err(TokenReason::BadSignature)
        );

        let foreign = issue(&other, &session());
        assert_eq!(issuer.verify(&foreign, 1_001), Err(TokenReason::UnknownKey));
        assert_eq!(issuer.verify("", 1_001), Err(TokenReason::Malformed));
        assert_eq!(issuer.verify("a.b.c", 1_001), Err(TokenReason::Malformed));
        assert_eq!(
            issuer.verify(&"x".repeat(10_000), 1_001),
            Err(TokenReason::Malformed)
        );
    }

    #[test]
    fn jwks_lists_kid_alg_use_and_kid_is_a_thumbprint() {
        let (issuer, _dir) = issuer_with(SigningAlg::EdDSA);
        let jwks: serde_json::Value = serde_json::from_str(issuer.ring().jwks_json()).unwrap();
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], "OKP");
        assert_eq!(key["alg"], "EdDSA");
        assert_eq!(key["use"], "sig");
        let thumb_input = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":{}}}"#, key["x"]);
        let kid = URL_SAFE_NO_PAD.encode(SecretHash::of(thumb_input.as_bytes()).as_bytes());
        assert_eq!(key["kid"], kid);
    }
}
