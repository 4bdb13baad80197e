//! The tower layer for HTTP MCP servers (axum, rmcp's streamable HTTP
//! service, any hyper service).
//!
//! For each request it:
//! 1. serves the protected resource metadata at its well-known paths;
//! 2. takes the `Authorization: Bearer` credential and verifies it
//!    ([`crate::Verifier`]), answering 401 with the RFC 9728 challenge
//!    when it is missing or refused, 429 when mcp-auth throttles the
//!    caller, 503 when no verdict can be reached (fail closed);
//! 3. reads the JSON-RPC body (bounded) and the `Mcp-Method`/`Mcp-Name`
//!    headers, refuses a disagreement (400, JSON-RPC -32020), and checks
//!    the scopes the operation needs ([`ScopeMap`]): 403
//!    `insufficient_scope` naming all of them;
//! 4. hands the request on with the [`Verified`] claims in its extensions.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};

use crate::challenge;
use crate::claims::Verified;
use crate::error::{BuildError, Rejection, VerifyError};
use crate::jsonrpc::{self, HEADER_MISMATCH};
use crate::metadata::ResourceMetadata;
use crate::scopes::ScopeMap;
use crate::verifier::Verifier;

/// The error type of bodies passed through.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of the layer's responses: the inner service's, or its own.
pub type ResponseBody = UnsyncBoxBody<Bytes, BoxError>;

/// Largest request body read by default (4 MiB).
pub const DEFAULT_MAX_BODY: usize = 4 * 1024 * 1024;

type AddressOf = dyn Fn(&http::request::Parts) -> Option<IpAddr> + Send + Sync;

/// What the layer protects, and how: the verifier, the metadata, the
/// scope map. Build one, then [`Protection::layer`].
pub struct Protection {
    verifier: Verifier,
    metadata: ResourceMetadata,
    metadata_url: String,
    metadata_json: Bytes,
    scopes: ScopeMap,
    challenge_scopes: Vec<String>,
    public_paths: Vec<String>,
    max_body: usize,
    address_of: Option<Arc<AddressOf>>,
}

impl std::fmt::Debug for Protection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protection")
            .field("resource", &self.metadata.resource)
            .field("scopes", &self.scopes)
            .field("public_paths", &self.public_paths)
            .finish_non_exhaustive()
    }
}

impl Protection {
    /// Protects the MCP server `verifier` verifies tokens for (its
    /// resource URL and issuer name the metadata), with the scopes of
    /// `scopes` (they are also its `scopes_supported`).
    ///
    /// # Errors
    /// [`BuildError::Invalid`] if the verifier's resource is not a usable
    /// resource URL.
    pub fn new(verifier: Verifier, scopes: ScopeMap) -> Result<Self, BuildError> {
        let supported = scopes.supported();
        let metadata = ResourceMetadata::new(verifier.resource(), verifier.issuer())?
            .scopes_supported(supported.clone());
        Ok(Protection {
            metadata_url: metadata.url(),
            metadata_json: Bytes::from(metadata.to_json()),
            metadata,
            verifier,
            scopes,
            challenge_scopes: supported,
            public_paths: Vec::new(),
            max_body: DEFAULT_MAX_BODY,
            address_of: None,
        })
    }

    /// Names the server in its metadata (`resource_name`).
    #[must_use]
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.metadata = self.metadata.resource_name(name);
        self.metadata_json = Bytes::from(self.metadata.to_json());
        self
    }

    /// Paths served without a credential (e.g. `/healthz`). Everything
    /// else behind the layer needs one.
    #[must_use]
    pub fn public_paths<'a>(mut self, paths: impl IntoIterator<Item = &'a str>) -> Self {
        self.public_paths = paths.into_iter().map(str::to_owned).collect();
        self
    }

    /// The largest request body read (default [`DEFAULT_MAX_BODY`]);
    /// larger ones get 413.
    #[must_use]
    pub fn max_body_bytes(mut self, max: usize) -> Self {
        self.max_body = max;
        self
    }

    /// How to find the caller's address in a request (reported to
    /// mcp-auth, which throttles refused API keys per address). Default:
    /// a `SocketAddr` in the request's extensions, if any.
    #[must_use]
    pub fn client_address(
        mut self,
        address_of: impl Fn(&http::request::Parts) -> Option<IpAddr> + Send + Sync + 'static,
    ) -> Self {
        self.address_of = Some(Arc::new(address_of));
        self
    }

    /// The protected resource metadata served.
    pub fn metadata(&self) -> &ResourceMetadata {
        &self.metadata
    }

    /// The scope map checked.
    pub fn scopes(&self) -> &ScopeMap {
        &self.scopes
    }

    /// The layer.
    pub fn layer(self) -> McpAuthLayer {
        McpAuthLayer {
            protection: Arc::new(self),
        }
    }

    fn address(&self, parts: &http::request::Parts) -> Option<IpAddr> {
        match &self.address_of {
            Some(f) => f(parts),
            None => parts.extensions.get::<SocketAddr>().map(SocketAddr::ip),
        }
    }
}

/// A `tower::Layer` protecting an MCP server; see the module docs.
#[derive(Clone, Debug)]
pub struct McpAuthLayer {
    protection: Arc<Protection>,
}

impl McpAuthLayer {
    /// The layer of `protection`.
    pub fn new(protection: Protection) -> Self {
        protection.layer()
    }
}

impl<S> tower_layer::Layer<S> for McpAuthLayer {
    type Service = McpAuth<S>;

    fn layer(&self, inner: S) -> McpAuth<S> {
        McpAuth {
            inner,
            protection: self.protection.clone(),
        }
    }
}

/// The service [`McpAuthLayer`] wraps around an MCP server. The inner
/// service receives the request with its body read into memory.
#[derive(Clone, Debug)]
pub struct McpAuth<S> {
    inner: S,
    protection: Arc<Protection>,
}

/// Why a request was not handed on.
enum Refusal {
    NoToken,
    Malformed(&'static str),
    Rejected(Rejection),
    Scope(Vec<String>),
    RateLimited(Duration),
    Unavailable,
    TooLarge,
    BadBody,
    Mismatch(String),
}

impl<S, B, RB> tower_service::Service<Request<B>> for McpAuth<S>
where
    S: tower_service::Service<Request<Full<Bytes>>, Response = Response<RB>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    RB: Body<Data = Bytes> + Send + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let p = self.protection.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            let path = parts.uri.path();
            if p.metadata.serves(path) {
                return Ok(metadata_response(&p, &parts.method));
            }
            let public =
                parts.method == Method::OPTIONS || p.public_paths.iter().any(|x| x == path);
            let verified = if public {
                None
            } else {
                match authenticate(&p, &parts).await {
                    Ok(v) => Some(v),
                    Err(refusal) => return Ok(refuse(&p, refusal)),
                }
            };
            let bytes = match Limited::new(body, p.max_body).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(err) => {
                    let refusal = if err.is::<http_body_util::LengthLimitError>() {
                        Refusal::TooLarge
                    } else {
                        Refusal::BadBody
                    };
                    return Ok(refuse(&p, refusal));
                }
            };
            if let Some(verified) = verified {
                if let Err(refusal) = authorize(&p, &parts, &bytes, &verified) {
                    return Ok(refuse(&p, refusal));
                }
                parts.extensions.insert(verified);
            }
            let response = inner
                .call(Request::from_parts(parts, Full::new(bytes)))
                .await?;
            Ok(response.map(|b| b.map_err(Into::into).boxed_unsync()))
        })
    }
}

/// The caller's verified credential, or why there is none.
async fn authenticate(p: &Protection, parts: &http::request::Parts) -> Result<Verified, Refusal> {
    let mut values = parts.headers.get_all(AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(if parts.headers.contains_key(AUTHORIZATION) {
            Refusal::Malformed("send one Authorization header")
        } else {
            Refusal::NoToken
        });
    };
    let value = value
        .to_str()
        .map_err(|_| Refusal::Malformed("the Authorization header is not visible ASCII"))?;
    let Some((scheme, credential)) = value.split_once(' ') else {
        return Err(Refusal::NoToken);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        // Another scheme is no bearer credential (RFC 6750 section 3).
        return Err(Refusal::NoToken);
    }
    let credential = credential.trim();
    if credential.is_empty() {
        return Err(Refusal::Malformed("the bearer credential is empty"));
    }
    match p.verifier.verify(credential, p.address(parts)).await {
        Ok(v) => Ok(v),
        Err(VerifyError::Rejected(Rejection::InsufficientScope)) => {
            Err(Refusal::Scope(p.challenge_scopes.clone()))
        }
        Err(VerifyError::Rejected(r)) => Err(Refusal::Rejected(r)),
        Err(VerifyError::RateLimited { retry_after }) => Err(Refusal::RateLimited(retry_after)),
        Err(VerifyError::Unavailable(why)) => {
            tracing::warn!(cause = %why, "cannot verify a credential; answering 503");
            Err(Refusal::Unavailable)
        }
    }
}

/// Whether the verified caller may do what the request asks.
fn authorize(
    p: &Protection,
    parts: &http::request::Parts,
    body: &[u8],
    caller: &Verified,
) -> Result<(), Refusal> {
    let ops = jsonrpc::operations(&parts.headers, body).map_err(Refusal::Mismatch)?;
    if p.scopes.allows(caller, &ops) {
        Ok(())
    } else {
        Err(Refusal::Scope(p.scopes.required_all(&ops)))
    }
}

fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response<ResponseBody> {
    let mut r = Response::new(full(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn metadata_response(p: &Protection, method: &Method) -> Response<ResponseBody> {
    let mut r = if *method == Method::GET || *method == Method::HEAD {
        let mut r = Response::new(full(p.metadata_json.clone()));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        r.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("max-age=300"));
        r
    } else if *method == Method::OPTIONS {
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::NO_CONTENT;
        r.headers_mut().insert(
            "access-control-allow-methods",
            HeaderValue::from_static("GET, OPTIONS"),
        );
        r
    } else {
        let mut r = Response::new(full(Bytes::new()));
        *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        r.headers_mut().insert(
            http::header::ALLOW,
            HeaderValue::from_static("GET, OPTIONS"),
        );
        r
    };
    // Browser-based MCP clients fetch the metadata from another origin.
    r.headers_mut()
        .insert("access-control-allow-origin", HeaderValue::from_static("*"));
    r
}

/// A short, fixed description of a refusal (never the credential).
pub(crate) fn describe(r: Rejection) -> &'static str {
    match r {
        Rejection::Malformed => "the credential is malformed",
        Rejection::Expired => "the token has expired",
        Rejection::NotYetValid => "the token is not valid yet",
        Rejection::Revoked => "the credential was revoked",
        Rejection::BadSignature => "the token's signature does not verify",
        Rejection::UnknownKey => "the token is signed by an unknown key",
        Rejection::WrongIssuer => "the token is from another issuer",
        Rejection::WrongAudience => "the token is meant for another resource",
        Rejection::InsufficientScope => "the credential lacks a scope this call needs",
        Rejection::UnknownApiKey => "unknown API key",
        Rejection::RotatedOut => "this API key secret was rotated out",
    }
}

fn with_challenge(mut r: Response<ResponseBody>, value: &str) -> Response<ResponseBody> {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    r
}

fn refuse(p: &Protection, refusal: Refusal) -> Response<ResponseBody> {
    let prm = p.metadata_url.as_str();
    match refusal {
        Refusal::NoToken => with_challenge(
            json_response(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "unauthorized", "error_description": "this MCP server needs a bearer token"}),
            ),
            &challenge::missing_token(prm, &p.challenge_scopes),
        ),
        Refusal::Malformed(why) => with_challenge(
            json_response(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": "invalid_request", "error_description": why}),
            ),
            &challenge::invalid_request(prm, why),
        ),
        Refusal::Rejected(r) => with_challenge(
            json_response(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "invalid_token", "error_description": describe(r)}),
            ),
            &challenge::invalid_token(prm, &p.challenge_scopes, describe(r)),
        ),
        Refusal::Scope(needed) => with_challenge(
            json_response(
                StatusCode::FORBIDDEN,
                serde_json::json!({"error": "insufficient_scope", "error_description": "the credential lacks a scope this call needs", "scope": needed.join(" ")}),
            ),
            &challenge::insufficient_scope(prm, &needed),
        ),
        Refusal::RateLimited(retry) => {
            let mut r = json_response(
                StatusCode::TOO_MANY_REQUESTS,
                serde_json::json!({"error": "rate_limited", "error_description": "too many refused credentials from this address; retry later"}),
            );
            let secs = retry.as_secs() + u64::from(retry.subsec_nanos() > 0);
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
            r
        }
        Refusal::Unavailable => {
            let mut r = json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"error": "temporarily_unavailable", "error_description": "the credential cannot be verified now"}),
            );
            r.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
        Refusal::TooLarge => json_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            serde_json::json!({"error": "invalid_request", "error_description": "the request body is too large"}),
        ),
        Refusal::BadBody => json_response(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": "invalid_request", "error_description": "the request body could not be read"}),
        ),
        Refusal::Mismatch(why) => json_response(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": HEADER_MISMATCH, "message": why}}),
        ),
    }
}
