//! The browser flow end to end over real HTTPS, driven by an HTTP client
//! that keeps cookies and follows the forms as a browser does (no
//! redirects followed automatically: each hop is looked at): /authorize,
//! the sign-in form, the consent form, the redirect back with `code`,
//! `state` and `iss`, the code exchange, and a second authorization that
//! skips the sign-in. Also: refusals shown as pages (unknown client,
//! unregistered redirect URI) and those redirected with `error`; deny;
//! a wrong password with one message; CSRF and another browser refused;
//! the pages' security headers.

use mcp_auth::core::pkce::challenge_of;
use mcp_auth::grpc::client::Client;
use mcp_auth::pb;
use reqwest::StatusCode;
use reqwest::header;
use serde_json::Value;

use crate::common::{HttpTarget, TestServer, strings};
use crate::oauth::RESOURCE;

pub(crate) const REDIRECT: &str = "http://127.0.0.1/callback";
pub(crate) const VERIFIER: &str = "browser-flow-verifier-0123456789-abcdefghijklmnop";

/// A browser: cookies kept, redirects not followed.
pub(crate) fn browser(server: &impl HttpTarget) -> reqwest::Client {
    let pem = std::fs::read(server.ca_path()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Exchanges `code` at `/token` as the public client `client_id` with
/// the flow's PKCE verifier; the token response, whatever its status.
pub(crate) async fn exchange_code(
    b: &reqwest::Client,
    server: &impl HttpTarget,
    client_id: &str,
    code: &str,
    redirect_uri: &str,
) -> Value {
    b.post(format!("{}/token", server.http_url()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The value of the hidden field `name` in `html`.
pub(crate) fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end].to_owned()
}

/// The query parameters of a redirect's `Location`.
pub(crate) fn location_params(resp: &reqwest::Response) -> (String, Vec<(String, String)>) {
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{resp:?}");
    let loc = resp.headers()[header::LOCATION].to_str().unwrap();
    let url = reqwest::Url::parse(loc).unwrap();
    let base = url[..url::Position::AfterPath].to_owned();
    let params = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    (base, params)
}

pub(crate) fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn set_up(server: &TestServer) -> String {
    set_up_with(&server.client(&server.primary).await).await
}

/// Creates the user `alice` and a public client of the browser flow for
/// [`REDIRECT`] as `admin`; the client's id.
pub(crate) async fn set_up_with(admin: &Client) -> String {
    admin
        .create_user(pb::CreateUserRequest {
            username: "alice".to_owned(),
            password: "correct horse battery".to_owned(),
        })
        .await
        .unwrap();
    admin
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

pub(crate) fn authorize_url(
    server: &impl HttpTarget,
    client_id: &str,
    redirect: &str,
    extra: &str,
) -> String {
    let mut url = reqwest::Url::parse(&format!("{}/authorize", server.http_url())).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "tools:read")
        .append_pair("state", "st-123")
        .append_pair("code_challenge", &challenge_of(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", RESOURCE);
    format!("{url}{extra}")
}

pub(crate) async fn submit(
    b: &reqwest::Client,
    server: &impl HttpTarget,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    b.post(format!("{}{path}", server.http_url()))
        .form(form)
        .send()
        .await
        .unwrap()
}

pub(crate) fn assert_page_headers(resp: &reqwest::Response) {
    let h = resp.headers();
    assert!(
        h[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(!csp.contains("script-src"), "no script at all: {csp}");
    assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    assert!(
        h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(),
        "pages answer no CORS"
    );
}

#[tokio::test]
async fn a_user_signs_in_approves_and_the_client_gets_tokens_then_a_second_authorization_skips_the_sign_in()
 {
    let server = TestServer::start_with(|c| {
        c.auth_failures_per_minute = 10_000;
        c.scope_descriptions
            .insert("tools:read".to_owned(), "See your <tools>".to_owned());
    })
    .await;
    let client_id = set_up(&server).await;
    let b = browser(&server);
    let metadata: Value = b
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            server.http_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metadata["authorization_endpoint"],
        format!("{}/authorize", "https://localhost:8443")
    );

    // A native client listens on an ephemeral loopback port.
    let redirect = "http://127.0.0.1:53124/callback";
    let login = b
        .get(authorize_url(&server, &client_id, redirect, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    assert_page_headers(&login);
    let cookie = login.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    for part in [
        "__Host-mcp_auth_browser=",
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Path=/",
    ] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let html = login.text().await.unwrap();
    assert!(html.contains("Inspector &lt;test&gt;"), "escaped: {html}");
    let interaction = field(&html, "interaction");
    let csrf = field(&html, "csrf");

    // One message for a wrong password.
    let wrong = submit(
        &b,
        &server,
        "/login",
        &[
            ("interaction", &interaction),
            ("csrf", &csrf),
            ("username", "alice"),
            ("password", "wrong password"),
        ],
    )
    .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("Wrong username or password.")
    );
    let nobody = submit(
        &b,
        &server,
        "/login",
        &[
            ("interaction", &interaction),
            ("csrf", &csrf),
            ("username", "bob"),
            ("password", "wrong password"),
        ],
    )
    .await;
    assert_eq!(nobody.status(), StatusCode::UNAUTHORIZED);
    assert!(
        nobody
            .text()
            .await
            .unwrap()
            .contains("Wrong username or password.")
    );

    let consent = submit(
        &b,
        &server,
        "/login",
        &[
            ("interaction", &interaction),
            ("csrf", &csrf),
            ("username", "alice"),
            ("password", "correct horse battery"),
        ],
    )
    .await;
    assert_eq!(consent.status(), StatusCode::OK);
    assert_page_headers(&consent);
    let csp = consent.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:53124"),
        "{csp}"
    );
    let login_cookie = consent.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        login_cookie.starts_with("__Host-mcp_auth_login=")
            && login_cookie.contains("Max-Age=28800"),
        "{login_cookie}"
    );
    let html = consent.text().await.unwrap();
    assert!(
        html.contains("class=\"host\">127.0.0.1:53124<"),
        "the redirect host is shown: {html}"
    );
    assert!(
        html.contains("See your &lt;tools&gt;: <code>tools:read</code>"),
        "the scope's words, escaped: {html}"
    );

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
    assert_eq!(base, redirect, "back to the port the client listens on");
    assert_eq!(param(&params, "state"), Some("st-123"));
    assert_eq!(param(&params, "iss"), Some("https://localhost:8443"));
    let code = param(&params, "code").unwrap().to_owned();
    assert!(code.starts_with("mcp_ac_"));

    // The interaction is over: its form cannot be sent again.
    let again = submit(
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
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);

    let tokens: Value = exchange_code(&b, &server, &client_id, &code, redirect).await;
    assert_eq!(tokens["scope"], "tools:read", "{tokens}");
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let verdict = server
        .verify(&verifier, tokens["access_token"].as_str().unwrap())
        .await;
    assert!(verdict.active, "{verdict:?}");
    let claims = verdict.claims.unwrap();
    assert!(claims.subject.starts_with("usr_"), "{claims:?}");
    assert_eq!(claims.client_id, client_id);
    assert_eq!(claims.audience, RESOURCE);

    // Signed in: the next authorization goes straight to consent.
    let consent = b
        .get(authorize_url(&server, &client_id, REDIRECT, ""))
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), StatusCode::OK);
    let html = consent.text().await.unwrap();
    assert!(
        html.contains("Allow access?") && html.contains("alice"),
        "{html}"
    );
    let interaction = field(&html, "interaction");
    let csrf = field(&html, "csrf");
    let denied = submit(
        &b,
        &server,
        "/consent",
        &[
            ("interaction", &interaction),
            ("csrf", &csrf),
            ("decision", "deny"),
        ],
    )
    .await;
    let (_, params) = location_params(&denied);
    assert_eq!(param(&params, "error"), Some("access_denied"));
    assert_eq!(param(&params, "state"), Some("st-123"));
    assert_eq!(param(&params, "iss"), Some("https://localhost:8443"));
    assert_eq!(param(&params, "code"), None);
}

#[tokio::test]
async fn bad_requests_are_pages_or_redirects_and_forms_need_their_browser_and_csrf() {
    let server = TestServer::start_with(|c| c.auth_failures_per_minute = 10_000).await;
    let client_id = set_up(&server).await;
    let b = browser(&server);

    // Never redirected: unknown client, unregistered redirect URI.
    for url in [
        authorize_url(&server, "cli_nosuchclient0000000000", REDIRECT, ""),
        authorize_url(&server, &client_id, "https://evil.example/cb", ""),
    ] {
        let resp = b.get(&url).send().await.unwrap();
        assert!(resp.status().is_client_error(), "{resp:?}");
        assert!(resp.headers().get(header::LOCATION).is_none());
        assert_page_headers(&resp);
        assert!(
            resp.text()
                .await
                .unwrap()
                .contains("This sign-in cannot go on")
        );
    }

    // Redirected with error, state and iss.
    let base = format!(
        "{}/authorize?client_id={client_id}&redirect_uri={}&state=s1",
        server.http_url(),
        "http%3A%2F%2F127.0.0.1%2Fcallback"
    );
    for (query, error) in [
        ("&response_type=token", "unsupported_response_type"),
        ("&response_type=code", "invalid_request"),
        (
            "&response_type=code&code_challenge_method=plain&code_challenge=abc",
            "invalid_request",
        ),
        (
            &*format!(
                "&response_type=code&code_challenge_method=S256&code_challenge={}&scope=admin",
                challenge_of(VERIFIER)
            ),
            "invalid_scope",
        ),
        (
            &*format!(
                "&response_type=code&code_challenge_method=S256&code_challenge={}&resource=https%3A%2F%2Fother.example",
                challenge_of(VERIFIER)
            ),
            "invalid_target",
        ),
    ] {
        let resp = b.get(format!("{base}{query}")).send().await.unwrap();
        let (to, params) = location_params(&resp);
        assert_eq!(to, REDIRECT, "{query}");
        assert_eq!(param(&params, "error"), Some(error), "{query}: {params:?}");
        assert_eq!(param(&params, "state"), Some("s1"));
        assert_eq!(param(&params, "iss"), Some("https://localhost:8443"));
    }

    // A form from another browser, or without its CSRF field, is refused.
    let html = b
        .get(authorize_url(&server, &client_id, REDIRECT, ""))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let interaction = field(&html, "interaction");
    let csrf = field(&html, "csrf");
    let other = browser(&server);
    for (who, csrf) in [(&other, csrf.as_str()), (&b, "forged"), (&b, "")] {
        let resp = submit(
            who,
            &server,
            "/login",
            &[
                ("interaction", &interaction),
                ("csrf", csrf),
                ("username", "alice"),
                ("password", "correct horse battery"),
            ],
        )
        .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(
            resp.text()
                .await
                .unwrap()
                .contains("does not belong to a sign-in of this browser")
        );
    }
    // Consent before signing in is refused too.
    let resp = submit(
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
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get(header::LOCATION).is_none());
}

/// Signs `b` in as alice on a fresh authorization (`url`, the
/// authorization request, perhaps to another server than `server`, where
/// the sign-in form is sent) and returns the consent page's
/// (interaction, csrf).
pub(crate) async fn signed_in_consent(
    b: &reqwest::Client,
    server: &impl HttpTarget,
    url: &str,
) -> (String, String) {
    let html = b.get(url).send().await.unwrap().text().await.unwrap();
    let (interaction, csrf) = (field(&html, "interaction"), field(&html, "csrf"));
    let consent = submit(
        b,
        server,
        "/login",
        &[
            ("interaction", &interaction),
            ("csrf", &csrf),
            ("username", "alice"),
            ("password", "correct horse battery"),
        ],
    )
    .await;
    let html = consent.text().await.unwrap();
    assert!(html.contains("Remember this decision"), "{html}");
    (interaction, csrf)
}

/// Approves the consent page's `interaction` and remembers the decision.
pub(crate) async fn approve_remembered(
    b: &reqwest::Client,
    server: &impl HttpTarget,
    interaction: &str,
    csrf: &str,
) -> reqwest::Response {
    submit(
        b,
        server,
        "/consent",
        &[
            ("interaction", interaction),
            ("csrf", csrf),
            ("decision", "approve"),
            ("remember", "yes"),
        ],
    )
    .await
}

#[tokio::test]
async fn a_remembered_consent_skips_the_page_until_more_is_asked_or_it_is_withdrawn() {
    let server = TestServer::start_with(|c| c.auth_failures_per_minute = 10_000).await;
    let client_id = set_up(&server).await;
    let admin = server.client(&server.primary).await;
    let b = browser(&server);
    let url = authorize_url(&server, &client_id, REDIRECT, "");
    let (interaction, csrf) = signed_in_consent(&b, &server, &url).await;
    let back = approve_remembered(&b, &server, &interaction, &csrf).await;
    let (_, params) = location_params(&back);
    let code = param(&params, "code").unwrap().to_owned();
    let tokens: Value = exchange_code(&b, &server, &client_id, &code, REDIRECT).await;

    // Remembered: the same request goes straight back with a code.
    let again = b.get(&url).send().await.unwrap();
    let (to, params) = location_params(&again);
    assert_eq!(to, REDIRECT);
    assert!(param(&params, "code").unwrap().starts_with("mcp_ac_"));
    assert_eq!(param(&params, "state"), Some("st-123"));

    // More scopes: asked again.
    let wider = authorize_url(&server, &client_id, REDIRECT, "")
        .replace("scope=tools%3Aread", "scope=tools%3Aread+tools%3Acall");
    let page = b.get(&wider).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("Allow access?"));

    // The admin sees it and withdraws it: the client's sessions for alice
    // end, and the page is shown again.
    let consents = admin
        .list_consents(pb::ListConsentsRequest {
            username: "alice".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .consents;
    assert_eq!(consents.len(), 1);
    assert_eq!(consents[0].client_id, client_id);
    assert_eq!(consents[0].scopes, strings(&["tools:read"]));
    assert_eq!(consents[0].resources, strings(&[RESOURCE]));
    let (code, out, err) = server
        .cli(
            Some(&server.primary),
            &["user", "consents", "alice", "--json"],
        )
        .await;
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["client_id"], client_id, "{out}");
    let revoked = admin
        .revoke_consent(pb::RevokeConsentRequest {
            username: "alice".to_owned(),
            client_id: client_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(revoked.sessions_revoked, 1);
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let verdict = server
        .verify(&verifier, tokens["access_token"].as_str().unwrap())
        .await;
    assert_eq!(
        crate::common::inactive_reason(&verdict),
        pb::TokenReason::Revoked
    );
    let page = b.get(&url).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("Allow access?"));
    assert!(
        admin
            .list_consents(pb::ListConsentsRequest {
                username: "alice".to_owned(),
                ..Default::default()
            })
            .await
            .unwrap()
            .consents
            .is_empty()
    );

    // A first-party client never asks.
    let first_party = admin
        .create_client(pb::CreateClientRequest {
            name: "Our own app".to_owned(),
            redirect_uris: strings(&[REDIRECT]),
            grant_types: strings(&["authorization_code"]),
            allowed_scopes: strings(&["tools:read"]),
            allowed_resources: strings(&[RESOURCE]),
            token_endpoint_auth_method: "none".to_owned(),
            jwks: String::new(),
            skip_consent: true,
        })
        .await
        .unwrap()
        .client
        .unwrap();
    assert!(first_party.skip_consent);
    let fresh = browser(&server);
    let html = fresh
        .get(authorize_url(&server, &first_party.client_id, REDIRECT, ""))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let signed = submit(
        &fresh,
        &server,
        "/login",
        &[
            ("interaction", &field(&html, "interaction")),
            ("csrf", &field(&html, "csrf")),
            ("username", "alice"),
            ("password", "correct horse battery"),
        ],
    )
    .await;
    let (to, params) = location_params(&signed);
    assert_eq!(to, REDIRECT, "straight back after sign-in");
    assert!(param(&params, "code").is_some());
}

/// Signs alice in through the pages with `b`, approves, exchanges the
/// code; the token response.
async fn full_flow(b: &reqwest::Client, server: &TestServer, client_id: &str) -> Value {
    let url = authorize_url(server, client_id, REDIRECT, "");
    let (interaction, csrf) = signed_in_consent(b, server, &url).await;
    let back = submit(
        b,
        server,
        "/consent",
        &[
            ("interaction", &interaction),
            ("csrf", &csrf),
            ("decision", "approve"),
        ],
    )
    .await;
    let (_, params) = location_params(&back);
    let code = param(&params, "code").unwrap().to_owned();
    exchange_code(b, server, client_id, &code, REDIRECT).await
}

#[tokio::test]
async fn a_password_change_signs_browsers_out_and_disabling_a_user_ends_its_sessions() {
    let server = TestServer::start_with(|c| c.auth_failures_per_minute = 10_000).await;
    let client_id = set_up(&server).await;
    let admin = server.client(&server.primary).await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let user_id = admin
        .get_user(pb::GetUserRequest {
            username: "alice".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .user_id;
    let b = browser(&server);
    let first = full_flow(&b, &server, &client_id).await;
    let url = authorize_url(&server, &client_id, REDIRECT, "");
    let page = b.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Allow access?"), "signed in: {page}");

    // A new password: the browser signs in again; the session goes on.
    admin
        .set_password(pb::SetPasswordRequest {
            user_id: user_id.clone(),
            password: "a brand new passphrase".to_owned(),
        })
        .await
        .unwrap();
    let page = b.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Sign in"), "signed out: {page}");
    let still = server
        .verify(&verifier, first["access_token"].as_str().unwrap())
        .await;
    assert!(still.active, "{still:?}");

    // Disabled: its sessions end at once.
    admin
        .set_user_disabled(pb::SetUserDisabledRequest {
            user_id,
            disabled: true,
        })
        .await
        .unwrap();
    let gone = server
        .verify(&verifier, first["access_token"].as_str().unwrap())
        .await;
    assert_eq!(
        crate::common::inactive_reason(&gone),
        pb::TokenReason::Revoked
    );
}
