//! The token endpoint's half of the browser flow, over real HTTPS:
//! `grant_type=authorization_code` with PKCE and `grant_type=refresh_token`
//! for public and confidential clients. The codes come from the core
//! (`issue_authorization_code`, what the authorization endpoint calls once
//! the user approved), the rest goes over the wire: the exchange, each
//! refusal with its OAuth error and reason, a reused code revoking its
//! tokens, rotation and reuse detection on refresh, the session listed and
//! revoked like any other, and RefreshSession refusing an OAuth session.

use std::time::Duration;

use mcp_auth::core::ApprovedAuthorization;
use mcp_auth::core::pkce::challenge_of;
use mcp_auth::pb;
use reqwest::StatusCode;
use serde_json::Value;
use tonic::Code;

use crate::common::{HttpTarget, TestServer, inactive_reason, strings};
use crate::oauth::{RESOURCE, oauth_error, post};

const REDIRECT: &str = "https://app.example/cb";
const VERIFIER: &str = "a-verifier-of-forty-three-characters-or-more-0123";

/// A client for the browser flow; returns (id, secret: empty for a
/// public one).
async fn browser_client(server: &TestServer, method: &str, grants: &[&str]) -> (String, String) {
    let resp = server
        .client(&server.primary)
        .await
        .create_client(pb::CreateClientRequest {
            name: format!("browser {method}"),
            redirect_uris: strings(&[REDIRECT]),
            grant_types: strings(grants),
            allowed_scopes: strings(&["tools:read", "tools:call"]),
            allowed_resources: strings(&[RESOURCE]),
            token_endpoint_auth_method: method.to_owned(),
            jwks: String::new(),
            skip_consent: false,
        })
        .await
        .unwrap();
    (resp.client.unwrap().client_id, resp.secret)
}

/// A code for `client_id`, as the authorization endpoint would issue it
/// after `alice` approved.
async fn code_for(server: &TestServer, client_id: &str) -> String {
    server
        .core()
        .issue_authorization_code(ApprovedAuthorization {
            client_id: client_id.to_owned(),
            redirect_uri: REDIRECT.to_owned(),
            code_challenge: challenge_of(VERIFIER),
            subject: "alice".to_owned(),
            scopes: strings(&["tools:read", "tools:call"]),
            resources: vec![RESOURCE.to_owned()],
        })
        .await
        .unwrap()
        .expose()
        .to_owned()
}

/// The exchange of `code` by the public client `client_id`.
async fn exchange(
    server: &TestServer,
    client_id: &str,
    code: &str,
    verifier: &str,
) -> reqwest::Response {
    post(
        server,
        "/token",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

/// Asserts a 200 token response with a refresh token; returns its body.
async fn tokens(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), StatusCode::OK, "{resp:?}");
    assert_eq!(resp.headers()[reqwest::header::CACHE_CONTROL], "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert!(
        body["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("mcp_rt_"),
        "{body}"
    );
    assert!(body["expires_in"].as_u64().unwrap() > 0, "{body}");
    body
}

/// Asserts an OAuth error with `reason`.
pub(crate) async fn refused(
    resp: reqwest::Response,
    status: StatusCode,
    error: &str,
    reason: &str,
) -> Value {
    let body = oauth_error(resp, status, error).await;
    assert_eq!(body["reason"], reason, "{body}");
    body
}

/// A refresh asking for a token for `resource`.
async fn refresh_for(
    server: &TestServer,
    client_id: &str,
    token: &str,
    resource: &str,
) -> reqwest::Response {
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("refresh_token", token),
        ("resource", resource),
    ];
    post(server, "/token", None, &form).await
}

/// The exchange of `code` by the public client `client_id`, for
/// `resource`.
async fn exchange_for(
    server: &TestServer,
    client_id: &str,
    code: &str,
    resource: &str,
) -> reqwest::Response {
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("resource", resource),
    ];
    post(server, "/token", None, &form).await
}

/// A refresh by the public client `client_id`, narrowed to `scope` if
/// some.
pub(crate) async fn refresh(
    server: &impl HttpTarget,
    client_id: &str,
    token: &str,
    scope: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("client_id", client_id),
        ("refresh_token", token),
    ];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    post(server, "/token", None, &form).await
}

#[tokio::test]
async fn a_public_client_exchanges_a_code_and_refreshes_with_rotation() {
    let server = TestServer::start_with(|c| c.auth_failures_per_minute = 10_000).await;
    let (_, verifier_key) = server.key_with(&["tokens:verify"]).await;
    let (id, _) = browser_client(&server, "none", &["authorization_code", "refresh_token"]).await;
    let code = code_for(&server, &id).await;
    let first = tokens(exchange(&server, &id, &code, VERIFIER).await).await;
    assert_eq!(first["scope"], "tools:read tools:call");

    let access = first["access_token"].as_str().unwrap();
    let resp = server.verify(&verifier_key, access).await;
    assert!(resp.active, "{resp:?}");
    let claims = resp.claims.unwrap();
    assert_eq!(claims.subject, "alice");
    assert_eq!(claims.client_id, id);
    assert_eq!(claims.audience, RESOURCE);
    assert!(claims.session_id.starts_with("ses_"), "a real session");

    // The session is an ordinary one: listed with its client.
    let admin = server.client(&server.primary).await;
    let listed = admin
        .list_sessions(pb::ListSessionsRequest {
            client_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.sessions.len(), 1);
    assert_eq!(listed.sessions[0].subject, "alice");

    // And revoked like any other: RevokeSession over gRPC ends another
    // OAuth session of the client at once.
    let code = code_for(&server, &id).await;
    let other = tokens(exchange(&server, &id, &code, VERIFIER).await).await;
    let other_sid = server
        .verify(&verifier_key, other["access_token"].as_str().unwrap())
        .await
        .claims
        .unwrap()
        .session_id;
    admin
        .revoke_session(pb::RevokeSessionRequest {
            session_id: other_sid,
        })
        .await
        .unwrap();
    let gone = server
        .verify(&verifier_key, other["access_token"].as_str().unwrap())
        .await;
    assert_eq!(inactive_reason(&gone), pb::TokenReason::Revoked);
    refused(
        refresh(&server, &id, other["refresh_token"].as_str().unwrap(), None).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "SESSION_REVOKED",
    )
    .await;

    // Refresh, narrowing; the old refresh token is then spent.
    let rt1 = first["refresh_token"].as_str().unwrap();
    let second = tokens(refresh(&server, &id, rt1, Some("tools:read")).await).await;
    assert_eq!(second["scope"], "tools:read");
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    refused(
        refresh(
            &server,
            &id,
            second["refresh_token"].as_str().unwrap(),
            Some("tools:read admin"),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "INVALID_FIELD",
    )
    .await;
    // RefreshSession does not refresh an OAuth session, even by its token.
    let err = admin
        .refresh_session(pb::RefreshSessionRequest {
            refresh_token: second["refresh_token"].as_str().unwrap().to_owned(),
            scopes: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err.message().contains("token endpoint"), "{err:?}");
    // Two processes refreshing at once with the same token: within the
    // grace window (5 s) the repeat gets the first answer again.
    let rt2 = second["refresh_token"].as_str().unwrap();
    let third = tokens(refresh(&server, &id, rt2, None).await).await;
    let repeat = tokens(refresh(&server, &id, rt2, None).await).await;
    assert_eq!(repeat, third, "the same tokens, no fork");
    // Reuse of a spent token after the window revokes the session.
    server.clock.advance(Duration::from_secs(5));
    refused(
        refresh(&server, &id, rt1, None).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "REFRESH_TOKEN_REUSED",
    )
    .await;
    let after = server
        .verify(&verifier_key, third["access_token"].as_str().unwrap())
        .await;
    assert_eq!(inactive_reason(&after), pb::TokenReason::Revoked);
}

#[tokio::test]
async fn code_exchange_refusals_carry_their_oauth_errors_and_a_reused_code_revokes_its_tokens() {
    let server = TestServer::start_with(|c| c.auth_failures_per_minute = 10_000).await;
    let (_, verifier_key) = server.key_with(&["tokens:verify"]).await;
    let (id, _) = browser_client(&server, "none", &["authorization_code", "refresh_token"]).await;
    let (other, _) = browser_client(&server, "none", &["authorization_code"]).await;

    for verifier in [VERIFIER.replace('a', "b"), "short".to_owned()] {
        let code = code_for(&server, &id).await;
        refused(
            exchange(&server, &id, &code, &verifier).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "PKCE_FAILED",
        )
        .await;
        // The refused exchange spent the code: guessing verifiers gets one
        // try per code.
        refused(
            exchange(&server, &id, &code, VERIFIER).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "AUTHORIZATION_CODE_REUSED",
        )
        .await;
    }

    let code = code_for(&server, &id).await;
    let no_verifier = post(
        &server,
        "/token",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await;
    refused(
        no_verifier,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "PKCE_FAILED",
    )
    .await;

    let code = code_for(&server, &id).await;
    let wrong_redirect = post(
        &server,
        "/token",
        None,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &id),
            ("code", &code),
            ("redirect_uri", "https://app.example/other"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    let body = refused(
        wrong_redirect,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "AUTHORIZATION_CODE_INVALID",
    )
    .await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("redirect_uri"),
        "{body}"
    );

    let code = code_for(&server, &id).await;
    let body = refused(
        exchange(&server, &other, &code, VERIFIER).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "AUTHORIZATION_CODE_INVALID",
    )
    .await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("another client"),
        "{body}"
    );

    let code = code_for(&server, &id).await;
    server.clock.advance(Duration::from_secs(60));
    refused(
        exchange(&server, &id, &code, VERIFIER).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "AUTHORIZATION_CODE_INVALID",
    )
    .await;
    for garbage in ["mcp_ac_nope", "not-a-code"] {
        refused(
            exchange(&server, &id, garbage, VERIFIER).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "AUTHORIZATION_CODE_INVALID",
        )
        .await;
    }

    // A code used twice: the second use revokes what the first got.
    let code = code_for(&server, &id).await;
    let got = tokens(exchange(&server, &id, &code, VERIFIER).await).await;
    refused(
        exchange(&server, &id, &code, VERIFIER).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "AUTHORIZATION_CODE_REUSED",
    )
    .await;
    let verdict = server
        .verify(&verifier_key, got["access_token"].as_str().unwrap())
        .await;
    assert_eq!(inactive_reason(&verdict), pb::TokenReason::Revoked);
    refused(
        refresh(&server, &id, got["refresh_token"].as_str().unwrap(), None).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
        "SESSION_REVOKED",
    )
    .await;

    // A client not registered for refresh_token may not use it.
    let code = code_for(&server, &other).await;
    let got = tokens(exchange(&server, &other, &code, VERIFIER).await).await;
    refused(
        refresh(
            &server,
            &other,
            got["refresh_token"].as_str().unwrap(),
            None,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        "GRANT_NOT_ALLOWED",
    )
    .await;
    // Another client's refresh token is not the caller's.
    refused(
        refresh(&server, &id, got["refresh_token"].as_str().unwrap(), None).await,
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        "NOT_SESSION_CREATOR",
    )
    .await;
}

#[tokio::test]
async fn a_confidential_client_authenticates_and_deleting_it_ends_its_sessions() {
    let server = TestServer::start_with(|c| c.auth_failures_per_minute = 10_000).await;
    let (_, verifier_key) = server.key_with(&["tokens:verify"]).await;
    let (id, secret) = browser_client(
        &server,
        "client_secret_basic",
        &["authorization_code", "refresh_token"],
    )
    .await;
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{id}:{secret}")
        )
    );
    // With client_id alone it is refused: it has a secret to present.
    let code = code_for(&server, &id).await;
    refused(
        exchange(&server, &id, &code, VERIFIER).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "CLIENT_AUTH_FAILED",
    )
    .await;
    let code = code_for(&server, &id).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let got = tokens(post(&server, "/token", Some(&basic), &form).await).await;
    let refreshed = tokens(
        post(
            &server,
            "/token",
            Some(&basic),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", got["refresh_token"].as_str().unwrap()),
            ],
        )
        .await,
    )
    .await;

    server
        .client(&server.primary)
        .await
        .delete_client(pb::DeleteClientRequest {
            client_id: id.clone(),
        })
        .await
        .unwrap();
    let verdict = server
        .verify(&verifier_key, refreshed["access_token"].as_str().unwrap())
        .await;
    assert_eq!(inactive_reason(&verdict), pb::TokenReason::Revoked);
    refused(
        post(
            &server,
            "/token",
            Some(&basic),
            &[
                ("grant_type", "refresh_token"),
                (
                    "refresh_token",
                    refreshed["refresh_token"].as_str().unwrap(),
                ),
            ],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "CLIENT_AUTH_FAILED",
    )
    .await;
}

#[tokio::test]
async fn a_resource_sent_at_the_token_endpoint_must_be_the_authorizations() {
    let server = TestServer::start_with(|c| c.auth_failures_per_minute = 10_000).await;
    let (id, _) = browser_client(&server, "none", &["authorization_code", "refresh_token"]).await;
    let code = code_for(&server, &id).await;
    refused(
        exchange_for(&server, &id, &code, "https://other.example.com").await,
        StatusCode::BAD_REQUEST,
        "invalid_target",
        "RESOURCE_NOT_ALLOWED",
    )
    .await;
    let code = code_for(&server, &id).await;
    let got = tokens(exchange_for(&server, &id, &code, RESOURCE).await).await;
    let rt = got["refresh_token"].as_str().unwrap();
    refused(
        refresh_for(&server, &id, rt, "https://other.example.com").await,
        StatusCode::BAD_REQUEST,
        "invalid_target",
        "RESOURCE_NOT_ALLOWED",
    )
    .await;
    // Nothing was spent: the refresh token still works, with its resource.
    tokens(refresh_for(&server, &id, rt, RESOURCE).await).await;
}

#[tokio::test]
async fn a_code_for_several_resources_gives_a_token_for_each_one_asked() {
    const SECOND: &str = "https://second.example.com";
    let server = TestServer::start_with(|c| c.auth_failures_per_minute = 10_000).await;
    let (_, verifier_key) = server.key_with(&["tokens:verify"]).await;
    let id = server
        .client(&server.primary)
        .await
        .create_client(pb::CreateClientRequest {
            name: "two resources".to_owned(),
            redirect_uris: strings(&[REDIRECT]),
            grant_types: strings(&["authorization_code", "refresh_token"]),
            allowed_scopes: strings(&["tools:read"]),
            allowed_resources: strings(&[RESOURCE, SECOND]),
            token_endpoint_auth_method: "none".to_owned(),
            jwks: String::new(),
            skip_consent: false,
        })
        .await
        .unwrap()
        .client
        .unwrap()
        .client_id;
    let code = |server: &TestServer| {
        let core = server.core();
        let id = id.clone();
        async move {
            core.issue_authorization_code(ApprovedAuthorization {
                client_id: id,
                redirect_uri: REDIRECT.to_owned(),
                code_challenge: challenge_of(VERIFIER),
                subject: "alice".to_owned(),
                scopes: strings(&["tools:read"]),
                resources: strings(&[RESOURCE, SECOND]),
            })
            .await
            .unwrap()
            .expose()
            .to_owned()
        }
    };
    // Without a resource the exchange cannot tell which one.
    let c = code(&server).await;
    refused(
        exchange(&server, &id, &c, VERIFIER).await,
        StatusCode::BAD_REQUEST,
        "invalid_target",
        "RESOURCE_NOT_ALLOWED",
    )
    .await;
    let c = code(&server).await;
    let got = tokens(exchange_for(&server, &id, &c, SECOND).await).await;
    let aud = |token: &Value| {
        let server = &server;
        let key = verifier_key.clone();
        let token = token["access_token"].as_str().unwrap().to_owned();
        async move { server.verify(&key, &token).await.claims.unwrap().audience }
    };
    assert_eq!(aud(&got).await, SECOND);
    // A refresh may ask for the other granted resource, not another.
    let rt = got["refresh_token"].as_str().unwrap();
    refused(
        refresh_for(&server, &id, rt, "https://third.example.com").await,
        StatusCode::BAD_REQUEST,
        "invalid_target",
        "RESOURCE_NOT_ALLOWED",
    )
    .await;
    let first = tokens(refresh_for(&server, &id, rt, RESOURCE).await).await;
    assert_eq!(aud(&first).await, RESOURCE);
    // Without one, the session's own resource.
    let again =
        tokens(refresh(&server, &id, first["refresh_token"].as_str().unwrap(), None).await).await;
    assert_eq!(aud(&again).await, SECOND);
}

/// One code sent many times at once: one exchange gets tokens, every other
/// is `AUTHORIZATION_CODE_REUSED`, and the winner's session is revoked
/// (the unit tests of `core::code_grant` force the interleaving where a
/// replay comes before the winner stored its session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_sent_many_times_at_once_has_one_winner_whose_session_is_revoked() {
    let server = TestServer::start_with(|c| c.auth_failures_per_minute = 10_000).await;
    let (_, verifier_key) = server.key_with(&["tokens:verify"]).await;
    let (id, _) = browser_client(&server, "none", &["authorization_code", "refresh_token"]).await;
    for round in 0..10 {
        let code = code_for(&server, &id).await;
        let answers = futures_util::future::join_all(
            (0..8).map(|_| async { exchange(&server, &id, &code, VERIFIER).await }),
        )
        .await;
        let mut won = Vec::new();
        for resp in answers {
            if resp.status() == StatusCode::OK {
                won.push(tokens(resp).await);
            } else {
                refused(
                    resp,
                    StatusCode::BAD_REQUEST,
                    "invalid_grant",
                    "AUTHORIZATION_CODE_REUSED",
                )
                .await;
            }
        }
        assert_eq!(won.len(), 1, "round {round}: {won:?}");
        let verdict = server
            .verify(&verifier_key, won[0]["access_token"].as_str().unwrap())
            .await;
        assert_eq!(
            inactive_reason(&verdict),
            pb::TokenReason::Revoked,
            "round {round}"
        );
    }
}

/// Maintenance removes the codes that ended (a minute of life and a
/// minute remembered) and keeps the live one, which still exchanges.
#[tokio::test]
async fn maintenance_removes_the_codes_that_ended_and_keeps_the_others() {
    let server = TestServer::start().await;
    let (id, _) = browser_client(&server, "none", &["authorization_code", "refresh_token"]).await;
    let _ended = code_for(&server, &id).await;
    server.clock.advance(Duration::from_secs(120));
    let live = code_for(&server, &id).await;
    assert_eq!(server.maintain().await.transient_entries_removed, 1);
    assert_eq!(server.maintain().await.transient_entries_removed, 0);
    tokens(exchange(&server, &id, &live, VERIFIER).await).await;
}
