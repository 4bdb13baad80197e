//! The shared harness: start, restart and stop a real server, and build
//! clients and authenticated requests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;

use mcp_auth::config::TlsMode;
use mcp_auth::grpc::client::{Client, RetryPolicy};
use mcp_auth::pb::api_key_service_client::ApiKeyServiceClient;
use mcp_auth::pb::token_service_client::TokenServiceClient;
use mcp_auth::store::Location;
use mcp_auth::{Clock, Config, Listeners, Server, pb};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};
use tonic_types::StatusExt;

/// The key-ring key file the harness makes in the data directory of a
/// server on PostgreSQL.
pub const STORE_KEY_FILE: &str = "store.key";

/// A running server with its data directory and clock.
pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub clock: Clock,
    pub config: Config,
    /// The primary (admin) key's secret.
    pub primary: String,
    /// Whether opening the data directory created the primary key.
    pub created_primary: bool,
    pub addr: std::net::SocketAddr,
    /// The HTTP listener's address.
    pub http_addr: std::net::SocketAddr,
    /// The metrics listener's address (plain HTTP), unless the test
    /// turned it off (`metrics_listen = None`).
    pub metrics_addr: Option<std::net::SocketAddr>,
    maintenance: Option<mcp_auth::core::maintenance::Maintenance>,
    core: Option<std::sync::Arc<mcp_auth::core::Core>>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), mcp_auth::Error>>>,
}

impl TestServer {
    /// A fresh server with default settings and a manual clock set to now.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A fresh server whose config `tweak` adjusts.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let s = Self::start_in(dir, tweak).await;
        assert!(
            s.created_primary,
            "a fresh data dir creates the primary key"
        );
        s
    }

    /// A server on an existing data directory (for instance one that a
    /// killed process left behind).
    pub async fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_on(dir, tweak, Clock::manual(Clock::system().now()), None).await
    }

    /// A fresh server whose issuer is its own HTTP listener's URL,
    /// `https://127.0.0.1:PORT`, so that a client following the
    /// metadata's endpoints (an OAuth library) reaches it. The listener is
    /// bound before the config is made; a restart binds another port, so
    /// the issuer no longer names it.
    pub async fn start_reachable_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = http.local_addr().unwrap().port();
        Self::start_on(
            tempfile::tempdir().unwrap(),
            |c| {
                c.issuer = format!("https://127.0.0.1:{port}");
                tweak(c);
            },
            Clock::manual(Clock::system().now()),
            Some(http),
        )
        .await
    }

    /// A fresh server on the system clock, for what a person does in real
    /// time (a walk-through that waits for a rate limit to refill).
    pub async fn start_real_time() -> Self {
        Self::start_on(tempfile::tempdir().unwrap(), |_| {}, Clock::system(), None).await
    }

    async fn start_on(
        dir: tempfile::TempDir,
        tweak: impl FnOnce(&mut Config),
        clock: Clock,
        http: Option<TcpListener>,
    ) -> Self {
        let mut config = Config::for_test(dir.path()).unwrap();
        tweak(&mut config);
        // A server on PostgreSQL seals its signing keys with a key-ring
        // key: unless the test names one, `store.key` in its data
        // directory, made on first start (a second replica on the same
        // database copies the first's).
        if matches!(config.store, Location::Postgres(_)) && config.store_key_file.is_none() {
            let path = dir.path().join(STORE_KEY_FILE);
            if !path.exists() {
                mcp_auth::store::ring_key::keygen(&path, false).unwrap();
            }
            config.store_key_file = Some(path);
        }
        let (server, created) = open(&config, &clock).await;
        let created_primary = created.is_some();
        let primary = created.unwrap_or_else(|| {
            std::fs::read_to_string(dir.path().join("primary.key"))
                .unwrap()
                .trim()
                .to_owned()
        });
        let mut s = TestServer {
            dir,
            clock,
            config,
            primary,
            created_primary,
            addr: "127.0.0.1:0".parse().unwrap(),
            http_addr: "127.0.0.1:0".parse().unwrap(),
            metrics_addr: None,
            maintenance: None,
            core: None,
            shutdown: None,
            task: None,
        };
        s.spawn(server, http).await;
        s
    }

    /// Runs one maintenance pass now, at the test clock's time.
    pub async fn maintain(&self) -> mcp_auth::core::maintenance::MaintenanceReport {
        self.maintenance.as_ref().unwrap().run_once().await.unwrap()
    }

    /// The running server's core, for what has no RPC yet (authenticating
    /// an OAuth client, as the token endpoint will).
    pub fn core(&self) -> std::sync::Arc<mcp_auth::core::Core> {
        self.core.clone().unwrap()
    }

    async fn spawn(&mut self, server: Server, http: Option<TcpListener>) {
        self.maintenance = Some(server.maintenance());
        self.core = Some(server.core());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let http = match http {
            Some(bound) => bound,
            None => TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        self.http_addr = http.local_addr().unwrap();
        // The metrics listener as the config says: on (a port of its
        // own) unless the test turned it off.
        let metrics = match self.config.metrics_listen {
            Some(_) => Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
            None => None,
        };
        self.metrics_addr = metrics.as_ref().map(|l| l.local_addr().unwrap());
        let (tx, rx) = oneshot::channel();
        self.shutdown = Some(tx);
        let listeners = Listeners {
            grpc: listener,
            http: Some(http),
            metrics,
        };
        self.task = Some(tokio::spawn(server.serve_with(listeners, async {
            let _ = rx.await;
        })));
    }

    /// Sends shutdown without waiting for the server to stop (then
    /// [`TestServer::stop`] waits).
    pub fn begin_stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Whether the server's task has ended (after [`TestServer::begin_stop`]).
    pub fn has_stopped(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Sends shutdown and waits for the server to stop; it must stop cleanly.
    pub async fn stop(&mut self) {
        // The handles share the server's state, and so its open database.
        self.maintenance = None;
        self.core = None;
        self.begin_stop();
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    /// Stops the server and opens the same data directory again (same
    /// clock, new port). Returns what `Server::open` said about the primary
    /// key, which must be nothing on a restart.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.start_again().await;
    }

    /// Opens the data directory again after [`TestServer::stop`].
    pub async fn start_again(&mut self) {
        let (server, primary) = open(&self.config, &self.clock).await;
        assert!(
            primary.is_none(),
            "a restart must not create another primary key"
        );
        self.spawn(server, None).await;
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("tls").join("ca.pem")
    }

    pub fn url(&self) -> String {
        let scheme = match self.config.tls {
            TlsMode::Plaintext => "http",
            _ => "https",
        };
        format!("{scheme}://127.0.0.1:{}", self.addr.port())
    }

    /// The HTTP listener's base URL, `https://127.0.0.1:PORT` (`http://`
    /// for a plaintext server).
    pub fn http_url(&self) -> String {
        let scheme = match self.config.tls {
            TlsMode::Plaintext => "http",
            _ => "https",
        };
        format!("{scheme}://127.0.0.1:{}", self.http_addr.port())
    }

    /// The metrics listener's base URL, `http://127.0.0.1:PORT` (plain
    /// HTTP); an unreachable one when it is off.
    pub fn metrics_url(&self) -> String {
        match self.metrics_addr {
            Some(addr) => format!("http://{addr}"),
            None => "http://127.0.0.1:9".to_owned(),
        }
    }

    /// A real HTTP client (reqwest on rustls) that trusts the server's
    /// development CA, and nothing else.
    pub fn http_client(&self) -> reqwest::Client {
        http_client_trusting(&self.ca_path())
    }

    /// A channel to the server: TLS trusting the server's development CA,
    /// or h2c for a plaintext server.
    pub async fn channel(&self) -> Channel {
        if self.config.tls == TlsMode::Plaintext {
            return Endpoint::from_shared(self.url())
                .unwrap()
                .connect()
                .await
                .unwrap();
        }
        connect(&self.url(), &self.ca_path()).await
    }

    pub async fn tokens(&self) -> TokenServiceClient<Channel> {
        TokenServiceClient::new(self.channel().await)
    }

    pub async fn keys(&self) -> ApiKeyServiceClient<Channel> {
        ApiKeyServiceClient::new(self.channel().await)
    }

    /// The typed client (the one the CLI and `bench` use), sending `key`;
    /// it never waits out a rate limit, so tests see every refusal.
    pub async fn client(&self, key: &str) -> Client {
        Client::from_channel(self.channel().await, Some(key.to_owned()))
            .unwrap()
            .with_retry(RetryPolicy::never())
    }

    /// Creates an API key with `scopes` using the primary key; returns
    /// (key id, secret).
    pub async fn key_with(&self, scopes: &[&str]) -> (String, String) {
        let resp = self
            .client(&self.primary)
            .await
            .create_api_key(pb::CreateApiKeyRequest {
                name: format!("test {}", scopes.join(" ")),
                scopes: strings(scopes),
                expires_at: 0,
                rate_limit: None,
            })
            .await
            .unwrap();
        (resp.api_key.unwrap().key_id, resp.secret)
    }

    /// Creates a session as `key` for subject `alice`, audience `aud`.
    pub async fn session(&self, key: &str, scopes: &[&str], aud: &str) -> pb::Session {
        self.client(key)
            .await
            .create_session(pb::CreateSessionRequest {
                subject: "alice".to_owned(),
                scopes: strings(scopes),
                audience: aud.to_owned(),
                ttl_seconds: 0,
                session_lifetime_seconds: 0,
            })
            .await
            .unwrap()
    }

    /// Runs `mcp-auth ARGS` against this server with the primary key.
    pub async fn cli_as_admin(&self, args: &[&str]) -> std::process::Output {
        self.cli_command(Some(&self.primary), args)
            .output()
            .await
            .unwrap()
    }

    /// The `mcp-auth` binary with `args`, pointed at this server, with
    /// `key` (if any) in MCP_AUTH_API_KEY and nothing else from the
    /// environment.
    pub fn cli_command(&self, key: Option<&str>, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"));
        cmd.args(args)
            .env_clear()
            .env("MCP_AUTH_SERVER", self.url())
            .env("MCP_AUTH_CA", self.ca_path())
            .stdin(Stdio::null());
        if let Some(key) = key {
            cmd.env("MCP_AUTH_API_KEY", key);
        }
        cmd
    }

    /// Runs the CLI as [`Self::cli_command`] does: (exit code, stdout,
    /// stderr).
    pub async fn cli(&self, key: Option<&str>, args: &[&str]) -> (i32, String, String) {
        let out = self.cli_command(key, args).output().await.unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    /// RefreshSession with `token` alone (no other credential).
    pub async fn refresh(&self, token: &str) -> Result<pb::Session, Status> {
        self.client(&self.primary)
            .await
            .refresh_session(pb::RefreshSessionRequest {
                refresh_token: token.to_owned(),
                scopes: vec![],
            })
            .await
    }

    /// Verifies `token` with a `tokens:verify` key.
    pub async fn verify(&self, verifier: &str, token: &str) -> pb::VerifyTokenResponse {
        self.client(verifier)
            .await
            .verify_token(pb::VerifyTokenRequest {
                token: token.to_owned(),
                audience: String::new(),
                required_scopes: vec![],
                client_address: String::new(),
            })
            .await
            .unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn open(config: &Config, clock: &Clock) -> (Server, Option<String>) {
    let server = Server::open(config.clone(), clock.clone()).await.unwrap();
    let primary = server.new_primary_key().map(|s| s.expose().to_owned());
    (server, primary)
}

/// Where a server's HTTP listener is and the CA its TLS chains to: what
/// the HTTP tests' helpers need of a server, whether it runs in this
/// process ([`TestServer`]) or as a process of its own (a replica).
pub trait HttpTarget {
    /// The HTTP listener's base URL.
    fn http_url(&self) -> String;
    /// The CA certificate its TLS chains to.
    fn ca_path(&self) -> PathBuf;
}

impl HttpTarget for TestServer {
    fn http_url(&self) -> String {
        TestServer::http_url(self)
    }

    fn ca_path(&self) -> PathBuf {
        TestServer::ca_path(self)
    }
}

/// A TLS channel to `url` trusting the CA in `ca`.
pub async fn connect(url: &str, ca: &Path) -> Channel {
    let ca = std::fs::read(ca).unwrap();
    Endpoint::from_shared(url.to_owned())
        .unwrap()
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// A reqwest client (rustls) that trusts only the CA in `ca` (when the
/// file exists; a plaintext server has none).
pub fn http_client_trusting(ca: &Path) -> reqwest::Client {
    let mut builder = reqwest::Client::builder();
    if let Ok(pem) = std::fs::read(ca) {
        builder = builder.tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()]);
    }
    builder.build().unwrap()
}

/// A request with `authorization: Bearer <key>`.
pub fn authed<T>(message: T, key: &str) -> Request<T> {
    let mut req = Request::new(message);
    req.metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    req
}

pub fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| (*s).to_owned()).collect()
}

/// Asserts `status` has `code` and an ErrorInfo with `reason` in domain
/// `mcp-auth`; returns the ErrorInfo metadata.
#[track_caller]
pub fn assert_status(
    status: &Status,
    code: tonic::Code,
    reason: &str,
) -> std::collections::HashMap<String, String> {
    assert_eq!(status.code(), code, "{status:?}");
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, "mcp-auth");
    assert_eq!(info.reason, reason, "{status:?}");
    info.metadata
}

/// The token reason of an inactive verification.
pub fn inactive_reason(resp: &pb::VerifyTokenResponse) -> pb::TokenReason {
    assert!(!resp.active, "expected inactive, got {resp:?}");
    assert!(resp.claims.is_none());
    resp.reason()
}

impl TestServer {
    /// RevokeApiKey as `caller`.
    pub async fn revoke_key(&self, caller: &str, key_id: &str) -> Result<pb::ApiKey, Status> {
        let req = pb::RevokeApiKeyRequest {
            key_id: key_id.to_owned(),
            cascade: None,
        };
        let resp = self.client(caller).await.revoke_api_key(req).await?;
        Ok(resp.api_key.unwrap())
    }

    /// RotateApiKey as `caller`.
    pub async fn rotate_key(
        &self,
        caller: &str,
        key_id: &str,
        grace_seconds: u32,
    ) -> Result<pb::CreateApiKeyResponse, Status> {
        let req = pb::RotateApiKeyRequest {
            key_id: key_id.to_owned(),
            grace_seconds,
        };
        self.client(caller).await.rotate_api_key(req).await
    }

    /// RevokeSession as `caller`.
    pub async fn revoke_session(
        &self,
        caller: &str,
        session_id: &str,
    ) -> Result<pb::RevokeSessionResponse, Status> {
        let req = pb::RevokeSessionRequest {
            session_id: session_id.to_owned(),
        };
        self.client(caller).await.revoke_session(req).await
    }
}

/// A client certificate written to disk.
pub struct ClientCert {
    pub dir: tempfile::TempDir,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub serial: String,
}

impl ClientCert {
    /// Issues a certificate for `name` from the CA in `ca_dir`.
    pub fn issue(ca_dir: &Path, name: &str, valid: ValidFor) -> ClientCert {
        use mcp_auth::ca::{ClientCertRequest, DEFAULT_TRUST_DOMAIN, issue_client_cert};
        let dir = tempfile::tempdir().unwrap();
        let mut req = ClientCertRequest::for_days(name, DEFAULT_TRUST_DOMAIN, 1);
        if let ValidFor::Expired = valid {
            req.not_before -= time::Duration::days(3);
            req.not_after -= time::Duration::days(2);
        }
        let issued = issue_client_cert(ca_dir, dir.path(), &req, false).unwrap();
        ClientCert {
            cert: issued.cert_path,
            key: issued.key_path,
            serial: issued.serial,
            dir,
        }
    }

    fn identity(&self) -> tonic::transport::Identity {
        tonic::transport::Identity::from_pem(
            std::fs::read(&self.cert).unwrap(),
            std::fs::read(&self.key).unwrap(),
        )
    }
}

/// Validity of a test certificate.
pub enum ValidFor {
    Now,
    Expired,
}

impl TestServer {
    /// The server's development CA directory (`ca.pem`, `ca.key`).
    pub fn ca_dir(&self) -> PathBuf {
        self.data_dir().join("tls")
    }

    /// Issues a certificate for `name` from the server's own CA.
    pub fn client_cert(&self, name: &str) -> ClientCert {
        ClientCert::issue(&self.ca_dir(), name, ValidFor::Now)
    }

    /// Connects presenting `cert`. The TLS handshake's verdict on the
    /// certificate shows at the first call, so this only builds the channel.
    pub async fn mtls_channel(
        &self,
        cert: &ClientCert,
    ) -> Result<Channel, tonic::transport::Error> {
        let ca = std::fs::read(self.ca_path()).unwrap();
        Endpoint::from_shared(self.url())
            .unwrap()
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(ca))
                    .identity(cert.identity()),
            )?
            .connect()
            .await
    }

    /// Grants `scopes` to identity `name` (as the primary key).
    pub async fn grant(&self, name: &str, scopes: &[&str], disabled: bool) -> pb::Identity {
        pb::identity_service_client::IdentityServiceClient::new(self.channel().await)
            .set_identity(authed(
                pb::SetIdentityRequest {
                    name: name.to_owned(),
                    scopes: strings(scopes),
                    disabled,
                    rate_limit: None,
                },
                &self.primary,
            ))
            .await
            .unwrap()
            .into_inner()
    }

    /// RevokeCertificate as the primary key.
    pub async fn revoke_cert(&self, serial: &str) -> pb::RevokeCertificateResponse {
        pb::identity_service_client::IdentityServiceClient::new(self.channel().await)
            .revoke_certificate(authed(
                pb::RevokeCertificateRequest {
                    serial: serial.to_owned(),
                },
                &self.primary,
            ))
            .await
            .unwrap()
            .into_inner()
    }
}

/// A CreateSession request for `alice` with no credential metadata.
pub fn bare_session_request(scopes: &[&str]) -> Request<pb::CreateSessionRequest> {
    Request::new(pb::CreateSessionRequest {
        subject: "alice".to_owned(),
        scopes: strings(scopes),
        audience: "aud".to_owned(),
        ttl_seconds: 0,
        session_lifetime_seconds: 0,
    })
}

/// Starts the real `mcp-auth serve` binary on a fresh data directory; returns the child, its
/// URL and the primary key.
pub async fn spawn_binary(dir: &std::path::Path) -> (tokio::process::Child, String, String) {
    let (child, url, _, primary) = spawn_binary_http(dir).await;
    (child, url, primary)
}

/// [`spawn_binary`], also returning the HTTP listener's URL as the server
/// printed it.
pub async fn spawn_binary_http(
    dir: &std::path::Path,
) -> (tokio::process::Child, String, String, String) {
    let s = spawn_binary_with(dir, &[]).await;
    let primary = s
        .primary
        .expect("a fresh data directory gets a primary key");
    (s.child, s.url, s.http_url, primary)
}

/// A real `mcp-auth serve` process.
pub struct Spawned {
    /// The process (killed when dropped).
    pub child: tokio::process::Child,
    /// Its gRPC URL, as it printed it.
    pub url: String,
    /// Its HTTP URL, as it printed it.
    pub http_url: String,
    /// The primary key it wrote, if it created one.
    pub primary: Option<String>,
}

/// Starts the real `mcp-auth serve` binary on data directory `dir` with
/// `extra` arguments, both listeners on `127.0.0.1:0`; returns once it
/// printed both addresses.
pub async fn spawn_binary_with(dir: &std::path::Path, extra: &[&str]) -> Spawned {
    spawn_binary_logging(dir, extra, Some("warn"), None).await
}

/// [`spawn_binary_with`] with `MCP_AUTH_LOG` at `level` (`None`: unset,
/// the default level); with `log`, every line it writes to stderr is sent
/// there (else it goes to the test's stderr).
pub async fn spawn_binary_logging(
    dir: &std::path::Path,
    extra: &[&str],
    level: Option<&str>,
    log: Option<tokio::sync::mpsc::UnboundedSender<String>>,
) -> Spawned {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"));
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(extra)
        .env_clear();
    if let Some(level) = level {
        command.env("MCP_AUTH_LOG", level);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if log.is_some() {
            Stdio::piped()
        } else {
            Stdio::inherit()
        })
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    if let Some(log) = log {
        let mut errors = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = errors.next_line().await {
                if log.send(line).is_err() {
                    break;
                }
            }
        });
    }
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut url, mut http_url) = (None, None);
    while url.is_none() || http_url.is_none() {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("server exited early");
        if let Some(u) = line.strip_prefix("mcp-auth listening on ") {
            url = Some(u.to_owned());
        }
        if let Some(u) = line.strip_prefix("mcp-auth HTTP listening on ") {
            http_url = Some(u.to_owned());
        }
    }
    // Keep reading what it prints, so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let primary = std::fs::read_to_string(dir.join("primary.key"))
        .ok()
        .map(|k| k.trim().to_owned());
    Spawned {
        child,
        url: url.unwrap(),
        http_url: http_url.unwrap(),
        primary,
    }
}

/// Reads until the server closes the connection; how long that took.
pub async fn closed_after(mut tcp: tokio::net::TcpStream) -> std::time::Duration {
    let started = std::time::Instant::now();
    let mut buf = [0u8; 1024];
    let wait = async {
        loop {
            match tokio::io::AsyncReadExt::read(&mut tcp, &mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(5), wait)
        .await
        .expect("the server kept the connection open for 5 s");
    started.elapsed()
}

/// Prints a torture test's figures and keeps them in
/// `target/torture-figures/<name>.txt`, which `.ci/run` prints at the end.
pub fn report_figures(name: &str, figures: &str) {
    eprintln!("{figures}");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("torture-figures");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.txt")), format!("{figures}\n")).unwrap();
}

/// `mcp-auth audit verify` against the server at `url` (CA `ca`) as
/// `key`; asserts the chain verifies.
pub async fn audit_verify(url: &str, ca: &Path, key: &str) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
        .args(["audit", "verify"])
        .env_clear()
        .env("MCP_AUTH_SERVER", url)
        .env("MCP_AUTH_CA", ca)
        .env("MCP_AUTH_API_KEY", key)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "audit verify: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `mcp-auth ARGS` in `dir` with nothing from the environment but
/// `env`: (exit code, stdout, stderr).
pub async fn mcp_auth(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}
