//! The one mapping from the domain [`Error`] to `tonic::Status`.
//!
//! Handlers call the core and use `?`; this is the only place that decides
//! a gRPC code. Every status carries a `google.rpc.ErrorInfo` with domain
//! [`ERROR_DOMAIN`] and the stable [`Reason`]; invalid fields add a
//! `BadRequest` violation, rate limits a `RetryInfo` and `retry-after`.
//! Unexpected failures become INTERNAL with a generic message; their cause
//! is logged, never sent. Every other refusal is logged as `request
//! refused` at its kind's level ([`Kind::refusal_level`]).

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::core::{Error, Kind, Reason};

/// The `ErrorInfo.domain` of every error this service returns.
pub const ERROR_DOMAIN: &str = "mcp-auth";

/// A gRPC code's canonical name, as the gRPC specification and the
/// README's error tables write it (`PERMISSION_DENIED`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
/// Longest message (and `BadRequest` description) sent. Messages repeat
/// caller values only through [`crate::untrusted::Echo`], which keeps them
/// far shorter; this bound holds whatever a message is made of, so an
/// error can never grow a response's trailers past a client's limit.
const MAX_MESSAGE_BYTES: usize = 400;
/// Longest `ErrorInfo.metadata` value sent (the longest valid scope).
const MAX_METADATA_BYTES: usize = 128;

/// The gRPC code `reason` is sent with.
pub fn code(reason: Reason) -> Code {
    match reason.kind() {
        Kind::Unauthenticated => Code::Unauthenticated,
        Kind::Forbidden => Code::PermissionDenied,
        Kind::Invalid => Code::InvalidArgument,
        Kind::NotFound => Code::NotFound,
        Kind::AlreadyExists => Code::AlreadyExists,
        Kind::Conflict => Code::FailedPrecondition,
        Kind::Exhausted => Code::ResourceExhausted,
        Kind::Unavailable => Code::Unavailable,
        Kind::Internal => Code::Internal,
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
                details = ErrorDetails::with_bad_request_violation(
                    *field,
                    bounded(message.clone(), MAX_MESSAGE_BYTES),
                );
                err.to_string()
            }
            Error::PermissionDenied { scope, .. } => {
                metadata.insert(
                    "scope".to_owned(),
                    bounded(scope.clone(), MAX_METADATA_BYTES),
                );
                details = ErrorDetails::new();
                err.to_string()
            }
            Error::Refused { .. } => {
                details = ErrorDetails::new();
                err.to_string()
            }
            Error::Store(crate::store::StoreError::Unavailable(_)) => {
                // The cause (which may name the database's host) is
                // logged, not sent.
                tracing::warn!(cause = %err, "the database is unavailable");
                details = ErrorDetails::new();
                "the database is unavailable; retry later".to_owned()
            }
            Error::Store(_) | Error::Token(_) | Error::Random(_) | Error::Hashing(_) => {
                tracing::warn!(cause = %err, "internal error");
                details = ErrorDetails::new();
                "internal error; the server log has the cause".to_owned()
            }
        };
        // Store failures and internal errors are logged above, with their
        // cause; any other refusal at its kind's level.
        if reason != Reason::Internal && !matches!(err, Error::Store(_)) {
            let (code, reason) = (code(reason), reason.as_str());
            match err.kind().refusal_level() {
                tracing::Level::INFO => tracing::info!(?code, reason, "request refused"),
                tracing::Level::WARN => tracing::warn!(?code, reason, "request refused"),
                _ => tracing::debug!(?code, reason, "request refused"),
            }
        }
        details.set_error_info(reason.as_str(), ERROR_DOMAIN, metadata);
        let message = bounded(message, MAX_MESSAGE_BYTES);
        Status::with_error_details_and_metadata(code(reason), message, details, headers)
    }
}

/// `text`, cut on a character boundary to at most `max` bytes (the cut
/// marked with `…`).
fn bounded(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max - '…'.len_utf8();
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
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
    fn messages_and_metadata_are_bounded_whatever_they_hold() {
        let long = "é".repeat(10_000);
        let status = Status::from(Error::invalid("name", long.clone()));
        assert!(status.message().len() <= MAX_MESSAGE_BYTES);
        assert!(status.message().ends_with('…'));
        let violation = &status.get_details_bad_request().unwrap().field_violations[0];
        assert!(violation.description.len() <= MAX_MESSAGE_BYTES);
        let status = Status::from(Error::PermissionDenied {
            scope: long.clone(),
            message: long,
        });
        assert!(status.message().len() <= MAX_MESSAGE_BYTES);
        assert!(info(&status).1["scope"].len() <= MAX_METADATA_BYTES);
        assert_eq!(bounded("short".to_owned(), 8), "short");
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let err = Error::Store(crate::store::StoreError::Backend(
            "reading /secret/path: disk on fire".to_owned(),
        ));
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
