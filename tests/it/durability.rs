//! What was acknowledged survives a restart and a SIGKILL.

use mcp_auth::pb;
use pb::TokenReason;

use crate::common::{TestServer, authed, connect, inactive_reason, spawn_binary, strings};

#[tokio::test]
async fn keys_sessions_revocations_and_signing_keys_survive_a_restart() {
    let mut server = TestServer::start().await;
    let (_, backend) = server.key_with(&["sessions:create", "tools:read"]).await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let kept = server.session(&backend, &["tools:read"], "aud").await;
    let revoked = server.session(&backend, &["tools:read"], "aud").await;
    server
        .revoke_session(&backend, &revoked.session_id)
        .await
        .unwrap();
    let jwks_before = jwks(&server).await;

    server.restart().await;

    assert_eq!(
        jwks(&server).await,
        jwks_before,
        "same signing key after restart"
    );
    let r = server.verify(&verifier, &kept.access_token).await;
    assert!(r.active, "a token issued before the restart still verifies");
    let r = server.verify(&verifier, &revoked.access_token).await;
    assert_eq!(inactive_reason(&r), TokenReason::Revoked);
    server.session(&backend, &["tools:read"], "aud").await;
    server.stop().await;
}

async fn jwks(server: &TestServer) -> String {
    server
        .tokens()
        .await
        .get_jwks(tonic::Request::new(pb::GetJwksRequest {}))
        .await
        .unwrap()
        .into_inner()
        .jwks_json
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, primary) = spawn_binary(dir.path()).await;
    let channel = connect(&url, &dir.path().join("tls/ca.pem")).await;
    let mut tokens = pb::token_service_client::TokenServiceClient::new(channel.clone());
    let mut keys = pb::api_key_service_client::ApiKeyServiceClient::new(channel);

    let new_key = keys
        .create_api_key(authed(
            pb::CreateApiKeyRequest {
                name: "verifier".to_owned(),
                scopes: strings(&["tokens:verify"]),
                expires_at: 0,
                rate_limit: None,
            },
            &primary,
        ))
        .await
        .unwrap()
        .into_inner()
        .secret;
    let session = |subject: &str| {
        authed(
            pb::CreateSessionRequest {
                subject: subject.to_owned(),
                scopes: strings(&["tools:read"]),
                audience: "aud".to_owned(),
                ttl_seconds: 0,
                session_lifetime_seconds: 0,
            },
            &primary,
        )
    };
    let revoked = tokens
        .create_session(session("bob"))
        .await
        .unwrap()
        .into_inner();
    tokens
        .revoke_session(authed(
            pb::RevokeSessionRequest {
                session_id: revoked.session_id.clone(),
            },
            &primary,
        ))
        .await
        .unwrap();
    let kept = tokens
        .create_session(session("alice"))
        .await
        .unwrap()
        .into_inner();

    // SIGKILL right after the last acknowledgement.
    child.kill().await.unwrap();

    let mut server = TestServer::start_in(dir, |_| {}).await;
    assert!(!server.created_primary);
    let r = server.verify(&new_key, &kept.access_token).await;
    assert!(r.active, "the acknowledged key and session survived: {r:?}");
    let r = server.verify(&new_key, &revoked.access_token).await;
    assert_eq!(inactive_reason(&r), TokenReason::Revoked);
    server.stop().await;
}
