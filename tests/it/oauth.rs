//! OAuth on HTTP (issue 12, part 1): `client_credentials` at `/token` with
//! each client authentication method, introspection (RFC 7662) and
//! revocation (RFC 7009), over real HTTPS with reqwest. Clients are made
//! with the typed gRPC client; tokens are checked with gRPC VerifyToken and
//! offline with the JWK Set; time moves by the server's manual clock.

use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use mcp_auth::pb;
use reqwest::StatusCode;
use reqwest::header;
use serde_json::{Value, json};

use crate::common::{HttpTarget, TestServer, http_client_trusting, inactive_reason, strings};

pub(crate) const RESOURCE: &str = "https://mcp.example.com";
const OTHER_RESOURCE: &str = "https://other.example.com";
const FORM: &str = "application/x-www-form-urlencoded";
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

async fn server() -> TestServer {
    TestServer::start_with(|c| c.auth_failures_per_minute = 10_000).await
}

fn client_req(name: &str, method: &str, jwks: &str) -> pb::CreateClientRequest {
    pb::CreateClientRequest {
        name: name.to_owned(),
        redirect_uris: vec![],
        grant_types: strings(&["client_credentials"]),
        allowed_scopes: strings(&["tools:read", "tools:call"]),
        allowed_resources: strings(&[RESOURCE]),
        token_endpoint_auth_method: method.to_owned(),
        jwks: jwks.to_owned(),
        skip_consent: false,
    }
}

/// Creates a client; returns (client id, secret).
async fn create(server: &TestServer, req: pb::CreateClientRequest) -> (String, String) {
    let resp = server
        .client(&server.primary)
        .await
        .create_client(req)
        .await
        .unwrap();
    (resp.client.unwrap().client_id, resp.secret)
}

/// A `private_key_jwt` signer: an Ed25519 key and its JWK Set.
pub(crate) struct JwtKey {
    pair: Ed25519KeyPair,
}

impl JwtKey {
    pub(crate) fn new() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        JwtKey {
            pair: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap(),
        }
    }

    pub(crate) fn jwks(&self) -> String {
        let x = URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref());
        json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "alg": "EdDSA"}]})
            .to_string()
    }

    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "EdDSA", "typ": "JWT", "kid": "k1"});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self.pair.sign(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    /// A good assertion of `client_id` for `server`'s token endpoint.
    pub(crate) fn assertion(&self, server: &TestServer, client_id: &str, jti: &str) -> String {
        let now = server.clock.now();
        self.sign(&json!({
            "iss": client_id, "sub": client_id,
            "aud": "https://localhost:8443/token",
            "iat": now, "exp": now + 60, "jti": jti,
        }))
    }
}

pub(crate) fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// POSTs `form` to `path` of `server`'s HTTP listener, with
/// `authorization` if some.
pub(crate) async fn post(
    server: &impl HttpTarget,
    path: &str,
    authorization: Option<&str>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let body = form
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut req = http_client_trusting(&server.ca_path())
        .post(format!("{}{path}", server.http_url()))
        .header(header::CONTENT_TYPE, FORM)
        .body(body);
    if let Some(a) = authorization {
        req = req.header(header::AUTHORIZATION, a);
    }
    req.send().await.unwrap()
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Asserts an OAuth error response; returns its body.
pub(crate) async fn oauth_error(resp: reqwest::Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(resp.status(), status, "{resp:?}");
    let headers = resp.headers().clone();
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    if status == StatusCode::UNAUTHORIZED {
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            "Basic realm=\"mcp-auth\""
        );
    }
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    body
}

/// Asserts a token response; returns its body.
pub(crate) async fn token_ok(resp: reqwest::Response) -> Value {
    assert_eq!(resp.status(), StatusCode::OK, "{resp:?}");
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(resp.headers()[header::PRAGMA], "no-cache");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer", "{body}");
    assert!(body["expires_in"].as_u64().unwrap() > 0, "{body}");
    body
}

/// A `client_credentials` token of the confidential client `id`.
pub(crate) async fn grant_basic(server: &TestServer, id: &str, secret: &str) -> String {
    let resp = post(
        server,
        "/token",
        Some(&basic(id, secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    token_ok(resp).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn introspect(server: &TestServer, auth: &str, token: &str) -> Value {
    let resp = post(server, "/introspect", Some(auth), &[("token", token)]).await;
    assert_eq!(resp.status(), StatusCode::OK, "{resp:?}");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn client_credentials_with_each_auth_method_verifies_over_grpc_and_offline() {
    let server = server().await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let (basic_id, basic_secret) =
        create(&server, client_req("basic", "client_secret_basic", "")).await;
    let (post_id, post_secret) =
        create(&server, client_req("post", "client_secret_post", "")).await;
    let key = JwtKey::new();
    let (jwt_id, _) = create(&server, client_req("jwt", "private_key_jwt", &key.jwks())).await;

    let by_basic = token_ok(
        post(
            &server,
            "/token",
            Some(&basic(&basic_id, &basic_secret)),
            &[
                ("grant_type", "client_credentials"),
                ("scope", "tools:read"),
                ("resource", RESOURCE),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(by_basic["scope"], "tools:read");
    let by_post = token_ok(
        post(
            &server,
            "/token",
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &post_id),
                ("client_secret", &post_secret),
            ],
        )
        .await,
    )
    .await;
    assert_eq!(
        by_post["scope"], "tools:read tools:call",
        "empty: all allowed"
    );
    let assertion = key.assertion(&server, &jwt_id, "j-1");
    let by_jwt = token_ok(
        post(
            &server,
            "/token",
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &assertion),
            ],
        )
        .await,
    )
    .await;

    let jwks = server
        .http_client()
        .get(format!("{}/jwks", server.http_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let offline = mcp_auth_token::JwkSet::from_json(&jwks, &["https://localhost:8443"]).unwrap();
    for (body, id) in [
        (&by_basic, &basic_id),
        (&by_post, &post_id),
        (&by_jwt, &jwt_id),
    ] {
        let token = body["access_token"].as_str().unwrap();
        let resp = server.verify(&verifier, token).await;
        assert!(resp.active, "{resp:?}");
        let claims = resp.claims.unwrap();
        assert_eq!(&claims.client_id, id);
        assert_eq!(&claims.subject, id);
        assert_eq!(claims.audience, RESOURCE);
        assert!(
            claims.session_id.starts_with("at_"),
            "no session: the jti stands for it"
        );
        let c = offline.verify(token).unwrap();
        assert_eq!(&c.client_id, id);
        assert_eq!(c.aud, RESOURCE);
        assert_eq!(c.sid, None);
    }
}

#[tokio::test]
async fn client_authentication_refusals_are_invalid_client_or_invalid_request() {
    let server = server().await;
    let (id, secret) = create(&server, client_req("basic", "client_secret_basic", "")).await;
    let cc = ("grant_type", "client_credentials");

    let body = oauth_error(
        post(&server, "/token", Some(&basic(&id, "mcp_cs_wrong")), &[cc]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    assert_eq!(body["reason"], "CLIENT_AUTH_FAILED");
    assert!(!body.to_string().contains("mcp_cs_wrong"), "{body}");
    oauth_error(
        post(
            &server,
            "/token",
            Some(&basic("cli_nobody", &secret)),
            &[cc],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    // Two methods at once.
    let body = oauth_error(
        post(
            &server,
            "/token",
            Some(&basic(&id, &secret)),
            &[cc, ("client_id", &id), ("client_secret", &secret)],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
    assert_eq!(body["reason"], "CREDENTIALS_CONFLICT");
    // The right secret by another method than the registered one.
    let body = oauth_error(
        post(
            &server,
            "/token",
            None,
            &[cc, ("client_id", &id), ("client_secret", &secret)],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    assert_eq!(body["reason"], "CLIENT_AUTH_FAILED");
    // None at all.
    let body = oauth_error(
        post(&server, "/token", None, &[cc]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    assert_eq!(body["reason"], "CREDENTIALS_MISSING");
    // Hostile: malformed Basic, a Bearer at /token, a repeated parameter.
    for auth in ["Basic !!!", "Basic ", "Bearer mcp_sk_x", "Digest x"] {
        oauth_error(
            post(&server, "/token", Some(auth), &[cc]).await,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        )
        .await;
    }
    let resp = server
        .http_client()
        .post(format!("{}/token", server.http_url()))
        .header(header::CONTENT_TYPE, FORM)
        .header(header::AUTHORIZATION, basic(&id, &secret))
        .body("grant_type=client_credentials&scope=a&scope=b")
        .send()
        .await
        .unwrap();
    oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
    // The right secret still works after all that.
    grant_basic(&server, &id, &secret).await;
}

#[tokio::test]
async fn failed_client_authentications_are_throttled_per_address() {
    let server = TestServer::start_with(|c| c.auth_failures_per_minute = 3).await;
    let (id, secret) = create(&server, client_req("basic", "client_secret_basic", "")).await;
    let cc = ("grant_type", "client_credentials");
    let mut limited = false;
    for _ in 0..6 {
        let resp = post(&server, "/token", Some(&basic(&id, "mcp_cs_bad")), &[cc]).await;
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(resp.headers().contains_key(header::RETRY_AFTER));
            limited = true;
            break;
        }
        oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    assert!(
        limited,
        "failed client authentications count against the address"
    );
    // A valid credential from the throttled address is still served.
    grant_basic(&server, &id, &secret).await;
}

#[tokio::test]
async fn malformed_basic_and_other_schemes_count_as_failed_authentications() {
    let server = TestServer::start_with(|c| c.auth_failures_per_minute = 3).await;
    let cc = ("grant_type", "client_credentials");
    let mut answers = Vec::new();
    for auth in [
        "Basic !!!",
        "Digest x",
        "Basic Og==",
        "Basic !!!",
        "Basic !!!",
    ] {
        let resp = post(&server, "/token", Some(auth), &[cc]).await;
        answers.push(resp.status());
        if resp.status() == StatusCode::UNAUTHORIZED {
            let body = oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
            let text = body["error_description"].as_str().unwrap();
            assert!(
                text.contains("malformed Basic credentials") || text.contains("use HTTP Basic"),
                "{text}"
            );
        }
    }
    assert_eq!(
        answers,
        [
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::UNAUTHORIZED,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "once the address's failures are spent it is throttled, as with a wrong secret"
    );
}

#[tokio::test]
async fn client_assertions_are_refused_when_replayed_expired_long_lived_or_misaddressed() {
    let server = server().await;
    let key = JwtKey::new();
    let (id, _) = create(&server, client_req("jwt", "private_key_jwt", &key.jwks())).await;
    let send = |assertion: String| {
        let server = &server;
        async move {
            post(
                server,
                "/token",
                None,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", &assertion),
                ],
            )
            .await
        }
    };
    let once = key.assertion(&server, &id, "once");
    token_ok(send(once.clone()).await).await;
    let body = oauth_error(send(once).await, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("used before"),
        "{body}"
    );

    let now = server.clock.now();
    let claims = |extra: Value| {
        let mut c = json!({
            "iss": id, "sub": id, "aud": "https://localhost:8443",
            "iat": now, "exp": now + 60, "jti": format!("j-{}", extra),
        });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    // The issuer as aud is fine.
    token_ok(send(key.sign(&claims(json!({})))).await).await;
    // Expired, by the server's clock.
    let expiring = key.sign(&claims(json!({"jti": "exp-soon"})));
    server.clock.advance(Duration::from_secs(61));
    oauth_error(
        send(expiring).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    let now = server.clock.now();
    for bad in [
        json!({"iat": now, "exp": now + 301}),
        json!({"iat": now, "exp": now + 60, "aud": "https://elsewhere.example/token"}),
        json!({"iat": now, "exp": now + 60, "iss": "cli_other"}),
        json!({"iat": now, "exp": now + 60, "jti": null}),
        json!({"iat": now + 3600, "exp": now + 3700}),
    ] {
        let mut c = claims(bad.clone());
        if bad.get("jti").is_some_and(Value::is_null) {
            c.as_object_mut().unwrap().remove("jti");
        }
        oauth_error(
            send(key.sign(&c)).await,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        )
        .await;
    }
    // Signed by another key, and garbage.
    let stranger = JwtKey::new();
    let c = claims(json!({"iat": now, "exp": now + 60, "jti": "stranger"}));
    oauth_error(
        send(stranger.sign(&c)).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    for garbage in ["a.b.c", "x", &"y".repeat(20_000)] {
        oauth_error(
            send(garbage.to_owned()).await,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        )
        .await;
    }
    // A wrong assertion type is a malformed request.
    let resp = post(
        &server,
        "/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:other"),
            ("client_assertion", "a.b.c"),
        ],
    )
    .await;
    oauth_error(resp, StatusCode::BAD_REQUEST, "invalid_request").await;
}

#[tokio::test]
async fn scopes_resources_and_grants_are_checked_with_their_oauth_codes() {
    let server = server().await;
    let (id, secret) = create(&server, client_req("basic", "client_secret_basic", "")).await;
    let auth = basic(&id, &secret);
    let cc = ("grant_type", "client_credentials");
    let body = oauth_error(
        post(
            &server,
            "/token",
            Some(&auth),
            &[cc, ("scope", "tools:read admin")],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_scope",
    )
    .await;
    assert_eq!(body["reason"], "SCOPE_NOT_ALLOWED");
    let body = oauth_error(
        post(
            &server,
            "/token",
            Some(&auth),
            &[cc, ("resource", OTHER_RESOURCE)],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_target",
    )
    .await;
    assert_eq!(body["reason"], "RESOURCE_NOT_ALLOWED");

    let mut two = client_req("two", "client_secret_basic", "");
    two.allowed_resources = strings(&[RESOURCE, OTHER_RESOURCE]);
    let (two_id, two_secret) = create(&server, two).await;
    let two_auth = basic(&two_id, &two_secret);
    oauth_error(
        post(&server, "/token", Some(&two_auth), &[cc]).await,
        StatusCode::BAD_REQUEST,
        "invalid_target",
    )
    .await;
    let ok = token_ok(
        post(
            &server,
            "/token",
            Some(&two_auth),
            &[cc, ("resource", OTHER_RESOURCE)],
        )
        .await,
    )
    .await;
    assert_eq!(ok["scope"], "tools:read tools:call");

    let mut browser = client_req("browser", "client_secret_basic", "");
    browser.grant_types = strings(&["authorization_code"]);
    browser.redirect_uris = strings(&["https://app.example/cb"]);
    let (b_id, b_secret) = create(&server, browser).await;
    let body = oauth_error(
        post(&server, "/token", Some(&basic(&b_id, &b_secret)), &[cc]).await,
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
    )
    .await;
    assert_eq!(body["reason"], "GRANT_NOT_ALLOWED");
    // Other grant types stay unsupported.
    oauth_error(
        post(
            &server,
            "/token",
            Some(&auth),
            &[("grant_type", "password")],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "unsupported_grant_type",
    )
    .await;
}

#[tokio::test]
async fn a_verifier_key_introspects_api_keys_and_a_client_never_sees_them() {
    let server = server().await;
    let (id, secret) = create(&server, client_req("a", "client_secret_basic", "")).await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let (key_id, caller) = server.key_with(&["tools:read", "keys:admin"]).await;
    let as_verifier = format!("Bearer {verifier}");
    let body = introspect(&server, &as_verifier, &caller).await;
    let iat = body["iat"].as_i64().unwrap();
    assert_eq!(
        body,
        json!({
            "active": true,
            "scope": "tools:read",
            "client_id": key_id,
            "sub": key_id,
            "iss": "https://localhost:8443",
            "iat": iat,
            "token_type": "Bearer",
            "token_kind": "api_key",
        }),
        "a service scope is no application scope; a key without expiry has no exp"
    );
    let inactive = json!({"active": false});
    // An OAuth client never learns anything of an API key.
    assert_eq!(
        introspect(&server, &basic(&id, &secret), &caller).await,
        inactive
    );
    for unknown in ["mcp_sk_not_a_key_of_this_server_0000000000", "mcp_sk_"] {
        assert_eq!(introspect(&server, &as_verifier, unknown).await, inactive);
    }
    server.revoke_key(&server.primary, &key_id).await.unwrap();
    assert_eq!(introspect(&server, &as_verifier, &caller).await, inactive);
}

#[tokio::test]
async fn introspection_answers_for_clients_and_verifier_keys_and_needs_a_credential() {
    let server = server().await;
    let (id, secret) = create(&server, client_req("a", "client_secret_basic", "")).await;
    let (other_id, other_secret) =
        create(&server, client_req("b", "client_secret_basic", "")).await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let (_, weak) = server.key_with(&["sessions:create", "tools:read"]).await;
    let token = grant_basic(&server, &id, &secret).await;

    let own = introspect(&server, &basic(&id, &secret), &token).await;
    let by_key = introspect(&server, &format!("Bearer {verifier}"), &token).await;
    assert_eq!(own, by_key);
    assert_eq!(own["active"], true);
    assert_eq!(own["client_id"], id.as_str());
    assert_eq!(own["sub"], id.as_str());
    assert_eq!(own["aud"], RESOURCE);
    assert_eq!(own["iss"], "https://localhost:8443");
    assert_eq!(own["scope"], "tools:read tools:call");
    assert_eq!(own["token_type"], "Bearer");
    assert_eq!(own["token_kind"], "access_token");
    for field in ["exp", "iat", "nbf"] {
        assert!(own[field].as_i64().unwrap() > 0, "{own}");
    }
    assert!(own["jti"].as_str().unwrap().starts_with("at_"));
    // Another client does not see it; garbage is inactive; both exactly.
    let inactive = json!({"active": false});
    assert_eq!(
        introspect(&server, &basic(&other_id, &other_secret), &token).await,
        inactive
    );
    assert_eq!(
        introspect(&server, &basic(&id, &secret), "garbage").await,
        inactive
    );
    // A session token from CreateSession, through the verifier key.
    let s = server.session(&weak, &["tools:read"], "aud").await;
    assert_eq!(
        introspect(&server, &format!("Bearer {verifier}"), &s.access_token).await["active"],
        true
    );
    // Expired, by the server's clock.
    server.clock.advance(Duration::from_secs(24 * 3600));
    assert_eq!(
        introspect(&server, &basic(&id, &secret), &token).await,
        inactive
    );

    let body = oauth_error(
        post(&server, "/introspect", None, &[("token", &token)]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    assert_eq!(body["reason"], "CREDENTIALS_MISSING");
    oauth_error(
        post(
            &server,
            "/introspect",
            Some(&format!("Bearer {weak}")),
            &[("token", &token)],
        )
        .await,
        StatusCode::FORBIDDEN,
        "insufficient_scope",
    )
    .await;
    oauth_error(
        post(
            &server,
            "/introspect",
            Some(&basic(&id, "mcp_cs_bad")),
            &[("token", &token)],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    oauth_error(
        post(&server, "/introspect", Some(&basic(&id, &secret)), &[]).await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn revocation_makes_a_token_inactive_and_survives_a_restart() {
    let mut server = server().await;
    let (id, secret) = create(&server, client_req("a", "client_secret_basic", "")).await;
    let (other_id, other_secret) =
        create(&server, client_req("b", "client_secret_basic", "")).await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let token = grant_basic(&server, &id, &secret).await;
    let kept = grant_basic(&server, &id, &secret).await;
    let auth = basic(&id, &secret);

    // Another client's revocation, unknown tokens and garbage: 200, empty,
    // nothing revoked.
    for (who, what) in [
        (basic(&other_id, &other_secret), token.as_str()),
        (auth.clone(), "garbage"),
        (auth.clone(), "mcp_rt_x.y"),
    ] {
        let resp = post(&server, "/revoke", Some(&who), &[("token", what)]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
        assert!(resp.bytes().await.unwrap().is_empty());
    }
    assert!(server.verify(&verifier, &token).await.active);

    let resp = post(
        &server,
        "/revoke",
        Some(&auth),
        &[("token", &token), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.bytes().await.unwrap().is_empty());
    let inactive = json!({"active": false});
    assert_eq!(introspect(&server, &auth, &token).await, inactive);
    assert_eq!(
        inactive_reason(&server.verify(&verifier, &token).await),
        pb::TokenReason::Revoked
    );
    assert!(
        server.verify(&verifier, &kept).await.active,
        "only that token"
    );

    // Revoking needs the client's credential.
    oauth_error(
        post(&server, "/revoke", None, &[("token", &kept)]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    oauth_error(
        post(
            &server,
            "/revoke",
            Some(&basic(&id, "mcp_cs_bad")),
            &[("token", &kept)],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;

    server.restart().await;
    assert_eq!(introspect(&server, &auth, &token).await, inactive);
    assert_eq!(
        inactive_reason(&server.verify(&verifier, &token).await),
        pb::TokenReason::Revoked
    );
    assert!(server.verify(&verifier, &kept).await.active);

    // Once expired, maintenance forgets the revocation (it verifies as
    // expired anyway).
    server.clock.advance(Duration::from_secs(24 * 3600));
    let report = server.maintain().await;
    assert_eq!(report.revoked_tokens_forgotten, 1);
    assert_eq!(
        inactive_reason(&server.verify(&verifier, &token).await),
        pb::TokenReason::Expired
    );
}

#[tokio::test]
async fn a_disabled_or_deleted_client_gets_no_token_and_its_tokens_are_inactive() {
    let server = server().await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let admin = server.client(&server.primary).await;
    let (id, secret) = create(&server, client_req("a", "client_secret_basic", "")).await;
    let token = grant_basic(&server, &id, &secret).await;
    admin
        .update_client(pb::UpdateClientRequest {
            client_id: id.clone(),
            disabled: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    let body = oauth_error(
        post(
            &server,
            "/token",
            Some(&basic(&id, &secret)),
            &[("grant_type", "client_credentials")],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("disabled"),
        "{body}"
    );
    assert_eq!(
        inactive_reason(&server.verify(&verifier, &token).await),
        pb::TokenReason::Revoked
    );
    assert_eq!(
        introspect(&server, &format!("Bearer {verifier}"), &token).await,
        json!({"active": false})
    );

    let (gone, gone_secret) = create(&server, client_req("b", "client_secret_basic", "")).await;
    let gone_token = grant_basic(&server, &gone, &gone_secret).await;
    admin
        .delete_client(pb::DeleteClientRequest {
            client_id: gone.clone(),
        })
        .await
        .unwrap();
    oauth_error(
        post(
            &server,
            "/token",
            Some(&basic(&gone, &gone_secret)),
            &[("grant_type", "client_credentials")],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    assert_eq!(
        inactive_reason(&server.verify(&verifier, &gone_token).await),
        pb::TokenReason::Revoked
    );
}

#[tokio::test]
async fn grants_are_audited_without_secrets_or_tokens() {
    let server = server().await;
    let (id, secret) = create(&server, client_req("a", "client_secret_basic", "")).await;
    let token = grant_basic(&server, &id, &secret).await;
    let resp = post(
        &server,
        "/token",
        Some(&basic(&id, "mcp_cs_wrong_one")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (code, out, err) = server
        .cli(Some(&server.primary), &["audit", "list", "--json"])
        .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("oauth.token"), "{out}");
    assert!(out.contains("auth.failed"), "{out}");
    for secret_thing in [secret.as_str(), token.as_str(), "mcp_cs_wrong_one"] {
        assert!(!out.contains(secret_thing));
    }
}
