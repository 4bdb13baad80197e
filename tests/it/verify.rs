//! VerifyToken's reasons, and offline verification with the JWKS.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcp_auth::{SigningAlg, pb};
use pb::TokenReason;

use crate::common::{TestServer, authed, inactive_reason, strings};

const AUD: &str = "https://mcp.example";

async fn verify_with(
    server: &TestServer,
    verifier: &str,
    token: &str,
    audience: &str,
    required: &[&str],
) -> pb::VerifyTokenResponse {
    server
        .tokens()
        .await
        .verify_token(authed(
            pb::VerifyTokenRequest {
                token: token.to_owned(),
                audience: audience.to_owned(),
                required_scopes: strings(required),
                client_address: String::new(),
            },
            verifier,
        ))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn active_token_returns_its_claims() {
    let server = TestServer::start().await;
    let (backend_id, backend) = server
        .key_with(&["sessions:create", "tools:read", "tools:call"])
        .await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let s = server
        .session(&backend, &["tools:read", "tools:call"], AUD)
        .await;
    assert_eq!(s.token_type, "Bearer");
    assert_eq!(
        s.expires_at,
        server.clock.now() + 900,
        "default ttl is 15 minutes"
    );
    assert!(s.session_id.starts_with("ses_"));

    let resp = verify_with(&server, &verifier, &s.access_token, AUD, &["tools:read"]).await;
    assert!(resp.active);
    assert_eq!(resp.reason(), TokenReason::Unspecified);
    let c = resp.claims.unwrap();
    assert_eq!(c.subject, "alice");
    assert_eq!(c.audience, AUD);
    assert_eq!(c.scopes, ["tools:read", "tools:call"]);
    assert_eq!(c.session_id, s.session_id);
    assert_eq!(c.client_id, backend_id);
    assert_eq!(c.expires_at, s.expires_at);
    assert_eq!(c.issued_at, server.clock.now());
}

#[tokio::test]
async fn each_inactive_reason() {
    let server = TestServer::start().await;
    let (_, backend) = server.key_with(&["sessions:create", "tools:read"]).await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let s = server.session(&backend, &["tools:read"], AUD).await;
    let token = s.access_token.clone();

    let r = verify_with(&server, &verifier, &token, "https://other.example", &[]).await;
    assert_eq!(inactive_reason(&r), TokenReason::WrongAudience);
    let r = verify_with(&server, &verifier, &token, AUD, &["tools:call"]).await;
    assert_eq!(inactive_reason(&r), TokenReason::InsufficientScope);

    for garbage in ["", "not a token", "a.b.c", &"x".repeat(20_000)] {
        let r = verify_with(&server, &verifier, garbage, "", &[]).await;
        assert_eq!(inactive_reason(&r), TokenReason::Malformed, "{garbage:.20}");
    }

    // Changing one claim breaks the signature.
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = "mallory".into();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );
    let r = verify_with(&server, &verifier, &forged, "", &[]).await;
    assert_eq!(inactive_reason(&r), TokenReason::BadSignature);

    // A token from another server's key.
    let other = TestServer::start().await;
    let foreign = other.session(&other.primary, &["tools:read"], AUD).await;
    let r = verify_with(&server, &verifier, &foreign.access_token, "", &[]).await;
    assert_eq!(inactive_reason(&r), TokenReason::UnknownKey);

    // Time: before nbf, then after exp.
    let now = server.clock.now();
    server.clock.set(now - 10);
    let r = verify_with(&server, &verifier, &token, "", &[]).await;
    assert_eq!(inactive_reason(&r), TokenReason::NotYetValid);
    server.clock.set(now);
    assert!(
        verify_with(&server, &verifier, &token, "", &[])
            .await
            .active
    );
    server.clock.advance(Duration::from_secs(900));
    let r = verify_with(&server, &verifier, &token, "", &[]).await;
    assert_eq!(inactive_reason(&r), TokenReason::Expired);
}

#[tokio::test]
async fn revoked_session_token_says_revoked() {
    let server = TestServer::start().await;
    let (_, backend) = server.key_with(&["sessions:create", "tools:read"]).await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let s = server.session(&backend, &["tools:read"], AUD).await;
    assert!(server.verify(&verifier, &s.access_token).await.active);
    // The creating key may revoke its own session without sessions:revoke.
    let resp = server
        .revoke_session(&backend, &s.session_id)
        .await
        .unwrap();
    assert_eq!(resp.revoked_at, server.clock.now());
    let r = server.verify(&verifier, &s.access_token).await;
    assert_eq!(inactive_reason(&r), TokenReason::Revoked);
}

#[tokio::test]
async fn only_the_creator_or_sessions_revoke_may_revoke() {
    let server = TestServer::start().await;
    let (_, backend) = server.key_with(&["sessions:create", "tools:read"]).await;
    let (_, stranger) = server.key_with(&["sessions:create", "tools:read"]).await;
    let (_, revoker) = server.key_with(&["sessions:revoke"]).await;
    let s = server.session(&backend, &["tools:read"], AUD).await;
    let id = &s.session_id;
    let err = server.revoke_session(&stranger, id).await.unwrap_err();
    crate::common::assert_status(&err, tonic::Code::PermissionDenied, "INSUFFICIENT_SCOPE");
    let first = server.revoke_session(&revoker, id).await.unwrap();
    // Idempotent: the first revocation time stands.
    server.clock.advance(std::time::Duration::from_secs(5));
    let again = server.revoke_session(&revoker, id).await.unwrap();
    assert_eq!(first.revoked_at, again.revoked_at);
}

async fn offline_verify(alg: SigningAlg) {
    let server = TestServer::start_with(|c| c.signing_alg = alg).await;
    let s = server.session(&server.primary, &["tools:read"], AUD).await;
    let jwks = server
        .tokens()
        .await
        .get_jwks(tonic::Request::new(pb::GetJwksRequest {}))
        .await
        .unwrap()
        .into_inner()
        .jwks_json;
    let set: JwkSet = serde_json::from_str(&jwks).unwrap();
    let header = jsonwebtoken::decode_header(&s.access_token).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let kid = header.kid.unwrap();
    let jwk = set.find(&kid).expect("the token's kid is in the JWKS");
    let raw: serde_json::Value = serde_json::from_str(&jwks).unwrap();
    assert_eq!(raw["keys"][0]["use"], "sig");
    assert_eq!(raw["keys"][0]["alg"], alg.as_str());

    let jwt_alg = match alg {
        SigningAlg::EdDSA => Algorithm::EdDSA,
        SigningAlg::ES256 => Algorithm::ES256,
    };
    assert_eq!(header.alg, jwt_alg);
    let mut validation = Validation::new(jwt_alg);
    validation.set_audience(&[AUD]);
    validation.set_issuer(&[server.config.issuer.as_str()]);
    validation.set_required_spec_claims(&["exp", "iat", "nbf", "aud", "iss", "sub"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(
        &s.access_token,
        &DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap();
    assert_eq!(data.claims["sub"], "alice");
    assert_eq!(data.claims["sid"], s.session_id.as_str());
    assert!(data.claims["jti"].as_str().unwrap().starts_with("at_"));
    assert_eq!(data.claims["scope"], "tools:read");
    assert_eq!(data.claims["client_id"], s.client_id.as_str());
}

#[tokio::test]
async fn token_verifies_offline_with_the_jwks_eddsa() {
    offline_verify(SigningAlg::EdDSA).await;
}

#[tokio::test]
async fn token_verifies_offline_with_the_jwks_es256() {
    offline_verify(SigningAlg::ES256).await;
}

#[tokio::test]
async fn jwks_needs_no_credentials_but_verify_does() {
    let server = TestServer::start().await;
    let mut tokens = server.tokens().await;
    tokens
        .get_jwks(tonic::Request::new(pb::GetJwksRequest {}))
        .await
        .unwrap();
    let err = tokens
        .verify_token(tonic::Request::new(pb::VerifyTokenRequest::default()))
        .await
        .unwrap_err();
    crate::common::assert_status(&err, tonic::Code::Unauthenticated, "CREDENTIALS_MISSING");
}
