//! A real MCP client library against the real server: the OAuth client of
//! `rmcp`, the official Rust MCP SDK (`transport::auth`). It starts, as
//! every MCP client does, from the MCP server's URL: the test runs that
//! server's unauthenticated face on 127.0.0.1 (a 401 pointing at its
//! protected resource metadata, RFC 9728, which names mcp-auth as its
//! authorization server, and a client metadata document), and rmcp
//! discovers mcp-auth's metadata from there, registers (Dynamic Client
//! Registration, or a Client ID Metadata Document), and builds the
//! authorization URL. The test is the browser: it signs in and approves on
//! the pages, as `browser_flow` does, and hands the final redirect to
//! rmcp, which checks `iss` (RFC 9207) before it exchanges the code, then
//! refreshes. The tokens verify at mcp-auth.
//!
//! rmcp registers without `resource` (RFC 7591 has no such member) and
//! names the MCP server's URL only at `/authorize` and `/token`, so a
//! self-registered client needs `dcr_allowed_resources`; without it the
//! authorization is refused `invalid_target`, which the last test shows.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode as AxumStatus, header as h};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use mcp_auth::pb;
use mcp_auth::store::{AuthMethod, ClientOrigin};
use reqwest::StatusCode;
use reqwest::header;
use rmcp::transport::auth::{
    AuthError, AuthorizationManager, AuthorizationMetadataSource, AuthorizationRequest,
    AuthorizationSession,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::common::TestServer;

/// Where the MCP client (a native app) listens for the redirect back.
const REDIRECT: &str = "http://127.0.0.1:53124/callback";
pub(crate) const USERNAME: &str = "alice";
pub(crate) const PASSWORD: &str = "correct horse battery";

/// The MCP server, as much of it as a client sees before it has a token.
struct McpServer {
    base: String,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

/// Its listener and TLS, bound (so its URL is known) but not yet serving
/// (it needs the issuer's URL, known once mcp-auth runs).
struct Unstarted {
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    base: String,
}

/// What the MCP server answers.
struct Site {
    base: String,
    issuer: String,
    scopes: Option<Vec<String>>,
}

impl McpServer {
    /// HTTPS on 127.0.0.1 with a CA of its own.
    async fn bind() -> (McpServer, Unstarted) {
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
        let server = McpServer {
            base: base.clone(),
            ca: tls_dir.join("ca.pem"),
            _dir: dir,
        };
        (
            server,
            Unstarted {
                listener,
                acceptor,
                base,
            },
        )
    }

    /// Its URL: the resource its tokens are for.
    fn resource(&self) -> String {
        format!("{}/mcp", self.base)
    }

    /// The client metadata document it hosts for its MCP client.
    fn document_url(&self) -> String {
        format!("{}/client.json", self.base)
    }
}

impl Unstarted {
    /// Serves: `/mcp` 401 with the protected resource metadata's URL in
    /// `WWW-Authenticate`; that metadata naming `issuer` (and `scopes` as
    /// `scopes_supported`, when given); `/client.json`.
    fn serve(self, issuer: &str, scopes: Option<&[&str]>) {
        let site = Arc::new(Site {
            base: self.base,
            issuer: issuer.to_owned(),
            scopes: scopes.map(|s| s.iter().map(|s| (*s).to_owned()).collect()),
        });
        let app = axum::Router::new()
            .route("/mcp", any(unauthorized))
            .route(
                "/.well-known/oauth-protected-resource/mcp",
                get(resource_metadata),
            )
            .route("/client.json", get(client_document))
            .with_state(site);
        let (listener, acceptor) = (self.listener, self.acceptor);
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
    }
}

async fn unauthorized(State(site): State<Arc<Site>>) -> Response {
    (
        AxumStatus::UNAUTHORIZED,
        [(
            h::WWW_AUTHENTICATE,
            format!(
                "Bearer resource_metadata=\"{}/.well-known/oauth-protected-resource/mcp\"",
                site.base
            ),
        )],
    )
        .into_response()
}

async fn resource_metadata(State(site): State<Arc<Site>>) -> Response {
    let mut doc = json!({
        "resource": format!("{}/mcp", site.base),
        "authorization_servers": [site.issuer],
        "bearer_methods_supported": ["header"],
    });
    if let Some(scopes) = &site.scopes {
        doc["scopes_supported"] = json!(scopes);
    }
    axum::Json(doc).into_response()
}

async fn client_document(State(site): State<Arc<Site>>) -> Response {
    axum::Json(json!({
        "client_id": format!("{}/client.json", site.base),
        "client_name": "rmcp client (metadata document)",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }))
    .into_response()
}

/// The MCP client's own HTTP client, handed to rmcp: it trusts mcp-auth's
/// development CA and the MCP server's, and follows no redirect.
fn app_client(server: &TestServer, mcp: &McpServer) -> reqwest::Client {
    let certs = [server.ca_path(), mcp.ca.clone()]
        .map(|p| reqwest::Certificate::from_pem(&std::fs::read(p).unwrap()).unwrap());
    reqwest::Client::builder()
        .tls_certs_only(certs)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The user's browser: cookies kept, redirects not followed.
fn browser(server: &TestServer) -> reqwest::Client {
    let pem = std::fs::read(server.ca_path()).unwrap();
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of the hidden field `name` in `html`.
fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end].to_owned()
}

async fn submit(
    b: &reqwest::Client,
    server: &TestServer,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    b.post(format!("{}{path}", server.http_url()))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// The query parameter `name` of `url`.
pub(crate) fn query(url: &str, name: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `url` with its query parameter `name` set to `value`, or removed.
fn with_query(url: &str, name: &str, value: Option<&str>) -> String {
    let mut url = reqwest::Url::parse(url).unwrap();
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != name)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    {
        let mut q = url.query_pairs_mut();
        q.clear().extend_pairs(kept);
        if let Some(v) = value {
            q.append_pair(name, v);
        }
    }
    url.to_string()
}

pub(crate) async fn create_user(server: &TestServer) {
    server
        .client(&server.primary)
        .await
        .create_user(pb::CreateUserRequest {
            username: USERNAME.to_owned(),
            password: PASSWORD.to_owned(),
        })
        .await
        .unwrap();
}

/// What a person does in the browser with the URL rmcp built: sign in,
/// approve. Returns the `Location` of the redirect back to the client.
pub(crate) async fn sign_in_and_approve(server: &TestServer, authorization_url: &str) -> String {
    let b = browser(server);
    let login = b.get(authorization_url).send().await.unwrap();
    assert_eq!(login.status(), StatusCode::OK, "{login:?}");
    let html = login.text().await.unwrap();
    let interaction = field(&html, "interaction");
    let csrf = field(&html, "csrf");
    let consent = submit(
        &b,
        server,
        "/login",
        &[
            ("interaction", &interaction),
            ("csrf", &csrf),
            ("username", USERNAME),
            ("password", PASSWORD),
        ],
    )
    .await;
    assert_eq!(consent.status(), StatusCode::OK, "{consent:?}");
    assert!(consent.text().await.unwrap().contains("Allow access?"));
    let back = submit(
        &b,
        server,
        "/consent",
        &[
            ("interaction", &interaction),
            ("csrf", &csrf),
            ("decision", "approve"),
        ],
    )
    .await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER, "{back:?}");
    back.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

/// rmcp's discovery from the MCP server's URL, with the app's HTTP client;
/// asserts it went through the protected resource metadata to mcp-auth's
/// metadata.
async fn discover(server: &TestServer, mcp: &McpServer) -> AuthorizationManager {
    let mut manager = AuthorizationManager::new(mcp.resource()).await.unwrap();
    manager.with_client(app_client(server, mcp)).unwrap();
    let resolution = manager.resolve_metadata().await.unwrap();
    assert_eq!(
        resolution.source,
        AuthorizationMetadataSource::ProtectedResourceMetadata
    );
    let issuer = &server.config.issuer;
    let m = &resolution.metadata;
    assert_eq!(m.issuer.as_deref(), Some(issuer.as_str()));
    assert_eq!(m.authorization_endpoint, format!("{issuer}/authorize"));
    assert_eq!(m.token_endpoint, format!("{issuer}/token"));
    assert_eq!(
        m.registration_endpoint.as_deref(),
        Some(format!("{issuer}/register").as_str())
    );
    assert_eq!(
        m.code_challenge_methods_supported.as_deref(),
        Some(&["S256".to_owned()][..])
    );
    manager.set_metadata(resolution.metadata);
    manager
}

/// A token response as JSON (rmcp hands back oauth2's type).
fn json_of(tokens: &impl serde::Serialize) -> Value {
    serde_json::to_value(tokens).unwrap()
}

/// Checks that `access_token` verifies at mcp-auth as alice's, for the MCP
/// server, issued to `client_id` with `scopes`.
async fn assert_verifies(
    server: &TestServer,
    access_token: &str,
    mcp: &McpServer,
    client_id: &str,
    scopes: &[&str],
) {
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let verdict = server.verify(&verifier, access_token).await;
    assert!(verdict.active, "{verdict:?}");
    let claims = verdict.claims.unwrap();
    assert!(claims.subject.starts_with("usr_"), "{claims:?}");
    assert_eq!(claims.audience, mcp.resource());
    assert_eq!(claims.client_id, client_id);
    assert_eq!(claims.scopes, scopes);
    assert_eq!(claims.issuer, server.config.issuer);
}

#[tokio::test]
async fn rmcp_discovers_registers_dynamically_checks_iss_exchanges_the_code_and_refreshes() {
    let (mcp, unstarted) = McpServer::bind().await;
    let resource = mcp.resource();
    let server = TestServer::start_reachable_with(|c| {
        c.auth_failures_per_minute = 10_000;
        c.dcr_allowed_resources = vec![resource];
    })
    .await;
    unstarted.serve(&server.config.issuer, Some(&["tools:read", "tools:call"]));
    create_user(&server).await;

    // Discovery, then registration: rmcp asks for the scopes the resource
    // metadata lists, as a public client, without `resource`.
    let manager = discover(&server, &mcp).await;
    let session = AuthorizationSession::new(
        manager,
        AuthorizationRequest::new(REDIRECT).with_client_name("rmcp client"),
    )
    .await
    .map_err(|(_, e)| e)
    .unwrap();
    let url = session.get_authorization_url().to_owned();
    assert!(
        url.starts_with(&format!("{}/authorize?", server.config.issuer)),
        "{url}"
    );
    let client_id = query(&url, "client_id").unwrap();
    let client = server.core().oauth_client(&client_id).unwrap();
    assert_eq!(client.origin, ClientOrigin::Dynamic);
    assert_eq!(client.name, "rmcp client");
    assert_eq!(client.redirect_uris, [REDIRECT]);
    assert_eq!(client.token_endpoint_auth_method, AuthMethod::None);
    assert_eq!(client.allowed_scopes, ["tools:read", "tools:call"]);
    assert_eq!(
        client.allowed_resources,
        [mcp.resource()],
        "dcr_allowed_resources, as rmcp sent none"
    );
    for (name, value) in [
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", "tools:read tools:call"),
        ("resource", mcp.resource().as_str()),
        ("code_challenge_method", "S256"),
    ] {
        assert_eq!(query(&url, name).as_deref(), Some(value), "{name}: {url}");
    }
    assert!(query(&url, "state").is_some() && query(&url, "code_challenge").is_some());

    let location = sign_in_and_approve(&server, &url).await;
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(
        query(&location, "iss").as_deref(),
        Some(server.config.issuer.as_str())
    );

    // rmcp checks `iss` before it spends the code: another issuer, or
    // none (the metadata says this server always sends it), is refused
    // and the code is left unspent.
    match session
        .handle_callback_url(&with_query(&location, "iss", Some("https://evil.example")))
        .await
    {
        Err(AuthError::AuthorizationServerMismatch {
            expected_issuer,
            received_issuer,
            ..
        }) => {
            assert_eq!(expected_issuer, server.config.issuer);
            assert_eq!(received_issuer, "https://evil.example");
        }
        other => panic!("expected an issuer mismatch, got {other:?}"),
    }
    match session
        .handle_callback_url(&with_query(&location, "iss", None))
        .await
    {
        Err(AuthError::AuthorizationServerMissingIssuer {
            expected_issuer, ..
        }) => assert_eq!(expected_issuer, server.config.issuer),
        other => panic!("expected a missing issuer, got {other:?}"),
    }

    let tokens = json_of(&session.handle_callback_url(&location).await.unwrap());
    assert!(
        tokens["token_type"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("bearer"),
        "{tokens}"
    );
    assert_eq!(tokens["scope"], "tools:read tools:call", "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        session.auth_manager.get_access_token().await.unwrap(),
        access
    );
    assert_verifies(
        &server,
        &access,
        &mcp,
        &client_id,
        &["tools:read", "tools:call"],
    )
    .await;
    assert!(
        server
            .core()
            .oauth_client(&client_id)
            .unwrap()
            .last_grant_at
            .is_some(),
        "a used registration is kept"
    );

    // Refresh through rmcp: new tokens, the refresh token rotated.
    let refreshed = json_of(&session.auth_manager.refresh_token().await.unwrap());
    let access2 = refreshed["access_token"].as_str().unwrap().to_owned();
    let refresh2 = refreshed["refresh_token"].as_str().unwrap();
    assert_ne!(access2, access);
    assert_ne!(refresh2, refresh);
    assert_eq!(
        session.auth_manager.get_access_token().await.unwrap(),
        access2
    );
    assert_verifies(
        &server,
        &access2,
        &mcp,
        &client_id,
        &["tools:read", "tools:call"],
    )
    .await;
}

#[tokio::test]
async fn rmcp_uses_a_client_id_metadata_document_when_the_server_supports_them() {
    let (mcp, unstarted) = McpServer::bind().await;
    let (resource, ca) = (mcp.resource(), mcp.ca.clone());
    let pem = std::fs::read(&ca).unwrap();
    let server = TestServer::start_reachable_with(|c| {
        c.auth_failures_per_minute = 10_000;
        c.cimd_testing_ca = Some((ca, pem));
        c.cimd_allowed_resources = vec![resource];
        c.dcr_default_scopes = vec!["tools:read".to_owned()];
    })
    .await;
    // Resource metadata without scopes: rmcp asks for none.
    unstarted.serve(&server.config.issuer, None);
    create_user(&server).await;

    let manager = discover(&server, &mcp).await;
    let session = AuthorizationSession::new(
        manager,
        AuthorizationRequest::new(REDIRECT).with_client_metadata_url(mcp.document_url()),
    )
    .await
    .map_err(|(_, e)| e)
    .unwrap();
    let url = session.get_authorization_url().to_owned();
    assert_eq!(query(&url, "client_id"), Some(mcp.document_url()));
    assert_eq!(query(&url, "scope"), None, "{url}");
    assert_eq!(query(&url, "resource"), Some(mcp.resource()));

    let location = sign_in_and_approve(&server, &url).await;
    let tokens = json_of(&session.handle_callback_url(&location).await.unwrap());
    assert_eq!(
        tokens["scope"], "tools:read",
        "dcr_default_scopes: {tokens}"
    );
    let access = tokens["access_token"].as_str().unwrap();
    assert_verifies(&server, access, &mcp, &mcp.document_url(), &["tools:read"]).await;

    let refreshed = json_of(&session.auth_manager.refresh_token().await.unwrap());
    let access2 = refreshed["access_token"].as_str().unwrap();
    assert_ne!(access2, access);
    assert_verifies(&server, access2, &mcp, &mcp.document_url(), &["tools:read"]).await;
}

/// Without `dcr_allowed_resources` the client rmcp registers has no
/// resource, and the authorization (which names the MCP server) goes back
/// to it refused before anyone signs in; rmcp finds no code there. That
/// is production: with its own certificate, not the generated
/// development TLS, under which a loopback MCP server's URL is let in.
#[tokio::test]
async fn without_dcr_allowed_resources_the_client_rmcp_registers_is_refused_its_resource() {
    let (mcp, unstarted) = McpServer::bind().await;
    let server = TestServer::start_reachable_with(|c| {
        let tls = c.data_dir.join("tls");
        mcp_auth::tls::ensure_dev_certificates(&tls).unwrap();
        c.tls = mcp_auth::config::TlsMode::Files {
            cert: tls.join("server.pem"),
            key: tls.join("server.key"),
        };
    })
    .await;
    unstarted.serve(&server.config.issuer, Some(&["tools:read"]));

    let manager = discover(&server, &mcp).await;
    let session = AuthorizationSession::new(manager, AuthorizationRequest::new(REDIRECT))
        .await
        .map_err(|(_, e)| e)
        .unwrap();
    let client_id = query(session.get_authorization_url(), "client_id").unwrap();
    assert!(
        server
            .core()
            .oauth_client(&client_id)
            .unwrap()
            .allowed_resources
            .is_empty()
    );
    let resp = browser(&server)
        .get(session.get_authorization_url())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{resp:?}");
    let location = resp.headers()[header::LOCATION].to_str().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    assert_eq!(query(location, "error").as_deref(), Some("invalid_target"));
    let description = query(location, "error_description").unwrap();
    assert!(description.contains("is not allowed"), "{description}");
    assert!(matches!(
        session.handle_callback_url(location).await,
        Err(AuthError::AuthorizationFailed(_))
    ));
}
