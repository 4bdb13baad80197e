//! Why a credential was refused ([`Rejection`]), or why no verdict could be
//! reached ([`VerifyError`]), and why a [`crate::Verifier`] could not be
//! built ([`BuildError`]). Messages never carry a credential.

use std::time::Duration;

/// Why a credential is not acceptable. Each maps to a 401 with
/// `error="invalid_token"`, except [`Rejection::InsufficientScope`] (403).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejection {
    /// Not a credential of any form mcp-auth issues.
    Malformed,
    /// Past its expiry (with the verifier's leeway), or living longer than
    /// mcp-auth issues tokens for.
    Expired,
    /// Before its `nbf` (with the leeway).
    NotYetValid,
    /// Its session, its client, the token itself or the API key was
    /// revoked.
    Revoked,
    /// The signature does not verify.
    BadSignature,
    /// Signed by a key mcp-auth does not publish.
    UnknownKey,
    /// Its `iss` is not the configured mcp-auth issuer.
    WrongIssuer,
    /// Issued for another resource: its `aud` is not this MCP server.
    WrongAudience,
    /// It lacks a scope the call needs.
    InsufficientScope,
    /// An API key mcp-auth never issued.
    UnknownApiKey,
    /// The old secret of a rotated API key, after its grace period.
    RotatedOut,
}

impl Rejection {
    /// A stable lowercase name, for logs and `error_description`.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::Expired => "expired",
            Rejection::NotYetValid => "not_yet_valid",
            Rejection::Revoked => "revoked",
            Rejection::BadSignature => "bad_signature",
            Rejection::UnknownKey => "unknown_key",
            Rejection::WrongIssuer => "wrong_issuer",
            Rejection::WrongAudience => "wrong_audience",
            Rejection::InsufficientScope => "insufficient_scope",
            Rejection::UnknownApiKey => "unknown_api_key",
            Rejection::RotatedOut => "rotated_out",
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of a verification that did not accept the credential.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The credential is refused (401, or 403 for a missing scope).
    #[error("credential refused: {0}")]
    Rejected(Rejection),
    /// mcp-auth throttles this caller (its failed authentications from
    /// its address): answer 429 with `Retry-After`.
    #[error("rate limited: retry after {retry_after:?}")]
    RateLimited {
        /// How long to wait.
        retry_after: Duration,
    },
    /// No verdict could be reached (mcp-auth unreachable, the keys not
    /// loaded, the revocation stream stale beyond its bound): fail closed,
    /// 503.
    #[error("cannot verify now: {0}")]
    Unavailable(String),
}

/// Why a verifier could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting is missing or wrong.
    #[error("invalid verifier setting {setting}: {message}")]
    Invalid {
        /// The builder method concerned.
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
    /// mcp-auth could not be reached, or its JWK Set not loaded.
    #[error("cannot reach mcp-auth: {0}")]
    Unreachable(String),
}
