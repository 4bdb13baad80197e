//! The HTTP adapter: the OAuth face of the service, a second adapter over
//! the same [`Core`] as gRPC. [`router`] builds the axum router the
//! listener serves (`server` runs it on hyper with TLS and the connection
//! bounds); tests can drive it directly with `tower::ServiceExt::oneshot`.
//!
//! Served, under the issuer's path (`P`, empty for the default issuer):
//! - the authorization server metadata ([`metadata`]) at its well-known
//!   paths;
//! - `GET P/jwks`: the JWK Set ([`jwks`]);
//! - `POST P/token`: the token endpoint ([`token`]; `client_credentials`);
//! - `POST P/introspect`: token introspection ([`introspect`], RFC 7662);
//! - `POST P/revoke`: token revocation ([`revoke`], RFC 7009);
//! - `POST P/register`: Dynamic Client Registration ([`register`], RFC
//!   7591; not served when `dcr = "off"`);
//! - the pages of the browser flow: `GET`/`POST P/authorize`, `POST
//!   P/login`, `POST P/consent`, and `GET P/login-continue` (back from the
//!   operator's sign-in page, `login_continue`);
//! - `GET /healthz`: alive; `GET /readyz`: ready (the store open and
//!   current, the key ring loaded, not shutting down), else 503, for load
//!   balancers that probe the service's own port.
//!
//! Everything else is a JSON 404 (405 for a known path with another
//! method). How a handler is written: extract [`credentials::Call`] (the
//! caller's [`crate::core::Credentials`]) and, for a POST, [`form::Form`];
//! take the core from [`App`]; return `Result<_, error::HttpError>`, where
//! `?` on a core error applies the one mapping ([`error`]). Token-bearing
//! routes add the [`layers::no_store`] layer; every route answers
//! cross-origin requests without credentials ([`layers::cors`]). Every
//! request is counted and timed for the metrics by its route
//! (`metrics`).

mod authorize;
pub mod browser;
pub(crate) mod client_auth;
mod consent;
pub mod credentials;
pub mod error;
pub mod form;
mod introspect;
mod jwks;
pub mod layers;
mod login_continue;
pub mod metadata;
mod metrics;
pub mod pages;
pub(crate) mod register;
mod register_error;
mod revoke;
mod signin;
mod token;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

pub use self::credentials::Peer;
use self::error::HttpError;
use crate::config::Config;
use crate::core::Core;

/// Default bound on a request body, bytes.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// The token endpoint's path under the issuer's.
pub const TOKEN_PATH: &str = "/token";
/// The introspection endpoint's path under the issuer's.
pub const INTROSPECT_PATH: &str = "/introspect";
/// The revocation endpoint's path under the issuer's.
pub const REVOKE_PATH: &str = "/revoke";
/// The registration endpoint's path under the issuer's.
pub const REGISTER_PATH: &str = "/register";
/// The authorization endpoint's path under the issuer's.
pub const AUTHORIZE_PATH: &str = "/authorize";
/// The JWK Set's path under the issuer's.
pub const JWKS_PATH: &str = "/jwks";
/// The liveness probe's path (at the root).
pub const HEALTH_PATH: &str = "/healthz";
/// The readiness probe's path (at the root).
pub const READY_PATH: &str = "/readyz";

/// What the HTTP adapter is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The issuer URL: the prefix of every endpoint in the metadata, and
    /// (its path) of every route.
    pub issuer: String,
    /// Longest request body read, bytes; longer ones get 413.
    pub body_limit: usize,
    /// Time a request has from its arrival to its response; then 408.
    pub request_timeout: Duration,
    /// Who may register clients at `/register`.
    pub dcr: crate::config::DcrMode,
    /// The hash of the initial access token `/register` requires
    /// (`dcr = token`); `None` when it requires none.
    pub dcr_token_hash: Option<crate::secret::SecretHash>,
    /// Scopes of a registration that asks for none.
    pub dcr_default_scopes: Vec<String>,
    /// Cookies are `Secure` (the listener speaks TLS).
    pub secure_cookies: bool,
    /// How long a signed-in browser is remembered, seconds; 0 never.
    pub login_remember_seconds: u32,
    /// Words for scopes on the consent page.
    pub scope_descriptions: std::collections::BTreeMap<String, String>,
    /// The operator's sign-in page that browsers are sent to instead of
    /// the built-in one; `None`: the built-in page.
    pub login_url: Option<String>,
}

impl Settings {
    /// The HTTP settings of `config`.
    pub fn from_config(config: &Config) -> Self {
        Settings {
            issuer: config.issuer.clone(),
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: config.http_request_timeout,
            dcr: config.dcr,
            dcr_token_hash: match config.dcr {
                crate::config::DcrMode::Token => config
                    .dcr_initial_access_token
                    .as_ref()
                    .map(crate::secret::Secret::hash),
                _ => None,
            },
            dcr_default_scopes: config.dcr_default_scopes.clone(),
            secure_cookies: config.tls != crate::config::TlsMode::Plaintext,
            login_remember_seconds: config.login_remember_seconds,
            scope_descriptions: config.scope_descriptions.clone(),
            login_url: config.login_url.clone(),
        }
    }
}

/// The state every handler gets: the core, the settings, and what is
/// computed once.
#[derive(Clone, Debug)]
pub struct App {
    /// The core the operations run on (shared with gRPC).
    pub core: Arc<Core>,
    /// The adapter's settings.
    pub settings: Arc<Settings>,
    /// The metadata document, serialized once.
    metadata: Bytes,
}

impl App {
    /// The URLs a client assertion sent to the endpoint at `path` may name
    /// in `aud`: that endpoint's, the token endpoint's, and the issuer.
    pub(crate) fn audiences(&self, path: &str) -> Vec<String> {
        let issuer = &self.settings.issuer;
        let mut all = vec![format!("{issuer}{path}"), issuer.clone()];
        if path != TOKEN_PATH {
            all.push(format!("{issuer}{TOKEN_PATH}"));
        }
        all
    }
}

/// The router of the HTTP listener over `core` (see the module
/// documentation for its routes and layers).
pub fn router(core: Arc<Core>, settings: &Settings) -> Router {
    let prefix = crate::config::issuer_path(&settings.issuer);
    let dcr_on = settings.dcr != crate::config::DcrMode::Off;
    let document = metadata::document(&settings.issuer, dcr_on, core.accepts_metadata_documents());
    let app = App {
        core,
        settings: Arc::new(settings.clone()),
        metadata: Bytes::from(document.to_string()),
    };
    let mut router = Router::new()
        .route(HEALTH_PATH, get(healthz))
        .route(READY_PATH, get(readyz))
        .route(&format!("{prefix}{JWKS_PATH}"), get(jwks::get))
        .route(
            &format!("{prefix}{TOKEN_PATH}"),
            post(token::post).layer(middleware::map_response(layers::no_store)),
        )
        .route(
            &format!("{prefix}{INTROSPECT_PATH}"),
            post(introspect::post).layer(middleware::map_response(layers::no_store)),
        )
        .route(
            &format!("{prefix}{REVOKE_PATH}"),
            post(revoke::post).layer(middleware::map_response(layers::no_store)),
        );
    if dcr_on {
        router = router.route(
            &format!("{prefix}{REGISTER_PATH}"),
            post(register::post).layer(middleware::map_response(layers::no_store)),
        );
    }
    for path in metadata::paths(prefix) {
        router = router.route(&path, get(metadata::get));
    }
    // The pages are for the browser that shows them: no CORS.
    let pages = Router::new()
        .route(
            &format!("{prefix}{AUTHORIZE_PATH}"),
            get(authorize::handle).post(authorize::handle),
        )
        .route(&format!("{prefix}/login"), post(signin::post))
        .route(
            &format!("{prefix}{}", crate::core::LOGIN_CONTINUE_PATH),
            get(login_continue::get),
        )
        .route(&format!("{prefix}/consent"), post(consent::post))
        .route(
            &format!("{prefix}{}", pages::STYLESHEET_PATH),
            get(stylesheet),
        );
    router
        .layer(layers::cors())
        .merge(pages)
        .fallback(not_found)
        .layer(RequestBodyLimitLayer::new(settings.body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
        .layer(middleware::from_fn(layers::around))
        .layer(middleware::from_fn(metrics::record))
        .with_state(app)
}

/// The pages' stylesheet, cacheable for a day.
async fn stylesheet() -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (axum::http::header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        pages::STYLESHEET,
    )
        .into_response()
}

/// `GET /healthz`: the listener is up and serving.
async fn healthz() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

/// `GET /readyz`: 200 `{"status": "ready"}` while the server is ready;
/// 503 `{"status": "not_ready", "reason": ...}` once it is shutting down,
/// or while its store is unavailable.
async fn readyz(axum::extract::State(app): axum::extract::State<App>) -> Response {
    match app.core.readiness() {
        Ok(()) => axum::Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "not_ready", "reason": why.as_str()})),
        )
            .into_response(),
    }
}

/// Any path no route serves.
async fn not_found(uri: Uri) -> HttpError {
    HttpError::for_status(StatusCode::NOT_FOUND, "", uri.path())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, header};
    use tower::ServiceExt;

    use super::*;

    async fn core(dir: &std::path::Path, issuer: &str) -> (Arc<Core>, Settings) {
        let mut config = Config::for_test(dir).unwrap();
        config.issuer = issuer.to_owned();
        let store = crate::store::open(dir, crate::store::Durability::Unsafe).unwrap();
        let (core, _) = Core::open(store, crate::Clock::system(), &config)
            .await
            .unwrap();
        (Arc::new(core), Settings::from_config(&config))
    }

    async fn send(router: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let response = router.clone().oneshot(req).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec();
        (parts.status, parts.headers, body)
    }

    use axum::http::HeaderMap;

    fn get_req(path: &str) -> Request<Body> {
        Request::get(path).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn routes_follow_the_issuer_path() {
        let dir = tempfile::tempdir().unwrap();
        let (core, settings) = core(dir.path(), "https://h.example/auth").await;
        let router = router(core, &settings);
        for path in [
            "/.well-known/oauth-authorization-server/auth",
            "/.well-known/openid-configuration/auth",
            "/auth/.well-known/openid-configuration",
            "/auth/jwks",
            "/healthz",
        ] {
            let (status, headers, _) = send(&router, get_req(path)).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        }
        for path in ["/.well-known/oauth-authorization-server", "/jwks", "/token"] {
            let (status, headers, body) = send(&router, get_req(path)).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(headers[header::CONTENT_TYPE], "application/json");
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(json["error"], "not_found");
        }
    }

    #[tokio::test]
    async fn a_wrong_method_is_a_json_405_with_allow() {
        let dir = tempfile::tempdir().unwrap();
        let (core, settings) = core(dir.path(), "https://localhost:8443").await;
        let router = router(core, &settings);
        let req = Request::post("/jwks").body(Body::empty()).unwrap();
        let (status, headers, body) = send(&router, req).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(headers.contains_key(header::ALLOW), "{headers:?}");
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"], "invalid_request");
    }
}
