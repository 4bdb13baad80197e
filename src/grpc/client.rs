//! A typed client of the mcp-auth gRPC services: one connection (a tonic
//! [`Channel`]), the API key it authenticates with, and one method per RPC.
//!
//! The CLI and `mcp-auth bench` reach the server only through [`Client`];
//! it is cheap to clone (the channel is shared), so each concurrent caller
//! takes its own copy. A call refused with `RATE_LIMITED` waits out the
//! server's `retry-after` and is sent again, as [`RetryPolicy`] says.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::pb;
use crate::pb::admin_service_client::AdminServiceClient;
use crate::pb::api_key_service_client::ApiKeyServiceClient;
use crate::pb::audit_service_client::AuditServiceClient;
use crate::pb::identity_service_client::IdentityServiceClient;
use crate::pb::key_service_client::KeyServiceClient;
use crate::pb::o_auth_client_service_client::OAuthClientServiceClient;
use crate::pb::o_auth_service_client::OAuthServiceClient;
use crate::pb::token_service_client::TokenServiceClient;
use crate::pb::user_service_client::UserServiceClient;

/// Why a [`Client`] could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API key cannot be sent as an `authorization` header.
    #[error("the API key holds characters not allowed in a header")]
    InvalidApiKey,
    /// A client certificate was given for a server URL without TLS.
    #[error("a client certificate needs TLS: use an https:// server URL")]
    CertNeedsTls,
    /// The CA certificate that should sign the server's could not be read.
    #[error("reading the CA certificate {}", path.display())]
    ReadCa {
        /// The CA file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The client certificate or its key could not be read.
    #[error("reading {}", path.display())]
    ReadIdentity {
        /// The certificate or key file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The server URL is not usable, TLS could not be set up, or the
    /// server could not be reached.
    #[error("cannot connect to {server}")]
    Transport {
        /// The server URL.
        server: String,
        /// The cause.
        source: tonic::transport::Error,
    },
}

/// How to reach the server and authenticate to it.
#[derive(Clone, Default)]
pub struct ConnectOptions {
    /// Server URL: `https://...` for TLS, `http://...` for a server started
    /// with `--plaintext`.
    pub server: String,
    /// CA certificate (PEM) that signed the server's certificate; read only
    /// for an `https://` server.
    pub ca: PathBuf,
    /// Client certificate (PEM) for mutual TLS; used together with `key`.
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of `cert`.
    pub key: Option<PathBuf>,
    /// The API key sent as `authorization: Bearer <key>` on every RPC that
    /// takes a credential; `None` sends none (a client certificate, or only
    /// RPCs that need no credential).
    pub api_key: Option<String>,
    /// Talk plain HTTP/2 even if `server` says `https://`.
    pub plaintext: bool,
}

impl fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("server", &self.server)
            .field("ca", &self.ca)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .field("plaintext", &self.plaintext)
            .finish()
    }
}

/// What a [`Client`] does when the server refuses a call with
/// `RATE_LIMITED` (`RESOURCE_EXHAUSTED` with a `retry-after` header).
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// How many times one call is sent again.
    pub retries: u32,
    /// The longest `retry-after` waited out; a longer one returns the
    /// refusal at once.
    pub max_wait: Duration,
    /// Called with the server's `retry-after` before each wait (the CLI
    /// prints a line).
    pub on_wait: Option<fn(Duration)>,
}

impl RetryPolicy {
    /// Never retry: every refusal is returned (what a load generator
    /// wants, so that refusals are counted).
    pub const fn never() -> Self {
        RetryPolicy {
            retries: 0,
            max_wait: Duration::ZERO,
            on_wait: None,
        }
    }

    /// How long to wait before sending a call `status` refused again, if
    /// at all.
    fn wait_for(&self, status: &Status) -> Option<Duration> {
        let secs = retry_after(status)?;
        let wait = Duration::from_secs(secs);
        (wait <= self.max_wait).then_some(wait)
    }
}

impl Default for RetryPolicy {
    /// Three retries, waiting at most 60 seconds each time.
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            max_wait: Duration::from_secs(60),
            on_wait: None,
        }
    }
}

/// The server's `retry-after`, in seconds, on a `RATE_LIMITED` refusal.
fn retry_after(status: &Status) -> Option<u64> {
    if status.code() != tonic::Code::ResourceExhausted {
        return None;
    }
    status
        .metadata()
        .get("retry-after")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Whether an RPC carries the client's API key.
#[derive(Clone, Copy)]
enum Credential {
    /// `authorization: Bearer <key>` when the client has a key.
    ApiKey,
    /// Never a key: the RPC needs none, or (refresh) a key would change
    /// what it means.
    None,
}

/// A connection to an mcp-auth server, with the API key its calls send.
/// Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct Client {
    channel: Channel,
    /// `Bearer <key>`, checked once when the client is built.
    authorization: Option<AsciiMetadataValue>,
    retry: RetryPolicy,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field(
                "api_key",
                &self.authorization.as_ref().map(|_| "[redacted]"),
            )
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to `opts.server`: TLS trusting `opts.ca` (presenting
    /// `opts.cert` if given) for `https://`, plain HTTP/2 for `http://` or
    /// with `opts.plaintext`.
    ///
    /// # Errors
    /// The API key is not a valid header value, a client certificate was
    /// given without TLS, a file cannot be read, or the server cannot be
    /// reached.
    pub async fn connect(opts: &ConnectOptions) -> Result<Client, ClientError> {
        let authorization = bearer(opts.api_key.as_deref())?;
        let server = if opts.plaintext {
            opts.server.replacen("https://", "http://", 1)
        } else {
            opts.server.clone()
        };
        let tls = server.starts_with("https://");
        if opts.cert.is_some() && !tls {
            return Err(ClientError::CertNeedsTls);
        }
        let transport = |source| ClientError::Transport {
            server: server.clone(),
            source,
        };
        let mut endpoint = Endpoint::from_shared(server.clone()).map_err(transport)?;
        if tls {
            let ca = std::fs::read(&opts.ca).map_err(|source| ClientError::ReadCa {
                path: opts.ca.clone(),
                source,
            })?;
            let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
            if let (Some(cert), Some(key)) = (&opts.cert, &opts.key) {
                let read = |path: &PathBuf| {
                    std::fs::read(path).map_err(|source| ClientError::ReadIdentity {
                        path: path.clone(),
                        source,
                    })
                };
                config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            endpoint = endpoint.tls_config(config).map_err(transport)?;
        }
        let channel = endpoint.connect().await.map_err(transport)?;
        Ok(Client {
            channel,
            authorization,
            retry: RetryPolicy::default(),
        })
    }

    /// A client over an existing channel, sending `api_key` if given.
    ///
    /// # Errors
    /// The API key is not a valid header value.
    pub fn from_channel(channel: Channel, api_key: Option<String>) -> Result<Client, ClientError> {
        Ok(Client {
            channel,
            authorization: bearer(api_key.as_deref())?,
            retry: RetryPolicy::default(),
        })
    }

    /// The same connection and retry policy, sending `api_key` instead.
    ///
    /// # Errors
    /// The API key is not a valid header value.
    pub fn with_api_key(&self, api_key: Option<String>) -> Result<Client, ClientError> {
        Ok(Client {
            channel: self.channel.clone(),
            authorization: bearer(api_key.as_deref())?,
            retry: self.retry,
        })
    }

    /// The same client with another answer to `RATE_LIMITED`.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Client {
        self.retry = retry;
        self
    }

    /// The underlying channel.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// `ApiKeyService.CreateApiKey`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn create_api_key(
        &self,
        message: pb::CreateApiKeyRequest,
    ) -> Result<pb::CreateApiKeyResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            ApiKeyServiceClient::new(ch).create_api_key(req).await
        })
        .await
    }

    /// `ApiKeyService.ListApiKeys`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn list_api_keys(
        &self,
        message: pb::ListApiKeysRequest,
    ) -> Result<pb::ListApiKeysResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            ApiKeyServiceClient::new(ch).list_api_keys(req).await
        })
        .await
    }

    /// `ApiKeyService.GetApiKey`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn get_api_key(&self, message: pb::GetApiKeyRequest) -> Result<pb::ApiKey, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            ApiKeyServiceClient::new(ch).get_api_key(req).await
        })
        .await
    }

    /// `ApiKeyService.RevokeApiKey`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn revoke_api_key(
        &self,
        message: pb::RevokeApiKeyRequest,
    ) -> Result<pb::RevokeApiKeyResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            ApiKeyServiceClient::new(ch).revoke_api_key(req).await
        })
        .await
    }

    /// `ApiKeyService.RotateApiKey`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn rotate_api_key(
        &self,
        message: pb::RotateApiKeyRequest,
    ) -> Result<pb::CreateApiKeyResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            ApiKeyServiceClient::new(ch).rotate_api_key(req).await
        })
        .await
    }

    /// `ApiKeyService.UpdateApiKey`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn update_api_key(
        &self,
        message: pb::UpdateApiKeyRequest,
    ) -> Result<pb::ApiKey, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            ApiKeyServiceClient::new(ch).update_api_key(req).await
        })
        .await
    }

    /// `TokenService.CreateSession`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn create_session(
        &self,
        message: pb::CreateSessionRequest,
    ) -> Result<pb::Session, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            TokenServiceClient::new(ch).create_session(req).await
        })
        .await
    }

    /// `TokenService.RefreshSession`. Sends no API key: the refresh token
    /// is the credential (a caller that sends a key must be the session's
    /// creator). A client certificate on the connection is still
    /// presented.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn refresh_session(
        &self,
        message: pb::RefreshSessionRequest,
    ) -> Result<pb::Session, Status> {
        self.call(message, Credential::None, |ch, req| async move {
            TokenServiceClient::new(ch).refresh_session(req).await
        })
        .await
    }

    /// `TokenService.ListSessions`: one page.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn list_sessions(
        &self,
        message: pb::ListSessionsRequest,
    ) -> Result<pb::ListSessionsResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            TokenServiceClient::new(ch).list_sessions(req).await
        })
        .await
    }

    /// `TokenService.GetSession`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn get_session(
        &self,
        message: pb::GetSessionRequest,
    ) -> Result<pb::SessionInfo, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            TokenServiceClient::new(ch).get_session(req).await
        })
        .await
    }

    /// `TokenService.WhoAmI`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn who_am_i(&self) -> Result<pb::WhoAmIResponse, Status> {
        self.call(
            pb::WhoAmIRequest {},
            Credential::ApiKey,
            |ch, req| async move { TokenServiceClient::new(ch).who_am_i(req).await },
        )
        .await
    }

    /// `TokenService.RevokeSession`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn revoke_session(
        &self,
        message: pb::RevokeSessionRequest,
    ) -> Result<pb::RevokeSessionResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            TokenServiceClient::new(ch).revoke_session(req).await
        })
        .await
    }

    /// `TokenService.RevokeSessions`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn revoke_sessions(
        &self,
        message: pb::RevokeSessionsRequest,
    ) -> Result<pb::RevokeSessionsResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            TokenServiceClient::new(ch).revoke_sessions(req).await
        })
        .await
    }

    /// `TokenService.VerifyToken`.
    ///
    /// # Errors
    /// The server's refusal (an inactive token is an `Ok` answer).
    pub async fn verify_token(
        &self,
        message: pb::VerifyTokenRequest,
    ) -> Result<pb::VerifyTokenResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            TokenServiceClient::new(ch).verify_token(req).await
        })
        .await
    }

    /// `TokenService.WatchRevocations`: the stream of revocations, from a
    /// snapshot (or from `epoch` and `position` to resume).
    ///
    /// # Errors
    /// The server's refusal to open the stream.
    pub async fn watch_revocations(
        &self,
        message: pb::WatchRevocationsRequest,
    ) -> Result<tonic::Streaming<pb::RevocationBatch>, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            TokenServiceClient::new(ch).watch_revocations(req).await
        })
        .await
    }

    /// `TokenService.GetJwks`. Sends no API key: the JWKS is public.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn get_jwks(
        &self,
        message: pb::GetJwksRequest,
    ) -> Result<pb::GetJwksResponse, Status> {
        self.call(message, Credential::None, |ch, req| async move {
            TokenServiceClient::new(ch).get_jwks(req).await
        })
        .await
    }

    /// `IdentityService.SetIdentity`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn set_identity(
        &self,
        message: pb::SetIdentityRequest,
    ) -> Result<pb::Identity, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            IdentityServiceClient::new(ch).set_identity(req).await
        })
        .await
    }

    /// `IdentityService.ListIdentities`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn list_identities(
        &self,
        message: pb::ListIdentitiesRequest,
    ) -> Result<pb::ListIdentitiesResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            IdentityServiceClient::new(ch).list_identities(req).await
        })
        .await
    }

    /// `IdentityService.DeleteIdentity`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn delete_identity(
        &self,
        message: pb::DeleteIdentityRequest,
    ) -> Result<pb::DeleteIdentityResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            IdentityServiceClient::new(ch).delete_identity(req).await
        })
        .await
    }

    /// `IdentityService.RevokeCertificate`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn revoke_certificate(
        &self,
        message: pb::RevokeCertificateRequest,
    ) -> Result<pb::RevokeCertificateResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            IdentityServiceClient::new(ch).revoke_certificate(req).await
        })
        .await
    }

    /// `OAuthClientService.CreateClient`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn create_client(
        &self,
        message: pb::CreateClientRequest,
    ) -> Result<pb::CreateClientResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            OAuthClientServiceClient::new(ch).create_client(req).await
        })
        .await
    }

    /// `OAuthClientService.ListClients`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn list_clients(
        &self,
        message: pb::ListClientsRequest,
    ) -> Result<pb::ListClientsResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            OAuthClientServiceClient::new(ch).list_clients(req).await
        })
        .await
    }

    /// `OAuthClientService.GetClient`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn get_client(
        &self,
        message: pb::GetClientRequest,
    ) -> Result<pb::OAuthClient, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            OAuthClientServiceClient::new(ch).get_client(req).await
        })
        .await
    }

    /// `OAuthClientService.UpdateClient`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn update_client(
        &self,
        message: pb::UpdateClientRequest,
    ) -> Result<pb::UpdateClientResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            OAuthClientServiceClient::new(ch).update_client(req).await
        })
        .await
    }

    /// `OAuthClientService.RotateClientSecret`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn rotate_client_secret(
        &self,
        message: pb::RotateClientSecretRequest,
    ) -> Result<pb::CreateClientResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            OAuthClientServiceClient::new(ch)
                .rotate_client_secret(req)
                .await
        })
        .await
    }

    /// `OAuthClientService.DeleteClient`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn delete_client(
        &self,
        message: pb::DeleteClientRequest,
    ) -> Result<pb::DeleteClientResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            OAuthClientServiceClient::new(ch).delete_client(req).await
        })
        .await
    }

    /// `UserService.CreateUser`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn create_user(
        &self,
        message: pb::CreateUserRequest,
    ) -> Result<pb::CreateUserResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            UserServiceClient::new(ch).create_user(req).await
        })
        .await
    }

    /// `UserService.ListUsers`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn list_users(
        &self,
        message: pb::ListUsersRequest,
    ) -> Result<pb::ListUsersResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            UserServiceClient::new(ch).list_users(req).await
        })
        .await
    }

    /// `UserService.GetUser`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn get_user(&self, message: pb::GetUserRequest) -> Result<pb::User, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            UserServiceClient::new(ch).get_user(req).await
        })
        .await
    }

    /// `UserService.SetPassword`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn set_password(&self, message: pb::SetPasswordRequest) -> Result<pb::User, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            UserServiceClient::new(ch).set_password(req).await
        })
        .await
    }

    /// `UserService.SetUserDisabled`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn set_user_disabled(
        &self,
        message: pb::SetUserDisabledRequest,
    ) -> Result<pb::User, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            UserServiceClient::new(ch).set_user_disabled(req).await
        })
        .await
    }

    /// `UserService.DeleteUser`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn delete_user(
        &self,
        message: pb::DeleteUserRequest,
    ) -> Result<pb::DeleteUserResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            UserServiceClient::new(ch).delete_user(req).await
        })
        .await
    }

    /// `UserService.ListConsents`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn list_consents(
        &self,
        message: pb::ListConsentsRequest,
    ) -> Result<pb::ListConsentsResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            UserServiceClient::new(ch).list_consents(req).await
        })
        .await
    }

    /// `OAuthService.GetLoginRequest`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn get_login_request(
        &self,
        message: pb::GetLoginRequestRequest,
    ) -> Result<pb::LoginRequest, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            OAuthServiceClient::new(ch).get_login_request(req).await
        })
        .await
    }

    /// `UserService.RevokeConsent`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn revoke_consent(
        &self,
        message: pb::RevokeConsentRequest,
    ) -> Result<pb::RevokeConsentResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            UserServiceClient::new(ch).revoke_consent(req).await
        })
        .await
    }

    /// `OAuthService.AcceptLogin`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn accept_login(
        &self,
        message: pb::AcceptLoginRequest,
    ) -> Result<pb::AcceptLoginResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            OAuthServiceClient::new(ch).accept_login(req).await
        })
        .await
    }

    /// `OAuthService.RejectLogin`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn reject_login(
        &self,
        message: pb::RejectLoginRequest,
    ) -> Result<pb::RejectLoginResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            OAuthServiceClient::new(ch).reject_login(req).await
        })
        .await
    }

    /// `KeyService.RotateSigningKey`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn rotate_signing_key(
        &self,
        message: pb::RotateSigningKeyRequest,
    ) -> Result<pb::RotateSigningKeyResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            KeyServiceClient::new(ch).rotate_signing_key(req).await
        })
        .await
    }

    /// `AuditService.ListAuditEvents`: one page.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn list_audit_events(
        &self,
        message: pb::ListAuditEventsRequest,
    ) -> Result<pb::ListAuditEventsResponse, Status> {
        self.call(message, Credential::ApiKey, |ch, req| async move {
            AuditServiceClient::new(ch).list_audit_events(req).await
        })
        .await
    }

    /// `AdminService.GetStatus`.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn get_status(&self) -> Result<pb::ServerStatus, Status> {
        self.call(
            pb::GetStatusRequest {},
            Credential::ApiKey,
            |ch, req| async move { AdminServiceClient::new(ch).get_status(req).await },
        )
        .await
    }

    /// `AdminService.BackupStore`: the stream of the backup file's chunks.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn backup_store(&self) -> Result<tonic::Streaming<pb::BackupChunk>, Status> {
        self.call(
            pb::BackupStoreRequest {},
            Credential::ApiKey,
            |ch, req| async move { AdminServiceClient::new(ch).backup_store(req).await },
        )
        .await
    }

    /// `grpc.health.v1.Health.Check`. Sends no API key: the health service
    /// needs none.
    ///
    /// # Errors
    /// The server's refusal.
    pub async fn health_check(
        &self,
        message: HealthCheckRequest,
    ) -> Result<HealthCheckResponse, Status> {
        self.call(message, Credential::None, |ch, req| async move {
            HealthClient::new(ch).check(req).await
        })
        .await
    }

    /// Sends `message` with `rpc`, waiting out `RATE_LIMITED` refusals as
    /// the retry policy says.
    async fn call<M, R, F, Fut>(
        &self,
        message: M,
        credential: Credential,
        rpc: F,
    ) -> Result<R, Status>
    where
        M: Clone,
        F: Fn(Channel, Request<M>) -> Fut,
        Fut: Future<Output = Result<Response<R>, Status>>,
    {
        for _ in 0..self.retry.retries {
            let status = match rpc(
                self.channel.clone(),
                self.request(message.clone(), credential),
            )
            .await
            {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) => status,
            };
            let Some(wait) = self.retry.wait_for(&status) else {
                return Err(status);
            };
            if let Some(on_wait) = self.retry.on_wait {
                on_wait(wait);
            }
            tokio::time::sleep(wait.max(Duration::from_secs(1))).await;
        }
        rpc(self.channel.clone(), self.request(message, credential))
            .await
            .map(Response::into_inner)
    }

    /// `message` as a request, with the API key if `credential` asks for it.
    fn request<M>(&self, message: M, credential: Credential) -> Request<M> {
        let mut request = Request::new(message);
        if let (Credential::ApiKey, Some(value)) = (credential, &self.authorization) {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        request
    }
}

/// `Bearer <key>` as a header value.
fn bearer(api_key: Option<&str>) -> Result<Option<AsciiMetadataValue>, ClientError> {
    api_key
        .map(|key| {
            AsciiMetadataValue::try_from(format!("Bearer {key}"))
                .map_err(|_| ClientError::InvalidApiKey)
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_only_on_resource_exhausted() {
        let mut status = Status::resource_exhausted("slow down");
        status
            .metadata_mut()
            .insert("retry-after", AsciiMetadataValue::from_static("2"));
        assert_eq!(retry_after(&status), Some(2));
        let policy = RetryPolicy::default();
        assert_eq!(policy.wait_for(&status), Some(Duration::from_secs(2)));
        assert_eq!(RetryPolicy::never().wait_for(&status), None);

        let mut other = Status::unavailable("down");
        other
            .metadata_mut()
            .insert("retry-after", AsciiMetadataValue::from_static("2"));
        assert_eq!(retry_after(&other), None);
        assert_eq!(retry_after(&Status::resource_exhausted("no header")), None);
    }

    #[test]
    fn keys_that_are_not_header_values_are_refused() {
        assert!(matches!(
            bearer(Some("bad\nkey")),
            Err(ClientError::InvalidApiKey)
        ));
        assert!(matches!(bearer(None), Ok(None)));
        assert!(matches!(bearer(Some("mcp_sk_abc")), Ok(Some(_))));
    }
}
