//! `mcp-auth serve`: merges configuration, opens the server, prints the
//! primary key on first start, and serves until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use tokio::net::TcpListener;

use crate::clock::Clock;
use crate::config::{ClientCa, Config, Settings, TlsMode};
use crate::server::Error;
use crate::server::{Listeners, Server};
use crate::store::SigningAlg;

/// Flags of `mcp-auth serve`; each also reads an `MCP_AUTH_*` variable and
/// overrides the TOML file. Defaults are listed in
/// docs/reference/configuration.md.
#[derive(Clone, Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "MCP_AUTH_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory [default: ./data].
    #[arg(long, env = "MCP_AUTH_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Where the store lives: sled (the data directory's) or a
    /// postgres:// URL [default: sled].
    #[arg(long, env = "MCP_AUTH_STORE", hide_env_values = true, value_parser = parse_secret)]
    store: Option<crate::secret::Secret>,
    /// The key-ring key's file (base64 of 32 bytes, mode 0600; make one
    /// with `mcp-auth store keygen FILE`), which seals the signing keys
    /// in a postgres:// store; the same file on every replica [required
    /// with postgres://].
    #[arg(long, env = "MCP_AUTH_STORE_KEY_FILE")]
    store_key_file: Option<PathBuf>,
    /// Listen address of gRPC [default: 127.0.0.1:50051].
    #[arg(long, env = "MCP_AUTH_LISTEN")]
    listen: Option<SocketAddr>,
    /// Listen address of HTTP: OAuth metadata, JWKS, the token endpoint
    /// [default: 127.0.0.1:8443].
    #[arg(long, env = "MCP_AUTH_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// Listen address of the metrics listener (plain HTTP: /metrics,
    /// /healthz, /readyz), or off [default: 127.0.0.1:9464].
    #[arg(long, env = "MCP_AUTH_METRICS_LISTEN", value_parser = crate::config::MetricsListen::parse)]
    metrics_listen: Option<crate::config::MetricsListen>,
    /// Server certificate chain (PEM) [default: generated dev certificate].
    #[arg(long, env = "MCP_AUTH_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, env = "MCP_AUTH_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve both listeners without TLS (h2c and plain HTTP): local
    /// benchmarking only, never in production.
    #[arg(long, env = "MCP_AUTH_PLAINTEXT")]
    plaintext: bool,
    /// The issuer: this server's public https URL, the `iss` of every
    /// token [default: https://localhost:8443].
    #[arg(long, env = "MCP_AUTH_ISSUER")]
    issuer: Option<String>,
    /// Algorithm for new signing keys [default: EdDSA].
    #[arg(long, env = "MCP_AUTH_SIGNING_ALG", value_parser = parse_alg)]
    signing_alg: Option<SigningAlg>,
    /// Token lifetime when a request asks for 0 [default: 900].
    #[arg(long, env = "MCP_AUTH_DEFAULT_TOKEN_TTL_SECONDS")]
    default_token_ttl_seconds: Option<u32>,
    /// Longest token lifetime a request may ask for [default: 3600].
    #[arg(long, env = "MCP_AUTH_MAX_TOKEN_TTL_SECONDS")]
    max_token_ttl_seconds: Option<u32>,
    /// Grace period for in-flight RPCs on shutdown [default: 10].
    #[arg(long, env = "MCP_AUTH_SHUTDOWN_GRACE_SECONDS")]
    shutdown_grace_seconds: Option<u64>,
    /// CA (PEM) that client certificates must chain to [default: the
    /// generated development CA].
    #[arg(long, env = "MCP_AUTH_CLIENT_CA")]
    client_ca: Option<PathBuf>,
    /// SPIFFE trust domain of client identities [default: mcp-auth.local].
    #[arg(long, env = "MCP_AUTH_TRUST_DOMAIN")]
    trust_domain: Option<String>,
    /// Longest (and default) session lifetime [default: 86400].
    #[arg(long, env = "MCP_AUTH_MAX_SESSION_LIFETIME_SECONDS")]
    max_session_lifetime_seconds: Option<u32>,
    /// Idle timeout of a session without refresh [default: 43200].
    #[arg(long, env = "MCP_AUTH_SESSION_IDLE_TIMEOUT_SECONDS")]
    session_idle_timeout_seconds: Option<u32>,
    /// Grace window for re-presenting a spent refresh token [default: 0].
    #[arg(long, env = "MCP_AUTH_REFRESH_REUSE_GRACE_SECONDS")]
    refresh_reuse_grace_seconds: Option<u32>,
    /// Seconds a repeated refresh at the token endpoint gets the first answer again; 0 off [default: 5].
    #[arg(long, env = "MCP_AUTH_OAUTH_REFRESH_GRACE_SECONDS")]
    oauth_refresh_grace_seconds: Option<u32>,
    /// Days between automatic signing key rotations; 0 never [default: 30].
    #[arg(long, env = "MCP_AUTH_SIGNING_KEY_ROTATION_DAYS")]
    signing_key_rotation_days: Option<u32>,
    /// Longest quiet on a revocation stream before a heartbeat, seconds [default: 5].
    #[arg(long, env = "MCP_AUTH_REVOCATION_HEARTBEAT_SECONDS")]
    revocation_heartbeat_seconds: Option<u64>,
    /// With PostgreSQL: how long a replica cut off from the database keeps verifying from memory, seconds [default: 30].
    #[arg(long, env = "MCP_AUTH_STORE_MAX_STALENESS_SECONDS")]
    store_max_staleness_seconds: Option<u64>,
    /// Period of the maintenance task, seconds [default: 60].
    #[arg(long, env = "MCP_AUTH_MAINTENANCE_INTERVAL_SECONDS")]
    maintenance_interval_seconds: Option<u64>,
    /// Most sessions one maintenance pass examines [default: 65536].
    #[arg(long, env = "MCP_AUTH_MAINTENANCE_SESSIONS_PER_PASS")]
    maintenance_sessions_per_pass: Option<u32>,
    /// Default requests per second per credential; 0 unlimited [default: 1000].
    #[arg(long, env = "MCP_AUTH_RATE_LIMIT_REQUESTS_PER_SECOND")]
    rate_limit_requests_per_second: Option<u32>,
    /// Default burst per credential [default: twice the rate].
    #[arg(long, env = "MCP_AUTH_RATE_LIMIT_BURST")]
    rate_limit_burst: Option<u32>,
    /// Failed authentications per address per minute [default: 10].
    #[arg(long, env = "MCP_AUTH_AUTH_FAILURES_PER_MINUTE")]
    auth_failures_per_minute: Option<u32>,
    /// Days audit records are kept [default: 90].
    #[arg(long, env = "MCP_AUTH_AUDIT_RETENTION_DAYS")]
    audit_retention_days: Option<u32>,
    /// Acknowledge writes before they reach the disk, so a crash loses
    /// them: only for measuring what durability costs.
    #[arg(long)]
    unsafe_no_fsync: bool,
    /// Seconds a new connection has to complete its TLS handshake [default: 10].
    #[arg(long, env = "MCP_AUTH_TLS_HANDSHAKE_TIMEOUT_SECONDS")]
    tls_handshake_timeout_seconds: Option<u64>,
    /// Close a connection that receives and sends nothing for this many seconds [default: 300].
    #[arg(long, env = "MCP_AUTH_CONNECTION_IDLE_TIMEOUT_SECONDS")]
    connection_idle_timeout_seconds: Option<u64>,
    /// Most connections served at once, per listener; more wait until one closes [default: 10000].
    #[arg(long, env = "MCP_AUTH_MAX_CONNECTIONS")]
    max_connections: Option<u32>,
    /// Seconds an HTTP request has from arrival to response [default: 30].
    #[arg(long, env = "MCP_AUTH_HTTP_REQUEST_TIMEOUT_SECONDS")]
    http_request_timeout_seconds: Option<u64>,
    /// Dynamic Client Registration at POST /register: open, token or off [default: open].
    #[arg(long, env = "MCP_AUTH_DCR", value_parser = crate::config::DcrMode::parse)]
    dcr: Option<crate::config::DcrMode>,
    /// The initial access token `--dcr token` requires (at least 32 characters).
    #[arg(long, env = "MCP_AUTH_DCR_INITIAL_ACCESS_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    dcr_initial_access_token: Option<crate::secret::Secret>,
    /// Scopes of a dynamic registration that asks for none (comma-separated) [default: none].
    #[arg(long, env = "MCP_AUTH_DCR_DEFAULT_SCOPES", value_delimiter = ',')]
    dcr_default_scopes: Option<Vec<String>>,
    /// Resources dynamically registered clients may get tokens for; a registration naming none gets them all (comma-separated) [default: none].
    #[arg(long, env = "MCP_AUTH_DCR_ALLOWED_RESOURCES", value_delimiter = ',')]
    dcr_allowed_resources: Option<Vec<String>>,
    /// Registrations per peer address per hour at POST /register [default: 20].
    #[arg(long, env = "MCP_AUTH_DCR_REGISTRATIONS_PER_HOUR")]
    dcr_registrations_per_hour: Option<u32>,
    /// Seconds a dynamic client that never got a token is kept [default: 86400].
    #[arg(long, env = "MCP_AUTH_DCR_UNUSED_CLIENT_TTL_SECONDS")]
    dcr_unused_client_ttl_seconds: Option<u32>,
    /// Fetch client metadata documents for https client ids: true or false [default: true].
    #[arg(long, env = "MCP_AUTH_CIMD")]
    cimd: Option<bool>,
    /// Hosts whose client-id URLs are accepted, e.g. example.com,*.example.org (comma-separated) [default: any public host].
    #[arg(long, env = "MCP_AUTH_CIMD_ALLOWED_HOSTS", value_delimiter = ',')]
    cimd_allowed_hosts: Option<Vec<String>>,
    /// Resources metadata-document clients may get tokens for (comma-separated) [default: none].
    #[arg(long, env = "MCP_AUTH_CIMD_ALLOWED_RESOURCES", value_delimiter = ',')]
    cimd_allowed_resources: Option<Vec<String>>,
    /// Seconds a metadata document fetch may take [default: 5].
    #[arg(long, env = "MCP_AUTH_CIMD_FETCH_TIMEOUT_SECONDS")]
    cimd_fetch_timeout_seconds: Option<u64>,
    /// TESTS ONLY: trust this CA (PEM) for metadata documents and allow loopback fetches.
    #[arg(long, env = "MCP_AUTH_CIMD_TESTING_CA")]
    cimd_testing_ca: Option<PathBuf>,
    /// Seconds a browser that signed in is remembered; 0 never [default: 28800].
    #[arg(long, env = "MCP_AUTH_LOGIN_REMEMBER_SECONDS")]
    login_remember_seconds: Option<u32>,
    /// Words for a scope on the consent page, as SCOPE=WORDS; repeat for several.
    #[arg(long = "scope-description", value_name = "SCOPE=WORDS", value_parser = parse_scope_description)]
    scope_descriptions: Vec<(String, String)>,
    /// Your application's sign-in page: browsers that are not signed in go there with ?login_challenge= [default: the built-in sign-in page].
    #[arg(long, env = "MCP_AUTH_LOGIN_URL")]
    login_url: Option<String>,
}

/// `SCOPE=WORDS`.
fn parse_scope_description(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .ok_or_else(|| "expected SCOPE=WORDS".to_owned())
}

/// A flag's value that is a secret (its Debug is redacted).
pub(super) fn parse_secret(s: &str) -> Result<crate::secret::Secret, String> {
    Ok(crate::secret::Secret::new(s))
}

fn parse_alg(s: &str) -> Result<SigningAlg, String> {
    match s {
        "EdDSA" | "eddsa" | "Ed25519" | "ed25519" => Ok(SigningAlg::EdDSA),
        "ES256" | "es256" => Ok(SigningAlg::ES256),
        _ => Err("expected EdDSA or ES256".to_owned()),
    }
}

impl ServeArgs {
    fn settings(&self) -> Settings {
        Settings {
            data_dir: self.data_dir.clone(),
            store: self.store.clone(),
            store_key_file: self.store_key_file.clone(),
            listen: self.listen,
            http_listen: self.http_listen,
            metrics_listen: self.metrics_listen,
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            plaintext: self.plaintext.then_some(true),
            issuer: self.issuer.clone(),
            signing_alg: self.signing_alg,
            default_token_ttl_seconds: self.default_token_ttl_seconds,
            max_token_ttl_seconds: self.max_token_ttl_seconds,
            shutdown_grace_seconds: self.shutdown_grace_seconds,
            client_ca: self.client_ca.clone(),
            trust_domain: self.trust_domain.clone(),
            max_session_lifetime_seconds: self.max_session_lifetime_seconds,
            session_idle_timeout_seconds: self.session_idle_timeout_seconds,
            refresh_reuse_grace_seconds: self.refresh_reuse_grace_seconds,
            oauth_refresh_grace_seconds: self.oauth_refresh_grace_seconds,
            signing_key_rotation_days: self.signing_key_rotation_days,
            revocation_heartbeat_seconds: self.revocation_heartbeat_seconds,
            store_max_staleness_seconds: self.store_max_staleness_seconds,
            maintenance_interval_seconds: self.maintenance_interval_seconds,
            maintenance_sessions_per_pass: self.maintenance_sessions_per_pass,
            rate_limit_requests_per_second: self.rate_limit_requests_per_second,
            rate_limit_burst: self.rate_limit_burst,
            auth_failures_per_minute: self.auth_failures_per_minute,
            audit_retention_days: self.audit_retention_days,
            unsafe_no_fsync: self.unsafe_no_fsync.then_some(true),
            tls_handshake_timeout_seconds: self.tls_handshake_timeout_seconds,
            connection_idle_timeout_seconds: self.connection_idle_timeout_seconds,
            max_connections: self.max_connections,
            http_request_timeout_seconds: self.http_request_timeout_seconds,
            dcr: self.dcr,
            dcr_initial_access_token: self.dcr_initial_access_token.clone(),
            dcr_default_scopes: self.dcr_default_scopes.clone(),
            dcr_allowed_resources: self.dcr_allowed_resources.clone(),
            dcr_registrations_per_hour: self.dcr_registrations_per_hour,
            dcr_unused_client_ttl_seconds: self.dcr_unused_client_ttl_seconds,
            cimd: self.cimd,
            cimd_allowed_hosts: self.cimd_allowed_hosts.clone(),
            cimd_allowed_resources: self.cimd_allowed_resources.clone(),
            cimd_fetch_timeout_seconds: self.cimd_fetch_timeout_seconds,
            cimd_testing_ca: self.cimd_testing_ca.clone(),
            login_remember_seconds: self.login_remember_seconds,
            scope_descriptions: (!self.scope_descriptions.is_empty())
                .then(|| self.scope_descriptions.iter().cloned().collect()),
            login_url: self.login_url.clone(),
        }
    }
}

pub(super) async fn run(args: ServeArgs) -> Result<(), Error> {
    let file = match &args.config {
        Some(path) => Settings::from_file(path)?,
        None => Settings::default(),
    };
    let config = Config::from_settings(file.over(args.settings()))?;
    if config.tls == TlsMode::Plaintext {
        tracing::warn!(
            "PLAINTEXT MODE: no TLS, API keys and tokens cross the network in clear; for local benchmarking only"
        );
        eprintln!(
            "WARNING: serving plaintext (h2c and HTTP) without TLS. Never do this outside local benchmarking."
        );
    }
    if config.unsafe_no_fsync {
        tracing::warn!(
            "UNSAFE NO-FSYNC MODE: writes are acknowledged before they reach the disk; a crash loses them"
        );
        eprintln!(
            "WARNING: --unsafe-no-fsync: acknowledged writes can be lost. Only for measuring what durability costs."
        );
    }
    // Bind first: a port in use fails before anything is created.
    let (listener, local) = bind(config.listen, "listen", "").await?;
    let (http_listener, http_local) = bind(config.http_listen, "http-listen", "").await?;
    let metrics = match config.metrics_listen {
        Some(addr) => Some(bind(addr, "metrics-listen", " or off").await?),
        None => None,
    };
    let data_dir = config.data_dir.clone();
    let config_store = config.store.kind();
    let generated_tls = config.tls == TlsMode::Generated;
    let client_ca = config.client_ca.clone();
    let server = Server::open(config, Clock::system()).await?;
    if let Some(secret) = server.new_primary_key() {
        outln!("Created the primary API key (scope admin). Its secret is shown only this once");
        outln!(
            "and saved to {} (mode 0600):",
            server.primary_key_path().display()
        );
        outln!();
        outln!("    {}", secret.expose());
        outln!();
    }
    let scheme = if server.is_tls() { "https" } else { "http" };
    tracing::info!(addr = %local, http_addr = %http_local, data_dir = %data_dir.display(), store = config_store, "serving");
    outln!("mcp-auth listening on {scheme}://{local}");
    outln!("mcp-auth HTTP listening on {scheme}://{http_local}");
    if let Some((_, metrics_local)) = &metrics {
        tracing::info!(addr = %metrics_local, "serving metrics");
        outln!("mcp-auth metrics listening on http://{metrics_local}/metrics");
    }
    let dev_ca = data_dir.join("tls").join(crate::tls::CA_CERT_FILE);
    if generated_tls {
        outln!("clients trust the development CA {}", dev_ca.display());
    }
    match client_ca {
        Some(ClientCa::Generated) => outln!(
            "mutual TLS: client certificates issued by {} are accepted",
            dev_ca.display()
        ),
        Some(ClientCa::File(path)) => outln!(
            "mutual TLS: client certificates issued by {} are accepted",
            path.display()
        ),
        None => {}
    }
    server
        .serve_with(
            Listeners {
                grpc: listener,
                http: Some(http_listener),
                metrics: metrics.map(|(listener, _)| listener),
            },
            shutdown_signal(),
        )
        .await
}

/// A listener on `addr`, and the address it is bound to (the real port
/// when `addr` asks for port 0). A failure names the setting (`--flag`)
/// that chose `addr`, and what else it may be (`other`): two servers on
/// one host collide on their default ports.
async fn bind(
    addr: SocketAddr,
    flag: &str,
    other: &str,
) -> Result<(TcpListener, SocketAddr), Error> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            format!(" (another process holds it: give --{flag} another address{other})")
        } else {
            String::new()
        };
        Error::io(format!("binding {addr} for --{flag}{hint}"), e)
    })?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("reading the bound address", e))?;
    Ok((listener, local))
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(err) => {
            tracing::warn!(cause = %err, "cannot watch SIGTERM; only SIGINT stops the server");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
