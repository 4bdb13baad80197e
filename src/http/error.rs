//! The one mapping from the domain [`Error`] to an HTTP response, and the
//! HTTP adapter's own refusals (no such endpoint, wrong method, body too
//! large, too slow, malformed form).
//!
//! Every error is an RFC 6749 section 5.2 JSON object:
//! `{"error": ..., "error_description": ...}`, plus `reason` (the stable
//! [`Reason`], as gRPC's `ErrorInfo.reason`) when the core refused. The
//! codes: `invalid_request`, `invalid_client` (401 with
//! `WWW-Authenticate: Basic realm="mcp-auth"`), `invalid_grant`,
//! `unauthorized_client`, `unsupported_grant_type`, `invalid_scope`,
//! `invalid_target`, `insufficient_scope` (403), `temporarily_unavailable`
//! (429 with `Retry-After`), `not_found` (404) and `server_error` (500,
//! for [`Kind::Internal`] only: its cause is logged, never sent).
//! Error responses are never cached. The registration endpoint's own codes
//! (RFC 7591 section 3.2.2) are decided in `register_error`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::core::{Error, Kind, Reason};

/// Longest `error_description` sent. Messages repeat caller values only
/// through [`crate::untrusted::Echo`], which keeps them far shorter.
const MAX_DESCRIPTION_BYTES: usize = 400;

/// The `WWW-Authenticate` challenge of an `invalid_client` refusal.
pub const BASIC_CHALLENGE: &str = "Basic realm=\"mcp-auth\"";

/// The `WWW-Authenticate` challenge of an `invalid_token` refusal (a
/// missing or wrong initial access token at `/register`, RFC 6750).
pub const BEARER_CHALLENGE: &str = "Bearer realm=\"mcp-auth\", error=\"invalid_token\"";

/// An OAuth error response: status, `error` code, description, and what
/// goes with them.
#[derive(Debug)]
pub struct HttpError {
    status: StatusCode,
    code: &'static str,
    description: String,
    reason: Option<Reason>,
    /// Seconds for `Retry-After` (429).
    retry_after: Option<u64>,
}

/// The body of an error response.
#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    error_description: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// The HTTP status and OAuth `error` code a core refusal is sent with.
/// Exhaustive on purpose: a new [`Reason`] decides its OAuth code here.
pub fn oauth_error(reason: Reason) -> (StatusCode, &'static str) {
    use Reason as R;
    match reason {
        R::CredentialsMissing
        | R::ApiKeyInvalid
        | R::ApiKeyRevoked
        | R::ApiKeyExpired
        | R::CertificateRevoked
        | R::CertificateInvalid
        | R::ClientAuthFailed => (StatusCode::UNAUTHORIZED, "invalid_client"),
        R::ScopeNotAllowed => (StatusCode::BAD_REQUEST, "invalid_scope"),
        R::UnsupportedResponseType => (StatusCode::BAD_REQUEST, "unsupported_response_type"),
        R::RedirectUriInvalid | R::InteractionInvalid => {
            (StatusCode::BAD_REQUEST, "invalid_request")
        }
        R::ResourceNotAllowed => (StatusCode::BAD_REQUEST, "invalid_target"),
        // RFC 6749 section 2.3: one authentication method per request.
        R::CredentialsConflict | R::InvalidField => (StatusCode::BAD_REQUEST, "invalid_request"),
        R::RefreshTokenInvalid
        | R::RefreshTokenReused
        | R::SessionExpired
        | R::SessionRevoked
        | R::AuthorizationCodeInvalid
        | R::AuthorizationCodeReused
        | R::PkceFailed => (StatusCode::BAD_REQUEST, "invalid_grant"),
        R::IdentityDisabled | R::NotSessionCreator | R::GrantNotAllowed => {
            (StatusCode::BAD_REQUEST, "unauthorized_client")
        }
        // RFC 6750 section 3.1: the credential lacks a privilege.
        R::InsufficientScope => (StatusCode::FORBIDDEN, "insufficient_scope"),
        R::ApiKeyNotFound
        | R::SessionNotFound
        | R::IdentityNotFound
        | R::ApiKeyNotActive
        | R::ClientNotFound
        | R::ClientHasNoSecret
        | R::UserNotFound
        | R::UsernameTaken
        | R::LoginChallengeInvalid
        | R::BackupUnsupported => (StatusCode::BAD_REQUEST, "invalid_request"),
        // The resource owner could not be authenticated (RFC 6749 section
        // 4.1.2.1); the login page shows its form again instead.
        R::LoginFailed => (StatusCode::BAD_REQUEST, "access_denied"),
        R::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "temporarily_unavailable"),
        R::StoreUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable"),
        R::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
    }
}

impl From<Error> for HttpError {
    fn from(err: Error) -> HttpError {
        let reason = err.reason();
        let (status, code) = oauth_error(reason);
        let mut retry_after = None;
        let description = match &err {
            Error::RateLimited {
                retry_after: wait, ..
            } => {
                // Whole seconds, rounded up, as gRPC's retry-after.
                retry_after = Some(wait.as_secs() + u64::from(wait.subsec_nanos() > 0));
                err.to_string()
            }
            Error::Store(crate::store::StoreError::Unavailable(_)) => {
                tracing::warn!(cause = %err, "the database is unavailable");
                "the database is unavailable; retry later".to_owned()
            }
            _ if reason.kind() == Kind::Internal => {
                tracing::warn!(cause = %err, "internal error");
                "internal error; the server log has the cause".to_owned()
            }
            _ => err.to_string(),
        };
        // Store failures and internal errors are logged above, with their
        // cause; any other refusal at its kind's level.
        if reason != Reason::Internal && !matches!(err, Error::Store(_)) {
            let (status, reason) = (status.as_u16(), reason.as_str());
            match err.kind().refusal_level() {
                tracing::Level::INFO => {
                    tracing::info!(status, error = code, reason, "request refused");
                }
                tracing::Level::WARN => {
                    tracing::warn!(status, error = code, reason, "request refused");
                }
                _ => tracing::debug!(status, error = code, reason, "request refused"),
            }
        }
        HttpError {
            status,
            code,
            description,
            reason: Some(reason),
            retry_after,
        }
    }
}

impl HttpError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        HttpError {
            status,
            code,
            description: description.into(),
            reason: None,
            retry_after: None,
        }
    }

    /// 400 `invalid_request`: the request is malformed (a missing or
    /// repeated parameter, a wrong content type).
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// A refusal with its own status and `error` code (the registration
    /// endpoint's RFC 7591 and RFC 6750 codes), carrying the core's
    /// `reason` if there is one.
    pub(crate) fn with_code(
        status: StatusCode,
        code: &'static str,
        description: impl Into<String>,
        reason: Option<Reason>,
    ) -> Self {
        HttpError {
            reason,
            ..Self::new(status, code, description)
        }
    }

    /// 400 `unsupported_grant_type`.
    pub fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            description,
        )
    }

    /// 413 `invalid_request`: the body is longer than `limit` bytes.
    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    /// The JSON form of a refusal some layer below the routes wrote as
    /// plain text or nothing (the router's 405, the body limit's 413, the
    /// timeout's 408), by its status.
    pub(crate) fn for_status(status: StatusCode, method: &str, path: &str) -> Self {
        let path = crate::untrusted::Echo(path);
        match status {
            StatusCode::NOT_FOUND => {
                Self::new(status, "not_found", format!("no endpoint at {path}"))
            }
            StatusCode::METHOD_NOT_ALLOWED => Self::new(
                status,
                "invalid_request",
                format!(
                    "{} is not allowed on {path}",
                    crate::untrusted::Echo(method)
                ),
            ),
            StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(status, "invalid_request", "the request body is too large")
            }
            StatusCode::REQUEST_TIMEOUT => Self::new(
                status,
                "invalid_request",
                "the request was not complete in time",
            ),
            s if s.is_server_error() => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error; the server log has the cause",
            ),
            s => Self::new(
                s,
                "invalid_request",
                s.canonical_reason().unwrap_or("bad request"),
            ),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The OAuth `error` code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let description = description(&self.description);
        let body = Body {
            error: self.code,
            error_description: &description,
            reason: self.reason.map(Reason::as_str),
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.code == "invalid_client" {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(BASIC_CHALLENGE),
            );
        }
        if self.code == "invalid_token" {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(BEARER_CHALLENGE),
            );
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// `text` as RFC 6749 allows an `error_description`: printable ASCII
/// without `"` and `\` (`"` becomes `'`, anything else outside the set
/// `?`), at most [`MAX_DESCRIPTION_BYTES`].
fn description(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| match c {
            '"' => '\'',
            ' '..='~' if c != '\\' => c,
            _ => '?',
        })
        .collect();
    if out.len() > MAX_DESCRIPTION_BYTES {
        out.truncate(MAX_DESCRIPTION_BYTES - 3);
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(err: HttpError) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let response = err.into_response();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 16).await.unwrap();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&bytes).unwrap(),
        )
    }

    #[tokio::test]
    async fn an_unknown_credential_is_invalid_client_with_a_basic_challenge() {
        let err = Error::refused(Reason::ApiKeyInvalid, "unknown api key");
        let (status, headers, json) = body(err.into()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(json["error"], "invalid_client");
        assert_eq!(json["reason"], "API_KEY_INVALID");
        assert_eq!(headers[header::WWW_AUTHENTICATE], BASIC_CHALLENGE);
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    }

    #[tokio::test]
    async fn a_rate_limit_is_429_with_retry_after_in_whole_seconds() {
        let err = Error::RateLimited {
            retry_after: std::time::Duration::from_millis(1500),
            message: "rate limit exceeded".to_owned(),
        };
        let (status, headers, json) = body(err.into()).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "2");
        assert_eq!(json["error"], "temporarily_unavailable");
        assert_eq!(json["reason"], "RATE_LIMITED");
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let err = Error::Store(crate::store::StoreError::Backend(
            "reading /secret/path: disk on fire".to_owned(),
        ));
        let (status, _, json) = body(err.into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(json["error"], "server_error");
        let text = json.to_string();
        assert!(
            !text.contains("disk") && !text.contains("/secret"),
            "{text}"
        );
    }

    #[test]
    fn only_internal_errors_and_an_unavailable_store_are_5xx() {
        for reason in Reason::ALL {
            let (status, _) = oauth_error(reason);
            assert_eq!(
                status.is_server_error(),
                matches!(reason, Reason::Internal | Reason::StoreUnavailable),
                "{reason:?}"
            );
        }
        let (status, code) = oauth_error(Reason::StoreUnavailable);
        assert_eq!(
            (status, code),
            (StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable")
        );
    }

    #[test]
    fn descriptions_are_printable_ascii_without_quotes_and_bounded() {
        assert_eq!(
            description("invalid name: \"a\\nb\" – x"),
            "invalid name: 'a?nb' ? x"
        );
        let long = description(&"é".repeat(10_000));
        assert_eq!(long.len(), MAX_DESCRIPTION_BYTES);
        assert!(long.ends_with("..."));
    }
}
