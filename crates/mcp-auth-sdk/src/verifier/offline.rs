//! The offline check of an access token, from the JWK Set alone: what
//! `mcp_auth_token` checks (form, `typ: at+jwt`, key, algorithm,
//! signature, issuer), then this MCP server's audience (exactly), the time
//! window with the configured leeway and a sane lifetime. Pure: the keys,
//! the token and the time in, a verdict out.

use mcp_auth_token::{AccessClaims, TokenReason, check_lifetime, check_window_with_leeway};

use crate::claims::{TokenKind, Verified, application_scopes};
use crate::error::Rejection;

/// What an access token must satisfy besides its signature.
#[derive(Clone, Debug)]
pub(crate) struct Expect {
    /// The one accepted `aud`: this MCP server's resource URL.
    pub audience: String,
    /// The one accepted `iss` (the [`JwkSet`] is built for it too).
    pub issuer: String,
    /// Tolerated clock skew on `exp` and `nbf`, seconds.
    pub leeway: i64,
    /// Longest `exp - iat` accepted, seconds.
    pub max_lifetime: i64,
}

/// The reason mcp-auth's token crate gives, as the SDK's.
pub(crate) fn rejection(reason: TokenReason) -> Rejection {
    match reason {
        TokenReason::Expired => Rejection::Expired,
        TokenReason::Revoked => Rejection::Revoked,
        TokenReason::BadSignature => Rejection::BadSignature,
        TokenReason::Malformed => Rejection::Malformed,
        TokenReason::WrongAudience => Rejection::WrongAudience,
        TokenReason::InsufficientScope => Rejection::InsufficientScope,
        TokenReason::NotYetValid => Rejection::NotYetValid,
        TokenReason::UnknownKey => Rejection::UnknownKey,
        TokenReason::WrongIssuer => Rejection::WrongIssuer,
    }
}

/// The checks after the signature: issuer, audience, window, lifetime.
///
/// # Errors
/// Why the claims are refused.
pub(crate) fn check_claims(
    claims: &AccessClaims,
    expect: &Expect,
    now: i64,
) -> Result<(), Rejection> {
    // The JwkSet checks the issuer already; this keeps the rule in one
    // visible place whatever set is used.
    if claims.iss != expect.issuer {
        return Err(Rejection::WrongIssuer);
    }
    // Always on, always exact: a token for another resource is refused
    // even if its other claims are perfect (RFC 8707, RFC 9068 4).
    if claims.aud != expect.audience {
        return Err(Rejection::WrongAudience);
    }
    check_window_with_leeway(claims, now, expect.leeway).map_err(rejection)?;
    check_lifetime(claims, expect.max_lifetime).map_err(rejection)?;
    Ok(())
}

/// What the caller is given for verified claims.
pub(crate) fn verified(claims: &AccessClaims) -> Verified {
    Verified {
        kind: TokenKind::AccessToken,
        subject: claims.sub.clone(),
        client_id: claims.client_id.clone(),
        scopes: application_scopes(claims.scopes()),
        audience: claims.aud.clone(),
        issuer: claims.iss.clone(),
        session_id: claims.session_id().to_owned(),
        token_id: claims.jti.clone(),
        expires_at: claims.exp,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use mcp_auth_token::JwkSet;
    use serde_json::json;

    use super::*;

    /// Checks `token` against `keys` and `expect` at `now`.
    ///
    /// # Errors
    /// Why the token is refused.
    fn check(
        keys: &JwkSet,
        token: &str,
        expect: &Expect,
        now: i64,
    ) -> Result<AccessClaims, Rejection> {
        let claims = keys.verify(token).map_err(rejection)?;
        check_claims(&claims, expect, now)?;
        Ok(claims)
    }

    pub(crate) const ISS: &str = "https://auth.example";
    pub(crate) const AUD: &str = "https://mcp.example/mcp";

    /// A signing key and the JWK Set document that publishes it as `kid`.
    pub(crate) struct TestKey {
        pair: Ed25519KeyPair,
        kid: String,
    }

    impl TestKey {
        pub(crate) fn new(kid: &str) -> Self {
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
            TestKey {
                pair: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap(),
                kid: kid.to_owned(),
            }
        }

        pub(crate) fn jwk(&self) -> serde_json::Value {
            json!({
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                "kid": self.kid,
                "x": URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref()),
            })
        }

        pub(crate) fn jwks(keys: &[&TestKey]) -> String {
            json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() }).to_string()
        }

        /// A token with `claims`, signed in mcp-auth's form.
        pub(crate) fn sign(&self, claims: &serde_json::Value) -> String {
            let header = json!({"typ": "at+jwt", "alg": "EdDSA", "kid": self.kid});
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let sig = self.pair.sign(input.as_bytes());
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
        }
    }

    /// Claims of a token issued at `iat` for 600 s.
    pub(crate) fn claims(iat: i64) -> serde_json::Value {
        json!({
            "iss": ISS, "sub": "alice", "aud": AUD, "exp": iat + 600,
            "iat": iat, "nbf": iat, "jti": "at_1", "sid": "ses_1",
            "client_id": "key_1", "scope": "tools:read admin tokens:verify",
        })
    }

    fn expect() -> Expect {
        Expect {
            audience: AUD.into(),
            issuer: ISS.into(),
            leeway: 5,
            max_lifetime: 3600,
        }
    }

    fn set(key: &TestKey) -> JwkSet {
        JwkSet::from_json(&TestKey::jwks(&[key]), &[ISS]).unwrap()
    }

    #[test]
    fn a_fresh_token_for_this_resource_is_accepted_without_service_scopes() {
        let key = TestKey::new("k1");
        let claims = check(&set(&key), &key.sign(&claims(1000)), &expect(), 1000).unwrap();
        let v = verified(&claims);
        assert_eq!(v.kind, TokenKind::AccessToken);
        assert_eq!(v.subject, "alice");
        assert_eq!(v.scopes, ["tools:read"]);
        assert_eq!(v.session_id, "ses_1");
        assert_eq!(v.token_id, "at_1");
        assert_eq!(v.expires_at, 1600);
        assert_eq!(v.audience, AUD);
    }

    #[test]
    fn each_claim_is_checked() {
        let key = TestKey::new("k1");
        let keys = set(&key);
        let with = |k: &str, v: serde_json::Value| {
            let mut c = claims(1000);
            c[k] = v;
            key.sign(&c)
        };
        let cases = [
            (
                "aud",
                json!("https://mcp.example/other"),
                Rejection::WrongAudience,
            ),
            (
                "aud",
                json!("https://mcp.example/mcp/"),
                Rejection::WrongAudience,
            ),
            ("iss", json!("https://evil.example"), Rejection::WrongIssuer),
            ("exp", json!(1000 + 7200), Rejection::Expired),
            ("nbf", json!(1006), Rejection::NotYetValid),
        ];
        for (claim, value, want) in cases {
            let token = with(claim, value.clone());
            assert_eq!(
                check(&keys, &token, &expect(), 1000),
                Err(want),
                "{claim}={value}"
            );
        }
        // Another key's token, and a token of a set that lacks its key.
        let other = TestKey::new("k2");
        assert_eq!(
            check(&keys, &other.sign(&claims(1000)), &expect(), 1000),
            Err(Rejection::UnknownKey)
        );
        let impostor = TestKey::new("k1");
        assert_eq!(
            check(&keys, &impostor.sign(&claims(1000)), &expect(), 1000),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            check(&keys, "not.a.token", &expect(), 1000),
            Err(Rejection::Malformed)
        );
    }

    #[test]
    fn leeway_on_both_ends_of_the_window() {
        let key = TestKey::new("k1");
        let keys = set(&key);
        let token = key.sign(&claims(1000));
        assert!(check(&keys, &token, &expect(), 995).is_ok());
        assert_eq!(
            check(&keys, &token, &expect(), 994),
            Err(Rejection::NotYetValid)
        );
        assert!(check(&keys, &token, &expect(), 1604).is_ok());
        assert_eq!(
            check(&keys, &token, &expect(), 1605),
            Err(Rejection::Expired)
        );
        let strict = Expect {
            leeway: 0,
            ..expect()
        };
        assert_eq!(check(&keys, &token, &strict, 1600), Err(Rejection::Expired));
    }

    #[test]
    fn every_token_reason_has_a_rejection() {
        use TokenReason as T;
        let pairs = [
            (T::Expired, Rejection::Expired),
            (T::Revoked, Rejection::Revoked),
            (T::BadSignature, Rejection::BadSignature),
            (T::Malformed, Rejection::Malformed),
            (T::WrongAudience, Rejection::WrongAudience),
            (T::InsufficientScope, Rejection::InsufficientScope),
            (T::NotYetValid, Rejection::NotYetValid),
            (T::UnknownKey, Rejection::UnknownKey),
            (T::WrongIssuer, Rejection::WrongIssuer),
        ];
        for (t, r) in pairs {
            assert_eq!(rejection(t), r);
        }
    }
}
