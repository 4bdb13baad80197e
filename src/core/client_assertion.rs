//! `private_key_jwt` (RFC 7523 section 2.2, OpenID Connect Core section
//! 9): checking a client assertion, a JWT the client signed with a key of
//! its registered JWK Set, and refusing one seen before (its `jti`) until
//! it expires.
//!
//! The signature is checked with `jsonwebtoken` (asymmetric algorithms
//! only; the header's `alg` must fit the key); every time check uses the
//! server's clock, never the system time: `exp` is required, in the future
//! and at most [`MAX_ASSERTION_LIFETIME`] ahead (and after `iat` when
//! given); `nbf` and `iat` may not be in the future beyond
//! [`CLOCK_SKEW`].

use std::collections::HashMap;
use std::sync::Mutex;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;

use crate::store::OAuthClientRecord;

/// The `client_assertion_type` of a JWT client assertion.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Longest lifetime of an assertion, seconds (`exp` from now, and from
/// `iat`).
pub const MAX_ASSERTION_LIFETIME: i64 = 300;
/// Tolerated clock difference for `iat` and `nbf`, seconds.
pub const CLOCK_SKEW: i64 = 60;
/// Longest assertion looked at, bytes.
const MAX_ASSERTION_LEN: usize = 8 * 1024;
/// Longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;
/// Most assertions remembered at once; past it (after dropping expired
/// ones) new assertions are refused until some expire.
const MAX_SEEN: usize = 100_000;

/// Why a client assertion is refused. Each is `invalid_client`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AssertionError {
    /// Not a JWT, too long, or its claims are not the expected ones.
    #[error("the client assertion is not a well-formed JWT")]
    Malformed,
    /// The algorithm is not an asymmetric one, or fits no key.
    #[error("the client assertion's alg is not accepted (RS*, PS*, ES256, ES384, EdDSA)")]
    Algorithm,
    /// No key of the client's JWK Set verifies it.
    #[error("the client assertion's signature does not verify with the client's registered keys")]
    Signature,
    /// `iss` or `sub` is not the client id.
    #[error("the client assertion's iss and sub must both be the client id")]
    Subject,
    /// `aud` names neither the token endpoint nor the issuer.
    #[error("the client assertion's aud must be the token endpoint URL or the issuer")]
    Audience,
    /// Expired, not yet valid, or living too long.
    #[error("the client assertion is expired, not yet valid, or lives longer than 300 seconds")]
    Lifetime,
    /// No `jti`, or one too long.
    #[error("the client assertion needs a jti of at most 256 bytes")]
    Jti,
    /// The same `jti` was presented before.
    #[error("the client assertion was used before (its jti is spent)")]
    Replayed,
    /// Too many assertions are alive to remember another.
    #[error("too many client assertions are in flight; retry shortly")]
    Full,
}

impl AssertionError {
    /// A stable name for audit records and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            AssertionError::Malformed => "ASSERTION_MALFORMED",
            AssertionError::Algorithm => "ASSERTION_ALG",
            AssertionError::Signature => "ASSERTION_SIGNATURE",
            AssertionError::Subject => "ASSERTION_SUBJECT",
            AssertionError::Audience => "ASSERTION_AUDIENCE",
            AssertionError::Lifetime => "ASSERTION_LIFETIME",
            AssertionError::Jti => "ASSERTION_JTI",
            AssertionError::Replayed => "ASSERTION_REPLAYED",
            AssertionError::Full => "ASSERTION_CACHE_FULL",
        }
    }
}

/// The claims of a client assertion this server reads.
#[derive(Deserialize)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: Audience,
    exp: i64,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
}

/// `aud`: one string or several.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains_any(&self, wanted: &[&str]) -> bool {
        match self {
            Audience::One(a) => wanted.contains(&a.as_str()),
            Audience::Many(all) => all.iter().any(|a| wanted.contains(&a.as_str())),
        }
    }
}

/// The `sub` of an assertion, read without checking it, to find the client
/// whose keys check it. `None` when it is not a JWT with a string `sub`.
pub(crate) fn unverified_subject(assertion: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Sub {
        sub: String,
    }
    if assertion.len() > MAX_ASSERTION_LEN {
        return None;
    }
    jsonwebtoken::dangerous::insecure_decode::<Sub>(assertion)
        .ok()
        .map(|d| d.claims.sub)
}

/// The family of keys an algorithm verifies with; `None` for HMAC (no
/// shared secrets here).
fn asymmetric_family(alg: Algorithm) -> Option<AlgorithmFamily> {
    match alg.family() {
        AlgorithmFamily::Hmac => None,
        f => Some(f),
    }
}

fn jwk_family(jwk: &Jwk) -> Option<AlgorithmFamily> {
    match jwk.algorithm {
        AlgorithmParameters::RSA(_) => Some(AlgorithmFamily::Rsa),
        AlgorithmParameters::EllipticCurve(_) => Some(AlgorithmFamily::Ec),
        AlgorithmParameters::OctetKeyPair(_) => Some(AlgorithmFamily::Ed),
        _ => None,
    }
}

/// Checks `assertion` as `client`'s, at `now`, for a token endpoint known
/// by the URLs `audiences`; returns its `jti` and `exp` for the replay
/// check.
///
/// # Errors
/// Why it is refused.
pub(crate) fn check(
    client: &OAuthClientRecord,
    assertion: &str,
    audiences: &[&str],
    now: i64,
) -> Result<(String, i64), AssertionError> {
    if assertion.len() > MAX_ASSERTION_LEN {
        return Err(AssertionError::Malformed);
    }
    let header = jsonwebtoken::decode_header(assertion).map_err(|_| AssertionError::Malformed)?;
    let family = asymmetric_family(header.alg).ok_or(AssertionError::Algorithm)?;
    let set: JwkSet = client
        .jwks
        .as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .ok_or(AssertionError::Signature)?;
    let mut validation = Validation::new(header.alg);
    // Time, audience and required claims are checked below, by our clock.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let mut fits_a_key = false;
    let mut claims = None;
    for jwk in &set.keys {
        if header.kid.is_some() && jwk.common.key_id != header.kid {
            continue;
        }
        if jwk_family(jwk) != Some(family) {
            continue;
        }
        if jwk
            .common
            .key_algorithm
            .is_some_and(|alg| alg != KeyAlgorithm::from(header.alg))
        {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(jwk) else {
            continue;
        };
        fits_a_key = true;
        match jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation) {
            Ok(data) => {
                claims = Some(data.claims);
                break;
            }
            Err(e) => {
                if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::Json(_)) {
                    return Err(AssertionError::Malformed);
                }
            }
        }
    }
    let Some(claims) = claims else {
        return Err(if fits_a_key {
            AssertionError::Signature
        } else {
            AssertionError::Algorithm
        });
    };
    if claims.iss != client.client_id || claims.sub != client.client_id {
        return Err(AssertionError::Subject);
    }
    if !claims.aud.contains_any(audiences) {
        return Err(AssertionError::Audience);
    }
    // The client signs its times as it likes: saturating, so `i64`'s ends
    // are a long lifetime (or a past `exp`), not an overflow.
    let too_long = claims.exp.saturating_sub(now) > MAX_ASSERTION_LIFETIME
        || claims
            .iat
            .is_some_and(|iat| claims.exp.saturating_sub(iat) > MAX_ASSERTION_LIFETIME);
    let early = |t: Option<i64>| t.is_some_and(|t| t > now + CLOCK_SKEW);
    if claims.exp <= now || too_long || early(claims.iat) || early(claims.nbf) {
        return Err(AssertionError::Lifetime);
    }
    let jti = claims
        .jti
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
        .ok_or(AssertionError::Jti)?;
    Ok((jti, claims.exp))
}

/// The `jti`s of client assertions seen, per client, until they expire.
#[derive(Default)]
pub(crate) struct SeenAssertions {
    /// `client_id` and `jti` → `exp`.
    seen: Mutex<HashMap<(String, String), i64>>,
}

impl SeenAssertions {
    /// Notes `jti` of `client_id`, alive until `exp`, at `now`.
    ///
    /// # Errors
    /// `Replayed` when it was seen and has not expired; `Full` when too
    /// many assertions are alive.
    pub fn spend(
        &self,
        client_id: &str,
        jti: &str,
        exp: i64,
        now: i64,
    ) -> Result<(), AssertionError> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let key = (client_id.to_owned(), jti.to_owned());
        if seen.get(&key).is_some_and(|until| *until > now) {
            return Err(AssertionError::Replayed);
        }
        if seen.len() >= MAX_SEEN {
            seen.retain(|_, until| *until > now);
            if seen.len() >= MAX_SEEN {
                return Err(AssertionError::Full);
            }
        }
        seen.insert(key, exp);
        Ok(())
    }

    /// Drops the expired entries (maintenance); returns how many are left.
    pub fn evict_expired(&self, now: i64) -> usize {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, until| *until > now);
        seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jti_is_spent_until_it_expires_per_client() {
        let seen = SeenAssertions::default();
        seen.spend("cli_a", "j1", 100, 10).unwrap();
        assert_eq!(
            seen.spend("cli_a", "j1", 100, 50),
            Err(AssertionError::Replayed)
        );
        seen.spend("cli_b", "j1", 100, 50).unwrap();
        seen.spend("cli_a", "j1", 200, 100).unwrap();
        assert_eq!(seen.evict_expired(150), 1);
    }

    /// A client with one Ed25519 key, and assertions it signs with it.
    fn signing_client() -> (OAuthClientRecord, impl Fn(serde_json::Value) -> String) {
        use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&aws_lc_rs::rand::SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let client = OAuthClientRecord {
            client_id: "cli_a".to_owned(),
            name: "a".to_owned(),
            secret_hash: None,
            secret_prefix: None,
            previous_secret: None,
            secret_rotated_at: None,
            redirect_uris: Vec::new(),
            grant_types: vec![crate::store::GrantType::ClientCredentials],
            allowed_scopes: vec!["tools:call".to_owned()],
            allowed_resources: Vec::new(),
            token_endpoint_auth_method: crate::store::AuthMethod::PrivateKeyJwt,
            jwks: Some(format!(
                r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","kid":"k1","x":"{x}"}}]}}"#
            )),
            created_at: 0,
            updated_at: 0,
            disabled: false,
            tokens_valid_after: None,
            origin: crate::store::ClientOrigin::Registered,
            last_grant_at: None,
            skip_consent: false,
        };
        let key = jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref());
        let sign = move |claims: serde_json::Value| {
            jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::EdDSA), &claims, &key)
                .unwrap()
        };
        (client, sign)
    }

    /// Found by the `jwt` fuzz target's client-assertion mode: `exp` or
    /// `iat` at `i64`'s ends overflowed the lifetime arithmetic (a panic
    /// with overflow checks, a wrapped lifetime without).
    #[test]
    fn times_at_the_ends_of_i64_are_refused_not_overflowed() {
        let (client, sign) = signing_client();
        let aud = ["https://auth.example.com/token"];
        let now = 1_700_000_000;
        let claims = |exp: i64, iat: Option<i64>| {
            let mut c = serde_json::json!({
                "iss": "cli_a", "sub": "cli_a", "aud": aud[0], "exp": exp, "jti": "j1",
            });
            if let Some(iat) = iat {
                c["iat"] = iat.into();
            }
            sign(c)
        };
        assert_eq!(
            check(&client, &claims(now + 60, Some(now)), &aud, now).map(|(j, _)| j),
            Ok("j1".to_owned())
        );
        for (exp, iat) in [
            (i64::MIN, None),
            (i64::MAX, None),
            (now + 60, Some(i64::MIN)),
            (i64::MAX, Some(i64::MIN)),
            (i64::MIN, Some(i64::MAX)),
        ] {
            assert_eq!(
                check(&client, &claims(exp, iat), &aud, now),
                Err(AssertionError::Lifetime),
                "exp {exp}, iat {iat:?}"
            );
        }
    }

    #[test]
    fn garbage_has_no_subject() {
        assert_eq!(unverified_subject("a.b.c"), None);
        assert_eq!(unverified_subject(""), None);
        assert_eq!(unverified_subject(&"x".repeat(20_000)), None);
    }
}
