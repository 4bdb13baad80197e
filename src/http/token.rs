//! `POST /token` (RFC 6749 section 3.2). Its request is read as every
//! OAuth request is ([`Form`]: the content type, the body bound, no
//! repeated parameter). `grant_type=client_credentials` is served (the
//! client authenticated as [`client_auth`](super::client_auth) reads it);
//! any other grant type is `unsupported_grant_type`. Every answer is
//! `Cache-Control: no-store` and `Pragma: no-cache` (the route's layer).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::credentials::Call;
use super::error::HttpError;
use super::form::Form;
use super::{App, client_auth};
use crate::core::ClientCredentialsRequest;
use crate::untrusted::Echo;

/// A successful token response (RFC 6749 section 5.1).
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u32,
    scope: &'a str,
}

/// `POST` of the token endpoint.
pub(super) async fn post(
    State(app): State<App>,
    call: Call,
    form: Form,
) -> Result<Response, HttpError> {
    let grant_type = form.require("grant_type")?;
    if grant_type != "client_credentials" {
        return Err(HttpError::unsupported_grant_type(format!(
            "grant_type {} is not supported",
            Echo(grant_type)
        )));
    }
    let audiences = app.audiences(super::TOKEN_PATH);
    let credential = client_auth::client_credential(&call, &form, &audiences)?;
    let granted = app
        .core
        .client_credentials_grant(
            &call.credentials(),
            &credential,
            ClientCredentialsRequest {
                scope: form.get("scope"),
                resource: form.get("resource"),
            },
        )
        .await?;
    Ok(Json(TokenResponse {
        access_token: &granted.access_token,
        token_type: "Bearer",
        expires_in: granted.expires_in,
        scope: &granted.scope,
    })
    .into_response())
}
