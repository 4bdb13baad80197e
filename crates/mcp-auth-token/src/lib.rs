//! mcp-auth access tokens: their claims, and verifying them from a JWK Set
//! alone.
//!
//! An mcp-auth access token is a JWT per RFC 9068 (`typ: at+jwt`), signed
//! with Ed25519 (`EdDSA`) or ECDSA P-256 (`ES256`) by a key the server
//! publishes in its JWK Set (`GetJwks`). [`JwkSet`] holds the published
//! keys and checks a token's form, key, signature and issuer;
//! [`check_window`] checks its time window at a clock the caller supplies.
//! Audience, scopes and revocation are the caller's to check on the
//! returned [`AccessClaims`].
//!
//! The server, `mcp-auth bench` and the resource-server SDK all verify
//! through this crate, so there is one parser and one signature check.

#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, UnparsedPublicKey, VerificationAlgorithm,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

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
    /// Past its `exp`.
    Expired,
    /// Its session was revoked.
    Revoked,
    /// The signature does not match the key, or the algorithm is not the
    /// key's.
    BadSignature,
    /// Not a compact JWS of an access token.
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

/// One public key of the set, ready to verify.
struct VerifyingKey {
    alg: Algorithm,
    decoding: DecodingKey,
    /// The raw public key (Ed25519 `x`, or the uncompressed P-256 point),
    /// for [`BareSignature`].
    raw: Vec<u8>,
}

/// The public keys of an mcp-auth server, from its JWK Set document, and
/// the issuers whose tokens they verify.
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

    /// Checks a token's form, key, signature and issuer; not its time
    /// window (see [`check_window`]), audience, scopes or revocation.
    ///
    /// # Errors
    /// Why the token is not acceptable.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenReason> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(TokenReason::Malformed);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenReason::Malformed)?;
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case(TOKEN_TYPE) || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(TokenReason::Malformed);
        }
        let kid = header.kid.as_deref().ok_or(TokenReason::Malformed)?;
        let key = self.keys.get(kid).ok_or(TokenReason::UnknownKey)?;
        if header.alg != key.alg {
            return Err(TokenReason::BadSignature);
        }
        let mut validation = Validation::new(key.alg);
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
        let header = jsonwebtoken::decode_header(token).ok()?;
        let key = self.keys.get(header.kid.as_deref()?)?;
        let algorithm: &'static dyn VerificationAlgorithm = match key.alg {
            Algorithm::EdDSA => &ED25519,
            Algorithm::ES256 => &ECDSA_P256_SHA256_FIXED,
            _ => return None,
        };
        Some(BareSignature {
            message: signing_input.as_bytes().to_vec(),
            signature: URL_SAFE_NO_PAD.decode(signature).ok()?,
            key: UnparsedPublicKey::new(algorithm, key.raw.clone()),
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
            Algorithm::EdDSA
        }
        (AlgorithmParameters::EllipticCurve(p), "ES256") if p.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        _ => {
            return Err(
                "only OKP Ed25519 keys with alg EdDSA and EC P-256 keys with alg ES256 are accepted"
                    .to_owned(),
            );
        }
    };
    let decoding = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let b64 = |v: &str| URL_SAFE_NO_PAD.decode(v).map_err(|e| e.to_string());
    let raw = match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(p) => b64(&p.x)?,
        AlgorithmParameters::EllipticCurve(p) => {
            let mut point = vec![4u8];
            point.extend(b64(&p.x)?);
            point.extend(b64(&p.y)?);
            point
        }
        _ => return Err("unsupported key".to_owned()),
    };
    Ok(VerifyingKey { alg, decoding, raw })
}

/// Checks a token's time window at `now` (Unix seconds): not before `nbf`,
/// and before `exp`.
///
/// # Errors
/// [`TokenReason::NotYetValid`] or [`TokenReason::Expired`].
pub fn check_window(claims: &AccessClaims, now: i64) -> Result<(), TokenReason> {
    if claims.nbf > now {
        return Err(TokenReason::NotYetValid);
    }
    if claims.exp <= now {
        return Err(TokenReason::Expired);
    }
    Ok(())
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
}
