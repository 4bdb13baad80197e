//! The [`Verifier`]: decides whether a bearer credential is acceptable to
//! this MCP server, in the mode the server's author chose ([`Mode`]).
//!
//! Access tokens (JWTs) are verified offline from mcp-auth's JWK Set
//! (fetched with `GetJwks`, or from `jwks_uri`), optionally checked against
//! the revocation stream (`WatchRevocations`), or online with
//! `VerifyToken`. API keys (`mcp_sk_...`) always go online: mcp-auth keeps
//! only their hashes. Audience, issuer, expiry (with a small leeway),
//! `nbf`, `typ: at+jwt` and the algorithm are always checked.
//!
//! # Connecting
//! The gRPC channel connects lazily (at the first call, and again after
//! any failure). [`VerifierBuilder::build`] therefore contacts mcp-auth
//! only for what the mode needs up front: the offline modes load the JWK
//! Set (and fail with [`BuildError::Unreachable`] if they cannot), and
//! [`Mode::OfflineWithRevocations`] waits up to one call timeout for the
//! stream's first snapshot (without it, tokens are handled as with a stale
//! stream until it arrives). [`Mode::Online`] builds without contacting
//! mcp-auth at all: a server that starts while mcp-auth is down answers
//! 503 until it is back, rather than not starting.
//!
//! # Caches
//! Only acceptances are cached, never refusals (mcp-auth must see every
//! bad credential to throttle its sender): tokens verified online until
//! `min(token_cache_ttl, exp)`, API keys for `api_key_cache_ttl`, each
//! cache bounded by `cache_capacity`, keyed by the SHA-256 of the
//! credential. A cached verdict is re-checked against its expiry and the
//! held revocations on every hit.
//!
//! # Layout
//! - `channel`: the TLS channel and the MCP server's own credential.
//! - `keys`: the JWK Set, its refreshes and refetches.
//! - `offline`: the offline check of a token's claims.
//! - `online`: `VerifyToken` and the mapping of its answers.
//! - `cache`: the positive verdict caches.
//! - `revocations`: the held revocations and the decisions on them.
//! - `stream`: the `WatchRevocations` task.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mcp_auth_token::MAX_TOKEN_LEN;

use crate::claims::{TokenKind, Verified};
use crate::clock::Clock;
use crate::error::{BuildError, Rejection, VerifyError};

mod cache;
mod channel;
mod keys;
mod offline;
mod online;
mod revocations;
mod stream;

use cache::{CachedVerdict, CredentialHash, VerdictCache};
use channel::Connection;
use keys::{KeySource, KeyStore, Refresh};
use stream::{RevocationState, StopGuard, Stream};

/// The prefix of mcp-auth's API keys.
const API_KEY_PREFIX: &str = "mcp_sk_";

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
        /// How long the verifier may go without hearing from the stream
        /// (whole seconds, 5 s to 1 h). mcp-auth sends a heartbeat when the
        /// stream has been quiet for its `revocation_heartbeat_seconds`
        /// (5 s by default): keep this well above that. A stream silent
        /// this long (in real time) is also dropped and opened again.
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

/// Where the revocation stream stands ([`Verifier::revocation_status`]),
/// for health checks and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RevocationStatus {
    /// The mcp-auth run the held revocations come from; empty before the
    /// first snapshot.
    pub epoch: String,
    /// The position of the last batch taken.
    pub position: u64,
    /// Clock time (Unix seconds) of the last batch, heartbeats included;
    /// `None` before the first.
    pub last_heard: Option<i64>,
    /// How many snapshots were taken (1 after the start; each reconnect
    /// that could not resume adds one).
    pub snapshots: u64,
    /// How many revocations are held.
    pub held: usize,
    /// Whether the stream is staler than the mode's `staleness` now.
    pub stale: bool,
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
    clock: Clock,
    mode: Mode,
    expect: offline::Expect,
    /// The mode's staleness, seconds (0 without a stream).
    staleness: i64,
    conn: Option<Connection>,
    /// The signing keys; `None` in [`Mode::Online`].
    keys: Option<Arc<KeyStore>>,
    tokens: Arc<VerdictCache>,
    api_keys: Arc<VerdictCache>,
    revocations: Option<Arc<RevocationState>>,
    /// Whether mcp-auth's refusal of our own credential was logged (reset
    /// by the next answer).
    warned: AtomicBool,
    /// Stops the stream's task with the last clone.
    _stream: Option<StopGuard>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("resource", &self.inner.resource)
            .field("issuer", &self.inner.issuer)
            .field("mode", &self.inner.mode)
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
            call_timeout: Duration::from_secs(2),
            jwks_refresh_interval: Duration::from_secs(5 * 60),
            jwks_refetch_interval: Duration::from_secs(10),
            token_cache_ttl: Duration::from_secs(10),
            api_key_cache_ttl: Duration::from_secs(10),
            cache_capacity: 10_000,
            max_token_lifetime: Duration::from_secs(24 * 60 * 60),
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

    /// How access tokens are verified.
    pub fn mode(&self) -> &Mode {
        &self.inner.mode
    }

    /// Where the revocation stream stands; `None` in a mode without one.
    pub fn revocation_status(&self) -> Option<RevocationStatus> {
        let state = self.inner.revocations.as_ref()?;
        let (epoch, position, snapshots, held) = state.status();
        Some(RevocationStatus {
            epoch,
            position,
            last_heard: state.last_heard(),
            snapshots,
            held,
            stale: state.is_stale(self.inner.clock.now(), self.inner.staleness),
        })
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
        if credential.is_empty() || credential.len() > MAX_TOKEN_LEN {
            return Err(VerifyError::Rejected(Rejection::Malformed));
        }
        if credential.starts_with(API_KEY_PREFIX) {
            return self.verify_api_key(credential, client_address).await;
        }
        match self.inner.mode {
            Mode::Online => self.verify_online(credential, client_address).await,
            Mode::Offline | Mode::OfflineWithRevocations { .. } => {
                self.verify_offline(credential, client_address).await
            }
        }
    }

    async fn verify_offline(
        &self,
        token: &str,
        client_address: Option<IpAddr>,
    ) -> Result<Verified, VerifyError> {
        let i = &*self.inner;
        let Some(keys) = &i.keys else {
            return Err(VerifyError::Unavailable(
                "no signing keys are loaded".to_owned(),
            ));
        };
        // A token seen in the last few seconds skips the signature check
        // (the cache holds it at most `token_cache_ttl`, never past its
        // `exp`, and drops it when its signing key is revoked); the
        // revocation set is consulted on every request all the same.
        let key = CredentialHash::of(token);
        let now = i.clock.now();
        let verdict = match i.tokens.get(&key, now) {
            Some(hit) => hit,
            None => {
                let generation = i.tokens.generation();
                let claims = keys
                    .verify(token)
                    .await
                    .map_err(|r| VerifyError::Rejected(offline::rejection(r)))?;
                offline::check_claims(&claims, &i.expect, now).map_err(VerifyError::Rejected)?;
                let verdict = CachedVerdict {
                    verified: offline::verified(&claims),
                    issued_at: claims.iat,
                };
                i.tokens
                    .insert(key, verdict.clone(), claims.exp, now, generation);
                verdict
            }
        };
        let Some(state) = &i.revocations else {
            return Ok(verdict.verified);
        };
        if self.held_revocation(&verdict) {
            return Err(VerifyError::Rejected(Rejection::Revoked));
        }
        if !state.is_stale(now, i.staleness) {
            return Ok(verdict.verified);
        }
        match i.mode {
            Mode::OfflineWithRevocations {
                on_stale: OnStale::FailClosed,
                ..
            } => Err(VerifyError::Unavailable(match state.last_heard() {
                Some(t) => format!(
                    "the revocation stream is stale: last heard {} s ago",
                    now.saturating_sub(t)
                ),
                None => "the revocation stream has not delivered its snapshot yet".to_owned(),
            })),
            // Each token is asked about, not taken from the cache (which
            // offline verdicts filled while the stream was fresh).
            _ => self.ask_online(token, key, now, client_address).await,
        }
    }

    /// `VerifyToken` for an access token, through the token cache.
    async fn verify_online(
        &self,
        token: &str,
        client_address: Option<IpAddr>,
    ) -> Result<Verified, VerifyError> {
        let i = &*self.inner;
        let key = CredentialHash::of(token);
        let now = i.clock.now();
        if let Some(hit) = i.tokens.get(&key, now) {
            if hit.verified.expires_at > now {
                if self.held_revocation(&hit) {
                    return Err(VerifyError::Rejected(Rejection::Revoked));
                }
                return Ok(hit.verified);
            }
        }
        self.ask_online(token, key, now, client_address).await
    }

    /// `VerifyToken` for an access token (whose hash is `key`, asked about
    /// at `now`), its verdict then cached.
    async fn ask_online(
        &self,
        token: &str,
        key: CredentialHash,
        now: i64,
        client_address: Option<IpAddr>,
    ) -> Result<Verified, VerifyError> {
        let i = &*self.inner;
        let generation = i.tokens.generation();
        let verdict = self
            .ask(token, client_address, TokenKind::AccessToken)
            .await?;
        if self.held_revocation(&verdict) {
            return Err(VerifyError::Rejected(Rejection::Revoked));
        }
        let expires_at = verdict.verified.expires_at;
        i.tokens
            .insert(key, verdict.clone(), expires_at, now, generation);
        Ok(verdict.verified)
    }

    /// `VerifyToken` for an API key, through the API-key cache.
    async fn verify_api_key(
        &self,
        api_key: &str,
        client_address: Option<IpAddr>,
    ) -> Result<Verified, VerifyError> {
        let i = &*self.inner;
        let key = CredentialHash::of(api_key);
        let now = i.clock.now();
        if let Some(hit) = i.api_keys.get(&key, now) {
            if hit.verified.expires_at == 0 || hit.verified.expires_at > now {
                return Ok(hit.verified);
            }
        }
        let generation = i.api_keys.generation();
        let verdict = self.ask(api_key, client_address, TokenKind::ApiKey).await?;
        let expires_at = verdict.verified.expires_at;
        i.api_keys
            .insert(key, verdict.clone(), expires_at, now, generation);
        Ok(verdict.verified)
    }

    /// Whether the held revocations refuse a verdict (none held: no).
    fn held_revocation(&self, v: &CachedVerdict) -> bool {
        v.verified.kind == TokenKind::AccessToken
            && self.inner.revocations.as_ref().is_some_and(|s| {
                s.is_revoked(
                    &v.verified.session_id,
                    &v.verified.token_id,
                    &v.verified.client_id,
                    v.issued_at,
                )
            })
    }

    /// One `VerifyToken` call and its verdict.
    async fn ask(
        &self,
        credential: &str,
        client_address: Option<IpAddr>,
        presented: TokenKind,
    ) -> Result<CachedVerdict, VerifyError> {
        let i = &*self.inner;
        let Some(conn) = &i.conn else {
            return Err(VerifyError::Unavailable(
                "this credential needs mcp-auth's VerifyToken, and no gRPC address is set (VerifierBuilder::grpc)".to_owned(),
            ));
        };
        match online::verify_token(conn, credential, &i.resource, client_address).await {
            Ok(resp) => {
                i.warned.store(false, Ordering::Relaxed);
                let expected = online::Expected {
                    audience: &i.resource,
                    issuer: &i.issuer,
                    presented,
                };
                online::verdict(resp, &expected, credential)
            }
            Err(status) => {
                let failure = online::failure(&status);
                if failure.own_credential && !i.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        code = ?status.code(),
                        "mcp-auth refused this MCP server's own credential: check its API key or client certificate and scope tokens:verify; answering 503"
                    );
                }
                Err(failure.error)
            }
        }
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
    call_timeout: Duration,
    jwks_refresh_interval: Duration,
    jwks_refetch_interval: Duration,
    token_cache_ttl: Duration,
    api_key_cache_ttl: Duration,
    cache_capacity: usize,
    max_token_lifetime: Duration,
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

/// Whole seconds of `d`, for the clock.
fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Checks that `value` lies in `min..=max`.
fn within(
    setting: &'static str,
    value: Duration,
    min: Duration,
    max: Duration,
) -> Result<(), BuildError> {
    if value < min || value > max {
        return Err(BuildError::Invalid {
            setting,
            message: format!("must be between {min:?} and {max:?}, not {value:?}"),
        });
    }
    Ok(())
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

    /// How long each call to mcp-auth may take, and connecting to it
    /// (default 2 s, 1 ms to 60 s); past it the verdict is
    /// [`VerifyError::Unavailable`].
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// How often the JWK Set is fetched again in the background (default
    /// 5 min, 1 s to 24 h), to learn new keys before their tokens arrive.
    pub fn jwks_refresh_interval(mut self, interval: Duration) -> Self {
        self.jwks_refresh_interval = interval;
        self
    }

    /// The least time between two fetches of the JWK Set for tokens whose
    /// `kid` is unknown (default 10 s, 1 s to 1 h): the first such token
    /// after a key rotation is verified after one fetch; tokens with
    /// made-up `kid`s cannot make the verifier fetch more often.
    pub fn jwks_refetch_interval(mut self, interval: Duration) -> Self {
        self.jwks_refetch_interval = interval;
        self
    }

    /// How long an access token that was found good (by `VerifyToken`, or
    /// by its signature offline) is accepted without checking again,
    /// never past its `exp` (default 10 s, at most 60 s, whole seconds; 0:
    /// not cached). A revocation takes up to this long to be seen in
    /// [`Mode::Online`]; offline, the revocation stream is consulted on
    /// every request regardless, so the cache only saves the signature
    /// check.
    pub fn token_cache_ttl(mut self, ttl: Duration) -> Self {
        self.token_cache_ttl = ttl;
        self
    }

    /// How long an API key that `VerifyToken` found active is accepted
    /// without asking again (default 10 s, at most 60 s, whole seconds; 0:
    /// not cached). With the revocation stream, a revoked key's verdict is
    /// dropped as soon as the stream says so.
    pub fn api_key_cache_ttl(mut self, ttl: Duration) -> Self {
        self.api_key_cache_ttl = ttl;
        self
    }

    /// Most verdicts each cache holds (default 10 000; 0: no caching).
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// Longest lifetime (`exp - iat`) of an access token accepted offline
    /// (default 24 h, mcp-auth's highest `max_token_ttl_seconds`; 1 s to
    /// 24 h): set it to mcp-auth's own maximum to refuse anything it would
    /// not have issued as configured.
    pub fn max_token_lifetime(mut self, lifetime: Duration) -> Self {
        self.max_token_lifetime = lifetime;
        self
    }

    /// Builds the verifier: checks the settings, loads the JWK Set and, in
    /// [`Mode::OfflineWithRevocations`], starts the revocation stream and
    /// waits up to one call timeout for its snapshot. [`Mode::Online`]
    /// contacts nothing here. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// [`BuildError::Invalid`] for a missing or wrong setting;
    /// [`BuildError::Unreachable`] if the keys cannot be loaded.
    pub async fn build(self) -> Result<Verifier, BuildError> {
        let invalid = |setting: &'static str, message: &str| BuildError::Invalid {
            setting,
            message: message.to_owned(),
        };
        let issuer = self
            .issuer
            .clone()
            .ok_or_else(|| invalid("issuer", "required: mcp-auth's issuer URL"))?;
        if self.resource.is_empty() {
            return Err(invalid("resource", "required: this MCP server's URL"));
        }
        within(
            "leeway",
            self.leeway,
            Duration::ZERO,
            Duration::from_secs(60),
        )?;
        within(
            "call_timeout",
            self.call_timeout,
            Duration::from_millis(1),
            Duration::from_secs(60),
        )?;
        within(
            "jwks_refresh_interval",
            self.jwks_refresh_interval,
            Duration::from_secs(1),
            Duration::from_secs(24 * 60 * 60),
        )?;
        within(
            "jwks_refetch_interval",
            self.jwks_refetch_interval,
            Duration::from_secs(1),
            Duration::from_secs(60 * 60),
        )?;
        within(
            "token_cache_ttl",
            self.token_cache_ttl,
            Duration::ZERO,
            Duration::from_secs(60),
        )?;
        within(
            "api_key_cache_ttl",
            self.api_key_cache_ttl,
            Duration::ZERO,
            Duration::from_secs(60),
        )?;
        within(
            "max_token_lifetime",
            self.max_token_lifetime,
            Duration::from_secs(1),
            Duration::from_secs(24 * 60 * 60),
        )?;
        let staleness = match &self.mode {
            Mode::OfflineWithRevocations { staleness, .. } => {
                within(
                    "mode",
                    *staleness,
                    Duration::from_secs(5),
                    Duration::from_secs(60 * 60),
                )?;
                secs(*staleness)
            }
            Mode::Offline | Mode::Online => 0,
        };
        if self.api_key.is_some() && self.client_identity.is_some() {
            return Err(invalid(
                "client_identity",
                "give an API key or a client certificate, not both",
            ));
        }
        let needs_credential = !matches!(self.mode, Mode::Offline);
        let conn = match &self.grpc {
            Some(url) => Some(Connection::lazy(&channel::Target {
                url,
                ca_pem: self.ca_pem.as_deref(),
                identity: self
                    .client_identity
                    .as_ref()
                    .map(|(c, k)| (c.as_slice(), k.0.as_slice())),
                api_key: self.api_key.as_ref().map(|k| k.0.as_str()),
                timeout: self.call_timeout,
            })?),
            None if needs_credential => {
                return Err(invalid(
                    "grpc",
                    "required by this mode: mcp-auth's gRPC address",
                ));
            }
            None => None,
        };
        if needs_credential && self.api_key.is_none() && self.client_identity.is_none() {
            return Err(invalid(
                "api_key",
                "required by this mode: this MCP server's API key (scope tokens:verify) or a client certificate",
            ));
        }
        let source = if matches!(self.mode, Mode::Online) {
            None
        } else if let Some(url) = &self.jwks_uri {
            Some(self.http_source(url)?)
        } else if let Some(conn) = &conn {
            Some(KeySource::Grpc(conn.clone()))
        } else {
            return Err(invalid(
                "grpc",
                "required to fetch the signing keys (or set jwks_uri)",
            ));
        };
        self.finish(issuer, conn, source, staleness).await
    }

    /// A reqwest client for `jwks_uri`, trusting `ca_pem` alone if given.
    fn http_source(&self, url: &str) -> Result<KeySource, BuildError> {
        let invalid =
            |setting: &'static str, message: String| BuildError::Invalid { setting, message };
        if !url.starts_with("https://") {
            return Err(invalid("jwks_uri", "must be an https:// URL".to_owned()));
        }
        let mut client = reqwest::Client::builder()
            .https_only(true)
            .connect_timeout(self.call_timeout)
            .timeout(self.call_timeout);
        if let Some(pem) = &self.ca_pem {
            let cert = reqwest::Certificate::from_pem(pem)
                .map_err(|e| invalid("ca_pem", format!("not a PEM certificate: {e}")))?;
            client = client.tls_certs_only([cert]);
        }
        let client = client
            .build()
            .map_err(|e| invalid("jwks_uri", format!("cannot build the HTTP client: {e}")))?;
        Ok(KeySource::Http {
            client,
            url: url.to_owned(),
            timeout: self.call_timeout,
        })
    }

    /// Loads the keys from `source` (if any), starts the stream (if the
    /// mode has one) and assembles the verifier.
    async fn finish(
        self,
        issuer: String,
        conn: Option<Connection>,
        source: Option<KeySource>,
        staleness: i64,
    ) -> Result<Verifier, BuildError> {
        let keys = match source {
            Some(source) => {
                let refresh = Refresh {
                    every: secs(self.jwks_refresh_interval),
                    unknown_kid_at_most_every: secs(self.jwks_refetch_interval),
                };
                let store = KeyStore::load(source, &issuer, self.clock.clone(), refresh)
                    .await
                    .map_err(|cause| {
                        BuildError::Unreachable(format!("cannot load the signing keys: {cause}"))
                    })?;
                Some(Arc::new(store))
            }
            None => None,
        };
        let tokens = Arc::new(VerdictCache::new(
            self.cache_capacity,
            secs(self.token_cache_ttl),
        ));
        let api_keys = Arc::new(VerdictCache::new(
            self.cache_capacity,
            secs(self.api_key_cache_ttl),
        ));
        let (revocations, guard) = match (&self.mode, &conn) {
            (Mode::OfflineWithRevocations { .. }, Some(conn)) => {
                let state = Arc::new(RevocationState::new());
                let (guard, first) = Stream {
                    conn: conn.clone(),
                    state: Arc::clone(&state),
                    api_keys: Arc::clone(&api_keys),
                    keys: keys.clone(),
                    clock: self.clock.clone(),
                    idle: Duration::from_secs(u64::try_from(staleness).unwrap_or(30)),
                }
                .spawn();
                let _ = tokio::time::timeout(self.call_timeout, first).await;
                (Some(state), Some(guard))
            }
            _ => (None, None),
        };
        let expect = offline::Expect {
            audience: self.resource.clone(),
            issuer: issuer.clone(),
            leeway: secs(self.leeway),
            max_lifetime: secs(self.max_token_lifetime),
        };
        Ok(Verifier {
            inner: Arc::new(Inner {
                resource: self.resource,
                issuer,
                clock: self.clock,
                mode: self.mode,
                expect,
                staleness,
                conn,
                keys,
                tokens,
                api_keys,
                revocations,
                warned: AtomicBool::new(false),
                _stream: guard,
            }),
        })
    }

    /// Builds an offline verifier over a fixed JWK Set document (unit
    /// tests and benches).
    pub(crate) async fn build_with_jwks(self, jwks: String) -> Result<Verifier, BuildError> {
        let issuer = self.issuer.clone().ok_or(BuildError::Invalid {
            setting: "issuer",
            message: "required".to_owned(),
        })?;
        let builder = VerifierBuilder {
            mode: Mode::Offline,
            ..self
        };
        builder
            .finish(issuer, None, Some(KeySource::Static(jwks)), 0)
            .await
    }
}

impl Verifier {
    /// Caches `verified` as `VerifyToken`'s verdict on `credential`
    /// (benches).
    pub(crate) fn seed(&self, credential: &str, verified: Verified, issued_at: i64) {
        let i = &*self.inner;
        let cache = if credential.starts_with(API_KEY_PREFIX) {
            &i.api_keys
        } else {
            &i.tokens
        };
        let expires_at = verified.expires_at;
        cache.insert(
            CredentialHash::of(credential),
            CachedVerdict {
                verified,
                issued_at,
            },
            expires_at,
            i.clock.now(),
            cache.generation(),
        );
    }
}

#[cfg(test)]
mod tests;
