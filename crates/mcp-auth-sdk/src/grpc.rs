//! Protecting a gRPC MCP server (tonic): the same verification and scope
//! checks as the HTTP layer, answered as gRPC statuses. tonic's own
//! interceptors are synchronous, so this is a tower layer over tonic's
//! HTTP requests (`Server::builder().layer(...)`), as tonic recommends for
//! asynchronous authentication.
//!
//! - no bearer credential: UNAUTHENTICATED, with `www-authenticate`
//!   metadata naming the protected resource metadata;
//! - a refused credential: UNAUTHENTICATED (`error="invalid_token"`);
//! - a missing scope: PERMISSION_DENIED (`error="insufficient_scope"`
//!   with every scope the method needs);
//! - mcp-auth throttling the caller: RESOURCE_EXHAUSTED;
//! - no verdict possible: UNAVAILABLE (fail closed).
//!
//! Handlers find the [`Verified`] claims in `request.extensions()`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response};
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use crate::challenge;
use crate::claims::Verified;
use crate::error::{BuildError, Rejection, VerifyError};
use crate::metadata::ResourceMetadata;
use crate::scopes::owned;
use crate::verifier::Verifier;

/// Which scopes each gRPC method needs: a base set for every method, plus
/// per service and per method.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GrpcScopes {
    base: Vec<String>,
    /// By `/package.Service`.
    services: BTreeMap<String, Vec<String>>,
    /// By `/package.Service/Method`.
    methods: BTreeMap<String, Vec<String>>,
}

impl GrpcScopes {
    /// Nothing but a valid credential.
    pub fn new() -> Self {
        GrpcScopes::default()
    }

    /// Scopes every method needs.
    #[must_use]
    pub fn base<'a>(mut self, scopes: impl IntoIterator<Item = &'a str>) -> Self {
        self.base = owned(scopes);
        self
    }

    /// Scopes every method of `service` (`package.Service`) needs.
    #[must_use]
    pub fn service<'a>(mut self, service: &str, scopes: impl IntoIterator<Item = &'a str>) -> Self {
        self.services.insert(format!("/{service}"), owned(scopes));
        self
    }

    /// Scopes method `method` of `service` needs (besides the service's).
    #[must_use]
    pub fn method<'a>(
        mut self,
        service: &str,
        method: &str,
        scopes: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        self.methods
            .insert(format!("/{service}/{method}"), owned(scopes));
        self
    }

    /// Every scope named here, sorted.
    pub fn supported(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .base
            .iter()
            .chain(self.services.values().flatten())
            .chain(self.methods.values().flatten())
            .cloned()
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// Every scope the gRPC path (`/package.Service/Method`) needs.
    pub fn required(&self, path: &str) -> Vec<String> {
        let mut need = self.base.clone();
        if let Some((service, _)) = path.rsplit_once('/') {
            if let Some(s) = self.services.get(service) {
                need.extend(s.iter().cloned());
            }
        }
        if let Some(m) = self.methods.get(path) {
            need.extend(m.iter().cloned());
        }
        need.sort();
        need.dedup();
        need
    }
}

/// What a gRPC MCP server requires: a verified credential for every
/// method, and the scopes of its [`GrpcScopes`].
pub struct GrpcProtection {
    verifier: Verifier,
    metadata_url: String,
    scopes: GrpcScopes,
    supported: Vec<String>,
}

impl std::fmt::Debug for GrpcProtection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcProtection")
            .field("resource", &self.verifier.resource())
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl GrpcProtection {
    /// Protects the server `verifier` verifies tokens for, with `scopes`.
    ///
    /// # Errors
    /// [`BuildError::Invalid`] if its resource is not a usable resource
    /// URL.
    pub fn new(verifier: Verifier, scopes: GrpcScopes) -> Result<Self, BuildError> {
        let metadata = ResourceMetadata::new(verifier.resource(), verifier.issuer())?;
        Ok(GrpcProtection {
            metadata_url: metadata.url(),
            verifier,
            supported: scopes.supported(),
            scopes,
        })
    }

    /// The layer.
    pub fn layer(self) -> McpAuthInterceptor {
        McpAuthInterceptor {
            protection: Arc::new(self),
        }
    }

    async fn check(&self, parts: &http::request::Parts) -> Result<Verified, tonic::Status> {
        let mut values = parts.headers.get_all(http::header::AUTHORIZATION).iter();
        let credential = match (values.next(), values.next()) {
            (None, _) => None,
            (Some(_), Some(_)) => {
                return Err(tonic::Status::invalid_argument(
                    "send one authorization value",
                ));
            }
            (Some(v), None) => v
                .to_str()
                .ok()
                .and_then(|v| v.split_once(' '))
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map(|(_, c)| c.trim())
                .filter(|c| !c.is_empty()),
        };
        let Some(credential) = credential else {
            return Err(self.unauthenticated(
                "this server needs `authorization: Bearer <token>`",
                &challenge::missing_token(&self.metadata_url, &self.supported),
            ));
        };
        let verified = match self.verifier.verify(credential, peer(parts)).await {
            Ok(v) => v,
            Err(VerifyError::Rejected(r)) => {
                let why = describe(r);
                return Err(self.unauthenticated(
                    why,
                    &challenge::invalid_token(&self.metadata_url, &self.supported, why),
                ));
            }
            Err(VerifyError::RateLimited { retry_after }) => {
                return Err(tonic::Status::resource_exhausted(format!(
                    "too many refused credentials from this address; retry in {} s",
                    retry_after.as_secs().max(1)
                )));
            }
            Err(VerifyError::Unavailable(why)) => {
                tracing::warn!(cause = %why, "cannot verify a credential; answering UNAVAILABLE");
                return Err(tonic::Status::unavailable(
                    "the credential cannot be verified now",
                ));
            }
        };
        let needed = self.scopes.required(parts.uri.path());
        if !verified.has_all(needed.iter().map(String::as_str)) {
            let mut status = tonic::Status::permission_denied(format!(
                "this method needs scopes {}",
                needed.join(" ")
            ));
            if let Ok(v) = challenge::insufficient_scope(&self.metadata_url, &needed).parse() {
                status.metadata_mut().insert("www-authenticate", v);
            }
            return Err(status);
        }
        Ok(verified)
    }

    fn unauthenticated(&self, message: &str, challenge: &str) -> tonic::Status {
        let mut status = tonic::Status::unauthenticated(message);
        if let Ok(v) = challenge.parse() {
            status.metadata_mut().insert("www-authenticate", v);
        }
        status
    }
}

/// The caller's address, from tonic's connection info (TCP, or TLS over
/// TCP).
fn peer(parts: &http::request::Parts) -> Option<IpAddr> {
    let e = &parts.extensions;
    e.get::<TcpConnectInfo>()
        .and_then(TcpConnectInfo::remote_addr)
        .or_else(|| {
            e.get::<TlsConnectInfo<TcpConnectInfo>>()
                .and_then(|t| t.get_ref().remote_addr())
        })
        .map(|a| a.ip())
}

fn describe(r: Rejection) -> &'static str {
    crate::layer::describe(r)
}

/// The tower layer protecting a tonic server:
/// `Server::builder().layer(protection.layer())`.
#[derive(Clone, Debug)]
pub struct McpAuthInterceptor {
    protection: Arc<GrpcProtection>,
}

impl<S> tower_layer::Layer<S> for McpAuthInterceptor {
    type Service = GrpcAuth<S>;

    fn layer(&self, inner: S) -> GrpcAuth<S> {
        GrpcAuth {
            inner,
            protection: self.protection.clone(),
        }
    }
}

/// The service [`McpAuthInterceptor`] wraps around a tonic server.
#[derive(Clone, Debug)]
pub struct GrpcAuth<S> {
    inner: S,
    protection: Arc<GrpcProtection>,
}

impl<S, B, RB> tower_service::Service<Request<B>> for GrpcAuth<S>
where
    S: tower_service::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<RB>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let p = self.protection.clone();
        Box::pin(async move {
            let (mut parts, body) = request.into_parts();
            match p.check(&parts).await {
                Ok(verified) => {
                    parts.extensions.insert(verified);
                    inner.call(Request::from_parts(parts, body)).await
                }
                Err(status) => {
                    let mut r: Response<RB> = status.into_http();
                    r.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/grpc"),
                    );
                    Ok(r)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_method_needs_the_base_its_service_and_its_own() {
        let s = GrpcScopes::new()
            .base(["mcp"])
            .service("notes.v1.Notes", ["notes:read"])
            .method("notes.v1.Notes", "Add", ["notes:write"]);
        assert_eq!(s.required("/notes.v1.Notes/List"), ["mcp", "notes:read"]);
        assert_eq!(
            s.required("/notes.v1.Notes/Add"),
            ["mcp", "notes:read", "notes:write"]
        );
        assert_eq!(s.required("/other.Svc/Call"), ["mcp"]);
        assert_eq!(s.supported(), ["mcp", "notes:read", "notes:write"]);
    }
}
