//! Signing-key rotation and retirement, and the cleanup of sessions that
//! can no longer matter.

use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcp_auth::pb;
use mcp_auth::pb::key_service_client::KeyServiceClient;
use pb::TokenReason;
use tonic::Code;

use crate::common::{TestServer, assert_status, authed, inactive_reason, strings};

async fn jwks(server: &TestServer) -> JwkSet {
    let json = server
        .tokens()
        .await
        .get_jwks(tonic::Request::new(pb::GetJwksRequest {}))
        .await
        .unwrap()
        .into_inner()
        .jwks_json;
    serde_json::from_str(&json).unwrap()
}

async fn rotate(
    server: &TestServer,
    key: &str,
) -> Result<pb::RotateSigningKeyResponse, tonic::Status> {
    Ok(KeyServiceClient::new(server.channel().await)
        .rotate_signing_key(authed(pb::RotateSigningKeyRequest {}, key))
        .await?
        .into_inner())
}

fn verifies_offline(set: &JwkSet, token: &str) -> bool {
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let Some(jwk) = set.find(&kid) else {
        return false;
    };
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_audience(&["aud"]);
    jsonwebtoken::decode::<serde_json::Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .is_ok()
}

#[tokio::test]
async fn tokens_from_before_and_after_a_rotation_verify_with_one_jwks() {
    let mut server = TestServer::start().await;
    let before = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;
    let rotated = rotate(&server, &server.primary).await.unwrap();
    let after = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;
    let kid_after = jsonwebtoken::decode_header(&after.access_token)
        .unwrap()
        .kid
        .unwrap();
    assert_eq!(kid_after, rotated.kid);
    assert_ne!(rotated.kid, rotated.previous_kid);

    let set = jwks(&server).await;
    assert_eq!(set.keys.len(), 2);
    assert!(verifies_offline(&set, &before.access_token));
    assert!(verifies_offline(&set, &after.access_token));
    assert!(
        server
            .verify(&server.primary, &before.access_token)
            .await
            .active
    );
    assert!(
        server
            .verify(&server.primary, &after.access_token)
            .await
            .active
    );

    server.restart().await;
    assert_eq!(
        jwks(&server).await.keys.len(),
        2,
        "the ring survives a restart"
    );
    let again = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;
    let kid = jsonwebtoken::decode_header(&again.access_token)
        .unwrap()
        .kid
        .unwrap();
    assert_eq!(kid, rotated.kid);
    server.stop().await;
}

#[tokio::test]
async fn a_retired_key_leaves_the_jwks_only_after_its_tokens_expire() {
    let server = TestServer::start().await;
    let before = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;
    // Verified once, so the server remembers it: removing the key must
    // forget it too.
    assert!(
        server
            .verify(&server.primary, &before.access_token)
            .await
            .active
    );
    rotate(&server, &server.primary).await.unwrap();

    // The maximum token lifetime (3600 s) after retirement, minus one:
    // a token could still be alive, so the key stays.
    server.clock.advance(Duration::from_secs(3599));
    assert_eq!(server.maintain().await.signing_keys_removed, 0);
    assert_eq!(jwks(&server).await.keys.len(), 2);

    server.clock.advance(Duration::from_secs(1));
    assert_eq!(server.maintain().await.signing_keys_removed, 1);
    assert_eq!(jwks(&server).await.keys.len(), 1);
    let r = server.verify(&server.primary, &before.access_token).await;
    assert_eq!(inactive_reason(&r), TokenReason::UnknownKey);
}

#[tokio::test]
async fn signing_keys_rotate_on_schedule() {
    let server = TestServer::start_with(|c| c.signing_key_rotation_days = 2).await;
    assert_eq!(server.maintain().await.rotated_to, None);
    server.clock.advance(Duration::from_secs(2 * 86_400));
    let report = server.maintain().await;
    let kid = report.rotated_to.expect("due for rotation");
    let s = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;
    assert_eq!(
        jsonwebtoken::decode_header(&s.access_token)
            .unwrap()
            .kid
            .unwrap(),
        kid
    );
}

#[tokio::test]
async fn rotating_needs_admin() {
    let server = TestServer::start().await;
    let (_, keys_admin) = server.key_with(&["keys:admin"]).await;
    let err = rotate(&server, &keys_admin).await.unwrap_err();
    let meta = assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");
    assert_eq!(meta["scope"], "admin");
}

#[tokio::test]
async fn cleanup_removes_sessions_that_can_no_longer_matter() {
    const SHORT: usize = 40;
    let server = TestServer::start().await;
    let mut tokens = server.tokens().await;
    let mut short = Vec::new();
    for i in 0..SHORT {
        let s = tokens
            .create_session(authed(
                pb::CreateSessionRequest {
                    subject: format!("user-{i}"),
                    scopes: strings(&["tools:read"]),
                    audience: "aud".to_owned(),
                    ttl_seconds: 60,
                    session_lifetime_seconds: 3600,
                },
                &server.primary,
            ))
            .await
            .unwrap()
            .into_inner();
        short.push(s);
    }
    for s in &short[..10] {
        server
            .revoke_session(&server.primary, &s.session_id)
            .await
            .unwrap();
    }
    let long = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;

    let report = server.maintain().await;
    assert_eq!(report.sessions_removed, 0);
    assert_eq!(report.sessions_remaining, SHORT + 1);
    assert_eq!(report.revocations_remaining, 10);

    // Revoked sessions go once their last token has expired.
    server.clock.advance(Duration::from_secs(60));
    let report = server.maintain().await;
    assert_eq!(report.sessions_removed, 10);
    assert_eq!(
        report.revocations_remaining, 0,
        "the in-memory index shrinks back"
    );

    // The rest go once they can no longer be refreshed and their tokens
    // have expired; the long session is kept alive by a refresh.
    server.clock.advance(Duration::from_secs(3000));
    let refreshed = tokens
        .refresh_session(tonic::Request::new(pb::RefreshSessionRequest {
            refresh_token: long.refresh_token.clone(),
            scopes: vec![],
        }))
        .await
        .unwrap()
        .into_inner();
    server.clock.advance(Duration::from_secs(600));
    let report = server.maintain().await;
    assert_eq!(report.sessions_removed, SHORT - 10);
    assert_eq!(report.refresh_tokens_removed, SHORT - 10);
    assert_eq!(report.sessions_remaining, 1);

    let listed = tokens
        .list_sessions(authed(pb::ListSessionsRequest::default(), &server.primary))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.sessions.len(), 1, "storage shrinks back");
    assert_eq!(listed.sessions[0].session_id, long.session_id);
    // A removed session's refresh token is simply unknown now.
    let err = tokens
        .refresh_session(tonic::Request::new(pb::RefreshSessionRequest {
            refresh_token: short[20].refresh_token.clone(),
            scopes: vec![],
        }))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "REFRESH_TOKEN_INVALID");
    assert!(
        server
            .verify(&server.primary, &refreshed.access_token)
            .await
            .active
    );
}

#[tokio::test]
async fn maintenance_sweeps_a_large_store_over_several_passes() {
    let server = TestServer::start_with(|c| c.maintenance_sessions_per_pass = 2).await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        let s = server
            .session(&server.primary, &["tools:read"], "aud")
            .await;
        ids.push(s.session_id);
    }
    // Sessions are swept in id order. Only the last one has ended (revoked,
    // and its token expired): a sweep that started over at every pass
    // would never reach it.
    ids.sort();
    server
        .revoke_session(&server.primary, &ids[5])
        .await
        .unwrap();
    server.clock.advance(Duration::from_secs(3600));
    let mut removed = Vec::new();
    for _ in 0..3 {
        let report = server.maintain().await;
        assert_eq!(
            report.sessions_removed + report.sessions_remaining,
            2,
            "{report:?}"
        );
        removed.push(report.sessions_removed);
    }
    assert_eq!(
        removed,
        [0, 0, 1],
        "each pass goes on where the last stopped"
    );
    let listed = server
        .tokens()
        .await
        .list_sessions(authed(pb::ListSessionsRequest::default(), &server.primary))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.sessions.len(), 5);
}
