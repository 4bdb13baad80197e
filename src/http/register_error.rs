//! The one mapping from a core refusal of a Dynamic Client Registration
//! to its RFC 7591 section 3.2.2 answer: an invalid `redirect_uris` is
//! `invalid_redirect_uri`, any other invalid field is
//! `invalid_client_metadata` (both 400, the field named by its RFC 7591
//! metadata name); everything else (429 and the rest) is as on every
//! endpoint ([`super::error`]).

use axum::http::StatusCode;

use super::error::HttpError;
use crate::core::{Error, Reason};

/// The RFC 7591 metadata name of a core field.
fn metadata_name(field: &str) -> &str {
    match field {
        "name" => "client_name",
        "allowed_scopes" => "scope",
        "allowed_resources" => "resource",
        other => other,
    }
}

/// 400 `invalid_client_metadata` with `description`.
pub(super) fn invalid_metadata(description: impl Into<String>) -> HttpError {
    HttpError::with_code(
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
        description,
        None,
    )
}

/// The answer to a registration the core refused.
pub(super) fn registration_error(err: Error) -> HttpError {
    match err {
        Error::InvalidArgument { field, message } => {
            let code = if field == "redirect_uris" {
                "invalid_redirect_uri"
            } else {
                "invalid_client_metadata"
            };
            // An ordinary client error: with the per-request lines.
            tracing::debug!(error = code, field, "registration refused");
            HttpError::with_code(
                StatusCode::BAD_REQUEST,
                code,
                format!("invalid {}: {message}", metadata_name(field)),
                Some(Reason::InvalidField),
            )
        }
        other => HttpError::from(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_invalid_redirect_uri_and_the_rest_invalid_client_metadata() {
        let err = registration_error(Error::invalid("redirect_uris", "bad"));
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        assert_eq!(err.code(), "invalid_redirect_uri");
        for field in ["name", "grant_types", "allowed_scopes", "jwks"] {
            let err = registration_error(Error::invalid(field, "bad"));
            assert_eq!(err.code(), "invalid_client_metadata", "{field}");
        }
        let limited = registration_error(Error::RateLimited {
            retry_after: std::time::Duration::from_secs(3),
            message: "slow down".to_owned(),
        });
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    }
}
