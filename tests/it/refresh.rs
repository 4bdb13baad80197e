//! RefreshSession: rotation, reuse detection, grace window, expiry.

use std::time::Duration;

use mcp_auth::pb;
use mcp_auth::pb::token_service_client::TokenServiceClient;
use pb::TokenReason;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::common::{TestServer, assert_status, authed, inactive_reason, strings};

fn refresh_req(token: &str, scopes: &[&str]) -> Request<pb::RefreshSessionRequest> {
    Request::new(pb::RefreshSessionRequest {
        refresh_token: token.to_owned(),
        scopes: strings(scopes),
    })
}

async fn refresh(
    tokens: &mut TokenServiceClient<Channel>,
    token: &str,
) -> Result<pb::Session, Status> {
    Ok(tokens
        .refresh_session(refresh_req(token, &[]))
        .await?
        .into_inner())
}

#[tokio::test]
async fn a_chain_of_ten_refreshes_keeps_the_session() {
    let server = TestServer::start().await;
    let first = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;
    assert!(first.refresh_token.starts_with("mcp_rt_"));
    assert_eq!(first.session_expires_at, server.clock.now() + 24 * 3600);
    let mut tokens = server.tokens().await;
    let mut current = first.clone();
    let mut seen = vec![first.refresh_token.clone()];
    for _ in 0..10 {
        server.clock.advance(Duration::from_secs(60));
        let next = refresh(&mut tokens, &current.refresh_token).await.unwrap();
        assert_eq!(next.session_id, first.session_id);
        assert_eq!(next.subject, "alice");
        assert_eq!(next.scopes, ["tools:read"]);
        assert_eq!(next.expires_at, server.clock.now() + 900);
        assert!(
            !seen.contains(&next.refresh_token),
            "a fresh refresh token every time"
        );
        seen.push(next.refresh_token.clone());
        let r = server.verify(&server.primary, &next.access_token).await;
        assert!(r.active);
        assert_eq!(r.claims.unwrap().session_id, first.session_id);
        current = next;
    }
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_revokes_the_whole_session() {
    let mut server = TestServer::start().await;
    let first = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;
    let mut tokens = server.tokens().await;
    let second = refresh(&mut tokens, &first.refresh_token).await.unwrap();

    let err = refresh(&mut tokens, &first.refresh_token)
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "REFRESH_TOKEN_REUSED");
    // Every token of the session is dead: both access tokens, and the
    // refresh token that was still current.
    for access in [&first.access_token, &second.access_token] {
        let r = server.verify(&server.primary, access).await;
        assert_eq!(inactive_reason(&r), TokenReason::Revoked);
    }
    let err = refresh(&mut tokens, &second.refresh_token)
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "SESSION_REVOKED");

    server.restart().await;
    let r = server.verify(&server.primary, &second.access_token).await;
    assert_eq!(inactive_reason(&r), TokenReason::Revoked);
    server.stop().await;
}

#[tokio::test]
async fn a_grace_window_lets_racing_clients_refresh_twice() {
    let server = TestServer::start_with(|c| c.refresh_reuse_grace = 5).await;
    let first = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;
    let mut tokens = server.tokens().await;
    let a = refresh(&mut tokens, &first.refresh_token).await.unwrap();
    server.clock.advance(Duration::from_secs(4));
    // The racing repeat gets the very same answer: no second line of
    // tokens exists.
    let b = refresh(&mut tokens, &first.refresh_token).await.unwrap();
    assert_eq!(a.refresh_token, b.refresh_token);
    assert_eq!(a.access_token, b.access_token);
    // A repeat asking for other scopes is refused, harmlessly.
    let err = tokens
        .refresh_session(tonic::Request::new(pb::RefreshSessionRequest {
            refresh_token: first.refresh_token.clone(),
            scopes: strings(&["tools:read"]),
        }))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "REFRESH_TOKEN_INVALID");
    let r = server.verify(&server.primary, &a.access_token).await;
    assert!(r.active, "the session lives on: {r:?}");
    server.clock.advance(Duration::from_secs(1));
    let err = refresh(&mut tokens, &first.refresh_token)
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "REFRESH_TOKEN_REUSED");
}

#[tokio::test]
async fn absolute_lifetime_and_idle_timeout_end_a_session() {
    let server = TestServer::start_with(|c| c.session_idle_timeout = 600).await;
    let mut tokens = server.tokens().await;

    // Idle: no refresh for 600 seconds.
    let idle = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;
    server.clock.advance(Duration::from_secs(600));
    let err = refresh(&mut tokens, &idle.refresh_token).await.unwrap_err();
    assert_status(&err, Code::Unauthenticated, "SESSION_EXPIRED");

    // Absolute: a 1000-second session refreshed every 400 seconds.
    let s = tokens
        .create_session(authed(
            pb::CreateSessionRequest {
                subject: "bob".to_owned(),
                scopes: strings(&["tools:read"]),
                audience: "aud".to_owned(),
                ttl_seconds: 900,
                session_lifetime_seconds: 1000,
            },
            &server.primary,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.session_expires_at, server.clock.now() + 1000);
    server.clock.advance(Duration::from_secs(400));
    let r1 = refresh(&mut tokens, &s.refresh_token).await.unwrap();
    server.clock.advance(Duration::from_secs(400));
    let r2 = refresh(&mut tokens, &r1.refresh_token).await.unwrap();
    assert_eq!(
        r2.expires_at, s.session_expires_at,
        "no token outlives its session"
    );
    server.clock.advance(Duration::from_secs(200));
    let err = refresh(&mut tokens, &r2.refresh_token).await.unwrap_err();
    assert_status(&err, Code::Unauthenticated, "SESSION_EXPIRED");

    let err = tokens
        .create_session(authed(
            pb::CreateSessionRequest {
                subject: "bob".to_owned(),
                scopes: strings(&["tools:read"]),
                audience: "aud".to_owned(),
                ttl_seconds: 0,
                session_lifetime_seconds: 24 * 3600 + 1,
            },
            &server.primary,
        ))
        .await
        .unwrap_err();
    let meta = assert_status(&err, Code::InvalidArgument, "INVALID_FIELD");
    assert_eq!(meta["field"], "session_lifetime_seconds");
}

#[tokio::test]
async fn refresh_may_narrow_scopes_but_never_widen() {
    let server = TestServer::start().await;
    let s = server
        .session(&server.primary, &["tools:read", "tools:call"], "aud")
        .await;
    let mut tokens = server.tokens().await;
    let err = tokens
        .refresh_session(refresh_req(&s.refresh_token, &["tools:write"]))
        .await
        .unwrap_err();
    let meta = assert_status(&err, Code::InvalidArgument, "INVALID_FIELD");
    assert_eq!(meta["field"], "scopes");
    // The refused request spent nothing.
    let narrowed = tokens
        .refresh_session(refresh_req(&s.refresh_token, &["tools:read"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(narrowed.scopes, ["tools:read"]);
    let r = server.verify(&server.primary, &narrowed.access_token).await;
    assert_eq!(r.claims.unwrap().scopes, ["tools:read"]);
    // The session keeps its grant: the next refresh may ask for both again.
    let full = refresh(&mut tokens, &narrowed.refresh_token).await.unwrap();
    assert_eq!(full.scopes, ["tools:read", "tools:call"]);
}

#[tokio::test]
async fn a_credential_sent_with_a_refresh_token_must_be_the_creator() {
    let server = TestServer::start().await;
    let (_, backend) = server.key_with(&["sessions:create", "tools:read"]).await;
    let (_, other) = server.key_with(&["sessions:create", "tools:read"]).await;
    let s = server.session(&backend, &["tools:read"], "aud").await;
    let mut tokens = server.tokens().await;
    let with_key = |key: &str, token: &str| {
        authed(
            pb::RefreshSessionRequest {
                refresh_token: token.to_owned(),
                scopes: vec![],
            },
            key,
        )
    };
    let err = tokens
        .refresh_session(with_key(&other, &s.refresh_token))
        .await
        .unwrap_err();
    assert_status(&err, Code::PermissionDenied, "NOT_SESSION_CREATOR");
    let next = tokens
        .refresh_session(with_key(&backend, &s.refresh_token))
        .await
        .unwrap()
        .into_inner();
    refresh(&mut tokens, &next.refresh_token).await.unwrap();

    for bad in ["", "mcp_sk_x", "mcp_rt_unknown"] {
        let err = refresh(&mut tokens, bad).await.unwrap_err();
        assert_status(&err, Code::Unauthenticated, "REFRESH_TOKEN_INVALID");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_of_one_token_mint_once() {
    const RACERS: usize = 32;
    let server = TestServer::start().await;
    let s = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;
    let channel = server.channel().await;
    let tasks: Vec<_> = (0..RACERS)
        .map(|_| {
            let mut tokens = TokenServiceClient::new(channel.clone());
            let token = s.refresh_token.clone();
            tokio::spawn(async move { refresh(&mut tokens, &token).await })
        })
        .collect();
    let mut minted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => minted += 1,
            Err(err) => {
                let reason = tonic_types::StatusExt::get_details_error_info(&err)
                    .unwrap()
                    .reason;
                assert!(
                    reason == "REFRESH_TOKEN_REUSED" || reason == "SESSION_REVOKED",
                    "{err:?}"
                );
            }
        }
    }
    assert_eq!(minted, 1, "exactly one racer wins outside a grace window");
}
