//! Client ID Metadata Documents: a `client_id` that is an `https` URL is
//! fetched from a loopback HTTPS server the test runs (trusted through
//! the `cimd_testing_ca` setting), checked, cached by its headers, and
//! guarded: mismatched, oversize, slow, redirecting, wrongly typed,
//! missing and private-address documents are each refused as
//! `invalid_client` with a description that says why.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode as AxumStatus, header as h};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::common::TestServer;
use crate::oauth::{JWT_BEARER, JwtKey, RESOURCE, oauth_error, post, token_ok};

/// The loopback HTTPS server of metadata documents.
struct DocServer {
    base: String,
    ca: std::path::PathBuf,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    _dir: tempfile::TempDir,
}

struct Docs {
    base: String,
    jwks: Value,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl DocServer {
    /// Serves documents signed for by `key` on 127.0.0.1, with a
    /// certificate from a CA of its own.
    async fn start(key: &JwtKey) -> DocServer {
        let dir = tempfile::tempdir().unwrap();
        let tls_dir = dir.path().join("tls");
        let ck = mcp_auth::tls::ensure_dev_certificates(&tls_dir).unwrap();
        let acceptor =
            tokio_rustls::TlsAcceptor::from(mcp_auth::tls::http_server_config(&ck).unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let docs = Arc::new(Docs {
            base: base.clone(),
            jwks: serde_json::from_str(&key.jwks()).unwrap(),
            hits: hits.clone(),
        });
        let app = axum::Router::new()
            .route("/{name}", get(document))
            .with_state(docs);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                        .await;
                });
            }
        });
        DocServer {
            base,
            ca: tls_dir.join("ca.pem"),
            hits,
            _dir: dir,
        }
    }

    fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    fn hits(&self, name: &str) -> usize {
        self.hits.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

/// The documents: `machine.json` (private_key_jwt, client_credentials,
/// cached 60 s), `fresh.json` (the same, `no-store`), `public.json` (a
/// public client for the browser flow), and the broken ones.
async fn document(State(docs): State<Arc<Docs>>, Path(name): Path<String>) -> Response {
    *docs.hits.lock().unwrap().entry(name.clone()).or_default() += 1;
    let me = format!("{}/{name}", docs.base);
    let machine = |id: &str| {
        json!({
            "client_id": id,
            "client_name": "Machine client",
            "redirect_uris": ["http://127.0.0.1/callback"],
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": docs.jwks,
            "scope": "tools:call",
            "logo_uri": "https://example.com/logo.png",
        })
    };
    let json_response = |body: Value, cache: &'static str| {
        let mut r = axum::Json(body).into_response();
        r.headers_mut()
            .insert(h::CACHE_CONTROL, HeaderValue::from_static(cache));
        r
    };
    match name.as_str() {
        "machine.json" => json_response(machine(&me), "public, max-age=60"),
        "fresh.json" => json_response(machine(&me), "no-store"),
        "public.json" => json_response(
            json!({
                "client_id": me,
                "client_name": "Public client",
                "redirect_uris": ["http://127.0.0.1/callback"],
            }),
            "max-age=60",
        ),
        "mismatch.json" => {
            json_response(machine(&format!("{}/machine.json", docs.base)), "no-store")
        }
        "big.json" => {
            let mut doc = machine(&me);
            doc["padding"] = json!("x".repeat(6 * 1024));
            json_response(doc, "no-store")
        }
        "slow.json" => std::future::pending().await,
        "redirect.json" => (
            AxumStatus::FOUND,
            [(h::LOCATION, format!("{}/machine.json", docs.base))],
        )
            .into_response(),
        "text.json" => {
            ([(h::CONTENT_TYPE, "text/plain")], machine(&me).to_string()).into_response()
        }
        _ => AxumStatus::NOT_FOUND.into_response(),
    }
}

/// A server that trusts `docs`' CA for metadata documents (and so allows
/// loopback fetches), with a 1 s fetch timeout.
async fn server_for(
    docs: &DocServer,
    tweak: impl FnOnce(&mut mcp_auth::config::Config),
) -> TestServer {
    let pem = std::fs::read(&docs.ca).unwrap();
    let ca = docs.ca.clone();
    TestServer::start_with(move |c| {
        c.auth_failures_per_minute = 10_000;
        c.dcr_registrations_per_hour = 1000;
        c.cimd_testing_ca = Some((ca, pem));
        c.cimd_fetch_timeout = Duration::from_secs(1);
        c.cimd_allowed_resources = vec![RESOURCE.to_owned()];
        c.dcr_default_scopes = vec!["tools:call".to_owned()];
        tweak(c);
    })
    .await
}

/// `client_credentials` by `client_id` with an assertion `key` signed.
async fn grant(server: &TestServer, key: &JwtKey, client_id: &str, jti: &str) -> reqwest::Response {
    let assertion = key.assertion(server, client_id, jti);
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

/// Asserts a 401 `invalid_client` whose description holds `why`.
async fn refused(resp: reqwest::Response, why: &str) {
    let body = oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let text = body["error_description"].as_str().unwrap();
    assert!(text.contains("client metadata document"), "{text}");
    assert!(text.contains(why), "want {why:?} in {text}");
}

#[tokio::test]
async fn a_metadata_document_client_gets_a_token_that_verifies_and_is_cached_by_its_headers() {
    let key = JwtKey::new();
    let docs = DocServer::start(&key).await;
    let server = server_for(&docs, |_| {}).await;
    let metadata: Value = server
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
    assert_eq!(metadata["client_id_metadata_document_supported"], true);

    let id = docs.url("machine.json");
    let body = token_ok(grant(&server, &key, &id, "m-1").await).await;
    assert_eq!(body["scope"], "tools:call");
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let resp = server
        .verify(&verifier, body["access_token"].as_str().unwrap())
        .await;
    assert!(resp.active, "{resp:?}");
    let claims = resp.claims.unwrap();
    assert_eq!(claims.client_id, id);
    assert_eq!(claims.audience, RESOURCE);
    assert_eq!(docs.hits("machine.json"), 1);

    // Within max-age=60 the cached client serves; after it, a refetch.
    server.clock.advance(Duration::from_secs(59));
    token_ok(grant(&server, &key, &id, "m-2").await).await;
    assert_eq!(docs.hits("machine.json"), 1, "cached for 60 s");
    server.clock.advance(Duration::from_secs(2));
    token_ok(grant(&server, &key, &id, "m-3").await).await;
    assert_eq!(docs.hits("machine.json"), 2, "stale after 60 s");

    // no-store: fetched on every use.
    let fresh = docs.url("fresh.json");
    token_ok(grant(&server, &key, &fresh, "f-1").await).await;
    token_ok(grant(&server, &key, &fresh, "f-2").await).await;
    assert_eq!(docs.hits("fresh.json"), 2);

    // A replayed assertion is still refused for such a client.
    oauth_error(
        grant(&server, &key, &fresh, "f-2").await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;

    // A public client's document is accepted, but it may not use
    // client_credentials.
    let public = docs.url("public.json");
    let resp = grant(&server, &key, &public, "p-1").await;
    let body = oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("does not authenticate this way"),
        "{body}"
    );

    // Each fetch is audited.
    let audit = server
        .client(&server.primary)
        .await
        .list_audit_events(mcp_auth::pb::ListAuditEventsRequest::default())
        .await
        .unwrap();
    assert!(
        audit
            .events
            .iter()
            .any(|r| r.action == "client.metadata_fetched" && r.target == id),
        "{:?}",
        audit.events.iter().map(|r| &r.action).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn broken_slow_redirecting_and_private_documents_are_refused() {
    let key = JwtKey::new();
    let docs = DocServer::start(&key).await;
    let server = server_for(&docs, |_| {}).await;
    for (name, why) in [
        (
            "mismatch.json",
            "its client_id is not the URL it was fetched from",
        ),
        ("big.json", "larger than 5120 bytes"),
        (
            "redirect.json",
            "answered 302 (a redirect); redirects are not followed",
        ),
        ("text.json", "not application/json"),
        ("missing.json", "answered 404"),
    ] {
        refused(grant(&server, &key, &docs.url(name), name).await, why).await;
    }
    let started = Instant::now();
    refused(
        grant(&server, &key, &docs.url("slow.json"), "slow").await,
        "no complete answer within 1000 ms",
    )
    .await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    for (url, why) in [
        ("https://10.1.2.3/client.json", "non-public"),
        ("https://169.254.169.254/latest/client.json", "non-public"),
        ("https://[fd00::1]/client.json", "non-public"),
        ("https://[::ffff:c0a8:101]/client.json", "non-public"),
        ("https://[::ffff:192.168.1.1]/client.json", "normal form"),
        ("https://127.0.0.1:1/", "must have a path"),
        ("https://LOCALHOST/client.json", "normal form"),
    ] {
        refused(grant(&server, &key, url, url).await, why).await;
    }
    // Nothing was fetched for the refused addresses, and the document
    // server saw each broken document once.
    for name in [
        "mismatch.json",
        "big.json",
        "redirect.json",
        "text.json",
        "slow.json",
    ] {
        assert_eq!(docs.hits(name), 1, "{name}");
    }
    assert_eq!(
        docs.hits("machine.json"),
        0,
        "the redirect was not followed"
    );
    // The server is still well.
    let resp = server
        .http_client()
        .get(format!("{}/jwks", server.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn loopback_is_refused_without_the_testing_setting_and_the_host_list_and_switch_apply() {
    let key = JwtKey::new();
    let docs = DocServer::start(&key).await;
    let id = docs.url("machine.json");

    let plain = TestServer::start_with(|c| c.auth_failures_per_minute = 10_000).await;
    refused(grant(&plain, &key, &id, "a").await, "is a loopback address").await;

    let listed = server_for(&docs, |c| {
        c.cimd_allowed_hosts = vec!["*.example.com".to_owned()]
    })
    .await;
    refused(grant(&listed, &key, &id, "b").await, "not accepted here").await;

    let off = server_for(&docs, |c| c.cimd = false).await;
    refused(
        grant(&off, &key, &id, "c").await,
        "does not accept client metadata documents",
    )
    .await;
    let metadata: Value = off
        .http_client()
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            off.http_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metadata["client_id_metadata_document_supported"], false);
    assert_eq!(docs.hits("machine.json"), 0);
}

#[tokio::test]
async fn fetches_take_from_the_peers_registration_allowance() {
    let key = JwtKey::new();
    let docs = DocServer::start(&key).await;
    let server = server_for(&docs, |c| c.dcr_registrations_per_hour = 2).await;
    let fresh = docs.url("fresh.json");
    token_ok(grant(&server, &key, &fresh, "1").await).await;
    token_ok(grant(&server, &key, &fresh, "2").await).await;
    let resp = grant(&server, &key, &fresh, "3").await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(resp.headers().contains_key(reqwest::header::RETRY_AFTER));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert_eq!(
        docs.hits("fresh.json"),
        2,
        "no fetch once the allowance is spent"
    );
}
