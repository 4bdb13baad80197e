//! Access tokens on the server's side: signing keys and the key ring,
//! issuing JWTs (RFC 9068 `at+jwt`), the JWK Set, and verifying through
//! that JWK Set with the shared `mcp-auth-token` verifier (the one the SDK
//! and `mcp-auth bench` use too).
//!
//! Tokens are signed with the ring's active key; any key still in the ring
//! verifies. Time checks use the clock the caller passes, never the system
//! time directly.

mod issuer;
mod keys;
mod ring;

pub(crate) use issuer::{NewToken, TokenIssuer};
pub(crate) use keys::{generate_signing_key, rotate_records};
pub use mcp_auth_token::{AccessClaims, TOKEN_TYPE, TokenReason};
pub(crate) use ring::KeyRing;

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
}

#[cfg(test)]
mod tests {
    use super::*;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use crate::secret::SecretHash;
    use crate::store::{SessionRecord, SigningAlg};

    fn issuer_with(alg: SigningAlg) -> (TokenIssuer, ()) {
        let key = generate_signing_key(alg, 1_000).unwrap();
        let ring = KeyRing::from_records(vec![key], &TokenIssuer::accepted_issuers("https://iss"))
            .unwrap();
        (
            TokenIssuer::new(ring, "https://iss".to_owned(), alg, 3600),
            (),
        )
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
            token_ttl: 0,
            oauth: false,
            resources: Vec::new(),
            refresh_tokens: vec![],
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
            assert_eq!(claims.sid.as_deref(), Some("ses_1"));
            assert!(claims.jti.starts_with("at_"));
            assert_eq!(claims.iss, "https://iss");
            assert_eq!(claims.scope, "tools:read tools:call");
            assert_eq!(claims.exp, 1_900);
        }
    }

    #[test]
    fn es256_tokens_are_signed_with_the_low_s() {
        let (issuer, _dir) = issuer_with(SigningAlg::ES256);
        for _ in 0..64 {
            let token = issue(&issuer, &session());
            let sig = URL_SAFE_NO_PAD
                .decode(token.rsplit_once('.').unwrap().1)
                .unwrap();
            assert!(mcp_auth_token::es256::is_low_s(&sig));
            assert!(issuer.verify_uncached(&token).is_ok());
        }
    }

    #[test]
    fn tokens_living_longer_than_the_maximum_are_refused() {
        let (issuer, _dir) = issuer_with(SigningAlg::EdDSA);
        let s = session();
        let at_max = issuer.issue(&s, &s.scopes, 1_000, 4_600).unwrap();
        assert!(issuer.verify(&at_max, 1_001).is_ok());
        let beyond = issuer.issue(&s, &s.scopes, 1_000, 4_601).unwrap();
        assert_eq!(issuer.verify(&beyond, 1_001), Err(TokenReason::Expired));
    }

    #[test]
    fn every_token_has_its_own_jti_and_names_its_session() {
        let (issuer, _dir) = issuer_with(SigningAlg::EdDSA);
        let s = session();
        let a = issue(&issuer, &s);
        let b = issue(&issuer, &s);
        assert_ne!(a, b, "same session, same second: different tokens");
        let (ca, cb) = (
            issuer.verify(&a, 1_001).unwrap(),
            issuer.verify(&b, 1_001).unwrap(),
        );
        assert_ne!(ca.jti, cb.jti);
        assert_eq!(ca.sid, cb.sid);
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
