//! The domain error: what an operation of the core refuses or fails with.
//!
//! Every refusal carries a stable [`Reason`] (docs/reference/errors.md)
//! and each reason a transport-neutral [`Kind`]; each adapter maps the kind
//! to its wire form in one place (gRPC: `grpc::status`). Unexpected
//! failures are [`Kind::Internal`]: adapters log their cause and send a
//! generic message.

use crate::store::StoreError;
use crate::token::TokenError;

/// What sort of refusal an error is, whatever the transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The caller did not prove who it is (gRPC UNAUTHENTICATED, HTTP 401).
    Unauthenticated,
    /// The caller is known but may not do this (PERMISSION_DENIED, 403).
    Forbidden,
    /// The request is malformed (INVALID_ARGUMENT, 400).
    Invalid,
    /// What the request names does not exist (NOT_FOUND, 404).
    NotFound,
    /// What the request would create exists already (ALREADY_EXISTS, 409).
    AlreadyExists,
    /// The thing named is not in a state that allows this
    /// (FAILED_PRECONDITION, 409).
    Conflict,
    /// Too many requests (RESOURCE_EXHAUSTED, 429).
    Exhausted,
    /// The service cannot answer now; retrying later may succeed
    /// (UNAVAILABLE, 503).
    Unavailable,
    /// Something failed inside the server (INTERNAL, 500).
    Internal,
}

impl Kind {
    /// The level a refused request of this kind is logged at, on every
    /// transport alike: a security event (a credential that failed, a call
    /// its caller may not make) at INFO, so failed authentications show at
    /// the default level; the service failing (unavailable, internal) at
    /// WARN; an ordinary client error (invalid, not found, exists,
    /// conflict, rate limited) at DEBUG, with the per-request lines.
    pub fn refusal_level(self) -> tracing::Level {
        match self {
            Kind::Unauthenticated | Kind::Forbidden => tracing::Level::INFO,
            Kind::Unavailable | Kind::Internal => tracing::Level::WARN,
            Kind::Invalid
            | Kind::NotFound
            | Kind::AlreadyExists
            | Kind::Conflict
            | Kind::Exhausted => tracing::Level::DEBUG,
        }
    }
}

/// The `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "mcp-auth";

/// Stable, machine-readable error reasons (`ErrorInfo.reason`). The error
/// reference (docs/reference/errors.md) lists each with its gRPC code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No `authorization` metadata on a call that needs a credential.
    CredentialsMissing,
    /// The credential is malformed or names no known API key.
    ApiKeyInvalid,
    /// The API key was revoked, or its rotated-out secret's grace ended.
    ApiKeyRevoked,
    /// The API key is past its `expires_at`.
    ApiKeyExpired,
    /// The client certificate was revoked.
    CertificateRevoked,
    /// The client certificate carries no identity of this trust domain.
    CertificateInvalid,
    /// The request carries both a client certificate and an API key.
    CredentialsConflict,
    /// The certificate's identity is disabled.
    IdentityDisabled,
    /// No identity grant has the given name.
    IdentityNotFound,
    /// The caller lacks a scope the call needs.
    InsufficientScope,
    /// A request field is missing, too long or badly formed.
    InvalidField,
    /// No API key has the given id.
    ApiKeyNotFound,
    /// No session has the given id.
    SessionNotFound,
    /// The API key is revoked, so it cannot be rotated.
    ApiKeyNotActive,
    /// No OAuth client has the given id.
    ClientNotFound,
    /// The OAuth client authenticates without a client secret (`none`,
    /// `private_key_jwt`), so it has none to rotate.
    ClientHasNoSecret,
    /// The refresh token is malformed or unknown.
    RefreshTokenInvalid,
    /// A spent refresh token was presented again: the session is revoked.
    RefreshTokenReused,
    /// An authorization code that is unknown, expired, issued to another
    /// client, or presented with another redirect URI than its
    /// authorization request's.
    AuthorizationCodeInvalid,
    /// An authorization code exchanged a second time; the session its
    /// first exchange started is revoked.
    AuthorizationCodeReused,
    /// The PKCE `code_verifier` is missing, malformed or does not match
    /// the code's challenge.
    PkceFailed,
    /// The session is past its absolute lifetime or idle timeout.
    SessionExpired,
    /// The session was revoked.
    SessionRevoked,
    /// Only the session's creator may do this with a credential.
    NotSessionCreator,
    /// An OAuth client could not be authenticated at an OAuth endpoint:
    /// unknown, a wrong secret, another method than its registered one, a
    /// bad, expired or replayed client assertion, or a disabled client.
    ClientAuthFailed,
    /// The OAuth client asked for a scope it is not allowed.
    ScopeNotAllowed,
    /// An authorization request's `redirect_uri` is not one registered
    /// for its client (or is missing while the client has several).
    RedirectUriInvalid,
    /// An authorization request's `response_type` is not `code`.
    UnsupportedResponseType,
    /// A sign-in or consent form names an interaction that is unknown,
    /// over, or another browser's.
    InteractionInvalid,
    /// A login challenge (`OAuthService`) is unknown, expired, or already
    /// accepted or rejected: each is good for one answer.
    LoginChallengeInvalid,
    /// The OAuth client asked for a resource (RFC 8707) it is not allowed,
    /// or for none when it is allowed several.
    ResourceNotAllowed,
    /// The OAuth client is not registered for the grant type it used.
    GrantNotAllowed,
    /// No user account has the given id or username.
    UserNotFound,
    /// Another user account already has the username.
    UsernameTaken,
    /// A sign-in with a username and password failed: an unknown user, a
    /// wrong password or a disabled user, one answer for all three.
    LoginFailed,
    /// The caller's request rate, or its peer's failed authentications,
    /// exceeded the limit; retry after the `retry-after` seconds.
    RateLimited,
    /// The database cannot be reached, or this replica has not been able
    /// to read its changes for longer than `store_max_staleness`: nothing
    /// was written, and nothing is verified from memory that may be out of
    /// date. Retry (another replica, or later).
    StoreUnavailable,
    /// The store cannot be backed up through mcp-auth (a PostgreSQL
    /// store: back up its database with `pg_dump`).
    BackupUnsupported,
    /// Something failed inside the server; the cause is in its log.
    Internal,
}

impl Reason {
    /// Every reason, for documentation and tests.
    pub const ALL: [Reason; 39] = [
        Reason::CredentialsMissing,
        Reason::ApiKeyInvalid,
        Reason::ApiKeyRevoked,
        Reason::ApiKeyExpired,
        Reason::CertificateRevoked,
        Reason::CertificateInvalid,
        Reason::CredentialsConflict,
        Reason::IdentityDisabled,
        Reason::IdentityNotFound,
        Reason::InsufficientScope,
        Reason::InvalidField,
        Reason::ApiKeyNotFound,
        Reason::SessionNotFound,
        Reason::ApiKeyNotActive,
        Reason::ClientNotFound,
        Reason::ClientHasNoSecret,
        Reason::RefreshTokenInvalid,
        Reason::RefreshTokenReused,
        Reason::AuthorizationCodeInvalid,
        Reason::AuthorizationCodeReused,
        Reason::PkceFailed,
        Reason::SessionExpired,
        Reason::SessionRevoked,
        Reason::NotSessionCreator,
        Reason::ClientAuthFailed,
        Reason::ScopeNotAllowed,
        Reason::RedirectUriInvalid,
        Reason::UnsupportedResponseType,
        Reason::InteractionInvalid,
        Reason::LoginChallengeInvalid,
        Reason::ResourceNotAllowed,
        Reason::GrantNotAllowed,
        Reason::UserNotFound,
        Reason::UsernameTaken,
        Reason::LoginFailed,
        Reason::RateLimited,
        Reason::StoreUnavailable,
        Reason::BackupUnsupported,
        Reason::Internal,
    ];

    /// The wire form, e.g. `API_KEY_INVALID`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::CredentialsMissing => "CREDENTIALS_MISSING",
            Reason::ApiKeyInvalid => "API_KEY_INVALID",
            Reason::ApiKeyRevoked => "API_KEY_REVOKED",
            Reason::ApiKeyExpired => "API_KEY_EXPIRED",
            Reason::CertificateRevoked => "CERTIFICATE_REVOKED",
            Reason::CertificateInvalid => "CERTIFICATE_INVALID",
            Reason::CredentialsConflict => "CREDENTIALS_CONFLICT",
            Reason::IdentityDisabled => "IDENTITY_DISABLED",
            Reason::IdentityNotFound => "IDENTITY_NOT_FOUND",
            Reason::InsufficientScope => "INSUFFICIENT_SCOPE",
            Reason::InvalidField => "INVALID_FIELD",
            Reason::ApiKeyNotFound => "API_KEY_NOT_FOUND",
            Reason::SessionNotFound => "SESSION_NOT_FOUND",
            Reason::ApiKeyNotActive => "API_KEY_NOT_ACTIVE",
            Reason::ClientNotFound => "CLIENT_NOT_FOUND",
            Reason::ClientHasNoSecret => "CLIENT_HAS_NO_SECRET",
            Reason::RefreshTokenInvalid => "REFRESH_TOKEN_INVALID",
            Reason::RefreshTokenReused => "REFRESH_TOKEN_REUSED",
            Reason::AuthorizationCodeInvalid => "AUTHORIZATION_CODE_INVALID",
            Reason::AuthorizationCodeReused => "AUTHORIZATION_CODE_REUSED",
            Reason::PkceFailed => "PKCE_FAILED",
            Reason::SessionExpired => "SESSION_EXPIRED",
            Reason::SessionRevoked => "SESSION_REVOKED",
            Reason::NotSessionCreator => "NOT_SESSION_CREATOR",
            Reason::ClientAuthFailed => "CLIENT_AUTH_FAILED",
            Reason::ScopeNotAllowed => "SCOPE_NOT_ALLOWED",
            Reason::RedirectUriInvalid => "REDIRECT_URI_INVALID",
            Reason::UnsupportedResponseType => "UNSUPPORTED_RESPONSE_TYPE",
            Reason::InteractionInvalid => "INTERACTION_INVALID",
            Reason::LoginChallengeInvalid => "LOGIN_CHALLENGE_INVALID",
            Reason::ResourceNotAllowed => "RESOURCE_NOT_ALLOWED",
            Reason::GrantNotAllowed => "GRANT_NOT_ALLOWED",
            Reason::UserNotFound => "USER_NOT_FOUND",
            Reason::UsernameTaken => "USERNAME_TAKEN",
            Reason::LoginFailed => "LOGIN_FAILED",
            Reason::RateLimited => "RATE_LIMITED",
            Reason::StoreUnavailable => "STORE_UNAVAILABLE",
            Reason::BackupUnsupported => "BACKUP_UNSUPPORTED",
            Reason::Internal => "INTERNAL",
        }
    }

    /// The kind of refusal, which decides each transport's code.
    pub fn kind(self) -> Kind {
        match self {
            Reason::CredentialsMissing
            | Reason::ApiKeyInvalid
            | Reason::ApiKeyRevoked
            | Reason::ApiKeyExpired
            | Reason::CertificateRevoked
            | Reason::CertificateInvalid
            | Reason::RefreshTokenInvalid
            | Reason::RefreshTokenReused
            | Reason::AuthorizationCodeInvalid
            | Reason::AuthorizationCodeReused
            | Reason::PkceFailed
            | Reason::SessionExpired
            | Reason::SessionRevoked
            | Reason::ClientAuthFailed
            | Reason::LoginFailed => Kind::Unauthenticated,
            Reason::InsufficientScope
            | Reason::IdentityDisabled
            | Reason::NotSessionCreator
            | Reason::GrantNotAllowed => Kind::Forbidden,
            Reason::InvalidField
            | Reason::CredentialsConflict
            | Reason::ScopeNotAllowed
            | Reason::RedirectUriInvalid
            | Reason::UnsupportedResponseType
            | Reason::InteractionInvalid
            | Reason::ResourceNotAllowed => Kind::Invalid,
            Reason::ApiKeyNotFound
            | Reason::SessionNotFound
            | Reason::IdentityNotFound
            | Reason::ClientNotFound
            | Reason::UserNotFound
            | Reason::LoginChallengeInvalid => Kind::NotFound,
            Reason::UsernameTaken => Kind::AlreadyExists,
            Reason::ApiKeyNotActive | Reason::ClientHasNoSecret | Reason::BackupUnsupported => {
                Kind::Conflict
            }
            Reason::RateLimited => Kind::Exhausted,
            Reason::StoreUnavailable => Kind::Unavailable,
            Reason::Internal => Kind::Internal,
        }
    }
}

/// Everything an operation of the core can refuse or fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is refused for `reason`, which also decides its kind
    /// (unauthenticated, not found, conflict, ...).
    #[error("{message}")]
    Refused {
        /// Why; see [`Reason::kind`].
        reason: Reason,
        /// A message safe to show the caller (never a credential).
        message: String,
    },
    /// The caller is authenticated but lacks `scope`.
    #[error("{message}")]
    PermissionDenied {
        /// The missing scope.
        scope: String,
        /// A message naming the missing scope.
        message: String,
    },
    /// A request field is invalid.
    #[error("invalid {field}: {message}")]
    InvalidArgument {
        /// The request field's name.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// Too many requests; retry after `retry_after`.
    #[error("{message}")]
    RateLimited {
        /// How long to wait before the next request can succeed.
        retry_after: std::time::Duration,
        /// What limit was hit.
        message: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing or key handling failed.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The OS random source failed.
    #[error("OS random source failed: {0}")]
    Random(#[from] getrandom::Error),
    /// Hashing or checking a password failed inside the server (never a
    /// wrong password, which is a [`Reason::LoginFailed`] refusal).
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

impl Error {
    /// An INVALID_ARGUMENT naming `field`.
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidArgument {
            field,
            message: message.into(),
        }
    }

    /// A refusal with `reason` (its code follows from the reason).
    pub(crate) fn refused(reason: Reason, message: impl Into<String>) -> Self {
        Error::Refused {
            reason,
            message: message.into(),
        }
    }

    /// The stable reason this error is reported with.
    pub fn reason(&self) -> Reason {
        match self {
            Error::Refused { reason, .. } => *reason,
            Error::RateLimited { .. } => Reason::RateLimited,
            Error::PermissionDenied { .. } => Reason::InsufficientScope,
            Error::InvalidArgument { .. } => Reason::InvalidField,
            Error::Store(StoreError::Unavailable(_)) => Reason::StoreUnavailable,
            Error::Store(_) | Error::Token(_) | Error::Random(_) | Error::Hashing(_) => {
                Reason::Internal
            }
        }
    }
}

impl Error {
    /// The kind of refusal (see [`Reason::kind`]).
    pub fn kind(&self) -> Kind {
        self.reason().kind()
    }
}

#[cfg(test)]
mod tests {
    use tracing::Level;

    use super::*;

    #[test]
    fn security_refusals_show_at_the_default_level_and_client_errors_do_not() {
        for reason in [
            Reason::CredentialsMissing,
            Reason::ApiKeyInvalid,
            Reason::CertificateRevoked,
            Reason::RefreshTokenReused,
            Reason::AuthorizationCodeReused,
            Reason::ClientAuthFailed,
            Reason::LoginFailed,
            Reason::InsufficientScope,
            Reason::IdentityDisabled,
        ] {
            assert_eq!(reason.kind().refusal_level(), Level::INFO, "{reason:?}");
        }
        for reason in [
            Reason::InvalidField,
            Reason::SessionNotFound,
            Reason::UsernameTaken,
            Reason::ApiKeyNotActive,
            Reason::RateLimited,
        ] {
            assert_eq!(reason.kind().refusal_level(), Level::DEBUG, "{reason:?}");
        }
        for reason in [Reason::StoreUnavailable, Reason::Internal] {
            assert_eq!(reason.kind().refusal_level(), Level::WARN, "{reason:?}");
        }
    }
}
