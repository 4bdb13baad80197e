//! The [`Verifier`]: decides whether a bearer credential is acceptable to
//! this MCP server, in the mode the server's author chose ([`Mode`]).
//!
//! Access tokens (JWTs) are verified offline from mcp-auth's JWK Set
//! (fetched with `GetJwks`, or from `jwks_uri`), optionally checked against
//! the revocation stream (`WatchRevocations`), or online with
//! `VerifyToken`. API keys (`mcp_sk_...`) always go online: mcp-auth keeps
//! only their hashes. Audience, issuer, expiry (with a small leeway),
//! `nbf`, `typ: at+jwt` and the algorithm are always checked.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::claims::Verified;
use crate::clock::Clock;
use crate::error::{BuildError, VerifyError};

/// How access tokens are verified. API keys always go online.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// From the JWK Set alone: no call per request, but a revoked session
    /// is accepted until its token expires.
    Offline,
    /// From the JWK Set, refusing what mcp-auth's revocation stream names
    /// (learnt within about a second). If the stream has been down longer
    /// than `staleness`, `on_stale` decides.
    OfflineWithRevocations {
        /// How long the verifier may go without hearing from the stream.
        staleness: Duration,
        /// What to do when the stream is staler than that.
        on_stale: OnStale,
    },
    /// `VerifyToken` for every token not in the short positive cache.
    Online,
}

impl Default for Mode {
    /// Offline with the revocation stream, 30 s of staleness, then online.
    fn default() -> Self {
        Mode::OfflineWithRevocations {
            staleness: Duration::from_secs(30),
            on_stale: OnStale::Online,
        }
    }
}

/// What an offline verifier does while its revocation stream is stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnStale {
    /// Ask `VerifyToken` for each token until the stream is back.
    Online,
    /// Refuse to decide: [`VerifyError::Unavailable`] (503).
    FailClosed,
}

/// Verifies bearer credentials for one MCP server (one resource URL).
/// Cheap to clone; clones share keys, caches and the stream.
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    resource: String,
    issuer: String,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("resource", &self.inner.resource)
            .field("issuer", &self.inner.issuer)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A builder for a verifier of tokens meant for `resource`: this MCP
    /// server's URL, exactly as clients put it in `resource` and mcp-auth
    /// in `aud` (e.g. `https://mcp.example.com/mcp`).
    pub fn builder(resource: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder {
            resource: resource.into(),
            issuer: None,
            grpc: None,
            ca_pem: None,
            api_key: None,
            client_identity: None,
            jwks_uri: None,
            mode: Mode::default(),
            leeway: Duration::from_secs(5),
            clock: Clock::system(),
        }
    }

    /// The resource URL tokens must be meant for.
    pub fn resource(&self) -> &str {
        &self.inner.resource
    }

    /// mcp-auth's issuer URL.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Verifies `credential` (the value after `Bearer `): an access token
    /// or an API key. `client_address` is the address of the MCP server's
    /// caller, if known: a refused API key counts against that address at
    /// mcp-auth, never against this MCP server.
    ///
    /// # Errors
    /// [`VerifyError::Rejected`] with the reason; `RateLimited` when
    /// mcp-auth throttles the caller's address; `Unavailable` when no
    /// verdict can be reached (fail closed).
    pub async fn verify(
        &self,
        credential: &str,
        client_address: Option<IpAddr>,
    ) -> Result<Verified, VerifyError> {
        let _ = (credential, client_address);
        Err(VerifyError::Unavailable("not built yet".to_owned()))
    }
}

/// Settings of a [`Verifier`]; [`VerifierBuilder::build`] connects.
#[derive(Debug)]
#[must_use]
pub struct VerifierBuilder {
    resource: String,
    issuer: Option<String>,
    grpc: Option<String>,
    ca_pem: Option<Vec<u8>>,
    api_key: Option<SecretString>,
    client_identity: Option<(Vec<u8>, SecretBytes)>,
    jwks_uri: Option<String>,
    mode: Mode,
    leeway: Duration,
    clock: Clock,
}

/// A credential of the MCP server's own, hidden from `Debug`.
struct SecretString(String);

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A private key, hidden from `Debug`.
struct SecretBytes(Vec<u8>);

impl std::fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl VerifierBuilder {
    /// mcp-auth's issuer URL (its `issuer` setting; the `iss` of its
    /// tokens). Required.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// mcp-auth's gRPC address, e.g. `https://auth.example.com:50051`.
    /// Required for API keys, online mode, the revocation stream and
    /// `GetJwks`.
    pub fn grpc(mut self, endpoint: impl Into<String>) -> Self {
        self.grpc = Some(endpoint.into());
        self
    }

    /// The CA certificate (PEM) that signed mcp-auth's TLS certificate, if
    /// not a public one.
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// This MCP server's own API key, with scope `tokens:verify`, sent
    /// with each gRPC call.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(SecretString(key.into()));
        self
    }

    /// This MCP server's client certificate and key (PEM), for mutual TLS
    /// instead of an API key.
    pub fn client_identity(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.client_identity = Some((cert_pem.into(), SecretBytes(key_pem.into())));
        self
    }

    /// Fetch the JWK Set over HTTPS from mcp-auth's `jwks_uri` instead of
    /// gRPC `GetJwks`.
    pub fn jwks_uri(mut self, url: impl Into<String>) -> Self {
        self.jwks_uri = Some(url.into());
        self
    }

    /// How access tokens are verified (default:
    /// [`Mode::OfflineWithRevocations`], 30 s, then online).
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 5 s, at most 60 s).
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// The clock (default: the system's); tests pass [`Clock::manual`].
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the verifier: checks the settings, loads the JWK Set and, in
    /// [`Mode::OfflineWithRevocations`], starts the revocation stream.
    ///
    /// # Errors
    /// [`BuildError::Invalid`] for a missing or wrong setting;
    /// [`BuildError::Unreachable`] if the keys cannot be loaded.
    pub async fn build(self) -> Result<Verifier, BuildError> {
        let issuer = self.issuer.ok_or(BuildError::Invalid {
            setting: "issuer",
            message: "required: mcp-auth's issuer URL".to_owned(),
        })?;
        let _ = (
            self.grpc,
            self.ca_pem,
            self.api_key.map(|k| k.0),
            self.client_identity.map(|(c, k)| (c, k.0)),
            self.jwks_uri,
            self.mode,
            self.leeway,
            self.clock,
        );
        Ok(Verifier {
            inner: Arc::new(Inner {
                resource: self.resource,
                issuer,
            }),
        })
    }
}
