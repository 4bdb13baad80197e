//! Dynamic Client Registration (RFC 7591) at `POST /register`, over real
//! HTTPS with reqwest: public and confidential registrations (the latter
//! then getting a token at `/token`), the RFC 7591 error codes, the
//! content type, `dcr = off` and `dcr = token`, the per-address hourly
//! limit, `dcr_allowed_resources`, and maintenance pruning dynamic
//! clients that never got a token (time moved by the server's manual
//! clock).

use std::time::Duration;

use mcp_auth::config::DcrMode;
use mcp_auth::pb;
use mcp_auth::secret::Secret;
use reqwest::StatusCode;
use reqwest::header;
use serde_json::{Value, json};

use crate::common::{TestServer, strings};

const RESOURCE: &str = "https://mcp.example.com";
const IAT: &str = "initial-access-token-0123456789abcdef";

async fn register(
    server: &TestServer,
    body: &Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    register_with(server, body, None).await
}

async fn register_with(
    server: &TestServer,
    body: &Value,
    bearer: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = server
        .http_client()
        .post(format!("{}/register", server.http_url()))
        .json(body);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let json = resp.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, json)
}

fn public_client() -> Value {
    json!({
        "client_name": "Inspector",
        "redirect_uris": ["http://127.0.0.1:33418/callback"],
        "token_endpoint_auth_method": "none",
        "scope": "tools:read",
        "software_id": "ignored-unknown-member",
    })
}

fn confidential_client() -> Value {
    json!({
        "client_name": "Backend",
        "grant_types": ["client_credentials"],
        "scope": "tools:read tools:call",
        "resource": RESOURCE,
    })
}

async fn token(server: &TestServer, id: &str, secret: &str) -> reqwest::Response {
    server
        .http_client()
        .post(format!("{}/token", server.http_url()))
        .basic_auth(id, Some(secret))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap()
}

async fn exists(server: &TestServer, client_id: &str) -> bool {
    match server
        .client(&server.primary)
        .await
        .get_client(pb::GetClientRequest {
            client_id: client_id.to_owned(),
        })
        .await
    {
        Ok(_) => true,
        Err(s) if s.code() == tonic::Code::NotFound => false,
        Err(s) => panic!("unexpected {s:?}"),
    }
}

#[tokio::test]
async fn a_public_client_registers_with_loopback_redirect_and_no_secret() {
    let server = TestServer::start().await;
    let (status, headers, json) = register(&server, &public_client()).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let id = json["client_id"].as_str().unwrap();
    assert!(id.starts_with("cli_"), "{json}");
    assert!(json["client_id_issued_at"].as_i64().unwrap() > 0);
    assert_eq!(json["client_name"], "Inspector");
    assert_eq!(json["token_endpoint_auth_method"], "none");
    assert_eq!(
        json["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(
        json["redirect_uris"],
        json!(["http://127.0.0.1:33418/callback"])
    );
    assert_eq!(json["scope"], "tools:read");
    assert!(json.get("client_secret").is_none(), "{json}");
    assert!(json.get("software_id").is_none(), "{json}");
    let record = server.core().oauth_client(id).unwrap();
    assert_eq!(record.origin, mcp_auth::store::ClientOrigin::Dynamic);
    // The metadata names the endpoint.
    let meta: Value = server
        .http_client()
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
        meta["registration_endpoint"],
        format!("{}/register", server.config.issuer)
    );
}

#[tokio::test]
async fn a_confidential_client_registers_and_gets_a_token() {
    let server = TestServer::start().await;
    let (status, _, json) = register(&server, &confidential_client()).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    assert_eq!(json["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(json["client_secret_expires_at"], 0);
    assert_eq!(json["resource"], json!([RESOURCE]));
    let id = json["client_id"].as_str().unwrap();
    let secret = json["client_secret"].as_str().unwrap();
    let resp = token(&server, id, secret).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let tok: Value = resp.json().await.unwrap();
    assert_eq!(tok["token_type"], "Bearer");
    assert_eq!(tok["scope"], "tools:read tools:call");
    // The first grant is noted; the second writes nothing new.
    let first = server.core().oauth_client(id).unwrap().last_grant_at;
    assert!(first.is_some());
    server.clock.advance(Duration::from_secs(5));
    assert_eq!(token(&server, id, secret).await.status(), StatusCode::OK);
    assert_eq!(server.core().oauth_client(id).unwrap().last_grant_at, first);
}

#[tokio::test]
async fn bad_metadata_gets_the_rfc_7591_codes() {
    let server = TestServer::start().await;
    for uri in [
        "http://app.example.com/callback",
        "https://app.example.com/cb#frag",
        "not a url",
    ] {
        let mut body = public_client();
        body["redirect_uris"] = json!([uri]);
        let (status, headers, json) = register(&server, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert_eq!(json["error"], "invalid_redirect_uri", "{uri}: {json}");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    }
    let cases = [
        json!({"redirect_uris": ["https://a.example/cb"], "scope": "x"}),
        json!({"client_name": "no grants", "scope": "x"}),
        json!({"client_name": "public cc", "grant_types": ["client_credentials"],
               "token_endpoint_auth_method": "none", "scope": "x", "resource": RESOURCE}),
        json!({"client_name": "no scope", "redirect_uris": ["https://a.example/cb"]}),
        json!({"client_name": "bad method", "redirect_uris": ["https://a.example/cb"],
               "scope": "x", "token_endpoint_auth_method": "magic"}),
        json!({"client_name": "admin scope", "redirect_uris": ["https://a.example/cb"],
               "scope": "admin"}),
        json!({"client_name": 7}),
        json!(["not", "an", "object"]),
    ];
    for body in cases {
        let (status, _, json) = register(&server, &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(json["error"], "invalid_client_metadata", "{body}: {json}");
    }
    // Not JSON by its content type.
    let resp = server
        .http_client()
        .post(format!("{}/register", server.http_url()))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("client_name=x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let json: Value = resp.json().await.unwrap();
    assert_eq!(json["error"], "invalid_request");
    // Oversize.
    let resp = server
        .http_client()
        .post(format!("{}/register", server.http_url()))
        .header(header::CONTENT_TYPE, "application/json")
        .body(format!("{{\"client_name\": \"{}\"}}", "x".repeat(100_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn default_scopes_apply_when_none_are_asked() {
    let server = TestServer::start_with(|c| c.dcr_default_scopes = strings(&["mcp"])).await;
    let mut body = public_client();
    body.as_object_mut().unwrap().remove("scope");
    let (status, _, json) = register(&server, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    assert_eq!(json["scope"], "mcp");
}

/// `dcr_allowed_resources`: a registration without `resource` (what MCP
/// clients send) gets the whole list, one with `resource` must name
/// listed ones; without the list a registration keeps what it sent.
#[tokio::test]
async fn allowed_resources_apply_when_none_are_asked_and_bound_those_asked() {
    let other = "https://other.example.com/mcp";
    let server =
        TestServer::start_with(|c| c.dcr_allowed_resources = strings(&[RESOURCE, other])).await;
    let (status, _, json) = register(&server, &public_client()).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    assert_eq!(json["resource"], json!([RESOURCE, other]));
    let id = json["client_id"].as_str().unwrap();
    assert_eq!(
        server.core().oauth_client(id).unwrap().allowed_resources,
        [RESOURCE, other]
    );

    let mut body = public_client();
    body["resource"] = json!(other);
    let (status, _, json) = register(&server, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    assert_eq!(json["resource"], json!([other]));

    body["resource"] = json!([other, "https://evil.example.com"]);
    let (status, headers, json) = register(&server, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert_eq!(json["error"], "invalid_client_metadata", "{json}");
    assert_eq!(json["reason"], "INVALID_FIELD", "{json}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let description = json["error_description"].as_str().unwrap();
    assert!(
        description.starts_with("invalid resource:")
            && description.contains("https://evil.example.com")
            && description.contains("dcr_allowed_resources"),
        "{description}"
    );

    // Without the list: what was sent, unchecked; nothing stays nothing.
    let plain = TestServer::start().await;
    let (_, _, json) = register(&plain, &public_client()).await;
    assert!(json.get("resource").is_none(), "{json}");
    let (status, _, json) = register(&plain, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    assert_eq!(json["resource"], json!([other, "https://evil.example.com"]));
}

#[tokio::test]
async fn dcr_off_is_404_and_not_in_the_metadata() {
    let server = TestServer::start_with(|c| c.dcr = DcrMode::Off).await;
    let (status, _, json) = register(&server, &public_client()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json["error"], "not_found");
    let meta: Value = server
        .http_client()
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
    assert!(meta.get("registration_endpoint").is_none(), "{meta}");
}

#[tokio::test]
async fn dcr_token_needs_the_initial_access_token() {
    let server = TestServer::start_with(|c| {
        c.dcr = DcrMode::Token;
        c.dcr_initial_access_token = Some(Secret::new(IAT));
    })
    .await;
    for bearer in [None, Some("wrong-token"), Some(&IAT[..IAT.len() - 1])] {
        let (status, headers, json) = register_with(&server, &public_client(), bearer).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bearer:?}");
        assert_eq!(json["error"], "invalid_token");
        assert!(
            headers[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer"),
            "{headers:?}"
        );
        assert!(!json.to_string().contains(IAT));
    }
    let (status, _, json) = register_with(&server, &public_client(), Some(IAT)).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
}

#[tokio::test]
async fn registrations_per_address_are_limited_per_hour() {
    let server = TestServer::start_with(|c| c.dcr_registrations_per_hour = 3).await;
    for _ in 0..3 {
        let (status, _, json) = register(&server, &public_client()).await;
        assert_eq!(status, StatusCode::CREATED, "{json}");
    }
    let (status, headers, json) = register(&server, &public_client()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{json}");
    assert_eq!(json["reason"], "RATE_LIMITED");
    let wait: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=1200).contains(&wait), "{wait}");
    server.clock.advance(Duration::from_secs(wait));
    let (status, _, _) = register(&server, &public_client()).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn maintenance_prunes_dynamic_clients_that_never_got_a_token() {
    let server = TestServer::start().await;
    let (_, _, unused) = register(&server, &public_client()).await;
    let unused = unused["client_id"].as_str().unwrap().to_owned();
    let (_, _, used) = register(&server, &confidential_client()).await;
    let used_id = used["client_id"].as_str().unwrap().to_owned();
    let resp = token(&server, &used_id, used["client_secret"].as_str().unwrap()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let admin_made = server
        .client(&server.primary)
        .await
        .create_client(pb::CreateClientRequest {
            name: "admin".to_owned(),
            redirect_uris: vec![],
            grant_types: strings(&["client_credentials"]),
            allowed_scopes: strings(&["tools:read"]),
            allowed_resources: strings(&[RESOURCE]),
            token_endpoint_auth_method: "client_secret_basic".to_owned(),
            jwks: String::new(),
            skip_consent: false,
        })
        .await
        .unwrap()
        .client
        .unwrap()
        .client_id;

    // Not yet: a day has not passed.
    server.clock.advance(Duration::from_secs(86_400 - 10));
    assert_eq!(server.maintain().await.unused_dynamic_clients_pruned, 0);
    assert!(exists(&server, &unused).await);

    server.clock.advance(Duration::from_secs(10));
    assert_eq!(server.maintain().await.unused_dynamic_clients_pruned, 1);
    assert!(!exists(&server, &unused).await);
    assert!(exists(&server, &used_id).await);
    assert!(exists(&server, &admin_made).await);

    // Audited: who registered (the peer), the one first-grant note, the prune.
    let events = server
        .client(&server.primary)
        .await
        .list_audit_events(pb::ListAuditEventsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .events;
    let of = |action: &str| -> Vec<&pb::AuditEvent> {
        events.iter().filter(|e| e.action == action).collect()
    };
    let registered = of("client.registered");
    assert_eq!(registered.len(), 2, "{events:?}");
    assert!(
        registered.iter().all(|e| e.actor == "peer:127.0.0.1"),
        "{registered:?}"
    );
    assert_eq!(of("client.first_grant").len(), 1);
    let pruned = of("client.pruned");
    assert_eq!(pruned.len(), 1);
    assert_eq!(pruned[0].target, unused);
}

#[tokio::test]
async fn a_private_key_jwt_client_registers_with_public_keys_only() {
    let server = TestServer::start().await;
    let public = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "k1",
        "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]});
    let mut body = confidential_client();
    body["token_endpoint_auth_method"] = json!("private_key_jwt");
    body["jwks"] = public.clone();
    let (status, _, json) = register(&server, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    assert_eq!(json["jwks"], public);
    assert!(json.get("client_secret").is_none(), "{json}");

    let mut private = public.clone();
    private["keys"][0]["d"] = json!("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
    body["jwks"] = private;
    let (status, _, json) = register(&server, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["error"], "invalid_client_metadata", "{json}");
    body["jwks"] = Value::Null;
    let (_, _, json) = register(&server, &body).await;
    assert_eq!(json["error"], "invalid_client_metadata", "{json}");
    body["jwks_uri"] = json!("https://app.example/jwks");
    let (_, _, json) = register(&server, &body).await;
    assert_eq!(json["error"], "invalid_client_metadata", "{json}");
}

#[tokio::test]
async fn default_scopes_that_no_client_may_have_stop_the_server_at_start() {
    for bad in [&["admin"][..], &["tools:call", "bad scope"][..]] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = mcp_auth::config::Config::for_test(dir.path()).unwrap();
        config.dcr_default_scopes = strings(bad);
        let Err(err) =
            mcp_auth::server::Server::open(config, mcp_auth::clock::Clock::system()).await
        else {
            panic!("{bad:?}: the server started");
        };
        let text = err.to_string();
        assert!(text.contains("dcr_default_scopes"), "{bad:?}: {text}");
    }
}

#[tokio::test]
async fn allowed_resources_that_no_client_may_have_stop_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = mcp_auth::config::Config::for_test(dir.path()).unwrap();
    config.dcr_allowed_resources = (0..17)
        .map(|i| format!("https://mcp{i}.example.com"))
        .collect();
    let Err(err) = mcp_auth::server::Server::open(config, mcp_auth::clock::Clock::system()).await
    else {
        panic!("17 resources: the server started");
    };
    let text = err.to_string();
    assert!(
        text.contains("dcr_allowed_resources") && text.contains("at most 16"),
        "{text}"
    );
}
