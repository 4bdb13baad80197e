//! `POST /token` (RFC 6749 section 3.2), the room the grants will live in.
//! Its request is read as every OAuth request is ([`Form`]: the content
//! type, the body bound, no repeated parameter); no grant type is served
//! yet, so a well-formed request is answered `unsupported_grant_type`.
//! Every answer is `Cache-Control: no-store` (the route's layer).

use super::credentials::Call;
use super::error::HttpError;
use super::form::Form;
use crate::untrusted::Echo;

/// `POST` of the token endpoint.
pub(super) async fn post(_call: Call, form: Form) -> Result<axum::response::Response, HttpError> {
    let grant_type = form.require("grant_type")?;
    Err(HttpError::unsupported_grant_type(format!(
        "grant_type {} is not supported",
        Echo(grant_type)
    )))
}
