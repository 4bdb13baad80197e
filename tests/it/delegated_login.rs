//! Signing in at the operator's application (`login_url`, issue 13, as
//! Ory Hydra's login challenge), end to end over real HTTPS and gRPC: the
//! test plays both the browser (cookies kept, no redirect followed) and
//! the application (it reads the challenge from the `Location` of the
//! redirect to `login_url` and answers over `OAuthService` with an
//! `oauth:login` key). The full flow to a token whose `sub` is the
//! application's subject, a remembered browser, a rejection sent back to
//! the client, single-use challenges and verifiers, another browser
//! refused, and the scope.

use std::time::Duration;

use mcp_auth::pb;
use reqwest::StatusCode;
use reqwest::header;
use serde_json::Value;
use tonic::Code;

use crate::browser_flow::{
    REDIRECT, assert_page_headers, authorize_url, browser, exchange_code, field, location_params,
    param, submit,
};
use crate::common::{TestServer, assert_status, strings};
use crate::oauth::RESOURCE;

/// The application's sign-in page: never reached, the test reads the
/// redirect to it.
const LOGIN_URL: &str = "https://app.example/login?tenant=t1";
/// The issuer of the test server's default configuration.
const ISSUER: &str = "https://localhost:8443";

async fn server(remember: u32) -> TestServer {
    TestServer::start_with(|c| {
        c.login_url = Some(LOGIN_URL.to_owned());
        c.login_remember_seconds = remember;
    })
    .await
}

/// A public client of the browser flow; its id.
async fn client(server: &TestServer) -> String {
    server
        .client(&server.primary)
        .await
        .create_client(pb::CreateClientRequest {
            name: "Inspector <test>".to_owned(),
            redirect_uris: strings(&[REDIRECT]),
            grant_types: strings(&["authorization_code", "refresh_token"]),
            allowed_scopes: strings(&["tools:read", "tools:call"]),
            allowed_resources: strings(&[RESOURCE]),
            token_endpoint_auth_method: "none".to_owned(),
            jwks: String::new(),
            skip_consent: false,
        })
        .await
        .unwrap()
        .client
        .unwrap()
        .client_id
}

/// The browser opens /authorize and is sent to the application's sign-in
/// page: the login challenge it carries.
async fn login_challenge(b: &reqwest::Client, server: &TestServer, client_id: &str) -> String {
    let resp = b
        .get(authorize_url(server, client_id, REDIRECT, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
    let (to, params) = location_params(&resp);
    assert_eq!(to, "https://app.example/login");
    assert_eq!(param(&params, "tenant"), Some("t1"), "its query is kept");
    let challenge = param(&params, "login_challenge").unwrap().to_owned();
    assert!(challenge.starts_with("mcp_lc_"), "{challenge}");
    challenge
}

fn get_request(challenge: &str) -> pb::GetLoginRequestRequest {
    pb::GetLoginRequestRequest {
        login_challenge: challenge.to_owned(),
    }
}

fn accept(challenge: &str, subject: &str, remember_seconds: u32) -> pb::AcceptLoginRequest {
    pb::AcceptLoginRequest {
        login_challenge: challenge.to_owned(),
        subject: subject.to_owned(),
        remember_seconds,
    }
}

fn reject(challenge: &str, error: &str, description: &str) -> pb::RejectLoginRequest {
    pb::RejectLoginRequest {
        login_challenge: challenge.to_owned(),
        error: error.to_owned(),
        error_description: description.to_owned(),
    }
}

/// `redirect_to` on the test server's own address (the issuer names the
/// default one).
fn on_server(server: &TestServer, redirect_to: &str) -> String {
    let path = redirect_to
        .strip_prefix(ISSUER)
        .unwrap_or_else(|| panic!("{redirect_to} is not under the issuer"));
    format!("{}{path}", server.http_url())
}

/// The reason an error page names.
pub(crate) async fn page_reason(resp: reqwest::Response) -> String {
    let html = resp.text().await.unwrap();
    let start = html
        .find("class=\"reason\">")
        .unwrap_or_else(|| panic!("no reason in {html}"))
        + "class=\"reason\">".len();
    html[start..start + html[start..].find('<').unwrap()].to_owned()
}

#[tokio::test]
async fn the_app_signs_the_user_in_and_the_client_gets_tokens_for_the_apps_subject() {
    let server = server(1800).await;
    let client_id = client(&server).await;
    let (app_key_id, app_key) = server.key_with(&["oauth:login"]).await;
    let app = server.client(&app_key).await;
    let b = browser(&server);

    let challenge = login_challenge(&b, &server, &client_id).await;
    let asked = app
        .get_login_request(get_request(&challenge))
        .await
        .unwrap();
    assert_eq!(
        asked,
        pb::LoginRequest {
            client_id: client_id.clone(),
            client_name: "Inspector <test>".to_owned(),
            scopes: strings(&["tools:read"]),
            resource: RESOURCE.to_owned(),
            redirect_host: "127.0.0.1".to_owned(),
            expires_at: server.clock.now() + 600,
        }
    );
    // Asking again is fine while the challenge waits for its answer.
    app.get_login_request(get_request(&challenge))
        .await
        .unwrap();

    // A subject CreateSession would refuse is refused here too, and the
    // challenge still waits.
    let err = app
        .accept_login(accept(&challenge, "", 0))
        .await
        .unwrap_err();
    assert_eq!(
        assert_status(&err, Code::InvalidArgument, "INVALID_FIELD")["field"],
        "subject"
    );

    // The application asks for a day; the server remembers for at most
    // login_remember_seconds.
    let accepted = app
        .accept_login(accept(&challenge, "app-user-42", 86_400))
        .await
        .unwrap();
    assert!(
        accepted
            .redirect_to
            .starts_with(&format!("{ISSUER}/login-continue?login_verifier=mcp_lv_")),
        "{accepted:?}"
    );
    let continue_url = on_server(&server, &accepted.redirect_to);

    // One answer per challenge.
    for err in [
        app.get_login_request(get_request(&challenge))
            .await
            .unwrap_err(),
        app.accept_login(accept(&challenge, "someone-else", 0))
            .await
            .unwrap_err(),
        app.reject_login(reject(&challenge, "", ""))
            .await
            .unwrap_err(),
    ] {
        assert_status(&err, Code::NotFound, "LOGIN_CHALLENGE_INVALID");
        assert!(err.message().contains("accepted already"), "{err:?}");
    }

    // Another browser (with or without a cookie of its own) is refused,
    // and that does not spend the verifier.
    let other = browser(&server);
    let resp = other.get(&continue_url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(page_reason(resp).await, "INTERACTION_INVALID");
    login_challenge(&other, &server, &client_id).await;
    let resp = other.get(&continue_url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(page_reason(resp).await, "INTERACTION_INVALID");

    // The browser that began it comes back: the consent page, and the
    // login cookie for 1800 seconds.
    let consent = b.get(&continue_url).send().await.unwrap();
    assert_eq!(consent.status(), StatusCode::OK);
    assert_page_headers(&consent);
    let login_cookie = consent.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        login_cookie.starts_with("__Host-mcp_auth_login=") && login_cookie.contains("Max-Age=1800"),
        "{login_cookie}"
    );
    let html = consent.text().await.unwrap();
    assert!(
        html.contains("Allow access?") && html.contains("app-user-42"),
        "{html}"
    );
    let interaction = field(&html, "interaction");
    let csrf = field(&html, "csrf");

    // The verifier is good for one visit.
    let again = b.get(&continue_url).send().await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(page_reason(again).await, "INTERACTION_INVALID");

    let back = submit(
        &b,
        &server,
        "/consent",
        &[
            ("interaction", &interaction),
            ("csrf", &csrf),
            ("decision", "approve"),
        ],
    )
    .await;
    let (base, params) = location_params(&back);
    assert_eq!(base, REDIRECT);
    assert_eq!(param(&params, "state"), Some("st-123"));
    assert_eq!(param(&params, "iss"), Some(ISSUER));
    let code = param(&params, "code").unwrap().to_owned();

    let tokens: Value = exchange_code(&b, &server, &client_id, &code, REDIRECT).await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let verdict = server
        .verify(&verifier, tokens["access_token"].as_str().unwrap())
        .await;
    assert!(verdict.active, "{verdict:?} {tokens}");
    let claims = verdict.claims.unwrap();
    assert_eq!(claims.subject, "app-user-42");
    assert_eq!(claims.client_id, client_id);
    assert_eq!(claims.audience, RESOURCE);
    assert_eq!(claims.scopes, strings(&["tools:read"]));

    // Remembered: the next authorization skips the application.
    let resp = b
        .get(authorize_url(&server, &client_id, REDIRECT, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("Allow access?") && html.contains("app-user-42"),
        "{html}"
    );

    // The answer is audited, the application's key as actor.
    let events = server
        .client(&server.primary)
        .await
        .list_audit_events(pb::ListAuditEventsRequest {
            action: "login.accepted".to_owned(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .events;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].actor, app_key_id);
    assert_eq!(
        events[0].target,
        format!("subject app-user-42 for {client_id}")
    );
    assert!(!events[0].target.contains("mcp_lc_"), "no challenge in it");
}

#[tokio::test]
async fn a_rejected_login_goes_back_to_the_client_with_the_error() {
    let server = server(28_800).await;
    let client_id = client(&server).await;
    let (_, app_key) = server.key_with(&["oauth:login"]).await;
    let app = server.client(&app_key).await;
    let b = browser(&server);

    // Refused fields do not spend the challenge.
    let first = login_challenge(&b, &server, &client_id).await;
    for (error, description, field) in [
        ("invalid_client", "", "error"),
        ("access_denied", "say \"no\"", "error_description"),
        ("access_denied", "two\nlines", "error_description"),
    ] {
        let err = app
            .reject_login(reject(&first, error, description))
            .await
            .unwrap_err();
        assert_eq!(
            assert_status(&err, Code::InvalidArgument, "INVALID_FIELD")["field"],
            field
        );
    }
    let rejected = app
        .reject_login(reject(&first, "", "no such user at the app"))
        .await
        .unwrap();
    let url = reqwest::Url::parse(&rejected.redirect_to).unwrap();
    assert_eq!(&url[..url::Position::AfterPath], REDIRECT);
    let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(
        params,
        [
            ("error", "access_denied"),
            ("error_description", "no such user at the app"),
            ("state", "st-123"),
            ("iss", ISSUER),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
    for err in [
        app.accept_login(accept(&first, "app-user-42", 0))
            .await
            .unwrap_err(),
        app.get_login_request(get_request(&first))
            .await
            .unwrap_err(),
    ] {
        assert_status(&err, Code::NotFound, "LOGIN_CHALLENGE_INVALID");
        assert!(err.message().contains("rejected already"), "{err:?}");
    }

    // Another error, without a description.
    let second = login_challenge(&b, &server, &client_id).await;
    let rejected = app
        .reject_login(reject(&second, "login_required", ""))
        .await
        .unwrap();
    let url = reqwest::Url::parse(&rejected.redirect_to).unwrap();
    let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(param(&params, "error"), Some("login_required"));
    assert_eq!(param(&params, "error_description"), None);
    assert_eq!(param(&params, "iss"), Some(ISSUER));

    let events = server
        .client(&server.primary)
        .await
        .list_audit_events(pb::ListAuditEventsRequest {
            action: "login.rejected".to_owned(),
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .events;
    let targets: Vec<&str> = events.iter().map(|e| e.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            format!("{client_id} (access_denied)"),
            format!("{client_id} (login_required)")
        ]
    );
}

#[tokio::test]
async fn challenges_are_single_use_end_with_their_interaction_and_need_oauth_login() {
    let server = server(0).await;
    let client_id = client(&server).await;
    let (_, app_key) = server.key_with(&["oauth:login"]).await;
    let app = server.client(&app_key).await;
    let b = browser(&server);

    // Unknown and empty challenges.
    for (challenge, code, reason) in [
        ("mcp_lc_unknown", Code::NotFound, "LOGIN_CHALLENGE_INVALID"),
        ("not-a-challenge", Code::NotFound, "LOGIN_CHALLENGE_INVALID"),
        ("", Code::InvalidArgument, "INVALID_FIELD"),
    ] {
        let err = app
            .get_login_request(get_request(challenge))
            .await
            .unwrap_err();
        assert_status(&err, code, reason);
    }

    // A key without oauth:login, however strong otherwise, is refused
    // by every RPC; admin implies it.
    let challenge = login_challenge(&b, &server, &client_id).await;
    let (_, weak) = server
        .key_with(&[
            "clients:admin",
            "users:admin",
            "sessions:create",
            "tools:read",
        ])
        .await;
    let weak = server.client(&weak).await;
    for err in [
        weak.get_login_request(get_request(&challenge))
            .await
            .unwrap_err(),
        weak.accept_login(accept(&challenge, "mallory", 0))
            .await
            .unwrap_err(),
        weak.reject_login(reject(&challenge, "", ""))
            .await
            .unwrap_err(),
    ] {
        assert_eq!(
            assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE")["scope"],
            "oauth:login"
        );
    }
    server
        .client(&server.primary)
        .await
        .get_login_request(get_request(&challenge))
        .await
        .unwrap();

    // oauth:login is a service scope: never in a token.
    let err = server
        .client(&server.primary)
        .await
        .create_session(pb::CreateSessionRequest {
            subject: "alice".to_owned(),
            scopes: strings(&["oauth:login"]),
            audience: "aud".to_owned(),
            ttl_seconds: 0,
            session_lifetime_seconds: 0,
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::InvalidArgument, "INVALID_FIELD");

    // Accepted with remembering asked for, on a server that remembers
    // nobody: the consent page and no login cookie.
    let accepted = app
        .accept_login(accept(&challenge, "app-user-7", 3600))
        .await
        .unwrap();
    let consent = b
        .get(on_server(&server, &accepted.redirect_to))
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), StatusCode::OK);
    assert!(
        consent.headers().get(header::SET_COOKIE).is_none(),
        "{:?}",
        consent.headers()
    );
    // Not remembered: the next authorization goes to the application.
    let next = login_challenge(&b, &server, &client_id).await;

    // A challenge ends with its interaction, after 10 minutes; so does a
    // verifier not yet used.
    let third = login_challenge(&b, &server, &client_id).await;
    let late = app
        .accept_login(accept(&third, "app-user-7", 0))
        .await
        .unwrap();
    server.clock.advance(Duration::from_secs(601));
    let err = app.get_login_request(get_request(&next)).await.unwrap_err();
    assert_status(&err, Code::NotFound, "LOGIN_CHALLENGE_INVALID");
    let resp = b
        .get(on_server(&server, &late.redirect_to))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(page_reason(resp).await, "INTERACTION_INVALID");
    // Maintenance forgets them.
    server.maintain().await;
    let err = app.get_login_request(get_request(&next)).await.unwrap_err();
    assert_status(&err, Code::NotFound, "LOGIN_CHALLENGE_INVALID");
}
