//! Cascading revocation, ListSessions and RevokeSessions.

use mcp_auth::pb;
use mcp_auth::pb::identity_service_client::IdentityServiceClient;
use pb::TokenReason;
use tonic::Code;

use crate::common::{TestServer, assert_status, authed, bare_session_request, inactive_reason};

fn list(
    subject: &str,
    client_id: &str,
    page_token: &str,
    page_size: u32,
) -> pb::ListSessionsRequest {
    pb::ListSessionsRequest {
        subject: subject.to_owned(),
        client_id: client_id.to_owned(),
        page_token: page_token.to_owned(),
        page_size,
    }
}

#[tokio::test]
async fn revoking_an_api_key_revokes_its_sessions_unless_told_not_to() {
    let server = TestServer::start().await;
    let (kept_id, kept_key) = server.key_with(&["sessions:create", "tools:read"]).await;
    let (gone_id, gone_key) = server.key_with(&["sessions:create", "tools:read"]).await;
    let kept = server.session(&kept_key, &["tools:read"], "aud").await;
    let a = server.session(&gone_key, &["tools:read"], "aud").await;
    let b = server.session(&gone_key, &["tools:read"], "aud").await;
    let mut tokens = server.tokens().await;
    let refreshed = tokens
        .refresh_session(tonic::Request::new(pb::RefreshSessionRequest {
            refresh_token: b.refresh_token.clone(),
            scopes: vec![],
        }))
        .await
        .unwrap()
        .into_inner();

    let resp = server
        .keys()
        .await
        .revoke_api_key(authed(
            pb::RevokeApiKeyRequest {
                key_id: gone_id,
                cascade: None,
            },
            &server.primary,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.sessions_revoked, 2, "cascade is the default");
    for t in [&a.access_token, &b.access_token, &refreshed.access_token] {
        let r = server.verify(&server.primary, t).await;
        assert_eq!(inactive_reason(&r), TokenReason::Revoked);
    }
    let err = tokens
        .refresh_session(tonic::Request::new(pb::RefreshSessionRequest {
            refresh_token: refreshed.refresh_token,
            scopes: vec![],
        }))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "SESSION_REVOKED");
    assert!(
        server
            .verify(&server.primary, &kept.access_token)
            .await
            .active
    );

    let resp = server
        .keys()
        .await
        .revoke_api_key(authed(
            pb::RevokeApiKeyRequest {
                key_id: kept_id,
                cascade: Some(false),
            },
            &server.primary,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.sessions_revoked, 0);
    assert!(
        server
            .verify(&server.primary, &kept.access_token)
            .await
            .active
    );
}

#[tokio::test]
async fn deleting_an_identity_revokes_its_sessions() {
    let server = TestServer::start().await;
    server
        .grant("billing", &["sessions:create", "tools:read"], false)
        .await;
    let cert = server.client_cert("billing");
    let mut tokens = pb::token_service_client::TokenServiceClient::new(
        server.mtls_channel(&cert).await.unwrap(),
    );
    let s = tokens
        .create_session(bare_session_request(&["tools:read"]))
        .await
        .unwrap()
        .into_inner();
    let resp = IdentityServiceClient::new(server.channel().await)
        .delete_identity(authed(
            pb::DeleteIdentityRequest {
                name: "billing".to_owned(),
                cascade: None,
            },
            &server.primary,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.sessions_revoked, 1);
    let r = server.verify(&server.primary, &s.access_token).await;
    assert_eq!(inactive_reason(&r), TokenReason::Revoked);
}

#[tokio::test]
async fn list_sessions_pages_and_shows_callers_only_their_own() {
    let server = TestServer::start().await;
    let (backend_id, backend) = server.key_with(&["sessions:create", "tools:read"]).await;
    let (_, other) = server.key_with(&["sessions:create", "tools:read"]).await;
    let mut created = Vec::new();
    for _ in 0..7 {
        created.push(
            server
                .session(&backend, &["tools:read"], "aud")
                .await
                .session_id,
        );
    }
    server.session(&other, &["tools:read"], "aud").await;
    let mut tokens = server.tokens().await;

    // The backend sees its 7 sessions, 3 at a time, each once.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = tokens
            .list_sessions(authed(list("", "", &token, 3), &backend))
            .await
            .unwrap()
            .into_inner();
        assert!(page.sessions.len() <= 3);
        for s in &page.sessions {
            assert_eq!(s.client_id, backend_id);
            assert_eq!(s.subject, "alice");
            assert!(!s.revoked);
        }
        seen.extend(page.sessions.into_iter().map(|s| s.session_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    seen.sort();
    created.sort();
    assert_eq!(seen, created);

    // An admin sees all 8; by subject too.
    let all = tokens
        .list_sessions(authed(list("alice", "", "", 0), &server.primary))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.sessions.len(), 8);
    assert!(all.next_page_token.is_empty());

    // Asking for another creator's sessions needs admin.
    let err = tokens
        .list_sessions(authed(list("", &backend_id, "", 0), &other))
        .await
        .unwrap_err();
    assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");
    let err = tokens
        .list_sessions(authed(list("", "", "!!!", 0), &backend))
        .await
        .unwrap_err();
    let meta = assert_status(&err, Code::InvalidArgument, "INVALID_FIELD");
    assert_eq!(meta["field"], "page_token");
}

#[tokio::test]
async fn revoke_sessions_logs_a_subject_out_everywhere_the_caller_may_see() {
    let server = TestServer::start().await;
    let (_, backend) = server
        .key_with(&["sessions:create", "sessions:revoke", "tools:read"])
        .await;
    let (_, other) = server.key_with(&["sessions:create", "tools:read"]).await;
    let mine = [
        server.session(&backend, &["tools:read"], "aud").await,
        server.session(&backend, &["tools:read"], "other-aud").await,
    ];
    let theirs = server.session(&other, &["tools:read"], "aud").await;
    let mut tokens = server.tokens().await;
    let req = |key: &str| {
        authed(
            pb::RevokeSessionsRequest {
                subject: "alice".to_owned(),
            },
            key,
        )
    };
    let err = tokens.revoke_sessions(req(&other)).await.unwrap_err();
    assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");

    let resp = tokens
        .revoke_sessions(req(&backend))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.revoked, 2);
    for s in &mine {
        let r = server.verify(&server.primary, &s.access_token).await;
        assert_eq!(inactive_reason(&r), TokenReason::Revoked);
    }
    assert!(
        server
            .verify(&server.primary, &theirs.access_token)
            .await
            .active
    );

    let resp = tokens
        .revoke_sessions(req(&server.primary))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.revoked, 1,
        "an admin reaches the rest; revoked ones are not counted"
    );
}
