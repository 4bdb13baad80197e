//! Every error the core contract names: code, ErrorInfo reason, and a
//! message that names the problem without leaking the secret.

use std::time::Duration;

use mcp_auth::pb;
use tonic::{Code, Request};

use crate::common::{TestServer, assert_status, authed, strings};

fn session_req(subject: &str, scopes: &[&str], ttl: u32) -> pb::CreateSessionRequest {
    pb::CreateSessionRequest {
        subject: subject.to_owned(),
        scopes: strings(scopes),
        audience: "https://mcp.example".to_owned(),
        ttl_seconds: ttl,
        session_lifetime_seconds: 0,
    }
}

#[tokio::test]
async fn missing_malformed_unknown_credentials_are_unauthenticated() {
    let server = TestServer::start().await;
    let mut tokens = server.tokens().await;

    let err = tokens
        .create_session(Request::new(session_req("alice", &["tools:read"], 0)))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "CREDENTIALS_MISSING");

    for bad in [
        "Basic abc",
        "Bearer",
        "Bearer not-an-mcp-key",
        "Bearer mcp_sk_",
    ] {
        let mut req = Request::new(session_req("alice", &["tools:read"], 0));
        req.metadata_mut()
            .insert("authorization", bad.parse().unwrap());
        let err = tokens.create_session(req).await.unwrap_err();
        assert_status(&err, Code::Unauthenticated, "API_KEY_INVALID");
    }

    let guess = "mcp_sk_0000000000000000000000000000000000000000000";
    let err = tokens
        .create_session(authed(session_req("alice", &["tools:read"], 0), guess))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "API_KEY_INVALID");
    assert!(!err.message().contains(guess));
}

#[tokio::test]
async fn revoked_and_expired_keys_are_unauthenticated() {
    let server = TestServer::start().await;
    let mut keys = server.keys().await;
    let (id, secret) = server.key_with(&["sessions:create", "tools:read"]).await;
    server.revoke_key(&server.primary, &id).await.unwrap();
    let err = server
        .tokens()
        .await
        .create_session(authed(session_req("alice", &["tools:read"], 0), &secret))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "API_KEY_REVOKED");
    assert!(!err.message().contains(&secret));

    let created = keys
        .create_api_key(authed(
            pb::CreateApiKeyRequest {
                name: "short-lived".to_owned(),
                scopes: strings(&["sessions:create", "tools:read"]),
                expires_at: server.clock.now() + 60,
                rate_limit: None,
            },
            &server.primary,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut tokens = server.tokens().await;
    tokens
        .create_session(authed(
            session_req("alice", &["tools:read"], 0),
            &created.secret,
        ))
        .await
        .unwrap();
    server.clock.advance(Duration::from_secs(60));
    let err = tokens
        .create_session(authed(
            session_req("alice", &["tools:read"], 0),
            &created.secret,
        ))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "API_KEY_EXPIRED");
}

#[tokio::test]
async fn missing_scope_is_permission_denied_naming_the_scope() {
    let server = TestServer::start().await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let (_, backend) = server.key_with(&["sessions:create", "tools:read"]).await;
    let mut tokens = server.tokens().await;

    let err = tokens
        .create_session(authed(session_req("alice", &["tools:read"], 0), &verifier))
        .await
        .unwrap_err();
    let meta = assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");
    assert_eq!(meta["scope"], "sessions:create");
    assert!(err.message().contains("sessions:create"));

    let err = tokens
        .verify_token(authed(
            pb::VerifyTokenRequest {
                token: "x".to_owned(),
                ..Default::default()
            },
            &backend,
        ))
        .await
        .unwrap_err();
    let meta = assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");
    assert_eq!(meta["scope"], "tokens:verify");

    // A token may only carry scopes the caller holds.
    let err = tokens
        .create_session(authed(
            session_req("alice", &["tools:read", "tools:write"], 0),
            &backend,
        ))
        .await
        .unwrap_err();
    let meta = assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");
    assert_eq!(meta["scope"], "tools:write");

    // Key management needs keys:admin.
    let err = server
        .keys()
        .await
        .list_api_keys(authed(pb::ListApiKeysRequest {}, &backend))
        .await
        .unwrap_err();
    let meta = assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");
    assert_eq!(meta["scope"], "keys:admin");
}

#[tokio::test]
async fn keys_admin_cannot_grant_or_touch_admin() {
    let server = TestServer::start().await;
    let (_, key_admin) = server.key_with(&["keys:admin"]).await;
    let mut keys = server.keys().await;
    let err = keys
        .create_api_key(authed(
            pb::CreateApiKeyRequest {
                name: "escalate".to_owned(),
                scopes: strings(&["admin"]),
                expires_at: 0,
                rate_limit: None,
            },
            &key_admin,
        ))
        .await
        .unwrap_err();
    let meta = assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");
    assert_eq!(meta["scope"], "admin");

    let listed = keys
        .list_api_keys(authed(pb::ListApiKeysRequest {}, &key_admin))
        .await
        .unwrap()
        .into_inner();
    let primary_id = listed
        .api_keys
        .iter()
        .find(|k| k.scopes == ["admin"])
        .unwrap()
        .key_id
        .clone();
    let err = server
        .revoke_key(&key_admin, &primary_id)
        .await
        .unwrap_err();
    assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");
}

#[tokio::test]
async fn bad_session_fields_are_invalid_argument_naming_the_field() {
    let server = TestServer::start().await;
    let mut tokens = server.tokens().await;
    let key = &server.primary;
    let long = "s".repeat(257);
    let many: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let cases: Vec<(pb::CreateSessionRequest, &str)> = vec![
        (session_req("", &["tools:read"], 0), "subject"),
        (session_req(&long, &["tools:read"], 0), "subject"),
        (session_req("alice", &[], 0), "scopes"),
        (session_req("alice", &many, 0), "scopes"),
        (session_req("alice", &["tools read"], 0), "scopes"),
        (session_req("alice", &["sessions:create"], 0), "scopes"),
        (session_req("alice", &["tools:read"], 3601), "ttl_seconds"),
        (
            pb::CreateSessionRequest {
                audience: String::new(),
                ..session_req("alice", &["tools:read"], 0)
            },
            "audience",
        ),
    ];
    for (req, field) in cases {
        let err = tokens.create_session(authed(req, key)).await.unwrap_err();
        let meta = assert_status(&err, Code::InvalidArgument, "INVALID_FIELD");
        assert_eq!(meta["field"], field, "{err:?}");
        assert!(err.message().contains(field), "{err:?}");
    }
    // The maximum itself is allowed.
    tokens
        .create_session(authed(session_req("alice", &["tools:read"], 3600), key))
        .await
        .unwrap();
}

#[tokio::test]
async fn bad_key_fields_and_unknown_ids() {
    let server = TestServer::start().await;
    let mut keys = server.keys().await;
    let key = &server.primary;
    let create = |name: &str, scopes: &[&str], expires_at| pb::CreateApiKeyRequest {
        name: name.to_owned(),
        scopes: strings(scopes),
        expires_at,
        rate_limit: None,
    };
    let cases = vec![
        (create("", &["tools:read"], 0), "name"),
        (create(&"n".repeat(129), &["tools:read"], 0), "name"),
        (create("k", &[], 0), "scopes"),
        (create("k", &["bad scope"], 0), "scopes"),
        (create("k", &["tools:read"], 1), "expires_at"),
    ];
    for (req, field) in cases {
        let err = keys.create_api_key(authed(req, key)).await.unwrap_err();
        let meta = assert_status(&err, Code::InvalidArgument, "INVALID_FIELD");
        assert_eq!(meta["field"], field);
    }

    let err = server.revoke_key(key, "key_nope").await.unwrap_err();
    assert_status(&err, Code::NotFound, "API_KEY_NOT_FOUND");
    let err = server.rotate_key(key, "key_nope", 0).await.unwrap_err();
    assert_status(&err, Code::NotFound, "API_KEY_NOT_FOUND");
    let err = server.revoke_key(key, "").await.unwrap_err();
    assert_status(&err, Code::InvalidArgument, "INVALID_FIELD");

    let err = server.revoke_session(key, "ses_nope").await.unwrap_err();
    assert_status(&err, Code::NotFound, "SESSION_NOT_FOUND");
}

#[tokio::test]
async fn rotating_a_revoked_key_is_a_failed_precondition() {
    let server = TestServer::start().await;
    let (id, _) = server.key_with(&["tools:read"]).await;
    server.revoke_key(&server.primary, &id).await.unwrap();
    let err = server
        .rotate_key(&server.primary, &id, 0)
        .await
        .unwrap_err();
    assert_status(&err, Code::FailedPrecondition, "API_KEY_NOT_ACTIVE");
}
