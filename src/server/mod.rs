//! Opening the data directory, serving gRPC and HTTP, and shutting down
//! gracefully.
//!
//! [`Server::open`] prepares everything that can fail before a port is
//! served: TLS material, the store, the signing key ring, the revocation
//! index and, on an empty data directory, the primary API key.
//! [`Server::serve_with`] then runs gRPC and HTTP on listeners the caller
//! bound, sharing one core, until the shutdown future resolves; in-flight
//! requests of both get the configured grace period to finish, and storage
//! is flushed before it returns; open `WatchRevocations` streams end at
//! the signal, so the drain does not wait for them. Connections are
//! bounded on each listener: in number, in the time their TLS handshake
//! may take, and in how long they may stay silent.
//!
//! At the signal, before the drain, the server stops being ready: `/readyz`
//! answers 503 and every gRPC health status turns `NOT_SERVING`, so load
//! balancers send nothing new. The metrics listener (`metrics_listener`)
//! serves its probes and `/metrics` through the drain, until the server
//! stops; every RPC is counted and timed for the metrics (`rpc_metrics`).

mod conn;
mod error;
mod http_listener;
mod layers;
mod metrics_listener;
mod rpc_metrics;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

pub use self::error::Error;
use self::layers::{RpcLogLayer, ensure_request_id};
use self::rpc_metrics::RpcMetricsLayer;
use crate::clock::Clock;
use crate::config::{ClientCa, Config, TlsMode};
use crate::core::Core;
use crate::core::maintenance::Maintenance;
use crate::grpc::admin::AdminService;
use crate::grpc::api_keys::ApiKeyService;
use crate::grpc::audit::AuditService;
use crate::grpc::clients::OAuthClientService;
use crate::grpc::identities::IdentityService;
use crate::grpc::keys::KeyService;
use crate::grpc::oauth::OAuthService;
use crate::grpc::tokens::TokenService;
use crate::grpc::users::UserService;
use crate::pb;
use crate::secret::Secret;
use crate::store::Durability;
use crate::tls;

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
    if !crate::store::exists(data_dir) {
        return Err(Error::io(
            format!("opening {}", data_dir.display()),
            std::io::Error::new(std::io::ErrorKind::NotFound, "no mcp-auth database here"),
        ));
    }
    let store = crate::store::open(data_dir, Durability::Durable)?;
    Ok(crate::core::recover_admin_key(store, clock).await?)
}

/// A server ready to serve: storage open, keys loaded.
pub struct Server {
    core: Arc<Core>,
    tls: Option<ServerTlsConfig>,
    /// The HTTP listener's TLS: the same certificate as gRPC's.
    http_tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    config: Config,
    primary_key: Option<Secret>,
}

/// The listeners [`Server::serve_with`] serves, bound by the caller.
#[derive(Debug)]
pub struct Listeners {
    /// gRPC.
    pub grpc: TcpListener,
    /// HTTP (OAuth metadata, JWKS, token endpoint); `None` serves none.
    pub http: Option<TcpListener>,
    /// Plain HTTP: `/metrics`, `/healthz`, `/readyz`; `None` serves none
    /// (and records no metrics).
    pub metrics: Option<TcpListener>,
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
        crate::files::create_private_dir(data_dir)?;
        let tls_dir = data_dir.join("tls");
        let certified = match &config.tls {
            TlsMode::Generated => Some(tls::ensure_dev_certificates(&tls_dir)?),
            TlsMode::Files { cert, key } => Some(tls::load(cert, key)?),
            TlsMode::Plaintext => None,
        };
        let http_tls = certified
            .as_ref()
            .map(tls::http_server_config)
            .transpose()?;
        let tls = certified
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

        let durability = if config.unsafe_no_fsync {
            Durability::Unsafe
        } else {
            Durability::Durable
        };
        let store = crate::store::open_location(
            &config.store,
            config.store_key_file.as_deref(),
            data_dir,
            durability,
        )
        .await?;
        let (core, primary_key) = Core::open(store, clock, &config).await?;
        if let Some(secret) = &primary_key {
            let path = data_dir.join(PRIMARY_KEY_FILE);
            crate::files::write_private(&path, format!("{}\n", secret.expose()).as_bytes())?;
        }
        Ok(Server {
            core: Arc::new(core),
            tls,
            http_tls,
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
        Maintenance::new(self.core.clone(), &self.config)
    }

    /// The core this server serves: its state and operations, shared (not
    /// copied), for a second adapter over the same operations and for
    /// tests. While a handle is held, the data directory stays open.
    pub fn core(&self) -> Arc<Core> {
        self.core.clone()
    }

    /// Whether the server speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves gRPC alone on `listener`: [`Server::serve_with`] without an
    /// HTTP listener.
    ///
    /// # Errors
    /// As [`Server::serve_with`].
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        self.serve_with(
            Listeners {
                grpc: listener,
                http: None,
                metrics: None,
            },
            shutdown,
        )
        .await
    }

    /// Serves gRPC and HTTP on `listeners` until `shutdown` resolves, then
    /// stops being ready, stops accepting on both, lets in-flight requests
    /// of both finish within the grace period and flushes storage; the
    /// metrics listener, if any, serves until the drain is over.
    ///
    /// Served on gRPC: `TokenService`, `ApiKeyService`, `IdentityService`,
    /// `OAuthClientService`, `UserService`, `OAuthService`, `KeyService`, `AuditService`, `AdminService`,
    /// `grpc.health.v1.Health` and server reflection; on HTTP: the routes of [`crate::http::router`].
    ///
    /// # Errors
    /// TLS configuration or the transport failed, or the final flush did.
    pub async fn serve_with(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let Server {
            core,
            tls,
            http_tls,
            config,
            primary_key: _,
        } = self;
        // When and where it serves, for `GetStatus`.
        let bound = |l: &TcpListener| l.local_addr().ok();
        if let Some(grpc) = bound(&listeners.grpc) {
            core.note_serving(
                grpc,
                listeners.http.as_ref().and_then(bound),
                listeners.metrics.as_ref().and_then(bound),
            );
        }
        // The process's metrics recorder, before the first request.
        let process_metrics = match &listeners.metrics {
            Some(_) => crate::telemetry::install(),
            None => None,
        };
        let maintenance = Maintenance::new(core.clone(), &config);
        let (stop_maintenance, maintenance_task) =
            spawn_maintenance(maintenance, config.maintenance_interval);
        // Other replicas' writes, into this one's memory (a shared store).
        let (stop_following, following) = tokio::sync::watch::channel(false);
        let follower = {
            let core = core.clone();
            tokio::spawn(async move { core.follow_changes(following).await })
        };

        let (health, health_service) = tonic_health::server::health_reporter();
        // Every service, and the server as a whole (""), by its name.
        let services = [
            "",
            service_name::<pb::token_service_server::TokenServiceServer<TokenService>>(),
            service_name::<pb::api_key_service_server::ApiKeyServiceServer<ApiKeyService>>(),
            service_name::<pb::identity_service_server::IdentityServiceServer<IdentityService>>(),
            service_name::<
                pb::o_auth_client_service_server::OAuthClientServiceServer<OAuthClientService>,
            >(),
            service_name::<pb::user_service_server::UserServiceServer<UserService>>(),
            service_name::<pb::o_auth_service_server::OAuthServiceServer<OAuthService>>(),
            service_name::<pb::key_service_server::KeyServiceServer<KeyService>>(),
            service_name::<pb::audit_service_server::AuditServiceServer<AuditService>>(),
            service_name::<pb::admin_service_server::AdminServiceServer<AdminService>>(),
        ];
        for name in services {
            health
                .set_service_status(name, tonic_health::ServingStatus::Serving)
                .await;
        }
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                // `google.rpc.ErrorInfo`, `BadRequest`, `RetryInfo`: so
                // grpcurl and other reflection clients decode the details
                // every refusal carries.
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_err = |e| Error::io("building reflection service", std::io::Error::other(e));
        let reflection_v1 = reflection().build_v1().map_err(reflection_err)?;
        let reflection_v1alpha = reflection().build_v1alpha().map_err(reflection_err)?;

        // One shutdown for both listeners and the revocation streams:
        // `signal` turns the caller's future into a flag each listener (and
        // the deadline, and every stream) waits on.
        let (stopping_tx, stopping_rx) = watch::channel(false);
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls {
            builder = builder.tls_config(tls.timeout(config.tls_handshake_timeout))?;
        }
        let router = builder
            .layer(tower::util::MapRequestLayer::new(ensure_request_id))
            .layer(RpcLogLayer)
            .layer(RpcMetricsLayer)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(pb::token_service_server::TokenServiceServer::new(
                TokenService {
                    core: core.clone(),
                    stopping: stopping_rx.clone(),
                },
            ))
            .add_service(pb::api_key_service_server::ApiKeyServiceServer::new(
                ApiKeyService { core: core.clone() },
            ))
            .add_service(pb::identity_service_server::IdentityServiceServer::new(
                IdentityService { core: core.clone() },
            ))
            .add_service(
                pb::o_auth_client_service_server::OAuthClientServiceServer::new(
                    OAuthClientService { core: core.clone() },
                ),
            )
            .add_service(pb::user_service_server::UserServiceServer::new(
                UserService { core: core.clone() },
            ))
            .add_service(pb::o_auth_service_server::OAuthServiceServer::new(
                OAuthService { core: core.clone() },
            ))
            .add_service(pb::key_service_server::KeyServiceServer::new(KeyService {
                core: core.clone(),
            }))
            .add_service(pb::audit_service_server::AuditServiceServer::new(
                AuditService { core: core.clone() },
            ))
            .add_service(pb::admin_service_server::AdminServiceServer::new(
                AdminService { core: core.clone() },
            ));

        let draining = core.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: draining in-flight requests");
            // Not ready from here, before the drain: load balancers that
            // probe /readyz or the health service send nothing new.
            draining.begin_draining();
            for name in services {
                health
                    .set_service_status(name, tonic_health::ServingStatus::NotServing)
                    .await;
            }
            let _ = stopping_tx.send(true);
            Ok::<(), Error>(())
        };
        let stopping = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        // TCP_NODELAY: without it, Nagle's algorithm and the client's
        // delayed ACK hold small responses back by ~40 ms.
        let incoming = conn::Incoming::new(
            TcpIncoming::from(listeners.grpc)
                .with_nodelay(Some(true))
                .with_keepalive(Some(std::time::Duration::from_secs(60))),
            config.max_connections,
            config.connection_idle_timeout,
        );
        let grpc_stopping = stopping(stopping_rx.clone());
        let grpc = async {
            router
                .serve_with_incoming_shutdown(incoming, grpc_stopping)
                .await
                .map_err(Error::from)
        };
        let http_router =
            crate::http::router(core.clone(), &crate::http::Settings::from_config(&config));
        let bounds = http_listener::Bounds {
            max_connections: config.max_connections,
            handshake_timeout: config.tls_handshake_timeout,
            idle_timeout: config.connection_idle_timeout,
            header_timeout: config.http_request_timeout,
        };
        // The metrics listener serves through the drain, until the server
        // stops.
        let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
        let metrics_task = listeners.metrics.map(|listener| {
            tokio::spawn(metrics_listener::serve(
                listener,
                core.clone(),
                process_metrics,
                bounds,
                async {
                    let _ = metrics_stopped.await;
                },
            ))
        });
        let http_stopping = stopping(stopping_rx.clone());
        let http = async move {
            if let Some(listener) = listeners.http {
                http_listener::serve(listener, http_router, http_tls, bounds, http_stopping).await;
            }
            Ok::<(), Error>(())
        };
        let serving = async { tokio::try_join!(grpc, http, signal).map(|_| ()) };
        let grace = config.shutdown_grace;
        let mut deadline_rx = stopping_rx;
        let deadline = async move {
            if deadline_rx.wait_for(|stop| *stop).await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let result = tokio::select! {
            r = serving => r,
            () = deadline => {
                tracing::warn!(grace_seconds = grace.as_secs(), "grace period over; dropping unfinished requests");
                Ok(())
            }
        };
        let _ = stop_maintenance.send(true);
        let _ = stop_following.send(true);
        let _ = stop_metrics.send(());
        if let Some(task) = metrics_task {
            if tokio::time::timeout(grace, task).await.is_err() {
                tracing::warn!(
                    task = "metrics listener",
                    "background task did not stop in time"
                );
            }
        }
        if tokio::time::timeout(grace, follower).await.is_err() {
            tracing::warn!(task = "follower", "background task did not stop in time");
        }
        match tokio::time::timeout(grace, maintenance_task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(task = "maintenance", cause = %e, "background task failed")
            }
            Err(_) => tracing::warn!(task = "maintenance", "background task did not stop in time"),
        }
        core.flush().await?;
        tracing::info!("stopped");
        result
    }
}

/// The name the health service reports service `S` under.
fn service_name<S: tonic::server::NamedService>() -> &'static str {
    S::NAME
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
