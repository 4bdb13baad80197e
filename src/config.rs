//! Server configuration: defaults, an optional TOML file, `MCP_AUTH_*`
//! environment variables and flags, merged into one validated [`Config`].
//!
//! Precedence, lowest first: built-in defaults, the TOML file, then
//! environment variables and flags (clap reads both). Unknown TOML fields
//! are rejected.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;
use crate::store::RateLimit;
use crate::store::SigningAlg;

/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./data";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default listen address of the HTTP listener (OAuth metadata, JWKS, the
/// token endpoint).
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8443";
/// Default listen address of the metrics listener (`GET /metrics`,
/// `/healthz`, `/readyz`): loopback, plain HTTP.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";
/// Default issuer: the `iss` of every token, and the URL the HTTP
/// listener publishes its metadata under (the default HTTP listener's).
pub const DEFAULT_ISSUER: &str = "https://localhost:8443";
/// Default time an HTTP request has, from its arrival to its response,
/// seconds.
pub const DEFAULT_HTTP_REQUEST_TIMEOUT: u64 = 30;
/// Default time a client metadata document fetch may take, seconds.
pub const DEFAULT_CIMD_FETCH_TIMEOUT: u64 = 5;
/// Default access-token lifetime, seconds (15 minutes).
pub const DEFAULT_TOKEN_TTL: u32 = 15 * 60;
/// Default maximum access-token lifetime, seconds (1 hour).
pub const DEFAULT_MAX_TOKEN_TTL: u32 = 60 * 60;
/// Default (and maximum) absolute session lifetime, seconds (24 hours).
pub const DEFAULT_MAX_SESSION_LIFETIME: u32 = 24 * 60 * 60;
/// Default idle timeout of a session (no refresh for this long), seconds.
pub const DEFAULT_SESSION_IDLE_TIMEOUT: u32 = 12 * 60 * 60;
/// Longest grace window for concurrent refreshes of one refresh token.
pub const MAX_REFRESH_REUSE_GRACE: u32 = 10;
/// Default time allowed for in-flight RPCs to finish on shutdown, seconds.
pub const DEFAULT_SHUTDOWN_GRACE: u64 = 10;
/// Default time a new connection has to complete its TLS handshake, seconds.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: u64 = 10;
/// Default time a connection may stay open receiving nothing, seconds.
pub const DEFAULT_CONNECTION_IDLE_TIMEOUT: u64 = 300;
/// Default `revocation_heartbeat_seconds`.
const DEFAULT_REVOCATION_HEARTBEAT: u64 = 5;
/// Default `store_max_staleness_seconds`.
const DEFAULT_STORE_MAX_STALENESS: u64 = 30;
/// Default most connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10_000;

/// Default registrations per peer address per hour at `POST /register`.
pub const DEFAULT_DCR_REGISTRATIONS_PER_HOUR: u32 = 20;
/// Default time a dynamically registered client that never completed a
/// grant is kept, seconds (24 hours).
pub const DEFAULT_DCR_UNUSED_CLIENT_TTL: u32 = 24 * 60 * 60;

/// Who may use Dynamic Client Registration (RFC 7591, `POST /register`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DcrMode {
    /// Anyone (rate-limited per address).
    #[default]
    Open,
    /// Callers presenting the initial access token as a Bearer token.
    Token,
    /// Nobody: `/register` answers 404 and the metadata names no
    /// `registration_endpoint`.
    Off,
}

impl DcrMode {
    /// Parses `open`, `token` or `off`.
    ///
    /// # Errors
    /// A message naming the accepted values.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(DcrMode::Open),
            "token" => Ok(DcrMode::Token),
            "off" => Ok(DcrMode::Off),
            _ => Err("expected open, token or off".to_owned()),
        }
    }
}

/// Where the metrics listener listens: an address, or nowhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum MetricsListen {
    /// No metrics listener.
    Off,
    /// This address.
    Addr(SocketAddr),
}

impl MetricsListen {
    /// Parses an address (`127.0.0.1:9464`), or `off` / `none` for no
    /// listener.
    ///
    /// # Errors
    /// A message naming the accepted values.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "off" | "none" => Ok(MetricsListen::Off),
            _ => s.parse().map(MetricsListen::Addr).map_err(|_| {
                "expected an address and port (e.g. 127.0.0.1:9464), or off".to_owned()
            }),
        }
    }
}

impl TryFrom<String> for MetricsListen {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        MetricsListen::parse(&s)
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML file is not valid (includes unknown fields).
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A value is out of range or inconsistent with another.
    #[error("invalid setting {field}: {message}")]
    Invalid {
        /// The setting's name, as in the TOML file.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// One layer of settings: every field optional. The TOML file deserializes
/// into this; flags and environment variables fill another; [`Settings::over`]
/// stacks them.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Directory for the database, TLS material and `primary.key`.
    /// Default `./data`.
    pub data_dir: Option<PathBuf>,
    /// Where the store lives: `sled`, the embedded database in
    /// `data_dir` (the default), or a `postgres://` URL (`sslmode=require`
    /// for TLS to the database), for several replicas on one database.
    pub store: Option<Secret>,
    /// The key-ring key: a file holding the base64 of 32 random bytes
    /// (`mcp-auth store keygen FILE` makes one), mode 0600, with which the
    /// PostgreSQL store seals the signing keys' private parts; every
    /// replica of one database needs the same file. Required with a
    /// `postgres://` store, refused with `sled`. Default none.
    pub store_key_file: Option<PathBuf>,
    /// Address to listen on. Default `127.0.0.1:50051`.
    pub listen: Option<SocketAddr>,
    /// Address the HTTP listener (OAuth metadata, JWKS, token endpoint)
    /// listens on. Default `127.0.0.1:8443`.
    pub http_listen: Option<SocketAddr>,
    /// Address the metrics listener (`GET /metrics`, `/healthz`,
    /// `/readyz`; plain HTTP) listens on, or `off`. Default
    /// `127.0.0.1:9464`.
    pub metrics_listen: Option<MetricsListen>,
    /// PEM certificate chain for the server. Default: a development CA and
    /// server certificate generated into `<data_dir>/tls/`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`. Required with `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Serve both listeners without TLS (h2c on gRPC, plain HTTP), for
    /// local benchmarking only. Default false.
    pub plaintext: Option<bool>,
    /// The issuer: the public `https` URL of this authorization server,
    /// e.g. `https://auth.example.com` behind a reverse proxy; the `iss`
    /// of every token. Default `https://localhost:8443`.
    pub issuer: Option<String>,
    /// Signing algorithm for new keys: `EdDSA` (Ed25519) or `ES256`.
    /// Default `EdDSA`.
    pub signing_alg: Option<SigningAlg>,
    /// Token lifetime when a request asks for 0, seconds. Default 900.
    pub default_token_ttl_seconds: Option<u32>,
    /// Longest token lifetime a request may ask for, seconds. Default 3600.
    pub max_token_ttl_seconds: Option<u32>,
    /// Time allowed for in-flight RPCs on shutdown, seconds. Default 10.
    pub shutdown_grace_seconds: Option<u64>,
    /// PEM CA certificate(s) that client certificates (mutual TLS) must
    /// chain to. Default: the generated development CA
    /// (`<data_dir>/tls/ca.pem`) when the server certificate is generated;
    /// no mutual TLS when `tls_cert` is set without `client_ca`.
    pub client_ca: Option<PathBuf>,
    /// SPIFFE trust domain of client certificate identities
    /// (`spiffe://<trust_domain>/<name>`). Default `mcp-auth.local`.
    pub trust_domain: Option<String>,
    /// Longest absolute session lifetime, and the default when a request
    /// asks for 0, seconds. Default 86400 (24 hours).
    pub max_session_lifetime_seconds: Option<u32>,
    /// A session not refreshed for this long can no longer be refreshed,
    /// seconds. Default 43200 (12 hours).
    pub session_idle_timeout_seconds: Option<u32>,
    /// Window in which a spent refresh token may be presented again without
    /// being treated as reuse (clients that race), seconds. Default 0, at
    /// most 10.
    pub refresh_reuse_grace_seconds: Option<u32>,
    /// The same window at the token endpoint (`grant_type=refresh_token`),
    /// where MCP clients refresh from several processes at once: a repeat
    /// within it gets the first answer again. Default 5, 0 off, at most
    /// 60.
    pub oauth_refresh_grace_seconds: Option<u32>,
    /// Make a new signing key active after this many days; 0 never.
    /// Default 30.
    pub signing_key_rotation_days: Option<u32>,
    /// A revocation stream (`WatchRevocations`) that has carried nothing
    /// for this long carries a heartbeat, an empty batch, so a verifier can
    /// tell a quiet stream from a dead one (and its connection is not
    /// closed as idle), seconds. Default 5 (less when
    /// `connection_idle_timeout_seconds` is 5 or less), 1 to 3600, and less
    /// than `connection_idle_timeout_seconds`.
    pub revocation_heartbeat_seconds: Option<u64>,
    /// With a store several replicas share (PostgreSQL): how long a
    /// replica that cannot read the database's change feed keeps verifying
    /// from memory; then it refuses (STORE_UNAVAILABLE) until it reads the
    /// feed again, seconds. Default 30, 1 to 3600.
    pub store_max_staleness_seconds: Option<u64>,
    /// How often the maintenance task runs (key rotation and retirement,
    /// removal of sessions that can no longer matter), seconds. Default 60.
    pub maintenance_interval_seconds: Option<u64>,
    /// Most sessions one maintenance pass examines; a larger store is swept
    /// over several passes. Default 65536.
    pub maintenance_sessions_per_pass: Option<u32>,
    /// Default sustained request rate per credential, per second; 0 means
    /// unlimited. Default 1000.
    pub rate_limit_requests_per_second: Option<u32>,
    /// Default burst per credential. Default 2000.
    pub rate_limit_burst: Option<u32>,
    /// Failed authentications allowed per peer address per minute before
    /// it is throttled. Default 10.
    pub auth_failures_per_minute: Option<u32>,
    /// Audit records older than this many days are pruned. Default 90.
    pub audit_retention_days: Option<u32>,
    /// Acknowledge writes without waiting for the disk: a crash loses
    /// them. For measuring what durability costs, never for real use.
    pub unsafe_no_fsync: Option<bool>,
    /// Time a new connection has to complete its TLS handshake, seconds;
    /// then it is closed. Default 10, 1 to 300.
    pub tls_handshake_timeout_seconds: Option<u64>,
    /// A connection that receives and sends nothing for this long is
    /// closed (clients reconnect on their next call), seconds. Default 300,
    /// 1 to 86400, and more than `revocation_heartbeat_seconds`.
    pub connection_idle_timeout_seconds: Option<u64>,
    /// Most connections served at once; further ones wait in the listen
    /// backlog until one closes; each listener has its own allowance.
    /// Default 10000, 1 to 1000000.
    pub max_connections: Option<u32>,
    /// Time an HTTP request has from its arrival to its response (reading
    /// its body included), seconds; then it is answered 408. Default 30, 1
    /// to 300.
    pub http_request_timeout_seconds: Option<u64>,
    /// Dynamic Client Registration: `open`, `token` (needs
    /// `dcr_initial_access_token`) or `off`. Default `open`.
    pub dcr: Option<DcrMode>,
    /// The initial access token `POST /register` requires as
    /// `Authorization: Bearer` when `dcr = "token"`; at least 32
    /// characters. Never logged.
    pub dcr_initial_access_token: Option<Secret>,
    /// Scopes a dynamically registered client gets when it asks for none.
    /// Default none (such a registration is refused).
    pub dcr_default_scopes: Option<Vec<String>>,
    /// Resources (RFC 8707) a dynamically registered client may get
    /// tokens for: a registration that names none gets them all, one that
    /// names some must name them from this list. Default none (a
    /// registration's own `resource`, unchecked; without one, none).
    pub dcr_allowed_resources: Option<Vec<String>>,
    /// Registrations allowed per peer address per hour. Default 20.
    pub dcr_registrations_per_hour: Option<u32>,
    /// A dynamically registered client that never completed a grant is
    /// deleted by maintenance this long after its registration, seconds.
    /// Default 86400.
    pub dcr_unused_client_ttl_seconds: Option<u32>,
    /// Client ID Metadata Documents: a `client_id` that is an `https` URL
    /// is fetched (guarded against SSRF) and describes the client.
    /// Default on.
    pub cimd: Option<bool>,
    /// Hosts whose client-id URLs are accepted: `example.com` (that host)
    /// or `*.example.com` (its subdomains). Default: any public host.
    pub cimd_allowed_hosts: Option<Vec<String>>,
    /// Resources (RFC 8707) a metadata-document client may get tokens
    /// for. Default none.
    pub cimd_allowed_resources: Option<Vec<String>>,
    /// Time a metadata document fetch may take, seconds. Default 5, 1 to
    /// 60.
    pub cimd_fetch_timeout_seconds: Option<u64>,
    /// For tests only: a CA certificate (PEM file) trusted for metadata
    /// document fetches, which may then also go to loopback addresses.
    pub cimd_testing_ca: Option<PathBuf>,
    /// How long a browser that signed in is remembered (the next
    /// authorization skips the sign-in page), seconds; 0 never. Default
    /// 28800 (8 hours), at most 2592000 (30 days).
    pub login_remember_seconds: Option<u32>,
    /// What each scope lets a client do, in words for the consent page
    /// (`"tools:read" = "See your tools"`). Default none.
    pub scope_descriptions: Option<std::collections::BTreeMap<String, String>>,
    /// Your application's sign-in page: when set, `/authorize` sends a
    /// browser that is not signed in there, as
    /// `<login_url>?login_challenge=...`, instead of showing the built-in
    /// sign-in page; the application signs the user in and answers with
    /// `OAuthService.AcceptLogin` or `RejectLogin`. An `https` URL (`http`
    /// only on a loopback host), no fragment. Default none: the built-in
    /// user accounts.
    pub login_url: Option<String>,
}

impl Settings {
    /// Reads a TOML settings file.
    ///
    /// # Errors
    /// The file cannot be read, is not TOML, or has unknown fields.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// `self` with every field that `top` sets replaced by `top`'s value.
    pub fn over(self, top: Settings) -> Settings {
        Settings {
            data_dir: top.data_dir.or(self.data_dir),
            store: top.store.or(self.store),
            store_key_file: top.store_key_file.or(self.store_key_file),
            listen: top.listen.or(self.listen),
            http_listen: top.http_listen.or(self.http_listen),
            metrics_listen: top.metrics_listen.or(self.metrics_listen),
            tls_cert: top.tls_cert.or(self.tls_cert),
            tls_key: top.tls_key.or(self.tls_key),
            plaintext: top.plaintext.or(self.plaintext),
            issuer: top.issuer.or(self.issuer),
            signing_alg: top.signing_alg.or(self.signing_alg),
            default_token_ttl_seconds: top
                .default_token_ttl_seconds
                .or(self.default_token_ttl_seconds),
            max_token_ttl_seconds: top.max_token_ttl_seconds.or(self.max_token_ttl_seconds),
            shutdown_grace_seconds: top.shutdown_grace_seconds.or(self.shutdown_grace_seconds),
            client_ca: top.client_ca.or(self.client_ca),
            trust_domain: top.trust_domain.or(self.trust_domain),
            max_session_lifetime_seconds: top
                .max_session_lifetime_seconds
                .or(self.max_session_lifetime_seconds),
            session_idle_timeout_seconds: top
                .session_idle_timeout_seconds
                .or(self.session_idle_timeout_seconds),
            refresh_reuse_grace_seconds: top
                .refresh_reuse_grace_seconds
                .or(self.refresh_reuse_grace_seconds),
            oauth_refresh_grace_seconds: top
                .oauth_refresh_grace_seconds
                .or(self.oauth_refresh_grace_seconds),
            signing_key_rotation_days: top
                .signing_key_rotation_days
                .or(self.signing_key_rotation_days),
            revocation_heartbeat_seconds: top
                .revocation_heartbeat_seconds
                .or(self.revocation_heartbeat_seconds),
            store_max_staleness_seconds: top
                .store_max_staleness_seconds
                .or(self.store_max_staleness_seconds),
            maintenance_interval_seconds: top
                .maintenance_interval_seconds
                .or(self.maintenance_interval_seconds),
            maintenance_sessions_per_pass: top
                .maintenance_sessions_per_pass
                .or(self.maintenance_sessions_per_pass),
            rate_limit_requests_per_second: top
                .rate_limit_requests_per_second
                .or(self.rate_limit_requests_per_second),
            rate_limit_burst: top.rate_limit_burst.or(self.rate_limit_burst),
            auth_failures_per_minute: top
                .auth_failures_per_minute
                .or(self.auth_failures_per_minute),
            audit_retention_days: top.audit_retention_days.or(self.audit_retention_days),
            unsafe_no_fsync: top.unsafe_no_fsync.or(self.unsafe_no_fsync),
            tls_handshake_timeout_seconds: top
                .tls_handshake_timeout_seconds
                .or(self.tls_handshake_timeout_seconds),
            connection_idle_timeout_seconds: top
                .connection_idle_timeout_seconds
                .or(self.connection_idle_timeout_seconds),
            max_connections: top.max_connections.or(self.max_connections),
            http_request_timeout_seconds: top
                .http_request_timeout_seconds
                .or(self.http_request_timeout_seconds),
            dcr: top.dcr.or(self.dcr),
            dcr_initial_access_token: top
                .dcr_initial_access_token
                .or(self.dcr_initial_access_token),
            dcr_default_scopes: top.dcr_default_scopes.or(self.dcr_default_scopes),
            dcr_allowed_resources: top.dcr_allowed_resources.or(self.dcr_allowed_resources),
            dcr_registrations_per_hour: top
                .dcr_registrations_per_hour
                .or(self.dcr_registrations_per_hour),
            dcr_unused_client_ttl_seconds: top
                .dcr_unused_client_ttl_seconds
                .or(self.dcr_unused_client_ttl_seconds),
            cimd: top.cimd.or(self.cimd),
            cimd_allowed_hosts: top.cimd_allowed_hosts.or(self.cimd_allowed_hosts),
            cimd_allowed_resources: top.cimd_allowed_resources.or(self.cimd_allowed_resources),
            cimd_fetch_timeout_seconds: top
                .cimd_fetch_timeout_seconds
                .or(self.cimd_fetch_timeout_seconds),
            cimd_testing_ca: top.cimd_testing_ca.or(self.cimd_testing_ca),
            login_remember_seconds: top.login_remember_seconds.or(self.login_remember_seconds),
            scope_descriptions: top.scope_descriptions.or(self.scope_descriptions),
            login_url: top.login_url.or(self.login_url),
        }
    }
}

/// How the server secures its port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// A development CA and server certificate in `<data_dir>/tls/`,
    /// generated on first start and reused afterwards.
    Generated,
    /// Certificate chain and key from PEM files.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// No TLS (h2c on gRPC, plain HTTP). For local benchmarking only.
    Plaintext,
}

/// The validated server configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Directory for the database, TLS material and `primary.key`.
    pub data_dir: PathBuf,
    /// Where the store lives (the data directory's embedded database by
    /// default).
    pub store: crate::store::Location,
    /// The key-ring key's file: set exactly when `store` is PostgreSQL.
    pub store_key_file: Option<PathBuf>,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Address the HTTP listener listens on.
    pub http_listen: SocketAddr,
    /// Address the metrics listener listens on; `None`: no metrics
    /// listener.
    pub metrics_listen: Option<SocketAddr>,
    /// How the ports are secured (both alike).
    pub tls: TlsMode,
    /// The issuer URL: the `iss` claim of issued tokens.
    pub issuer: String,
    /// Algorithm of newly created signing keys.
    pub signing_alg: SigningAlg,
    /// Token lifetime when a request asks for 0, seconds.
    pub default_token_ttl: u32,
    /// Longest token lifetime a request may ask for, seconds.
    pub max_token_ttl: u32,
    /// Time allowed for in-flight RPCs on shutdown.
    pub shutdown_grace: Duration,
    /// Where client CA certificates come from; `None` means no mutual TLS.
    pub client_ca: Option<ClientCa>,
    /// SPIFFE trust domain of client certificate identities.
    pub trust_domain: String,
    /// Longest (and default) absolute session lifetime, seconds.
    pub max_session_lifetime: u32,
    /// Idle timeout of a session, seconds.
    pub session_idle_timeout: u32,
    /// Grace window for re-presenting a spent refresh token, seconds.
    pub refresh_reuse_grace: u32,
    /// Seconds a repeated OAuth refresh gets the first answer again.
    pub oauth_refresh_grace: u32,
    /// Days between automatic signing key rotations; 0 never.
    pub signing_key_rotation_days: u32,
    /// Longest quiet on a revocation stream before a heartbeat.
    pub revocation_heartbeat: Duration,
    /// Longest a replica of a shared store verifies from memory without
    /// reading the database's changes.
    pub store_max_staleness: Duration,
    /// Period of the maintenance task.
    pub maintenance_interval: Duration,
    /// Most sessions one maintenance pass examines.
    pub maintenance_sessions_per_pass: u32,
    /// Default per-credential rate; `None` means unlimited.
    pub default_rate_limit: Option<RateLimit>,
    /// Failed authentications allowed per peer address per minute.
    pub auth_failures_per_minute: u32,
    /// Days audit records are kept.
    pub audit_retention_days: u32,
    /// Writes are acknowledged before they reach the disk (benchmarking
    /// only).
    pub unsafe_no_fsync: bool,
    /// Time a new connection has to complete its TLS handshake.
    pub tls_handshake_timeout: Duration,
    /// A connection that receives and sends nothing for this long is
    /// closed.
    pub connection_idle_timeout: Duration,
    /// Most connections served at once, on each listener.
    pub max_connections: u32,
    /// Time an HTTP request has from its arrival to its response.
    pub http_request_timeout: Duration,
    /// Who may register clients at `POST /register`.
    pub dcr: DcrMode,
    /// The initial access token `dcr = token` requires.
    pub dcr_initial_access_token: Option<Secret>,
    /// Scopes of a dynamic registration that asks for none.
    pub dcr_default_scopes: Vec<String>,
    /// Resources a dynamic registration may name, and gets when it names
    /// none; empty: its own, unchecked.
    pub dcr_allowed_resources: Vec<String>,
    /// Registrations per peer address per hour.
    pub dcr_registrations_per_hour: u32,
    /// Seconds an unused dynamic client is kept.
    pub dcr_unused_client_ttl: u32,
    /// Whether `https` client ids are fetched as metadata documents.
    pub cimd: bool,
    /// Hosts (or `*.` suffixes) whose client-id URLs are accepted; empty:
    /// any.
    pub cimd_allowed_hosts: Vec<String>,
    /// Resources a metadata-document client may get tokens for.
    pub cimd_allowed_resources: Vec<String>,
    /// Time a metadata document fetch may take.
    pub cimd_fetch_timeout: Duration,
    /// The testing CA (PEM) and its file, when set: loopback fetches are
    /// allowed.
    pub cimd_testing_ca: Option<(PathBuf, Vec<u8>)>,
    /// Seconds a signed-in browser is remembered; 0 never.
    pub login_remember_seconds: u32,
    /// Words for scopes on the consent page.
    pub scope_descriptions: std::collections::BTreeMap<String, String>,
    /// The application's sign-in page that signs users in instead of the
    /// built-in accounts; `None`: the built-in sign-in page.
    pub login_url: Option<String>,
}

/// The CA that client certificates must chain to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientCa {
    /// The generated development CA in `<data_dir>/tls/`.
    Generated,
    /// A PEM file.
    File(PathBuf),
}

impl Config {
    /// Validates merged settings, filling defaults.
    ///
    /// # Errors
    /// A value is out of range, or `tls_cert` and `tls_key` are not given
    /// together.
    pub fn from_settings(s: Settings) -> Result<Self, ConfigError> {
        let listen = match s.listen {
            Some(addr) => addr,
            None => DEFAULT_LISTEN.parse().map_err(|_| ConfigError::Invalid {
                field: "listen",
                message: "bad built-in default".to_owned(),
            })?,
        };
        let http_listen = match s.http_listen {
            Some(addr) => addr,
            None => DEFAULT_HTTP_LISTEN
                .parse()
                .map_err(|_| ConfigError::Invalid {
                    field: "http_listen",
                    message: "bad built-in default".to_owned(),
                })?,
        };
        if http_listen == listen && listen.port() != 0 {
            return Err(ConfigError::Invalid {
                field: "http_listen",
                message: format!("must differ from listen ({listen})"),
            });
        }
        let metrics_listen = match s.metrics_listen {
            Some(MetricsListen::Off) => None,
            Some(MetricsListen::Addr(addr)) => Some(addr),
            None => Some(
                DEFAULT_METRICS_LISTEN
                    .parse()
                    .map_err(|_| ConfigError::Invalid {
                        field: "metrics_listen",
                        message: "bad built-in default".to_owned(),
                    })?,
            ),
        };
        if let Some(addr) = metrics_listen {
            if addr.port() != 0 && (addr == listen || addr == http_listen) {
                return Err(ConfigError::Invalid {
                    field: "metrics_listen",
                    message: format!("must differ from listen and http_listen ({addr})"),
                });
            }
        }
        let tls = match (s.plaintext.unwrap_or(false), s.tls_cert, s.tls_key) {
            (true, None, None) => TlsMode::Plaintext,
            (true, _, _) => {
                return Err(ConfigError::Invalid {
                    field: "plaintext",
                    message: "cannot be combined with tls_cert/tls_key".to_owned(),
                });
            }
            (false, Some(cert), Some(key)) => TlsMode::Files { cert, key },
            (false, None, None) => TlsMode::Generated,
            (false, _, _) => {
                return Err(ConfigError::Invalid {
                    field: "tls_cert",
                    message: "tls_cert and tls_key must be given together".to_owned(),
                });
            }
        };
        let client_ca = match (s.client_ca, &tls) {
            (Some(_), TlsMode::Plaintext) => {
                return Err(ConfigError::Invalid {
                    field: "client_ca",
                    message: "mutual TLS needs TLS; it cannot be combined with plaintext"
                        .to_owned(),
                });
            }
            (Some(path), _) => Some(ClientCa::File(path)),
            (None, TlsMode::Generated) => Some(ClientCa::Generated),
            (None, _) => None,
        };
        let trust_domain = s
            .trust_domain
            .unwrap_or_else(|| crate::ca::DEFAULT_TRUST_DOMAIN.to_owned());
        crate::ca::validate_trust_domain(&trust_domain).map_err(|message| {
            ConfigError::Invalid {
                field: "trust_domain",
                message,
            }
        })?;
        let issuer = s.issuer.unwrap_or_else(|| DEFAULT_ISSUER.to_owned());
        check_issuer(&issuer).map_err(|message| ConfigError::Invalid {
            field: "issuer",
            message,
        })?;
        let default_token_ttl = s.default_token_ttl_seconds.unwrap_or(DEFAULT_TOKEN_TTL);
        let max_token_ttl = s.max_token_ttl_seconds.unwrap_or(DEFAULT_MAX_TOKEN_TTL);
        if max_token_ttl == 0 || max_token_ttl > 24 * 60 * 60 {
            return Err(ConfigError::Invalid {
                field: "max_token_ttl_seconds",
                message: "must be between 1 and 86400".to_owned(),
            });
        }
        if default_token_ttl == 0 || default_token_ttl > max_token_ttl {
            return Err(ConfigError::Invalid {
                field: "default_token_ttl_seconds",
                message: format!("must be between 1 and max_token_ttl_seconds ({max_token_ttl})"),
            });
        }
        let max_session_lifetime = s
            .max_session_lifetime_seconds
            .unwrap_or(DEFAULT_MAX_SESSION_LIFETIME);
        if max_session_lifetime < max_token_ttl || max_session_lifetime > 366 * 24 * 60 * 60 {
            return Err(ConfigError::Invalid {
                field: "max_session_lifetime_seconds",
                message: format!(
                    "must be between max_token_ttl_seconds ({max_token_ttl}) and 31622400 (366 days)"
                ),
            });
        }
        let session_idle_timeout = s
            .session_idle_timeout_seconds
            .unwrap_or(DEFAULT_SESSION_IDLE_TIMEOUT);
        if session_idle_timeout == 0 {
            return Err(ConfigError::Invalid {
                field: "session_idle_timeout_seconds",
                message: "must be at least 1".to_owned(),
            });
        }
        let refresh_reuse_grace = s.refresh_reuse_grace_seconds.unwrap_or(0);
        if refresh_reuse_grace > MAX_REFRESH_REUSE_GRACE {
            return Err(ConfigError::Invalid {
                field: "refresh_reuse_grace_seconds",
                message: format!("must be at most {MAX_REFRESH_REUSE_GRACE}"),
            });
        }
        let maintenance_interval = s.maintenance_interval_seconds.unwrap_or(60);
        if maintenance_interval == 0 {
            return Err(ConfigError::Invalid {
                field: "maintenance_interval_seconds",
                message: "must be at least 1".to_owned(),
            });
        }
        let default_rate_limit = match s.rate_limit_requests_per_second.unwrap_or(1000) {
            0 => None,
            rps => Some(
                RateLimit {
                    requests_per_second: rps,
                    burst: s.rate_limit_burst.unwrap_or(rps.saturating_mul(2)),
                }
                .checked()
                .map_err(|message| ConfigError::Invalid {
                    field: "rate_limit_requests_per_second",
                    message,
                })?,
            ),
        };
        let auth_failures_per_minute = s.auth_failures_per_minute.unwrap_or(10);
        if auth_failures_per_minute == 0 {
            return Err(ConfigError::Invalid {
                field: "auth_failures_per_minute",
                message: "must be at least 1".to_owned(),
            });
        }
        let dcr = s.dcr.unwrap_or_default();
        let dcr_initial_access_token = s.dcr_initial_access_token.clone();
        match (&dcr_initial_access_token, dcr) {
            (None, DcrMode::Token) => {
                return Err(ConfigError::Invalid {
                    field: "dcr_initial_access_token",
                    message: "dcr = token needs an initial access token".to_owned(),
                });
            }
            (Some(t), _)
                if t.expose().len() < 32 || !t.expose().bytes().all(|b| b.is_ascii_graphic()) =>
            {
                return Err(ConfigError::Invalid {
                    field: "dcr_initial_access_token",
                    message: "must be at least 32 visible ASCII characters".to_owned(),
                });
            }
            _ => {}
        }
        let dcr_registrations_per_hour = in_range(
            "dcr_registrations_per_hour",
            u64::from(
                s.dcr_registrations_per_hour
                    .unwrap_or(DEFAULT_DCR_REGISTRATIONS_PER_HOUR),
            ),
            1,
            1_000_000,
        )?;
        let dcr_unused_client_ttl = in_range(
            "dcr_unused_client_ttl_seconds",
            u64::from(
                s.dcr_unused_client_ttl_seconds
                    .unwrap_or(DEFAULT_DCR_UNUSED_CLIENT_TTL),
            ),
            60,
            366 * 24 * 60 * 60,
        )?;
        let cimd_fetch_timeout = in_range(
            "cimd_fetch_timeout_seconds",
            s.cimd_fetch_timeout_seconds
                .unwrap_or(DEFAULT_CIMD_FETCH_TIMEOUT),
            1,
            60,
        )?;
        let cimd_allowed_hosts = s
            .cimd_allowed_hosts
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|h| check_host_pattern(&h).map(|()| h.to_ascii_lowercase()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| ConfigError::Invalid {
                field: "cimd_allowed_hosts",
                message,
            })?;
        let cimd_allowed_resources =
            https_resources("cimd_allowed_resources", &s.cimd_allowed_resources)?;
        let dcr_allowed_resources =
            https_resources("dcr_allowed_resources", &s.dcr_allowed_resources)?;
        let cimd_testing_ca = match &s.cimd_testing_ca {
            None => None,
            Some(path) => {
                let pem = std::fs::read(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                Some((path.clone(), pem))
            }
        };
        let tls_handshake_timeout = in_range(
            "tls_handshake_timeout_seconds",
            s.tls_handshake_timeout_seconds
                .unwrap_or(DEFAULT_TLS_HANDSHAKE_TIMEOUT),
            1,
            300,
        )?;
        let connection_idle_timeout = in_range(
            "connection_idle_timeout_seconds",
            s.connection_idle_timeout_seconds
                .unwrap_or(DEFAULT_CONNECTION_IDLE_TIMEOUT),
            1,
            86_400,
        )?;
        // A stream's heartbeats are what keeps its connection from being
        // closed as idle: the default stays below a short idle timeout, and
        // a heartbeat set explicitly must.
        let revocation_heartbeat = match s.revocation_heartbeat_seconds {
            None => {
                DEFAULT_REVOCATION_HEARTBEAT.min(connection_idle_timeout.saturating_sub(1).max(1))
            }
            Some(set) => {
                let set = in_range("revocation_heartbeat_seconds", set, 1, 3600)?;
                if set >= connection_idle_timeout {
                    return Err(ConfigError::Invalid {
                        field: "revocation_heartbeat_seconds",
                        message: format!(
                            "must be less than connection_idle_timeout_seconds ({connection_idle_timeout}), or revocation streams are closed as idle"
                        ),
                    });
                }
                set
            }
        };
        let store_max_staleness = in_range(
            "store_max_staleness_seconds",
            s.store_max_staleness_seconds
                .unwrap_or(DEFAULT_STORE_MAX_STALENESS),
            1,
            3600,
        )?;
        let max_connections = in_range(
            "max_connections",
            u64::from(s.max_connections.unwrap_or(DEFAULT_MAX_CONNECTIONS)),
            1,
            1_000_000,
        )?;
        let store = match &s.store {
            None => crate::store::Location::default(),
            Some(text) => crate::store::Location::parse(text.expose()).map_err(|message| {
                ConfigError::Invalid {
                    field: "store",
                    message,
                }
            })?,
        };
        if store != crate::store::Location::DataDir && s.unsafe_no_fsync == Some(true) {
            return Err(ConfigError::Invalid {
                field: "unsafe_no_fsync",
                message: "only the data directory's store has it; a database's durability is its synchronous_commit".to_owned(),
            });
        }
        // Refused with sled rather than ignored: whoever sets it expects
        // the signing keys sealed, and the embedded store keeps them in
        // the data directory (mode 0700) unsealed.
        match (&store, &s.store_key_file) {
            (crate::store::Location::Postgres(_), None) => {
                return Err(ConfigError::Invalid {
                    field: "store_key_file",
                    message: crate::store::ring_key::MISSING.to_owned(),
                });
            }
            (crate::store::Location::DataDir, Some(_)) => {
                return Err(ConfigError::Invalid {
                    field: "store_key_file",
                    message: "only the PostgreSQL store uses it; the embedded store (sled) keeps the signing keys in the data directory, unsealed: remove it, or set store to a postgres:// URL".to_owned(),
                });
            }
            _ => {}
        }
        let login_url = match s.login_url {
            None => None,
            Some(url) => Some(check_login_url(&url).map(|()| url).map_err(|message| {
                ConfigError::Invalid {
                    field: "login_url",
                    message,
                }
            })?),
        };
        let http_request_timeout = in_range(
            "http_request_timeout_seconds",
            s.http_request_timeout_seconds
                .unwrap_or(DEFAULT_HTTP_REQUEST_TIMEOUT),
            1,
            300,
        )?;
        Ok(Config {
            data_dir: s
                .data_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            store,
            store_key_file: s.store_key_file,
            listen,
            http_listen,
            metrics_listen,
            tls,
            issuer,
            signing_alg: s.signing_alg.unwrap_or_default(),
            default_token_ttl,
            max_token_ttl,
            shutdown_grace: Duration::from_secs(
                s.shutdown_grace_seconds.unwrap_or(DEFAULT_SHUTDOWN_GRACE),
            ),
            client_ca,
            trust_domain,
            max_session_lifetime,
            session_idle_timeout,
            refresh_reuse_grace,
            oauth_refresh_grace: u32::try_from(in_range(
                "oauth_refresh_grace_seconds",
                u64::from(s.oauth_refresh_grace_seconds.unwrap_or(5)),
                0,
                60,
            )?)
            .unwrap_or(5),
            signing_key_rotation_days: s.signing_key_rotation_days.unwrap_or(30),
            revocation_heartbeat: Duration::from_secs(revocation_heartbeat),
            store_max_staleness: Duration::from_secs(store_max_staleness),
            maintenance_interval: Duration::from_secs(maintenance_interval),
            maintenance_sessions_per_pass: match s.maintenance_sessions_per_pass.unwrap_or(65_536) {
                0 => {
                    return Err(ConfigError::Invalid {
                        field: "maintenance_sessions_per_pass",
                        message: "must be at least 1".to_owned(),
                    });
                }
                n => n,
            },
            default_rate_limit,
            auth_failures_per_minute,
            audit_retention_days: match s.audit_retention_days.unwrap_or(90) {
                0 => {
                    return Err(ConfigError::Invalid {
                        field: "audit_retention_days",
                        message: "must be at least 1".to_owned(),
                    });
                }
                d => d,
            },
            unsafe_no_fsync: s.unsafe_no_fsync.unwrap_or(false),
            tls_handshake_timeout: Duration::from_secs(tls_handshake_timeout),
            connection_idle_timeout: Duration::from_secs(connection_idle_timeout),
            max_connections: u32::try_from(max_connections).unwrap_or(DEFAULT_MAX_CONNECTIONS),
            http_request_timeout: Duration::from_secs(http_request_timeout),
            dcr,
            dcr_initial_access_token,
            dcr_default_scopes: s.dcr_default_scopes.clone().unwrap_or_default(),
            dcr_allowed_resources,
            dcr_registrations_per_hour: u32::try_from(dcr_registrations_per_hour)
                .unwrap_or(DEFAULT_DCR_REGISTRATIONS_PER_HOUR),
            dcr_unused_client_ttl: u32::try_from(dcr_unused_client_ttl)
                .unwrap_or(DEFAULT_DCR_UNUSED_CLIENT_TTL),
            cimd: s.cimd.unwrap_or(true),
            cimd_allowed_hosts,
            cimd_allowed_resources,
            cimd_fetch_timeout: Duration::from_secs(cimd_fetch_timeout),
            cimd_testing_ca,
            login_remember_seconds: u32::try_from(in_range(
                "login_remember_seconds",
                u64::from(s.login_remember_seconds.unwrap_or(8 * 60 * 60)),
                0,
                30 * 24 * 60 * 60,
            )?)
            .unwrap_or(0),
            scope_descriptions: check_scope_descriptions(
                s.scope_descriptions.clone().unwrap_or_default(),
            )?,
            login_url,
        })
    }

    /// Defaults with `data_dir` set, for tests: generated TLS, listen
    /// address unused (tests pass their own listener).
    ///
    /// # Errors
    /// Never in practice: the defaults are valid.
    pub fn for_test(data_dir: impl Into<PathBuf>) -> Result<Self, ConfigError> {
        Self::from_settings(Settings {
            data_dir: Some(data_dir.into()),
            shutdown_grace_seconds: Some(5),
            // Tests run maintenance passes themselves, at their own clock.
            maintenance_interval_seconds: Some(24 * 60 * 60),
            ..Settings::default()
        })
    }
}

/// Scope descriptions: well-formed scope names (1 to 128 of
/// `A-Z a-z 0-9 : . _ / -`), each description 1 to 200 characters
/// without control characters.
fn check_scope_descriptions(
    map: std::collections::BTreeMap<String, String>,
) -> Result<std::collections::BTreeMap<String, String>, ConfigError> {
    for (scope, words) in &map {
        let scope_ok = (1..=128).contains(&scope.len())
            && scope
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":._/-".contains(&b));
        let words_ok =
            (1..=200).contains(&words.chars().count()) && !words.chars().any(char::is_control);
        if !scope_ok || !words_ok {
            return Err(ConfigError::Invalid {
                field: "scope_descriptions",
                message: format!(
                    "{scope:?}: a scope name, and 1 to 200 characters without control characters"
                ),
            });
        }
    }
    Ok(map)
}

/// A host of `cimd_allowed_hosts`: a DNS name in lowercase letters,
/// digits, `-` and `.`, optionally after `*.`.
fn check_host_pattern(pattern: &str) -> Result<(), String> {
    let name = pattern.strip_prefix("*.").unwrap_or(pattern);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{pattern:?} is not a host name or *.suffix (e.g. example.com, *.example.com)"
        ))
    }
}

/// A list of resources that clients the operator did not create may get
/// tokens for: each an `https` URL without a fragment.
fn https_resources(
    field: &'static str,
    value: &Option<Vec<String>>,
) -> Result<Vec<String>, ConfigError> {
    let resources = value.clone().unwrap_or_default();
    if let Some(bad) = resources
        .iter()
        .find(|r| !r.starts_with("https://") || r.len() > 2048 || r.contains('#'))
    {
        return Err(ConfigError::Invalid {
            field,
            message: format!("{bad:?} is not an https URL without a fragment"),
        });
    }
    Ok(resources)
}

/// `value` if it is within `min..=max`.
fn in_range(field: &'static str, value: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::Invalid {
            field,
            message: format!("must be between {min} and {max}"),
        })
    }
}

/// An issuer is an `https` URL with a host and no query or fragment
/// (RFC 8414 section 2); `http` only for a loopback host, for local
/// development. At most 256 bytes; a trailing `/` is not allowed, so the
/// `iss` of a token compares equal to it byte for byte. Its path, if any,
/// is made of segments of letters, digits and `-._~` (not `.` or `..`):
/// the HTTP listener serves its endpoints under that path, so it must be
/// a plain one that needs no escaping.
fn check_issuer(issuer: &str) -> Result<(), String> {
    let rest = if let Some(rest) = issuer.strip_prefix("https://") {
        rest
    } else if let Some(rest) = issuer.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        let loopback = host == "localhost" || host == "127.0.0.1" || rest.starts_with("[::1]");
        if !loopback {
            return Err("must be an https URL (http only for localhost)".to_owned());
        }
        rest
    } else {
        return Err("must be an https URL, such as https://auth.example.com".to_owned());
    };
    if issuer.len() > 256 {
        return Err("must be at most 256 bytes".to_owned());
    }
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err("has no host".to_owned());
    }
    if rest.contains(['?', '#'])
        || rest.ends_with('/')
        || issuer.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err("must have no query, fragment, trailing slash or spaces".to_owned());
    }
    let path = &rest[host.len()..];
    let plain_segment = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    };
    if !path.is_empty() && !path[1..].split('/').all(plain_segment) {
        return Err(
            "its path must be segments of letters, digits and -._~ (such as /tenant-1)".to_owned(),
        );
    }
    Ok(())
}

/// A login URL is an absolute `https` URL (`http` only on a loopback
/// host, for local development) with a host, no user information and no
/// fragment, at most 2048 bytes; it may have a query (the challenge is
/// added to it) but no `login_challenge` of its own.
fn check_login_url(login_url: &str) -> Result<(), String> {
    if login_url.len() > 2048 {
        return Err("must be at most 2048 bytes".to_owned());
    }
    let url =
        url::Url::parse(login_url).map_err(|e| format!("must be an absolute https URL ({e})"))?;
    let loopback = matches!(
        url.host(),
        Some(url::Host::Domain("localhost"))
            | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
            | Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
    );
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err("must be an https URL (http only for localhost)".to_owned()),
    }
    if url.host().is_none() {
        return Err("has no host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must have no user information".to_owned());
    }
    if url.fragment().is_some() {
        return Err("must have no fragment".to_owned());
    }
    if url.query_pairs().any(|(k, _)| k == "login_challenge") {
        return Err("must not carry a login_challenge of its own".to_owned());
    }
    Ok(())
}

/// The path part of a valid issuer: empty, or `/` and its segments (the
/// HTTP listener serves its endpoints under it).
pub fn issuer_path(issuer: &str) -> &str {
    let rest = issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"))
        .unwrap_or(issuer);
    rest.find('/').map_or("", |at| &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_documented_values() {
        let c = Config::from_settings(Settings::default()).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert_eq!(c.listen.to_string(), "127.0.0.1:50051");
        assert_eq!(c.tls, TlsMode::Generated);
        assert_eq!(c.default_token_ttl, 900);
        assert_eq!(c.max_token_ttl, 3600);
        assert_eq!(c.signing_alg, SigningAlg::EdDSA);
        assert_eq!(c.client_ca, Some(ClientCa::Generated));
        assert_eq!(c.trust_domain, "mcp-auth.local");
        assert_eq!(c.tls_handshake_timeout, Duration::from_secs(10));
        assert_eq!(c.connection_idle_timeout, Duration::from_secs(300));
        assert_eq!(c.max_connections, 10_000);
        assert_eq!(c.revocation_heartbeat, Duration::from_secs(5));
    }

    #[test]
    fn the_store_is_the_data_directory_by_default_or_a_postgres_url() {
        use crate::store::Location;
        assert_eq!(
            Config::from_settings(Settings::default()).unwrap().store,
            Location::DataDir
        );
        let url = "postgres://mcp:s3cret@db.example:5432/mcp_auth?sslmode=require";
        let file = Settings::from_toml(&format!(
            "store = \"{url}\"\nstore_key_file = \"/etc/mcp-auth/store.key\"\n"
        ))
        .unwrap();
        assert!(!format!("{file:?}").contains("s3cret"), "{file:?}");
        let c = Config::from_settings(file.clone()).unwrap();
        assert_eq!(c.store, Location::Postgres(url.to_owned()));
        assert_eq!(
            c.store_key_file.as_deref(),
            Some(Path::new("/etc/mcp-auth/store.key"))
        );
        assert!(!format!("{c:?}").contains("s3cret"), "{c:?}");
        // A flag (or MCP_AUTH_STORE) over the file.
        let flags = Settings {
            store: Some(Secret::new("sled")),
            store_key_file: None,
            ..Settings::default()
        };
        // The file's key file stays, and sled refuses it.
        let err = Config::from_settings(file.clone().over(flags.clone())).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid setting store_key_file: only the PostgreSQL store uses it"),
            "{err}"
        );
        let mut file = file;
        file.store_key_file = None;
        let c = Config::from_settings(file.over(flags)).unwrap();
        assert_eq!(c.store, Location::DataDir);
        for bad in [
            "mysql://root@localhost/x",
            "./data",
            "postgres://mcp:s3cret@db.example/x?sslmode=sometimes",
        ] {
            let err = Config::from_settings(Settings {
                store: Some(Secret::new(bad)),
                ..Settings::default()
            })
            .unwrap_err();
            let text = err.to_string();
            assert!(text.starts_with("invalid setting store: "), "{text}");
            assert!(!text.contains("s3cret"), "{text}");
        }
        let err = Config::from_settings(Settings {
            store: Some(Secret::new(url)),
            store_key_file: Some(PathBuf::from("store.key")),
            unsafe_no_fsync: Some(true),
            ..Settings::default()
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid setting unsafe_no_fsync: "),
            "{err}"
        );
    }

    #[test]
    fn a_postgres_store_needs_a_key_file_and_sled_refuses_one() {
        let pg = Settings {
            store: Some(Secret::new("postgres://mcp@db.example/mcp_auth")),
            ..Settings::default()
        };
        let err = Config::from_settings(pg.clone()).unwrap_err().to_string();
        assert!(
            err.starts_with("invalid setting store_key_file: the PostgreSQL store needs"),
            "{err}"
        );
        assert!(err.contains("mcp-auth store keygen"), "{err}");
        let keyed = pg.over(Settings {
            store_key_file: Some(PathBuf::from("/run/secrets/store.key")),
            ..Settings::default()
        });
        let c = Config::from_settings(keyed).unwrap();
        assert_eq!(
            c.store_key_file,
            Some(PathBuf::from("/run/secrets/store.key"))
        );
        let file = Settings::from_toml("store_key_file = \"store.key\"\n").unwrap();
        let err = Config::from_settings(file).unwrap_err().to_string();
        assert!(err.contains("unsealed"), "{err}");
        assert!(
            Config::from_settings(Settings::default())
                .unwrap()
                .store_key_file
                .is_none()
        );
    }

    #[test]
    fn the_revocation_heartbeat_is_read_and_checked() {
        let file = Settings::from_toml("revocation_heartbeat_seconds = 2\n").unwrap();
        let c = Config::from_settings(file).unwrap();
        assert_eq!(c.revocation_heartbeat, Duration::from_secs(2));
        let flags = Settings {
            revocation_heartbeat_seconds: Some(30),
            ..Settings::default()
        };
        let c = Config::from_settings(
            Settings::from_toml("revocation_heartbeat_seconds = 2\n")
                .unwrap()
                .over(flags),
        )
        .unwrap();
        assert_eq!(c.revocation_heartbeat, Duration::from_secs(30));
        let short_idle = Settings {
            connection_idle_timeout_seconds: Some(3),
            ..Settings::default()
        };
        let c = Config::from_settings(short_idle).unwrap();
        assert_eq!(
            c.revocation_heartbeat,
            Duration::from_secs(2),
            "below the idle timeout"
        );
        for (bad, idle) in [
            (0, None),
            (3601, None),
            (3601, Some(86_400)),
            (60, Some(60)),
        ] {
            let s = Settings {
                revocation_heartbeat_seconds: Some(bad),
                connection_idle_timeout_seconds: idle,
                ..Settings::default()
            };
            match Config::from_settings(s) {
                Err(ConfigError::Invalid { field, .. }) => {
                    assert_eq!(field, "revocation_heartbeat_seconds");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn connection_bounds_are_read_and_checked() {
        let file = Settings::from_toml(
            "tls_handshake_timeout_seconds = 3\nconnection_idle_timeout_seconds = 60\nmax_connections = 500\n",
        )
        .unwrap();
        let c = Config::from_settings(file).unwrap();
        assert_eq!(c.tls_handshake_timeout, Duration::from_secs(3));
        assert_eq!(c.connection_idle_timeout, Duration::from_secs(60));
        assert_eq!(c.max_connections, 500);
        for (bad, field) in [
            (
                Settings {
                    tls_handshake_timeout_seconds: Some(0),
                    ..Settings::default()
                },
                "tls_handshake_timeout_seconds",
            ),
            (
                Settings {
                    tls_handshake_timeout_seconds: Some(301),
                    ..Settings::default()
                },
                "tls_handshake_timeout_seconds",
            ),
            (
                Settings {
                    connection_idle_timeout_seconds: Some(0),
                    ..Settings::default()
                },
                "connection_idle_timeout_seconds",
            ),
            (
                Settings {
                    max_connections: Some(0),
                    ..Settings::default()
                },
                "max_connections",
            ),
            (
                Settings {
                    max_connections: Some(1_000_001),
                    ..Settings::default()
                },
                "max_connections",
            ),
        ] {
            match Config::from_settings(bad) {
                Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn flags_override_file() {
        let file = Settings::from_toml(
            "listen = \"0.0.0.0:1\"\nissuer = \"https://from-file\"\nsigning_alg = \"ES256\"\n",
        )
        .unwrap();
        let flags = Settings {
            issuer: Some("https://from-flag".to_owned()),
            ..Settings::default()
        };
        let c = Config::from_settings(file.over(flags)).unwrap();
        assert_eq!(c.issuer, "https://from-flag");
        assert_eq!(c.listen.to_string(), "0.0.0.0:1");
        assert_eq!(c.signing_alg, SigningAlg::ES256);
    }

    #[test]
    fn the_issuer_is_an_https_url() {
        let c = Config::from_settings(Settings::default()).unwrap();
        assert_eq!(c.issuer, "https://localhost:8443");
        for good in [
            "https://auth.example.com",
            "https://auth.example.com:8443/tenant",
            "http://localhost:8080",
            "http://127.0.0.1:8443",
        ] {
            assert!(check_issuer(good).is_ok(), "{good}");
        }
        for bad in [
            "mcp-auth",
            "",
            "http://auth.example.com",
            "https://",
            "https://auth.example.com/",
            "https://auth.example.com?x=1",
            "https://auth.example.com#f",
            "https://a b",
            "https://auth.example.com//x",
            "https://auth.example.com/a/../b",
            "https://auth.example.com/{id}",
            "https://auth.example.com/:id",
            "https://auth.example.com/a%20b",
        ] {
            let s = Settings {
                issuer: Some(bad.to_owned()),
                ..Settings::default()
            };
            assert!(
                matches!(
                    Config::from_settings(s),
                    Err(ConfigError::Invalid {
                        field: "issuer",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_issuer_path_is_what_follows_the_host() {
        assert_eq!(issuer_path("https://localhost:8443"), "");
        assert_eq!(issuer_path("https://h/auth"), "/auth");
        assert_eq!(issuer_path("https://h:1/a/b-c"), "/a/b-c");
        assert_eq!(issuer_path("http://127.0.0.1:8443/t"), "/t");
    }

    #[test]
    fn the_metrics_listener_is_on_loopback_by_default_and_can_be_turned_off() {
        let c = Config::from_settings(Settings::default()).unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
        for off in ["off", "none"] {
            let file = Settings::from_toml(&format!("metrics_listen = \"{off}\"\n")).unwrap();
            assert_eq!(Config::from_settings(file).unwrap().metrics_listen, None);
        }
        let file = Settings::from_toml("metrics_listen = \"0.0.0.0:9100\"\n").unwrap();
        let c = Config::from_settings(file).unwrap();
        assert_eq!(c.metrics_listen, Some("0.0.0.0:9100".parse().unwrap()));
        let err = Settings::from_toml("metrics_listen = \"9464\"\n").unwrap_err();
        assert!(err.contains("expected an address and port"), "{err}");
        assert_eq!(MetricsListen::parse("off"), Ok(MetricsListen::Off));
        assert!(MetricsListen::parse("").is_err());
        // A flag over the file, as everywhere.
        let file = Settings::from_toml("metrics_listen = \"off\"\n").unwrap();
        let flags = Settings {
            metrics_listen: Some(MetricsListen::Addr("127.0.0.1:9999".parse().unwrap())),
            ..Settings::default()
        };
        let c = Config::from_settings(file.over(flags)).unwrap();
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9999".parse().unwrap()));
        for clash in ["127.0.0.1:50051", "127.0.0.1:8443"] {
            let s = Settings {
                metrics_listen: Some(MetricsListen::Addr(clash.parse().unwrap())),
                ..Settings::default()
            };
            assert!(matches!(
                Config::from_settings(s),
                Err(ConfigError::Invalid {
                    field: "metrics_listen",
                    ..
                })
            ));
        }
    }

    #[test]
    fn the_http_listener_has_its_own_address_and_request_timeout() {
        let c = Config::from_settings(Settings::default()).unwrap();
        assert_eq!(c.http_listen.to_string(), "127.0.0.1:8443");
        assert_eq!(c.http_request_timeout, Duration::from_secs(30));
        let file = Settings::from_toml(
            "http_listen = \"0.0.0.0:443\"\nhttp_request_timeout_seconds = 5\n",
        )
        .unwrap();
        let c = Config::from_settings(file).unwrap();
        assert_eq!(c.http_listen.to_string(), "0.0.0.0:443");
        assert_eq!(c.http_request_timeout, Duration::from_secs(5));
        let same = Settings {
            listen: Some("127.0.0.1:9000".parse().unwrap()),
            http_listen: Some("127.0.0.1:9000".parse().unwrap()),
            ..Settings::default()
        };
        assert!(matches!(
            Config::from_settings(same),
            Err(ConfigError::Invalid {
                field: "http_listen",
                ..
            })
        ));
        for bad in [0, 301] {
            let s = Settings {
                http_request_timeout_seconds: Some(bad),
                ..Settings::default()
            };
            assert!(matches!(
                Config::from_settings(s),
                Err(ConfigError::Invalid {
                    field: "http_request_timeout_seconds",
                    ..
                })
            ));
        }
    }

    #[test]
    fn the_login_url_is_an_https_url_and_off_by_default() {
        let c = Config::from_settings(Settings::default()).unwrap();
        assert_eq!(c.login_url, None);
        for good in [
            "https://app.example/login",
            "https://app.example/login?tenant=1",
            "http://localhost:3000/login",
            "http://127.0.0.1:3000/login",
            "http://[::1]:3000/login",
        ] {
            let file = Settings::from_toml(&format!("login_url = \"{good}\"\n")).unwrap();
            let c = Config::from_settings(file).unwrap();
            assert_eq!(c.login_url.as_deref(), Some(good));
        }
        for bad in [
            "app.example/login",
            "/login",
            "http://app.example/login",
            "ftp://app.example/login",
            "https://user:pw@app.example/login",
            "https://app.example/login#top",
            "https://app.example/login?login_challenge=x",
        ] {
            let s = Settings {
                login_url: Some(bad.to_owned()),
                ..Settings::default()
            };
            assert!(
                matches!(
                    Config::from_settings(s),
                    Err(ConfigError::Invalid {
                        field: "login_url",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = Settings::from_toml("listne = \"0.0.0.0:1\"\n").unwrap_err();
        assert!(err.contains("listne"), "{err}");
    }

    #[test]
    fn inconsistent_values_are_rejected() {
        let bad_ttl = Settings {
            default_token_ttl_seconds: Some(7200),
            ..Settings::default()
        };
        assert!(matches!(
            Config::from_settings(bad_ttl),
            Err(ConfigError::Invalid {
                field: "default_token_ttl_seconds",
                ..
            })
        ));
        let half_tls = Settings {
            tls_cert: Some("a.pem".into()),
            ..Settings::default()
        };
        assert!(Config::from_settings(half_tls).is_err());
    }

    #[test]
    fn dcr_is_open_by_default_and_token_needs_a_long_token() {
        let c = Config::from_settings(Settings::default()).unwrap();
        assert_eq!(c.dcr, DcrMode::Open);
        assert_eq!(c.dcr_registrations_per_hour, 20);
        assert_eq!(c.dcr_unused_client_ttl, 86_400);
        assert!(c.dcr_default_scopes.is_empty());
        assert!(c.dcr_allowed_resources.is_empty());
        let file = Settings::from_toml(
            "dcr = \"token\"\ndcr_initial_access_token = \"0123456789abcdef0123456789abcdef\"\ndcr_default_scopes = [\"mcp\"]\ndcr_allowed_resources = [\"https://mcp.example.com/mcp\"]\n",
        )
        .unwrap();
        let c = Config::from_settings(file).unwrap();
        assert_eq!(c.dcr, DcrMode::Token);
        assert_eq!(c.dcr_default_scopes, ["mcp"]);
        assert_eq!(c.dcr_allowed_resources, ["https://mcp.example.com/mcp"]);
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
        for (s, field) in [
            (
                Settings {
                    dcr: Some(DcrMode::Token),
                    ..Settings::default()
                },
                "dcr_initial_access_token",
            ),
            (
                Settings {
                    dcr: Some(DcrMode::Token),
                    dcr_initial_access_token: Some(Secret::new("short")),
                    ..Settings::default()
                },
                "dcr_initial_access_token",
            ),
            (
                Settings {
                    dcr_registrations_per_hour: Some(0),
                    ..Settings::default()
                },
                "dcr_registrations_per_hour",
            ),
            (
                Settings {
                    dcr_unused_client_ttl_seconds: Some(1),
                    ..Settings::default()
                },
                "dcr_unused_client_ttl_seconds",
            ),
            (
                Settings {
                    dcr_allowed_resources: Some(vec!["http://mcp.example.com".into()]),
                    ..Settings::default()
                },
                "dcr_allowed_resources",
            ),
        ] {
            match Config::from_settings(s) {
                Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected {field} refused, got {other:?}"),
            }
        }
        assert!(Settings::from_toml("dcr = \"maybe\"\n").is_err());
    }
}
