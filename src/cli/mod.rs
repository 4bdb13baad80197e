//! The `mcp-auth` command line: `serve` runs the server; `key`, `session`,
//! `token` and `jwks` are clients of a running server.
//!
//! Client commands read the API key from `MCP_AUTH_API_KEY` (never from a
//! flag, which would land in shell history) and default `--server` and
//! `--ca` to what `serve` uses on its defaults, so the README walk-through
//! needs no flags. The options every client command shares
//! ([`GlobalOpts`]: `--server`, `--ca`, `--json`, `--field`, ...) are
//! global: they go before or after the subcommand.
//!
//! This file holds the command-line definitions and the dispatch; each
//! noun's commands live in a file of their own (`key`, `session`, `token`,
//! `identity`, `client`, `user`, `cert`, `signing_key`, `audit`, `whoami`,
//! `status`,
//! `bench`, and `store`, commands on the store itself: making the
//! key-ring key, copying a stopped server's data directory into
//! PostgreSQL, backing up a running server's store and restoring it), all of
//! them reach the server through [`crate::grpc::client::Client`] and print
//! through one output layer (`output`).

/// `println!` for command output that tolerates a closed pipe
/// (`mcp-auth key list | head -1`): output to a reader that has gone away
/// is dropped instead of panicking.
macro_rules! outln {
    () => {
        $crate::cli::emit("\n")
    };
    ($($arg:tt)*) => {
        $crate::cli::emit(&format!("{}\n", format_args!($($arg)*)))
    };
}

mod audit;
mod bench;
mod cert;
mod client;
mod error;
mod identity;
mod key;
mod output;
mod serve;
mod session;
mod signing_key;
mod status;
mod store;
mod token;
mod user;
mod whoami;

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use error::{CliError, report};
pub(crate) use output::Output;

use crate::grpc::client::{Client, ConnectOptions, RetryPolicy};

/// Environment variable holding the API key client commands send.
pub(crate) const API_KEY_ENV: &str = "MCP_AUTH_API_KEY";

/// Command-line interface of the `mcp-auth` binary.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "mcp-auth",
    version = crate::version::LONG,
    about = "Token service for MCP servers")]
pub struct Cli {
    /// Options shared by every command, before or after the subcommand.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The options every command takes, before or after the subcommand: how
/// client commands reach the server and how output is printed.
#[derive(Debug, Clone, Args)]
pub struct GlobalOpts {
    /// Server URL: https://... for TLS, http://... for a --plaintext server.
    #[arg(
        long,
        global = true,
        env = "MCP_AUTH_SERVER",
        default_value = "https://localhost:50051",
        help_heading = "Global options"
    )]
    pub server: String,
    /// CA certificate (PEM) that signed the server's certificate.
    #[arg(
        long,
        global = true,
        env = "MCP_AUTH_CA",
        default_value = "./data/tls/ca.pem",
        help_heading = "Global options"
    )]
    pub ca: PathBuf,
    /// Client certificate (PEM) to authenticate with mutual TLS instead of
    /// an API key.
    #[arg(
        long,
        global = true,
        env = "MCP_AUTH_CLIENT_CERT",
        requires = "key",
        help_heading = "Global options"
    )]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(
        long,
        global = true,
        env = "MCP_AUTH_CLIENT_KEY",
        requires = "cert",
        help_heading = "Global options"
    )]
    pub key: Option<PathBuf>,
    /// Print the result as JSON (lists as a JSON array); errors go to
    /// standard error as JSON too.
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    /// Print one field of the JSON result, raw (strings unquoted), e.g.
    /// `secret` or `api_key.key_id`; several, comma-separated, one per
    /// line; of a list, those fields of each item, one item per line
    /// (tab-separated).
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        help_heading = "Global options"
    )]
    pub field: Option<String>,
    /// Log line format on standard error.
    #[arg(
        long,
        global = true,
        env = "MCP_AUTH_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        help_heading = "Global options"
    )]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The subcommands.
#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(Box<serve::ServeArgs>),
    /// Manage API keys (needs scope keys:admin).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Create and revoke sessions (short-lived access tokens).
    #[command(subcommand)]
    Session(SessionCommand),
    /// Verify access tokens (needs scope tokens:verify).
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print the server's public signing keys (JWK Set with --json). No
    /// API key needed.
    Jwks,
    /// Show which credential you call with (the API key in
    /// MCP_AUTH_API_KEY, or --cert) and its scopes.
    Whoami,
    /// Show the server's version, uptime, store, signing keys, counts and
    /// listener addresses (needs scope status:read).
    Status,
    /// Create a CA, issue client and server certificates (local), revoke
    /// client certificates (server).
    #[command(subcommand)]
    Cert(CertCommand),
    /// Grant scopes to mTLS identities (needs scope identities:admin).
    #[command(subcommand)]
    Identity(IdentityCommand),
    /// Manage OAuth clients (needs scope clients:admin).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage the built-in user accounts that sign in at the login page
    /// (needs scope users:admin).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the token signing keys (needs scope admin).
    #[command(subcommand)]
    SigningKey(SigningKeyCommand),
    /// Read and verify the audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Commands on the store: make the key that seals the signing keys in
    /// a PostgreSQL store; copy a STOPPED server's data directory into an
    /// empty PostgreSQL database; back up a running server's store and
    /// restore a backup into a new data directory.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Load a running server and report RPC/s, latency and errors (needs
    /// an admin key in MCP_AUTH_API_KEY to set up).
    Bench(bench::BenchArgs),
    /// Create a new admin key in the data directory of a STOPPED server,
    /// when every admin key is lost or revoked. Prints the secret once.
    RecoverAdmin {
        /// Data directory of the stopped server.
        #[arg(long, env = "MCP_AUTH_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
}

/// `mcp-auth cert ...`
#[derive(Clone, Debug, Subcommand)]
pub enum CertCommand {
    /// Create a CA for client and server certificates: DIR/ca.pem and
    /// DIR/ca.key (0600).
    InitCa {
        /// Directory to write to.
        #[arg(long)]
        out: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "mcp-auth CA")]
        name: String,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        days: u32,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Issue a client certificate for a service identity: OUT/NAME.pem
    /// (certificate and CA chain) and OUT/NAME.key (0600).
    Issue {
        /// The identity name (a-z 0-9 . -).
        name: String,
        /// Directory holding ca.pem and ca.key (mode 0600).
        #[arg(long)]
        ca_dir: PathBuf,
        /// Directory to write to.
        #[arg(long)]
        out: PathBuf,
        /// Validity in days; at most --max-days, and never past the CA's
        /// expiry.
        #[arg(long, default_value_t = 30)]
        days: u32,
        /// Longest validity allowed, in days.
        #[arg(long, env = "MCP_AUTH_CERT_MAX_DAYS", default_value_t = crate::ca::DEFAULT_MAX_DAYS)]
        max_days: u32,
        /// SPIFFE trust domain of the identity.
        #[arg(long, env = "MCP_AUTH_TRUST_DOMAIN", default_value = crate::ca::DEFAULT_TRUST_DOMAIN)]
        trust_domain: String,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Issue a TLS server certificate for `serve --tls-cert --tls-key`:
    /// OUT/server.pem (certificate and CA chain) and OUT/server.key (0600).
    IssueServer {
        /// Directory holding ca.pem and ca.key (mode 0600).
        #[arg(long)]
        ca_dir: PathBuf,
        /// Directory to write to.
        #[arg(long)]
        out: PathBuf,
        /// A DNS name clients reach the server by (repeatable).
        #[arg(long = "dns", value_name = "NAME")]
        dns: Vec<String>,
        /// An IP address clients reach the server at (repeatable).
        #[arg(long = "ip", value_name = "ADDRESS")]
        ip: Vec<std::net::IpAddr>,
        /// Validity in days; at most --max-days, and never past the CA's
        /// expiry.
        #[arg(long, default_value_t = 90)]
        days: u32,
        /// Longest validity allowed, in days.
        #[arg(long, env = "MCP_AUTH_CERT_MAX_DAYS", default_value_t = crate::ca::DEFAULT_MAX_DAYS)]
        max_days: u32,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Revoke a client certificate by serial on the running server (needs
    /// scope identities:admin).
    Revoke {
        /// Serial number in hex, as `cert issue` printed it.
        serial: String,
    },
}

/// `mcp-auth audit ...`
#[derive(Clone, Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events, oldest first (needs scope audit:read).
    List {
        /// Only events at or after this time: Unix seconds, RFC 3339
        /// (2026-12-01T10:00:00Z) or an age (90s, 15m, 2h, 7d).
        #[arg(long, value_parser = output::parse_since, default_value = "0")]
        since: i64,
        /// At most this many events (the oldest that match); 0 means all.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Only events by this actor.
        #[arg(long, default_value = "")]
        actor: String,
        /// Only events with this action, e.g. api_key.created.
        #[arg(long, default_value = "")]
        action: String,
    },
    /// Verify the hash chain: offline on a stopped server's data directory
    /// with --data-dir, or through a running server. Exit status 1 names the
    /// first broken record.
    Verify {
        /// Data directory of a stopped server.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// `mcp-auth store ...`
#[derive(Clone, Debug, Subcommand)]
pub enum StoreCommand {
    /// Write a new key-ring key to FILE (mode 0600): 32 random bytes,
    /// base64, for store_key_file. Every replica on one database needs
    /// the same file.
    Keygen {
        /// The file to write.
        file: PathBuf,
        /// Overwrite an existing file (the signing keys sealed with the
        /// old key then cannot be opened).
        #[arg(long)]
        force: bool,
    },
    /// Copy the store of a STOPPED server's data directory (API keys,
    /// sessions and their refresh tokens, identities, revoked
    /// certificates, OAuth clients, users, consents, revoked tokens,
    /// signing keys, the audit trail) into an empty PostgreSQL database,
    /// then check the copy: the count of every kind of record, and the
    /// audit chain. Refuses a database that holds anything.
    Migrate {
        /// Data directory of the stopped server.
        #[arg(long, value_name = "DIR", env = "MCP_AUTH_DATA_DIR")]
        from: PathBuf,
        /// The database to copy into, a postgres:// URL; never printed
        /// (it may carry a password, so MCP_AUTH_STORE keeps it out of
        /// shell history).
        #[arg(
            long,
            value_name = "URL",
            env = "MCP_AUTH_STORE",
            hide_env_values = true,
            value_parser = serve::parse_secret
        )]
        to: crate::secret::Secret,
        /// The key-ring key file the servers on that database will use
        /// (store_key_file): the copied signing keys are sealed with it.
        #[arg(long, value_name = "FILE", env = "MCP_AUTH_STORE_KEY_FILE")]
        store_key_file: PathBuf,
    },
    /// Back up a RUNNING server's store (the embedded one) at one point in
    /// time into DIR/store.backup (mode 0600: it holds the private signing
    /// keys), then check the file's checksum (needs scope store:backup).
    /// DIR must not exist or be empty. Not the TLS files or primary.key:
    /// keep the data directory's tls/ yourself.
    Backup {
        /// The directory to write, new or empty.
        dir: PathBuf,
    },
    /// Offline: build a new data directory's store from a backup made by
    /// `store backup`, after checking the backup's checksum; then verify
    /// the restored audit chain and print what it holds. Refuses a data
    /// directory that holds anything.
    Restore {
        /// The backup directory (holding store.backup).
        dir: PathBuf,
        /// The new data directory to restore into: missing or empty.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
}

/// `mcp-auth signing-key ...`
#[derive(Clone, Debug, Subcommand)]
pub enum SigningKeyCommand {
    /// Make a new signing key active now; the old one keeps verifying the
    /// tokens it signed until they expire.
    Rotate,
}

/// `mcp-auth identity ...`
#[derive(Clone, Debug, Subcommand)]
pub enum IdentityCommand {
    /// Create or replace an identity's grant.
    Set {
        /// The identity name, as in its certificate.
        name: String,
        /// Comma-separated scopes, e.g. sessions:create,tools:read.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
        /// Refuse the identity's certificates.
        #[arg(long)]
        disabled: bool,
        /// The identity's own rate limit, RPS or RPS:BURST.
        #[arg(long, value_parser = parse_rate_limit)]
        rate_limit: Option<crate::pb::RateLimit>,
    },
    /// List identity grants.
    List,
    /// Delete an identity's grant and (unless --no-cascade) revoke every
    /// session it created.
    Delete {
        /// The identity name.
        name: String,
        /// Keep the sessions the identity created.
        #[arg(long)]
        no_cascade: bool,
    },
}

/// `mcp-auth client ...`
#[derive(Clone, Debug, Subcommand)]
pub enum ClientCommand {
    /// Create an OAuth client; its secret, if its method uses one, is
    /// printed once.
    Create {
        /// A label for the client.
        #[arg(long)]
        name: String,
        /// A redirect URI, matched exactly: https, or http on 127.0.0.1,
        /// [::1] or localhost. Repeat for several.
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Vec<String>,
        /// Comma-separated grant types: client_credentials,
        /// authorization_code, refresh_token.
        #[arg(long, value_delimiter = ',', default_value = "client_credentials")]
        grant_types: Vec<String>,
        /// Comma-separated application scopes its tokens may carry.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Comma-separated resources (MCP server URLs) its tokens may be
        /// for; client_credentials needs one.
        #[arg(long, value_delimiter = ',')]
        resources: Vec<String>,
        /// How it authenticates at the token endpoint: client_secret_basic,
        /// client_secret_post, private_key_jwt or none (a public client).
        #[arg(long, default_value = "client_secret_basic")]
        auth_method: String,
        /// A file holding the client's public keys as a JWK Set (for
        /// private_key_jwt).
        #[arg(long, value_name = "PATH")]
        jwks_file: Option<PathBuf>,
        /// A first-party client: its authorizations skip the consent page.
        #[arg(long)]
        skip_consent: bool,
    },
    /// List OAuth clients (never their secrets).
    List,
    /// Show one OAuth client (never its secret).
    Show {
        /// The client id (cli_...).
        client_id: String,
    },
    /// Change an OAuth client: each option given replaces that setting.
    Update {
        /// The client id (cli_...).
        client_id: String,
        /// A new label.
        #[arg(long)]
        name: Option<String>,
        /// Replace the redirect URIs (repeat for several; one empty value
        /// removes them all).
        #[arg(long = "redirect-uri", value_name = "URI")]
        redirect_uris: Option<Vec<String>>,
        /// Replace the grant types (comma-separated).
        #[arg(long, value_delimiter = ',')]
        grant_types: Option<Vec<String>>,
        /// Replace the allowed scopes (comma-separated).
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        /// Replace the allowed resources (comma-separated; an empty value
        /// removes them all).
        #[arg(long, value_delimiter = ',')]
        resources: Option<Vec<String>>,
        /// A new authentication method; moving to a secret method gives
        /// the client a secret, printed once.
        #[arg(long)]
        auth_method: Option<String>,
        /// Replace the JWK Set with the one in this file.
        #[arg(long, value_name = "PATH", conflicts_with = "no_jwks")]
        jwks_file: Option<PathBuf>,
        /// Remove the JWK Set.
        #[arg(long)]
        no_jwks: bool,
        /// Disable the client: its tokens verify as revoked at once.
        #[arg(long, conflicts_with = "enabled")]
        disabled: bool,
        /// Enable the client again (its tokens issued until now stay
        /// revoked).
        #[arg(long)]
        enabled: bool,
        /// Whether its authorizations skip the consent page (first-party):
        /// true or false.
        #[arg(long, value_name = "BOOL")]
        skip_consent: Option<bool>,
    },
    /// Give an OAuth client a new secret; the old one works for
    /// --grace-seconds.
    RotateSecret {
        /// The client id (cli_...).
        client_id: String,
        /// How long the old secret keeps working.
        #[arg(long, default_value_t = 0)]
        grace_seconds: u32,
    },
    /// Delete an OAuth client: its tokens verify as revoked at once and
    /// its sessions are revoked.
    Delete {
        /// The client id (cli_...).
        client_id: String,
    },
}

/// `mcp-auth user ...`: a user is named by its id (usr_...) or its
/// username.
#[derive(Clone, Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user. Asks for the password twice on the terminal, without
    /// echo, or reads it with --password-stdin.
    Add {
        /// 1 to 64 characters of a-z 0-9 . _ - @ (upper case is lowered).
        username: String,
        /// Read the password as one line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users (never their passwords).
    List,
    /// Show one user.
    Show {
        /// The user id (usr_...) or username.
        user: String,
    },
    /// Set a user's password. Asks for it twice on the terminal, without
    /// echo, or reads it with --password-stdin.
    Passwd {
        /// The user id (usr_...) or username.
        user: String,
        /// Read the password as one line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user: they can no longer sign in.
    Disable {
        /// The user id (usr_...) or username.
        user: String,
    },
    /// Enable a disabled user again.
    Enable {
        /// The user id (usr_...) or username.
        user: String,
    },
    /// Delete a user; the username is free again.
    Delete {
        /// The user id (usr_...) or username.
        user: String,
    },
    /// List the consents a user remembered on the consent page.
    Consents {
        /// The user id (usr_...) or username.
        user: String,
    },
    /// Withdraw a user's consent to a client; that client's sessions for
    /// the user are revoked.
    RevokeConsent {
        /// The user id (usr_...) or username.
        user: String,
        /// The client id.
        client_id: String,
    },
}

/// `mcp-auth key ...`
#[derive(Clone, Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key; its secret is printed once.
    Create {
        /// A label for the key.
        #[arg(long)]
        name: String,
        /// Comma-separated scopes, e.g. sessions:create,tools:read.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Expire the key after this many seconds (default: never).
        #[arg(long)]
        expires_in: Option<u64>,
        /// The key's own rate limit, RPS or RPS:BURST (default: the server's).
        #[arg(long, value_parser = parse_rate_limit)]
        rate_limit: Option<crate::pb::RateLimit>,
    },
    /// List API keys (never their secrets).
    List,
    /// Show one API key (never its secret).
    Show {
        /// The key id (key_...).
        key_id: String,
    },
    /// Revoke an API key and (unless --no-cascade) every session it
    /// created; it stops working at once.
    Revoke {
        /// The key id (key_...).
        key_id: String,
        /// Keep the sessions the key created.
        #[arg(long)]
        no_cascade: bool,
    },
    /// Change an API key's rate limit.
    Update {
        /// The key id (key_...).
        key_id: String,
        /// The key's own rate limit, RPS or RPS:BURST; omitted means the
        /// server default.
        #[arg(long, value_parser = parse_rate_limit)]
        rate_limit: Option<crate::pb::RateLimit>,
    },
    /// Give an API key a new secret; the old one works for --grace-seconds.
    Rotate {
        /// The key id (key_...).
        key_id: String,
        /// How long the old secret keeps working.
        #[arg(long, default_value_t = 0)]
        grace_seconds: u32,
    },
}

/// `mcp-auth session ...`
#[derive(Clone, Debug, Subcommand)]
pub enum SessionCommand {
    /// Create a session for a user and print its access token.
    Create {
        /// The user the token is for.
        #[arg(long)]
        subject: String,
        /// Comma-separated application scopes, e.g. tools:read.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// The MCP server the token is for (becomes `aud`).
        #[arg(long)]
        audience: String,
        /// Token lifetime in seconds; 0 asks for the server's default.
        #[arg(long, default_value_t = 0)]
        ttl_seconds: u32,
        /// Session lifetime in seconds (how long it can be refreshed); 0
        /// asks for the server's maximum.
        #[arg(long, default_value_t = 0)]
        session_lifetime_seconds: u32,
    },
    /// Exchange a refresh token for a new access token and refresh token.
    /// Needs no API key.
    Refresh {
        /// The refresh token; `-` or omitted reads it from standard input.
        refresh_token: Option<String>,
        /// Comma-separated subset of the session's scopes for the new token.
        #[arg(long, value_delimiter = ',')]
        scopes: Vec<String>,
    },
    /// List sessions (an admin sees all; others see the ones they created).
    List {
        /// Only this subject's sessions.
        #[arg(long, default_value = "")]
        subject: String,
        /// Only sessions created by this key id or identity.
        #[arg(long, default_value = "")]
        client_id: String,
    },
    /// Revoke every session of a subject you may see ("log out everywhere").
    RevokeAll {
        /// The subject.
        #[arg(long)]
        subject: String,
    },
    /// Show one session (never its tokens).
    Show {
        /// The session id (ses_...).
        session_id: String,
    },
    /// Revoke a session; its tokens stop verifying.
    Revoke {
        /// The session id (ses_...).
        session_id: String,
    },
}

/// `mcp-auth token ...`
#[derive(Clone, Debug, Subcommand)]
pub enum TokenCommand {
    /// Verify an access token. Exit status 0 if active, 3 if not.
    #[command(group(clap::ArgGroup::new("aud").required(true).args(["audience", "any_audience"])))]
    Verify {
        /// The token; `-` or omitted reads it from standard input.
        token: Option<String>,
        /// Require this audience (the MCP server's URL): a token for
        /// another server is not active.
        #[arg(long)]
        audience: Option<String>,
        /// Accept a token for any audience (only for debugging: an MCP
        /// server must check that a token is meant for it).
        #[arg(long)]
        any_audience: bool,
        /// Comma-separated scopes the token must carry.
        #[arg(long, value_delimiter = ',')]
        required_scopes: Vec<String>,
    },
    /// Follow the revocation stream (WatchRevocations): the snapshot, then
    /// each revocation as it happens, one line each, until interrupted.
    Watch {
        /// Stop after this many revocations (0: never).
        #[arg(long, default_value_t = 0)]
        count: u64,
    },
}

/// Writes command output to stdout, ignoring a reader that closed the pipe.
pub(crate) fn emit(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(err) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if err.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: writing output: {err}");
        }
    }
}

/// Parses `RPS` or `RPS:BURST` (burst defaults to twice the rate).
fn parse_rate_limit(s: &str) -> Result<crate::pb::RateLimit, String> {
    let (rps, burst) = match s.split_once(':') {
        Some((r, b)) => (r, Some(b)),
        None => (s, None),
    };
    let rps: u32 = rps
        .parse()
        .map_err(|_| "expected RPS or RPS:BURST".to_owned())?;
    let burst: u32 = match burst {
        Some(b) => b
            .parse()
            .map_err(|_| "expected RPS or RPS:BURST".to_owned())?,
        None => rps.saturating_mul(2),
    };
    Ok(crate::pb::RateLimit {
        requests_per_second: rps,
        burst,
    })
}

/// How often a client command's call is retried after `RATE_LIMITED`.
const RATE_LIMIT_RETRIES: u32 = 3;
/// The longest `retry-after` a client command waits out by itself.
const MAX_RETRY_WAIT_SECS: u64 = 60;

/// What client commands do on `RATE_LIMITED`: wait the server's
/// `retry-after` and try again, a few times, saying so on stderr.
fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        retries: RATE_LIMIT_RETRIES,
        max_wait: Duration::from_secs(MAX_RETRY_WAIT_SECS),
        on_wait: Some(|wait| eprintln!("rate limited; retrying in {} s", wait.as_secs())),
    }
}

impl GlobalOpts {
    /// How command output is printed.
    fn output(&self) -> Output {
        Output::new(self.json, self.field.clone())
    }

    /// How to connect, sending the API key from `MCP_AUTH_API_KEY` if
    /// `with_api_key` (and no client certificate authenticates instead).
    fn connect_options(&self, with_api_key: bool) -> Result<ConnectOptions, CliError> {
        let api_key = if with_api_key && self.cert.is_none() {
            let key = std::env::var(API_KEY_ENV).map_err(|_| {
                CliError::Usage(format!(
                    "set {API_KEY_ENV} to an API key, e.g. export {API_KEY_ENV}=$(cat data/primary.key)"
                ))
            })?;
            Some(key.trim().to_owned())
        } else {
            None
        };
        Ok(ConnectOptions {
            server: self.server.clone(),
            ca: self.ca.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            api_key,
            plaintext: false,
        })
    }

    /// A client sending the API key from `MCP_AUTH_API_KEY`, or no key
    /// when a client certificate authenticates instead.
    async fn client(&self) -> Result<Client, CliError> {
        connect(&self.connect_options(true)?).await
    }

    /// A client sending no API key, for the calls that need none.
    async fn anonymous_client(&self) -> Result<Client, CliError> {
        connect(&self.connect_options(false)?).await
    }
}

/// Connects as client commands do, with their answer to `RATE_LIMITED`.
async fn connect(options: &ConnectOptions) -> Result<Client, CliError> {
    Ok(Client::connect(options).await?.with_retry(retry_policy()))
}

/// `value`, or standard input when it is `None` or `-`.
fn arg_or_stdin(value: Option<String>, what: &str) -> Result<String, CliError> {
    match value.as_deref() {
        None | Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|source| CliError::Io {
                    context: format!("reading {what} from standard input"),
                    source,
                })?;
            Ok(s.trim().to_owned())
        }
        Some(t) => Ok(t.to_owned()),
    }
}

/// Runs a parsed command line; returns the process exit status. A client
/// command's call refused with `RATE_LIMITED` waits the server's
/// `retry-after` and tries again, a few times.
///
/// # Errors
/// The command failed; the error says why.
pub async fn run(cli: Cli) -> Result<u8, CliError> {
    let opts = &cli.global;
    let out = opts.output();
    match cli.command {
        Command::Serve(args) => serve::run(*args).await.map(|()| 0).map_err(CliError::from),
        Command::Key(cmd) => key::run(cmd, opts, &out).await,
        Command::Session(cmd) => session::run(cmd, opts, &out).await,
        Command::Token(cmd) => token::run(cmd, opts, &out).await,
        Command::Jwks => token::jwks(opts, &out).await,
        Command::Whoami => whoami::run(opts, &out).await,
        Command::Status => status::run(opts, &out).await,
        Command::Cert(cmd) => cert::run(cmd, opts, &out).await,
        Command::Identity(cmd) => identity::run(cmd, opts, &out).await,
        Command::Client(cmd) => client::run(cmd, opts, &out).await,
        Command::User(cmd) => user::run(cmd, opts, &out).await,
        Command::SigningKey(cmd) => signing_key::run(cmd, opts, &out).await,
        Command::Audit(cmd) => audit::run(cmd, opts, &out).await,
        Command::Bench(args) => bench::run(args, opts).await,
        Command::Store(cmd) => store::run(cmd, opts, &out).await,
        Command::RecoverAdmin { data_dir } => {
            let (key_id, secret) =
                crate::server::recover_admin_key(&data_dir, &crate::Clock::system()).await?;
            #[derive(serde::Serialize)]
            struct Recovered<'a> {
                key_id: &'a str,
                secret: &'a str,
            }
            let shown = Recovered {
                key_id: &key_id,
                secret: secret.expose(),
            };
            out.print(&shown, |r| {
                outln!(
                    "Created admin key {}. Its secret is shown only this once:",
                    r.key_id
                );
                outln!();
                outln!("    {}", r.secret);
                outln!();
            })?;
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_options_go_before_or_after_the_subcommand() {
        for args in [
            &[
                "mcp-auth",
                "--json",
                "--server",
                "https://a:1",
                "key",
                "list",
            ][..],
            &[
                "mcp-auth",
                "key",
                "list",
                "--json",
                "--server",
                "https://a:1",
            ][..],
            &[
                "mcp-auth",
                "key",
                "--server",
                "https://a:1",
                "list",
                "--json",
            ][..],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            assert!(cli.global.json, "{args:?}");
            assert_eq!(cli.global.server, "https://a:1", "{args:?}");
        }
    }

    #[test]
    fn token_verify_needs_an_audience_or_any_audience() {
        let err = Cli::try_parse_from(["mcp-auth", "token", "verify", "t"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
        let err = Cli::try_parse_from([
            "mcp-auth",
            "token",
            "verify",
            "t",
            "--audience",
            "https://a",
            "--any-audience",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
        assert!(Cli::try_parse_from(["mcp-auth", "token", "verify", "--any-audience"]).is_ok());
    }

    #[test]
    fn client_flags_repeat_and_split() {
        let cli = Cli::try_parse_from([
            "mcp-auth",
            "client",
            "create",
            "--name",
            "x",
            "--scopes",
            "a,b",
            "--redirect-uri",
            "https://a/cb",
            "--redirect-uri",
            "https://b/cb",
        ])
        .unwrap();
        match cli.command {
            Command::Client(ClientCommand::Create {
                redirect_uris,
                grant_types,
                auth_method,
                ..
            }) => {
                assert_eq!(redirect_uris, ["https://a/cb", "https://b/cb"]);
                assert_eq!(grant_types, ["client_credentials"]);
                assert_eq!(auth_method, "client_secret_basic");
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = Cli::try_parse_from([
            "mcp-auth",
            "client",
            "update",
            "cli_x",
            "--disabled",
            "--enabled",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn scopes_split_on_commas() {
        let cli = Cli::try_parse_from([
            "mcp-auth", "key", "create", "--name", "x", "--scopes", "a,b",
        ])
        .unwrap();
        match cli.command {
            Command::Key(KeyCommand::Create { scopes, .. }) => assert_eq!(scopes, ["a", "b"]),
            other => panic!("unexpected {other:?}"),
        }
    }
}
