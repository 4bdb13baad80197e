//! Opening the data directory, serving gRPC, and shutting down gracefully.
//!
//! [`Server::open`] prepares everything that can fail before a port is
//! served: TLS material, the store, the signing key ring, the revocation
//! index and, on an empty data directory, the primary API key.
//! [`Server::serve`] then runs on a listener the caller bound, until the
//! shutdown future resolves; in-flight RPCs get the configured grace period
//! to finish, and storage is flushed before it returns.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::audit::AuditLog;
use crate::auth::{Authenticator, IdentityIndex};
use crate::auth::{REQUEST_ID_HEADER, is_usable_request_id};
use crate::clock::Clock;
use crate::config::{ClientCa, Config, TlsMode};
use crate::error::Error;
use crate::limits::Limits;
use crate::maintenance::Maintenance;
use crate::pb;
use crate::secret::Secret;
use crate::service::State;
use crate::service::api_key::{ApiKeyService, create_admin_key};
use crate::service::audit::AuditService;
use crate::service::identity::IdentityService;
use crate::service::key::KeyService;
use crate::service::token::TokenService;
use crate::store::Store;
use crate::tls;
use crate::token::{KeyRing, RevocationIndex, TokenIssuer};

/// File in the data directory holding the primary API key's secret.
pub const PRIMARY_KEY_FILE: &str = "primary.key";

/// Creates a new key with scope `admin` directly in the data directory of a
/// stopped server, for when every admin key is lost or revoked. Returns the
/// key id and the secret, which is not written anywhere.
///
/// # Errors
/// The database cannot be opened (for instance because a server is running
/// on it) or written.
pub async fn recover_admin_key(
    data_dir: &std::path::Path,
    clock: &Clock,
) -> Result<(String, Secret), Error> {
    if !data_dir.join("db").exists() {
        return Err(Error::io(
            format!("opening {}", data_dir.display()),
            std::io::Error::new(std::io::ErrorKind::NotFound, "no mcp-auth database here"),
        ));
    }
    let store = Store::open(data_dir)?;
    let name = format!("recovery-{}", clock.now());
    let created = create_admin_key(&store, clock, &name).await?;
    AuditLog::open(store.clone(), clock.clone())?
        .record(crate::audit::AuditEvent {
            actor: "offline-recovery",
            action: "api_key.created",
            target: &format!("{} ({name})", created.0),
            outcome: "ok",
            request_id: "",
        })
        .await?;
    tracing::warn!(key_id = %created.0, "created a recovery admin key offline");
    Ok(created)
}

/// A server ready to serve: storage open, keys loaded.
pub struct Server {
    state: Arc<State>,
    tls: Option<ServerTlsConfig>,
    config: Config,
    primary_key: Option<Secret>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("data_dir", &self.config.data_dir)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Opens the data directory named by `config`, creating what a first
    /// start needs: the directory (mode 0700), development TLS material if
    /// no certificate is configured, a signing key, and the primary API key
    /// (scope `admin`, secret written to `<data-dir>/primary.key`, mode
    /// 0600).
    ///
    /// # Errors
    /// The data directory, TLS files or storage cannot be used.
    pub async fn open(config: Config, clock: Clock) -> Result<Self, Error> {
        let data_dir = &config.data_dir;
        tls::create_private_dir(data_dir)?;
        let tls_dir = data_dir.join("tls");
        let tls = match &config.tls {
            TlsMode::Generated => Some(tls::ensure_dev_certificates(&tls_dir)?),
            TlsMode::Files { cert, key } => Some(tls::load(cert, key)?),
            TlsMode::Plaintext => None,
        }
        .map(|ck| ServerTlsConfig::new().identity(Identity::from_pem(ck.cert_pem, ck.key_pem)));
        // Client certificates are optional at the handshake: callers
        // without one authenticate with an API key instead.
        let tls = match (tls, &config.client_ca) {
            (Some(tls), Some(ca)) => {
                let path = match ca {
                    ClientCa::Generated => tls_dir.join(tls::CA_CERT_FILE),
                    ClientCa::File(path) => path.clone(),
                };
                let pem = std::fs::read(&path)
                    .map_err(|e| Error::io(format!("reading client CA {}", path.display()), e))?;
                Some(
                    tls.client_ca_root(Certificate::from_pem(pem))
                        .client_auth_optional(true),
                )
            }
            (tls, _) => tls,
        };

        let mut store = Store::open(data_dir)?;
        if config.unsafe_no_fsync {
            store.acknowledge_before_flush();
        }
        let ring = KeyRing::load_or_create(&store, config.signing_alg, clock.now()).await?;
        let revocations = RevocationIndex::load(&store)?;
        let identities = Arc::new(IdentityIndex::load(&store)?);
        let audit = Arc::new(AuditLog::open(store.clone(), clock.clone())?);
        let limits = Arc::new(Limits::new(
            clock.clone(),
            config.default_rate_limit,
            config.auth_failures_per_minute,
        ));
        let state = Arc::new(State {
            auth: Authenticator::new(
                store.clone(),
                clock.clone(),
                identities.clone(),
                config.trust_domain.clone(),
                limits.clone(),
                audit.clone(),
            ),
            limits,
            audit,
            identities,
            trust_domain: config.trust_domain.clone(),
            tokens: TokenIssuer::new(ring, config.issuer.clone(), config.signing_alg),
            revocations,
            default_ttl: config.default_token_ttl,
            max_ttl: config.max_token_ttl,
            max_session_lifetime: config.max_session_lifetime,
            session_idle_timeout: config.session_idle_timeout,
            refresh_reuse_grace: config.refresh_reuse_grace,
            store,
            clock,
        });

        let primary_key = if state.store.has_api_keys()? {
            None
        } else {
            let (key_id, secret) = create_admin_key(&state.store, &state.clock, "primary").await?;
            state
                .audit_ok(
                    "",
                    "system",
                    "api_key.created",
                    &format!("{key_id} (primary)"),
                )
                .await?;
            let path = data_dir.join(PRIMARY_KEY_FILE);
            tls::write_private(&path, format!("{}\n", secret.expose()).as_bytes())?;
            Some(secret)
        };
        Ok(Server {
            state,
            tls,
            config,
            primary_key,
        })
    }

    /// The primary API key's secret, if [`Server::open`] created it just
    /// now (first start on an empty data directory); `None` afterwards.
    pub fn new_primary_key(&self) -> Option<&Secret> {
        self.primary_key.as_ref()
    }

    /// Where the primary key's secret was written.
    pub fn primary_key_path(&self) -> PathBuf {
        self.config.data_dir.join(PRIMARY_KEY_FILE)
    }

    /// A handle that runs maintenance passes against this server's state
    /// (the server also runs them on its own schedule while serving).
    pub fn maintenance(&self) -> Maintenance {
        Maintenance::new(self.state.clone(), &self.config)
    }

    /// Whether the server speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves gRPC on `listener` until `shutdown` resolves, then lets
    /// in-flight RPCs finish within the grace period and flushes storage.
    ///
    /// Served: `TokenService`, `ApiKeyService`, `IdentityService`, `KeyService`,
    /// `grpc.health.v1.Health` and server reflection.
    ///
    /// # Errors
    /// TLS configuration or the transport failed, or the final flush did.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let Server {
            state,
            tls,
            config,
            primary_key: _,
        } = self;
        let store = state.store.clone();
        let maintenance = Maintenance::new(state.clone(), &config);
        let (stop_maintenance, maintenance_task) =
            spawn_maintenance(maintenance, config.maintenance_interval);

        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<pb::token_service_server::TokenServiceServer<TokenService>>()
            .await;
        health
            .set_serving::<pb::api_key_service_server::ApiKeyServiceServer<ApiKeyService>>()
            .await;
        health
            .set_serving::<pb::identity_service_server::IdentityServiceServer<IdentityService>>()
            .await;
        health
            .set_serving::<pb::key_service_server::KeyServiceServer<KeyService>>()
            .await;
        health
            .set_serving::<pb::audit_service_server::AuditServiceServer<AuditService>>()
            .await;
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_err = |e| Error::io("building reflection service", std::io::Error::other(e));
        let reflection_v1 = reflection().build_v1().map_err(reflection_err)?;
        let reflection_v1alpha = reflection().build_v1alpha().map_err(reflection_err)?;

        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls)?;
        }
        let router = builder
            .layer(tower::util::MapRequestLayer::new(ensure_request_id))
            .layer(rpc_trace_layer())
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(pb::token_service_server::TokenServiceServer::new(
                TokenService::new(state.clone()),
            ))
            .add_service(pb::api_key_service_server::ApiKeyServiceServer::new(
                ApiKeyService::new(state.clone()),
            ))
            .add_service(pb::identity_service_server::IdentityServiceServer::new(
                IdentityService::new(state.clone()),
            ))
            .add_service(pb::key_service_server::KeyServiceServer::new(
                KeyService::new(state.clone()),
            ))
            .add_service(pb::audit_service_server::AuditServiceServer::new(
                AuditService::new(state),
            ));

        let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight requests");
            let _ = stopping_tx.send(());
        };
        // TCP_NODELAY: without it, Nagle's algorithm and the client's
        // delayed ACK hold small responses back by ~40 ms.
        let incoming = TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(std::time::Duration::from_secs(60)));
        let serving = router.serve_with_incoming_shutdown(incoming, signal);
        let grace = config.shutdown_grace;
        let deadline = async move {
            if stopping_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let result = tokio::select! {
            r = serving => r.map_err(Error::from),
            () = deadline => {
                tracing::warn!(grace_seconds = grace.as_secs(), "grace period over; dropping unfinished requests");
                Ok(())
            }
        };
        let _ = stop_maintenance.send(true);
        match tokio::time::timeout(grace, maintenance_task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(task = "maintenance", cause = %e, "background task failed")
            }
            Err(_) => tracing::warn!(task = "maintenance", "background task did not stop in time"),
        }
        store.flush().await?;
        tracing::info!("stopped");
        result
    }
}

/// Runs `maintenance` every `period` until told to stop.
fn spawn_maintenance(
    maintenance: Maintenance,
    period: std::time::Duration,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        // The first pass runs one period after start, not at once.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(err) = maintenance.run_once().await {
                        tracing::warn!(cause = %err, "maintenance pass failed; retrying next period");
                    }
                }
                _ = stopped.changed() => break,
            }
        }
    });
    (stop, task)
}

/// Gives every request an `x-request-id`: the caller's if usable, else a
/// fresh random one, so logs and audit records of one RPC share it.
fn ensure_request_id<B>(
    mut req: tonic::codegen::http::Request<B>,
) -> tonic::codegen::http::Request<B> {
    let usable = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .is_some_and(|v| is_usable_request_id(v.as_bytes()));
    if !usable {
        let mut id = [0u8; 16];
        if crate::secret::fill_base62(&mut id).is_ok() {
            if let Ok(value) = tonic::codegen::http::HeaderValue::from_bytes(&id) {
                req.headers_mut().insert(REQUEST_ID_HEADER, value);
            }
        }
    }
    req
}

/// One span per RPC (method, request id, caller) and one `rpc finished`
/// line with the gRPC status and the latency.
fn rpc_trace_layer() -> tower_http::trace::TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::GrpcErrorsAsFailures>,
    impl tower_http::trace::MakeSpan<tonic::body::Body> + Clone,
    (),
    impl tower_http::trace::OnResponse<tonic::body::Body> + Clone,
    (),
    impl tower_http::trace::OnEos + Clone,
    impl tower_http::trace::OnFailure<tower_http::classify::GrpcFailureClass> + Clone,
> {
    use tonic::codegen::http;
    tower_http::trace::TraceLayer::new_for_grpc()
        .make_span_with(|req: &http::Request<tonic::body::Body>| {
            let request_id = req
                .headers()
                .get(REQUEST_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            tracing::info_span!(
                "rpc",
                method = %req.uri().path(),
                request_id = %request_id,
                caller = tracing::field::Empty,
            )
        })
        .on_request(())
        .on_body_chunk(())
        // Refusals come as trailers-only responses: the status is in the
        // headers. Successful calls carry it in the trailers.
        .on_response(
            |res: &http::Response<tonic::body::Body>, latency: Duration, span: &tracing::Span| {
                if let Some(status) = res.headers().get("grpc-status") {
                    finished(span, status.to_str().unwrap_or("?"), latency);
                }
            },
        )
        .on_eos(
            |trailers: Option<&http::HeaderMap>, latency: Duration, span: &tracing::Span| {
                if let Some(status) = trailers.and_then(|t| t.get("grpc-status")) {
                    finished(span, status.to_str().unwrap_or("?"), latency);
                }
            },
        )
        .on_failure(|_: tower_http::classify::GrpcFailureClass, _: Duration, _: &tracing::Span| {})
}

fn finished(span: &tracing::Span, grpc_status: &str, latency: Duration) {
    let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    // The code's name is written straight into the log line (no String).
    match grpc_status.parse::<i32>().map(tonic::Code::from) {
        Ok(code) => tracing::info!(parent: span, outcome = ?code, latency_us, "rpc finished"),
        Err(_) => tracing::info!(parent: span, outcome = %grpc_status, latency_us, "rpc finished"),
    }
}
