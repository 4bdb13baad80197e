//! VerifyToken with API keys: their claims and kind, service scopes never
//! counting as an MCP server's, why a key is refused, and the throttle on
//! refused keys per `client_address`.

use std::time::Duration;

use mcp_auth::pb;
use pb::{TokenKind, TokenReason};
use tonic::Code;
use tonic_types::StatusExt;

use crate::common::{TestServer, assert_status, inactive_reason, strings};

/// VerifyToken of `token` as `verifier`, from the MCP server's caller at
/// `client_address`.
async fn verify_from(
    server: &TestServer,
    verifier: &str,
    token: &str,
    required: &[&str],
    client_address: &str,
) -> Result<pb::VerifyTokenResponse, tonic::Status> {
    server
        .client(verifier)
        .await
        .verify_token(pb::VerifyTokenRequest {
            token: token.to_owned(),
            audience: String::new(),
            required_scopes: strings(required),
            client_address: client_address.to_owned(),
        })
        .await
}

async fn verify(
    server: &TestServer,
    verifier: &str,
    token: &str,
    required: &[&str],
) -> pb::VerifyTokenResponse {
    verify_from(server, verifier, token, required, "")
        .await
        .unwrap()
}

/// Creates a key with `scopes` expiring at `expires_at` (0 never); returns
/// (key id, secret).
/// The audit events of `action` by `actor`.
async fn audited(server: &TestServer, action: &str, actor: &str) -> Vec<pb::AuditEvent> {
    server
        .client(&server.primary)
        .await
        .list_audit_events(pb::ListAuditEventsRequest {
            action: action.to_owned(),
            actor: actor.to_owned(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .events
}

async fn key_expiring(server: &TestServer, scopes: &[&str], expires_at: i64) -> (String, String) {
    let resp = server
        .client(&server.primary)
        .await
        .create_api_key(pb::CreateApiKeyRequest {
            name: "for an MCP server".to_owned(),
            scopes: strings(scopes),
            expires_at,
            rate_limit: None,
        })
        .await
        .unwrap();
    (resp.api_key.unwrap().key_id, resp.secret)
}

#[tokio::test]
async fn an_active_api_key_answers_its_claims_without_service_scopes() {
    let server = TestServer::start().await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let created_at = server.clock.now();
    let expires_at = created_at + 3600;
    let (key_id, key) = key_expiring(
        &server,
        &["tools:read", "sessions:create", "tools:call"],
        expires_at,
    )
    .await;

    let r = verify(&server, &verifier, &key, &["tools:read"]).await;
    assert!(r.active, "{r:?}");
    assert_eq!(r.token_kind(), TokenKind::ApiKey);
    assert_eq!(r.reason(), TokenReason::Unspecified);
    let c = r.claims.unwrap();
    assert_eq!(c.subject, key_id);
    assert_eq!(c.client_id, key_id);
    assert_eq!(c.scopes, ["tools:read", "tools:call"], "no service scope");
    assert_eq!(c.audience, "");
    assert_eq!(c.session_id, "");
    assert_eq!(c.issuer, server.config.issuer);
    assert_eq!(c.issued_at, created_at);
    assert_eq!(c.expires_at, expires_at);

    // Not bound to an audience: any audience asked for is fine.
    let r = server
        .client(&verifier)
        .await
        .verify_token(pb::VerifyTokenRequest {
            token: key.clone(),
            audience: "https://mcp.example.com".to_owned(),
            required_scopes: vec![],
            client_address: String::new(),
        })
        .await
        .unwrap();
    assert!(r.active, "{r:?}");

    // A service scope the key holds never satisfies required_scopes.
    let r = verify(&server, &verifier, &key, &["sessions:create"]).await;
    assert_eq!(inactive_reason(&r), TokenReason::InsufficientScope);
    assert_eq!(r.token_kind(), TokenKind::ApiKey);
    let r = verify(&server, &verifier, &key, &["tools:write"]).await;
    assert_eq!(inactive_reason(&r), TokenReason::InsufficientScope);

    // An admin key: active, with no application scope at all (`admin`
    // implies none at an MCP server), and never `admin`.
    let r = verify(&server, &verifier, &server.primary, &[]).await;
    assert!(r.active);
    assert!(r.claims.unwrap().scopes.is_empty());
    for service in ["admin", "tokens:verify", "keys:admin"] {
        let r = verify(&server, &verifier, &server.primary, &[service]).await;
        assert_eq!(
            inactive_reason(&r),
            TokenReason::InsufficientScope,
            "{service}"
        );
    }
}

#[tokio::test]
async fn access_tokens_are_of_their_kind_and_service_scopes_never_satisfy() {
    let server = TestServer::start().await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let (_, backend) = server.key_with(&["sessions:create", "tools:read"]).await;
    let s = server.session(&backend, &["tools:read"], "aud").await;
    let r = verify(&server, &verifier, &s.access_token, &["tools:read"]).await;
    assert!(r.active);
    assert_eq!(r.token_kind(), TokenKind::AccessToken);
    assert_eq!(r.claims.unwrap().scopes, ["tools:read"]);
    for service in ["admin", "sessions:create", "tokens:verify"] {
        let r = verify(&server, &verifier, &s.access_token, &[service]).await;
        assert_eq!(
            inactive_reason(&r),
            TokenReason::InsufficientScope,
            "{service}"
        );
        assert_eq!(r.token_kind(), TokenKind::AccessToken);
    }
    // Inactive access tokens are access tokens too.
    let r = verify(&server, &verifier, "a.b.c", &[]).await;
    assert_eq!(inactive_reason(&r), TokenReason::Malformed);
    assert_eq!(r.token_kind(), TokenKind::AccessToken);
}

#[tokio::test]
async fn a_refused_api_key_says_why() {
    let server = TestServer::start().await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let now = server.clock.now();
    let refused = |r: &pb::VerifyTokenResponse| {
        assert_eq!(r.token_kind(), TokenKind::ApiKey, "{r:?}");
        inactive_reason(r)
    };

    // Revoked.
    let (revoked_id, revoked) = server.key_with(&["tools:read"]).await;
    assert!(verify(&server, &verifier, &revoked, &[]).await.active);
    server
        .revoke_key(&server.primary, &revoked_id)
        .await
        .unwrap();
    let r = verify(&server, &verifier, &revoked, &[]).await;
    assert_eq!(refused(&r), TokenReason::Revoked);

    // Rotated: the old secret within its grace, then rotated out.
    let (rotated_id, old) = server.key_with(&["tools:read"]).await;
    let new = server
        .rotate_key(&server.primary, &rotated_id, 30)
        .await
        .unwrap()
        .secret;
    assert!(verify(&server, &verifier, &old, &[]).await.active);
    assert!(verify(&server, &verifier, &new, &[]).await.active);

    // Expired, at its expiry by the server's clock.
    let (_, expiring) = key_expiring(&server, &["tools:read"], now + 60).await;
    assert!(verify(&server, &verifier, &expiring, &[]).await.active);

    server.clock.advance(Duration::from_secs(30));
    let r = verify(&server, &verifier, &old, &[]).await;
    assert_eq!(refused(&r), TokenReason::RotatedOut);
    assert!(verify(&server, &verifier, &new, &[]).await.active);
    server.clock.advance(Duration::from_secs(30));
    let r = verify(&server, &verifier, &expiring, &[]).await;
    assert_eq!(refused(&r), TokenReason::Expired);

    // Unknown, or not of a key's form.
    for unknown in [
        format!("mcp_sk_{}", "A".repeat(43)),
        "mcp_sk_".to_owned(),
        format!("mcp_sk_{}", "A".repeat(300)),
        format!("{revoked}x"),
    ] {
        let r = verify(&server, &verifier, &unknown, &[]).await;
        assert_eq!(refused(&r), TokenReason::UnknownApiKey, "{unknown:.12}");
    }
}

#[tokio::test]
async fn refused_api_keys_throttle_the_client_address_not_the_mcp_server() {
    let server = TestServer::start_with(|c| c.auth_failures_per_minute = 3).await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let (_, good) = server.key_with(&["tools:read"]).await;
    let (_, backend) = server.key_with(&["sessions:create", "tools:read"]).await;
    let s = server.session(&backend, &["tools:read"], "aud").await;
    let guess = |i: usize| format!("mcp_sk_{i:0>43}");
    const GUESSER: &str = "203.0.113.7";

    // The allowance (3) and the one that spends it are answered...
    for i in 0..4 {
        let r = verify_from(&server, &verifier, &guess(i), &[], GUESSER)
            .await
            .unwrap();
        assert_eq!(inactive_reason(&r), TokenReason::UnknownApiKey, "guess {i}");
    }
    // ...then a refused key from that address is RATE_LIMITED, exactly as
    // a failed authentication at this service is.
    for token in [guess(4), server.primary.clone() + "x"] {
        let err = verify_from(&server, &verifier, &token, &[], GUESSER)
            .await
            .unwrap_err();
        let meta = assert_status(&err, Code::ResourceExhausted, "RATE_LIMITED");
        assert!(meta["retry_after_seconds"].parse::<u64>().unwrap() >= 1);
        assert!(err.metadata().get("retry-after").is_some());
        assert!(err.get_details_retry_info().unwrap().retry_delay.is_some());
    }

    // A good key from the throttled address is served, and so is an
    // access token (tokens are never counted).
    let r = verify_from(&server, &verifier, &good, &[], GUESSER)
        .await
        .unwrap();
    assert!(r.active, "{r:?}");
    let r = verify_from(&server, &verifier, &s.access_token, &[], GUESSER)
        .await
        .unwrap();
    assert!(r.active, "{r:?}");

    // Other addresses, and calls that name none, are not throttled.
    let r = verify_from(&server, &verifier, &guess(5), &[], "203.0.113.8")
        .await
        .unwrap();
    assert_eq!(inactive_reason(&r), TokenReason::UnknownApiKey);
    let r = verify_from(&server, &verifier, &guess(6), &[], "::ffff:203.0.113.9")
        .await
        .unwrap();
    assert_eq!(inactive_reason(&r), TokenReason::UnknownApiKey);
    for i in 10..20 {
        let r = verify(&server, &verifier, &guess(i), &[]).await;
        assert_eq!(
            inactive_reason(&r),
            TokenReason::UnknownApiKey,
            "counted nowhere"
        );
    }

    // The MCP server's own address (the test's, 127.0.0.1) was never
    // counted: its own calls work, and a wrong key of its own is a plain
    // failure, not a throttled one.
    server.client(&verifier).await.who_am_i().await.unwrap();
    let err = server
        .client(&guess(99))
        .await
        .who_am_i()
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "API_KEY_INVALID");

    // Audited as failed authentications of the address.
    let events = audited(&server, "auth.failed", &format!("peer:{GUESSER}")).await;
    assert!(!events.is_empty());
    assert_eq!(events[0].outcome, "API_KEY_INVALID");
    assert_eq!(events[0].target, "api key, at VerifyToken");
    let limited = audited(&server, "rate_limit.hit", &format!("peer:{GUESSER}")).await;
    assert_eq!(limited.len(), 1, "aggregated: {limited:?}");

    // The allowance refills with time.
    server.clock.advance(Duration::from_secs(60));
    let r = verify_from(&server, &verifier, &guess(7), &[], GUESSER)
        .await
        .unwrap();
    assert_eq!(inactive_reason(&r), TokenReason::UnknownApiKey);
}

#[tokio::test]
async fn a_client_address_that_is_not_an_ip_address_is_invalid() {
    let server = TestServer::start().await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let long = "1".repeat(100);
    for bad in ["203.0.113.7:443", "localhost", "[2001:db8::1]", &long] {
        let err = verify_from(&server, &verifier, "mcp_sk_x", &[], bad)
            .await
            .unwrap_err();
        let meta = assert_status(&err, Code::InvalidArgument, "INVALID_FIELD");
        assert_eq!(meta["field"], "client_address", "{bad}");
    }
    assert!(
        verify_from(&server, &verifier, &server.primary, &[], "2001:db8::1")
            .await
            .unwrap()
            .active
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_says_what_kind_a_token_is() {
    let server = TestServer::start().await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let (key_id, key) = server.key_with(&["tools:read"]).await;
    let (code, out, err) = server
        .cli(
            Some(&verifier),
            &["token", "verify", "--any-audience", &key],
        )
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("kind:       API key"), "{out}");
    assert!(out.contains(&format!("subject:    {key_id}")), "{out}");
    assert!(out.contains("session id: -"), "{out}");

    let (code, out, _) = server
        .cli(
            Some(&verifier),
            &["token", "verify", "--any-audience", "--json", "mcp_sk_nope"],
        )
        .await;
    assert_eq!(code, 3);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["token_kind"], "API_KEY");
    assert_eq!(v["reason"], "UNKNOWN_API_KEY");

    let s = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;
    let (code, out, _) = server
        .cli(
            Some(&verifier),
            &["token", "verify", "--any-audience", &s.access_token],
        )
        .await;
    assert_eq!(code, 0);
    assert!(out.contains("kind:       access token"), "{out}");
}
