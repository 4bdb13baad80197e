//! mcp-auth access tokens: their claims, and verifying them from a JWK Set
//! alone.
//!
//! An mcp-auth access token is a JWT per RFC 9068 (`typ: at+jwt`), signed
//! with Ed25519 (`EdDSA`) or ECDSA P-256 (`ES256`) by a key the server
//! publishes in its JWK Set (`GetJwks`). [`JwkSet`] holds the published
//! keys and checks a token's form (strictly: no `crit`, UTF-8 JSON only,
//! low-`s` ES256, see [`es256`]), key, signature and issuer;
//! [`check_window`] checks its time window at a clock the caller supplies
//! ([`check_window_with_leeway`] with some tolerance for clock skew), and
//! [`check_lifetime`] that it lives no longer than its issuer allows.
//! Audience, scopes and revocation are the caller's to check on the
//! returned [`AccessClaims`].
//!
//! The server, `mcp-auth bench` and the resource-server SDK all verify
//! through this crate, so there is one parser and one signature check.

#![forbid(unsafe_code)]

use std::collections::HashMap;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, UnparsedPublicKey, VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use serde::{Deserialize, Deserializer, Serialize};

pub mod es256;

/// The JOSE `typ` of access tokens (RFC 9068 section 2.1).
pub const TOKEN_TYPE: &str = "at+jwt";

/// Longest token looked at; anything longer is [`TokenReason::Malformed`].
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The claims of an access token (RFC 9068 section 2.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The issuer: the authorization server's URL.
    pub iss: String,
    /// The user or service the token speaks for.
    pub sub: String,
    /// The resource (MCP server) the token is meant for.
    pub aud: String,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Not before, Unix seconds.
    pub nbf: i64,
    /// This token's own id (unique per token, RFC 7519 section 4.1.7).
    pub jti: String,
    /// The session the token belongs to. Tokens issued before sessions had
    /// their own claim carry the session in `jti`; see
    /// [`AccessClaims::session_id`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Id of the credential that created the session.
    pub client_id: String,
    /// Space-separated scopes.
    pub scope: String,
}

impl AccessClaims {
    /// The token's scopes.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.split(' ').filter(|s| !s.is_empty())
    }

    /// The session the token belongs to: `sid`, or `jti` for tokens issued
    /// before `sid` existed.
    pub fn session_id(&self) -> &str {
        self.sid.as_deref().unwrap_or(&self.jti)
    }
}

/// Why a token is not active.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenReason {
    /// Past its `exp`, or its lifetime (`exp - iat`) is longer than the
    /// verifier allows (see [`check_lifetime`]).
    Expired,
    /// Its session was revoked.
    Revoked,
    /// The signature does not match the key, the algorithm is not the
    /// key's, or an ES256 signature is not in its low-`s` form.
    BadSignature,
    /// Not a compact JWS of an access token: not three base64url parts,
    /// a header or payload that is not UTF-8 JSON, claims that are not an
    /// object or lack one, a `typ` other than `at+jwt`, no `kid`, or a
    /// `crit` header (no extension is understood).
    Malformed,
    /// Its `aud` is not the one asked for.
    WrongAudience,
    /// It lacks a scope that was asked for.
    InsufficientScope,
    /// Before its `nbf`.
    NotYetValid,
    /// Its `kid` names no key of the set.
    UnknownKey,
    /// Its `iss` is not an accepted issuer.
    WrongIssuer,
}

/// Why a JWK Set document could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The document is not a JWK Set.
    #[error("not a JWK Set: {0}")]
    Parse(String),
    /// A key is of a type or algorithm mcp-auth never signs with.
    #[error("key {kid:?}: {message}")]
    Key {
        /// The key's id.
        kid: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The signature algorithms of mcp-auth's keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Alg {
    EdDSA,
    Es256,
}

impl Alg {
    fn name(self) -> &'static str {
        match self {
            Alg::EdDSA => "EdDSA",
            Alg::Es256 => "ES256",
        }
    }

    fn verification(self) -> &'static dyn VerificationAlgorithm {
        match self {
            Alg::EdDSA => &ED25519,
            Alg::Es256 => &ECDSA_P256_SHA256_FIXED,
        }
    }
}

/// One public key of the set, ready to verify.
#[derive(Clone)]
struct VerifyingKey {
    alg: Alg,
    /// The raw public key: Ed25519 `x`, or the uncompressed P-256 point.
    raw: Vec<u8>,
}

/// The JOSE header members looked at; others are ignored (RFC 7515
/// section 4), except that any `crit` makes the token unacceptable.
#[derive(Deserialize)]
struct Header {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// True for a member that is there at all, whatever its value.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// A base64url part of a compact JWS that must hold UTF-8 JSON.
fn json_part(part: &str) -> Result<String, TokenReason> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenReason::Malformed)?;
    String::from_utf8(bytes).map_err(|_| TokenReason::Malformed)
}

/// The public keys of an mcp-auth server, from its JWK Set document, and
/// the issuers whose tokens they verify.
#[derive(Clone)]
pub struct JwkSet {
    keys: HashMap<String, VerifyingKey>,
    issuers: Vec<String>,
}

impl std::fmt::Debug for JwkSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwkSet")
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .field("issuers", &self.issuers)
            .finish()
    }
}

impl JwkSet {
    /// Parses a JWK Set document (`{"keys": [...]}`). Only the key types
    /// mcp-auth signs with are accepted: `OKP`/`Ed25519` with `alg`
    /// `EdDSA`, and `EC`/`P-256` with `alg` `ES256`; each key needs a `kid`.
    /// Tokens must carry one of `issuers` as `iss`.
    ///
    /// # Errors
    /// The document is not a JWK Set, or holds another kind of key (a
    /// symmetric key in particular is refused, so a token can never be
    /// checked against a shared secret).
    pub fn from_json(jwks: &str, issuers: &[&str]) -> Result<Self, JwksError> {
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(jwks).map_err(|e| JwksError::Parse(e.to_string()))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone().unwrap_or_default();
            let key = verifying_key(jwk).map_err(|message| JwksError::Key {
                kid: kid.clone(),
                message,
            })?;
            if kid.is_empty() {
                return Err(JwksError::Key {
                    kid,
                    message: "has no kid".to_owned(),
                });
            }
            keys.insert(kid, key);
        }
        Ok(JwkSet {
            keys,
            issuers: issuers.iter().map(|s| (*s).to_owned()).collect(),
        })
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether the set holds the key `kid`.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// Removes the key `kid` (one its issuer revoked): its tokens then
    /// verify as [`TokenReason::UnknownKey`]. Whether it was there.
    pub fn remove_key(&mut self, kid: &str) -> bool {
        self.keys.remove(kid).is_some()
    }

    /// Checks a token's form, key, signature and issuer; not its time
    /// window (see [`check_window`] and [`check_lifetime`]), audience,
    /// scopes or revocation. The form is strict: exactly the compact JWS
    /// mcp-auth writes, UTF-8 JSON header and claims, no `crit`, and for
    /// ES256 the low-`s` signature (see [`es256`]).
    ///
    /// # Errors
    /// Why the token is not acceptable.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenReason> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(TokenReason::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenReason::Malformed);
        };
        let signing_input = &token[..header.len() + 1 + payload.len()];
        let header: Header =
            serde_json::from_str(&json_part(header)?).map_err(|_| TokenReason::Malformed)?;
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case(TOKEN_TYPE) || t.eq_ignore_ascii_case("application/at+jwt")
        });
        // RFC 7515 section 4.1.11: an extension the recipient does not
        // understand (and mcp-auth understands none, `b64` included) must
        // be refused; an empty list is not allowed at all.
        if !typ_ok || header.crit {
            return Err(TokenReason::Malformed);
        }
        let kid = header.kid.as_deref().ok_or(TokenReason::Malformed)?;
        let key = self.keys.get(kid).ok_or(TokenReason::UnknownKey)?;
        if header.alg != key.alg.name() {
            return Err(TokenReason::BadSignature);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenReason::Malformed)?;
        if key.alg == Alg::Es256 && !es256::is_low_s(&signature) {
            return Err(TokenReason::BadSignature);
        }
        UnparsedPublicKey::new(key.alg.verification(), &key.raw)
            .verify(signing_input.as_bytes(), &signature)
            .map_err(|_| TokenReason::BadSignature)?;
        let payload = json_part(payload)?;
        // The claims are a JSON object (RFC 7519 section 7.2), not an
        // array that happens to deserialize into the same struct.
        if !payload.trim_start().starts_with('{') {
            return Err(TokenReason::Malformed);
        }
        let claims: AccessClaims =
            serde_json::from_str(&payload).map_err(|_| TokenReason::Malformed)?;
        if !self.issuers.contains(&claims.iss) {
            return Err(TokenReason::WrongIssuer);
        }
        Ok(claims)
    }

    /// A token's signature, decoded once, with the key its header names:
    /// for measuring what the signature check alone costs
    /// (`mcp-auth bench --scenario signature`). `None` if the token is not
    /// a compact JWS under a key of the set.
    pub fn bare_signature(&self, token: &str) -> Option<BareSignature> {
        let (signing_input, signature) = token.rsplit_once('.')?;
        let (header, _) = signing_input.split_once('.')?;
        let header: Header = serde_json::from_str(&json_part(header).ok()?).ok()?;
        let key = self.keys.get(header.kid.as_deref()?)?;
        Some(BareSignature {
            message: signing_input.as_bytes().to_vec(),
            signature: URL_SAFE_NO_PAD.decode(signature).ok()?,
            key: UnparsedPublicKey::new(key.alg.verification(), key.raw.clone()),
        })
    }
}

/// A decoded signature and its public key: the check with no parsing.
pub struct BareSignature {
    message: Vec<u8>,
    signature: Vec<u8>,
    key: UnparsedPublicKey<Vec<u8>>,
}

impl BareSignature {
    /// Whether the signature is valid.
    pub fn verify(&self) -> bool {
        self.key.verify(&self.message, &self.signature).is_ok()
    }
}

fn verifying_key(jwk: &Jwk) -> Result<VerifyingKey, String> {
    let alg = jwk
        .common
        .key_algorithm
        .map(|a| format!("{a:?}"))
        .unwrap_or_default();
    let alg = match (&jwk.algorithm, alg.as_str()) {
        (AlgorithmParameters::OctetKeyPair(p), "EdDSA") if p.curve == EllipticCurve::Ed25519 => {
            Alg::EdDSA
        }
        (AlgorithmParameters::EllipticCurve(p), "ES256") if p.curve == EllipticCurve::P256 => {
            Alg::Es256
        }
        _ => {
            return Err(
                "only OKP Ed25519 keys with alg EdDSA and EC P-256 keys with alg ES256 are accepted"
                    .to_owned(),
            );
        }
    };
    let coordinate = |v: &str| match URL_SAFE_NO_PAD.decode(v) {
        Ok(bytes) if bytes.len() == 32 => Ok(bytes),
        Ok(_) => Err("a key coordinate is not 32 bytes".to_owned()),
        Err(e) => Err(e.to_string()),
    };
    let raw = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(p) => coordinate(&p.x)?,
        AlgorithmParameters::EllipticCurve(p) => {
            let mut point = vec![4u8];
            point.extend(coordinate(&p.x)?);
            point.extend(coordinate(&p.y)?);
            point
        }
        _ => return Err("unsupported key".to_owned()),
    };
    Ok(VerifyingKey { alg, raw })
}

/// Checks that a token was issued for at most `max_seconds` (`exp - iat`):
/// a token signed with the right key but living longer than the issuer's
/// configured maximum was not issued by it as configured.
///
/// # Errors
/// [`TokenReason::Expired`].
pub fn check_lifetime(claims: &AccessClaims, max_seconds: i64) -> Result<(), TokenReason> {
    if claims.exp.saturating_sub(claims.iat) > max_seconds {
        return Err(TokenReason::Expired);
    }
    Ok(())
}

/// Checks a token's time window at `now` (Unix seconds): not before `nbf`,
/// and before `exp`.
///
/// # Errors
/// [`TokenReason::NotYetValid`] or [`TokenReason::Expired`].
pub fn check_window(claims: &AccessClaims, now: i64) -> Result<(), TokenReason> {
    check_window_with_leeway(claims, now, 0)
}

/// [`check_window`] for a verifier whose clock may be off from the
/// issuer's by up to `leeway` seconds (RFC 7519 sections 4.1.4 and 4.1.5
/// allow "some small leeway"): a token is accepted from `nbf - leeway`
/// and until `exp + leeway` (exclusive). A negative leeway counts as 0.
///
/// # Errors
/// [`TokenReason::NotYetValid`] or [`TokenReason::Expired`].
pub fn check_window_with_leeway(
    claims: &AccessClaims,
    now: i64,
    leeway: i64,
) -> Result<(), TokenReason> {
    let leeway = leeway.max(0);
    if claims.nbf > now.saturating_add(leeway) {
        return Err(TokenReason::NotYetValid);
    }
    if claims.exp.saturating_add(leeway) <= now {
        return Err(TokenReason::Expired);
    }
    Ok(())
}

/// The claims of a token its issuer has already vouched for (an active
/// `VerifyToken` answer), read without checking the signature, for what
/// the answer does not carry (its `jti`). Never use this to decide
/// whether a token is acceptable: [`JwkSet::verify`] does that.
///
/// # Errors
/// [`TokenReason::Malformed`] if the token is not a compact JWS whose
/// payload holds access-token claims.
pub fn vouched_claims(token: &str) -> Result<AccessClaims, TokenReason> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenReason::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenReason::Malformed);
    };
    let payload = json_part(payload)?;
    if !payload.trim_start().starts_with('{') {
        return Err(TokenReason::Malformed);
    }
    serde_json::from_str(&payload).map_err(|_| TokenReason::Malformed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn symmetric_and_foreign_keys_are_refused() {
        let oct = r#"{"keys":[{"kty":"oct","kid":"k","alg":"HS256","k":"c2VjcmV0"}]}"#;
        assert!(matches!(
            JwkSet::from_json(oct, &["i"]),
            Err(JwksError::Key { .. })
        ));
        assert!(matches!(
            JwkSet::from_json("{", &["i"]),
            Err(JwksError::Parse(_))
        ));
        let set = JwkSet::from_json(r#"{"keys":[]}"#, &["i"]).unwrap();
        assert!(set.is_empty());
        assert_eq!(set.verify(""), Err(TokenReason::Malformed));
        assert_eq!(set.verify("a.b.c"), Err(TokenReason::Malformed));
        assert_eq!(
            set.verify(&"x".repeat(MAX_TOKEN_LEN + 1)),
            Err(TokenReason::Malformed)
        );
        assert!(set.bare_signature("a.b.c").is_none());
    }

    #[test]
    fn session_id_falls_back_to_jti() {
        let mut c = AccessClaims {
            iss: "i".into(),
            sub: "s".into(),
            aud: "a".into(),
            exp: 2,
            iat: 1,
            nbf: 1,
            jti: "ses_old".into(),
            sid: None,
            client_id: "k".into(),
            scope: "a b".into(),
        };
        assert_eq!(c.session_id(), "ses_old");
        c.sid = Some("ses_new".into());
        assert_eq!(c.session_id(), "ses_new");
        assert_eq!(c.scopes().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(check_window(&c, 0), Err(TokenReason::NotYetValid));
        assert_eq!(check_window(&c, 1), Ok(()));
        assert_eq!(check_window(&c, 2), Err(TokenReason::Expired));
    }

    #[test]
    fn leeway_widens_the_window_both_ways() {
        let c = AccessClaims {
            iss: "i".into(),
            sub: "s".into(),
            aud: "a".into(),
            exp: 100,
            iat: 50,
            nbf: 50,
            jti: "at_1".into(),
            sid: None,
            client_id: "k".into(),
            scope: String::new(),
        };
        assert_eq!(
            check_window_with_leeway(&c, 44, 5),
            Err(TokenReason::NotYetValid)
        );
        assert_eq!(check_window_with_leeway(&c, 45, 5), Ok(()));
        assert_eq!(check_window_with_leeway(&c, 104, 5), Ok(()));
        assert_eq!(
            check_window_with_leeway(&c, 105, 5),
            Err(TokenReason::Expired)
        );
        assert_eq!(
            check_window_with_leeway(&c, 100, -3),
            Err(TokenReason::Expired)
        );
        assert_eq!(
            check_window_with_leeway(&c, i64::MAX, i64::MAX),
            Err(TokenReason::Expired)
        );
    }
}

#[cfg(test)]
mod strictness {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
    };
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    use super::*;

    const ISS: &str = "https://auth.example";

    enum Signer {
        Ed(Ed25519KeyPair),
        Ec(EcdsaKeyPair),
    }

    /// A key of `alg`, and the set that publishes it as kid `k1`.
    fn key(alg: &str) -> (Signer, JwkSet) {
        let rng = SystemRandom::new();
        let (signer, jwk) = if alg == "EdDSA" {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
            let kp = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
            let x = URL_SAFE_NO_PAD.encode(kp.public_key().as_ref());
            let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": x});
            (Signer::Ed(kp), jwk)
        } else {
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let kp =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
            let point = kp.public_key().as_ref();
            let jwk = json!({
                "kty": "EC", "crv": "P-256",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..]),
            });
            (Signer::Ec(kp), jwk)
        };
        let mut jwk = jwk;
        jwk["kid"] = "k1".into();
        jwk["alg"] = alg.into();
        jwk["use"] = "sig".into();
        let set = JwkSet::from_json(&json!({ "keys": [jwk] }).to_string(), &[ISS]).unwrap();
        (signer, set)
    }

    fn sign(signer: &Signer, header: &[u8], payload: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = match signer {
            Signer::Ed(kp) => kp.sign(input.as_bytes()).as_ref().to_vec(),
            Signer::Ec(kp) => {
                // As mcp-auth signs: in the low-s form.
                let mut sig = kp
                    .sign(&SystemRandom::new(), input.as_bytes())
                    .unwrap()
                    .as_ref()
                    .to_vec();
                es256::normalize(&mut sig);
                sig
            }
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn header(alg: &str, extra: serde_json::Value) -> Vec<u8> {
        let mut h = json!({"typ": "at+jwt", "alg": alg, "kid": "k1"});
        for (k, v) in extra.as_object().unwrap() {
            h[k] = v.clone();
        }
        serde_json::to_vec(&h).unwrap()
    }

    fn claims(lifetime: i64) -> serde_json::Value {
        json!({
            "iss": ISS, "sub": "alice", "aud": "aud", "exp": 1_000 + lifetime,
            "iat": 1_000, "nbf": 1_000, "jti": "at_1", "sid": "ses_1",
            "client_id": "key_1", "scope": "tools:read",
        })
    }

    fn payload() -> Vec<u8> {
        serde_json::to_vec(&claims(600)).unwrap()
    }

    #[test]
    fn tokens_in_our_form_verify() {
        for alg in ["EdDSA", "ES256"] {
            let (signer, set) = key(alg);
            for _ in 0..8 {
                let token = sign(&signer, &header(alg, json!({})), &payload());
                let claims = set.verify(&token).unwrap();
                assert_eq!(claims.sub, "alice");
                assert_eq!(vouched_claims(&token).unwrap(), claims);
                assert!(set.bare_signature(&token).unwrap().verify());
            }
            let token = sign(&signer, &header(alg, json!({})), &payload());
            let mut without = set.clone();
            assert!(without.contains("k1"));
            assert!(without.remove_key("k1"));
            assert!(!without.remove_key("k1"));
            assert_eq!(without.verify(&token), Err(TokenReason::UnknownKey));
            assert!(set.verify(&token).is_ok());
        }
    }

    #[test]
    fn any_crit_header_is_refused() {
        for alg in ["EdDSA", "ES256"] {
            let (signer, set) = key(alg);
            for crit in [
                json!({"crit": ["urn:example:unknown"], "urn:example:unknown": 1}),
                json!({"crit": ["b64"], "b64": false}),
                json!({"crit": []}),
                json!({"crit": null}),
            ] {
                let token = sign(&signer, &header(alg, crit.clone()), &payload());
                assert_eq!(set.verify(&token), Err(TokenReason::Malformed), "{crit}");
            }
        }
    }

    #[test]
    fn header_and_claims_must_be_utf8_json_objects() {
        let (signer, set) = key("EdDSA");
        let mut not_utf8 = payload();
        let end = not_utf8.pop().unwrap();
        not_utf8.extend_from_slice(b",\"x\":\"\xff\xfe\"");
        not_utf8.push(end);
        let c = claims(600);
        let array = serde_json::to_vec(&json!([
            c["iss"],
            c["sub"],
            c["aud"],
            c["exp"],
            c["iat"],
            c["nbf"],
            c["jti"],
            c["sid"],
            c["client_id"],
            c["scope"]
        ]))
        .unwrap();
        let mut bad_header = header("EdDSA", json!({}));
        let end = bad_header.pop().unwrap();
        bad_header.extend_from_slice(b",\"x\":\"\xc3\"");
        bad_header.push(end);
        let good_header = header("EdDSA", json!({}));
        for (what, h, p) in [
            ("claims not UTF-8", &good_header, &not_utf8),
            ("claims an array", &good_header, &array),
            ("header not UTF-8", &bad_header, &payload()),
            ("claims not JSON", &good_header, &b"alice".to_vec()),
        ] {
            let token = sign(&signer, h, p);
            assert_eq!(set.verify(&token), Err(TokenReason::Malformed), "{what}");
        }
        // Four parts, or padding, are not a compact JWS either.
        let token = sign(&signer, &good_header, &payload());
        assert_eq!(
            set.verify(&format!("{token}.x")),
            Err(TokenReason::Malformed)
        );
        assert_eq!(
            set.verify(&format!("{token}=")),
            Err(TokenReason::Malformed)
        );
    }

    #[test]
    fn high_s_es256_signatures_are_refused() {
        let (signer, set) = key("ES256");
        for _ in 0..16 {
            let low = sign(&signer, &header("ES256", json!({})), &payload());
            assert!(set.verify(&low).is_ok());
            let (input, sig) = low.rsplit_once('.').unwrap();
            let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
            // The high twin: (r, n - s), valid ECDSA all the same.
            let mut high = sig.clone();
            high[32..].copy_from_slice(&negate(&sig[32..]));
            let high = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&high));
            assert_eq!(set.verify(&high), Err(TokenReason::BadSignature));
        }
    }

    /// `n - s` for the P-256 order `n`.
    fn negate(s: &[u8]) -> Vec<u8> {
        const N: [u8; 32] = [
            0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2,
            0xfc, 0x63, 0x25, 0x51,
        ];
        let mut out = vec![0u8; 32];
        let mut borrow = 0i32;
        for i in (0..32).rev() {
            let d = i32::from(N[i]) - i32::from(s[i]) - borrow;
            borrow = i32::from(d < 0);
            out[i] = u8::try_from(d.rem_euclid(256)).unwrap();
        }
        out
    }

    #[test]
    fn lifetimes_beyond_the_maximum_are_refused() {
        let (signer, set) = key("EdDSA");
        let at_max = sign(
            &signer,
            &header("EdDSA", json!({})),
            &serde_json::to_vec(&claims(3600)).unwrap(),
        );
        let c = set.verify(&at_max).unwrap();
        assert_eq!(check_lifetime(&c, 3600), Ok(()));
        assert_eq!(check_lifetime(&c, 3599), Err(TokenReason::Expired));
    }
}
