//! The domain error and its one mapping to `tonic::Status`.
//!
//! Handlers return [`Error`] and use `?`; [`From<Error> for Status`] is the
//! only place that decides a gRPC code. Every status carries a
//! `google.rpc.ErrorInfo` with domain [`ERROR_DOMAIN`] and a stable
//! [`Reason`]. Unexpected failures become INTERNAL with a generic message;
//! their cause is logged, never sent.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::config::ConfigError;
use crate::store::StoreError;
use crate::tls::TlsError;
use crate::token::TokenError;

/// The `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "mcp-auth";

/// Stable, machine-readable error reasons (`ErrorInfo.reason`). The README's
/// error table lists each with its gRPC code.
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
    /// The refresh token is malformed or unknown.
    RefreshTokenInvalid,
    /// A spent refresh token was presented again: the session is revoked.
    RefreshTokenReused,
    /// The session is past its absolute lifetime or idle timeout.
    SessionExpired,
    /// The session was revoked.
    SessionRevoked,
    /// Only the session's creator may do this with a credential.
    NotSessionCreator,
    /// The caller's request rate, or its peer's failed authentications,
    /// exceeded the limit; retry after the `retry-after` seconds.
    RateLimited,
    /// Something failed inside the server; the cause is in its log.
    Internal,
}

impl Reason {
    /// Every reason, for documentation and tests.
    pub const ALL: [Reason; 21] = [
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
        Reason::RefreshTokenInvalid,
        Reason::RefreshTokenReused,
        Reason::SessionExpired,
        Reason::SessionRevoked,
        Reason::NotSessionCreator,
        Reason::RateLimited,
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
            Reason::RefreshTokenInvalid => "REFRESH_TOKEN_INVALID",
            Reason::RefreshTokenReused => "REFRESH_TOKEN_REUSED",
            Reason::SessionExpired => "SESSION_EXPIRED",
            Reason::SessionRevoked => "SESSION_REVOKED",
            Reason::NotSessionCreator => "NOT_SESSION_CREATOR",
            Reason::RateLimited => "RATE_LIMITED",
            Reason::Internal => "INTERNAL",
        }
    }

    /// The gRPC code this reason is sent with.
    pub fn code(self) -> Code {
        match self {
            Reason::CredentialsMissing
            | Reason::ApiKeyInvalid
            | Reason::ApiKeyRevoked
            | Reason::ApiKeyExpired
            | Reason::CertificateRevoked
            | Reason::CertificateInvalid
            | Reason::RefreshTokenInvalid
            | Reason::RefreshTokenReused
            | Reason::SessionExpired
            | Reason::SessionRevoked => Code::Unauthenticated,
            Reason::InsufficientScope | Reason::IdentityDisabled | Reason::NotSessionCreator => {
                Code::PermissionDenied
            }
            Reason::InvalidField | Reason::CredentialsConflict => Code::InvalidArgument,
            Reason::ApiKeyNotFound | Reason::SessionNotFound | Reason::IdentityNotFound => {
                Code::NotFound
            }
            Reason::ApiKeyNotActive => Code::FailedPrecondition,
            Reason::RateLimited => Code::ResourceExhausted,
            Reason::Internal => Code::Internal,
        }
    }
}

/// Everything that can go wrong, in the service and at startup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is refused for `reason`, which also decides the gRPC
    /// code (unauthenticated, not found, failed precondition, ...).
    #[error("{message}")]
    Refused {
        /// Why; see [`Reason::code`].
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
        /// The protobuf field name.
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
    /// TLS material could not be made or loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The OS random source failed.
    #[error("OS random source failed: {0}")]
    Random(#[from] getrandom::Error),
    /// The gRPC transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
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

    /// An I/O error with context.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The stable reason this error is reported with.
    pub fn reason(&self) -> Reason {
        match self {
            Error::Refused { reason, .. } => *reason,
            Error::RateLimited { .. } => Reason::RateLimited,
            Error::PermissionDenied { .. } => Reason::InsufficientScope,
            Error::InvalidArgument { .. } => Reason::InvalidField,
            Error::Store(_)
            | Error::Token(_)
            | Error::Tls(_)
            | Error::Config(_)
            | Error::Io { .. }
            | Error::Random(_)
            | Error::Transport(_) => Reason::Internal,
        }
    }
}

impl From<Error> for Status {
    fn from(err: Error) -> Status {
        let reason = err.reason();
        let mut metadata = HashMap::new();
        let mut details;
        let mut headers = tonic::metadata::MetadataMap::new();
        let message = match &err {
            Error::RateLimited { retry_after, .. } => {
                // Whole seconds, rounded up, as HTTP's Retry-After.
                let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                metadata.insert("retry_after_seconds".to_owned(), secs.to_string());
                if let Ok(v) = secs.to_string().parse() {
                    headers.insert("retry-after", v);
                }
                details = ErrorDetails::with_retry_info(Some(*retry_after));
                err.to_string()
            }
            Error::InvalidArgument { field, message } => {
                metadata.insert("field".to_owned(), (*field).to_owned());
                details = ErrorDetails::with_bad_request_violation(*field, message.clone());
                err.to_string()
            }
            Error::PermissionDenied { scope, .. } => {
                metadata.insert("scope".to_owned(), scope.clone());
                details = ErrorDetails::new();
                err.to_string()
            }
            Error::Refused { .. } => {
                details = ErrorDetails::new();
                err.to_string()
            }
            Error::Store(_)
            | Error::Token(_)
            | Error::Tls(_)
            | Error::Config(_)
            | Error::Io { .. }
            | Error::Random(_)
            | Error::Transport(_) => {
                tracing::warn!(cause = %err, "internal error");
                details = ErrorDetails::new();
                "internal error; the server log has the cause".to_owned()
            }
        };
        if reason != Reason::Internal {
            tracing::info!(code = ?reason.code(), reason = reason.as_str(), "request refused");
        }
        details.set_error_info(reason.as_str(), ERROR_DOMAIN, metadata);
        Status::with_error_details_and_metadata(reason.code(), message, details, headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(status: &Status) -> (String, HashMap<String, String>) {
        let info = status.get_details_error_info().unwrap();
        assert_eq!(info.domain, ERROR_DOMAIN);
        (info.reason, info.metadata)
    }

    #[test]
    fn invalid_argument_names_the_field() {
        let status = Status::from(Error::invalid("subject", "must not be empty"));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("subject"));
        let (reason, meta) = info(&status);
        assert_eq!(reason, "INVALID_FIELD");
        assert_eq!(meta["field"], "subject");
        let violations = status.get_details_bad_request().unwrap().field_violations;
        assert_eq!(violations[0].field, "subject");
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let err = Error::io(
            "reading /secret/path",
            std::io::Error::other("disk on fire"),
        );
        let status = Status::from(err);
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("disk"));
        assert!(!status.message().contains("/secret"));
        assert_eq!(info(&status).0, "INTERNAL");
    }

    #[test]
    fn every_reason_has_a_distinct_wire_name() {
        let mut names: Vec<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Reason::ALL.len());
    }
}
