//! `POST /token` (RFC 6749 section 3.2). Its request is read as every
//! OAuth request is ([`Form`]: the content type, the body bound, no
//! repeated parameter). Served: `client_credentials` (the client
//! authenticated as [`client_auth`](super::client_auth) reads it),
//! `authorization_code` and `refresh_token` (where a public client names
//! itself with `client_id` alone); any other grant type is
//! `unsupported_grant_type`. Every answer is
//! `Cache-Control: no-store` and `Pragma: no-cache` (the route's layer).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::credentials::Call;
use super::error::HttpError;
use super::form::Form;
use super::{App, client_auth};
use crate::core::{ClientCredentialsRequest, CodeExchange, IssuedSession};
use crate::untrusted::Echo;

/// A successful token response (RFC 6749 section 5.1).
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u32,
    scope: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
}

/// The token response of a session's tokens.
fn session_response(issued: &IssuedSession) -> Response {
    let scope = issued.scopes.join(" ");
    Json(TokenResponse {
        access_token: &issued.access_token,
        token_type: "Bearer",
        expires_in: u32::try_from(issued.expires_at - issued.issued_at).unwrap_or(0),
        scope: &scope,
        refresh_token: Some(issued.refresh_token.expose()),
    })
    .into_response()
}

/// `POST` of the token endpoint.
pub(super) async fn post(
    State(app): State<App>,
    call: Call,
    form: Form,
) -> Result<Response, HttpError> {
    let grant_type = form.require("grant_type")?;
    let audiences = app.audiences(super::TOKEN_PATH);
    match grant_type {
        "client_credentials" => {}
        "authorization_code" => {
            let credential = client_auth::client_credential_or_public(&call, &form, &audiences)?;
            let issued = app
                .core
                .authorization_code_grant(
                    &call.credentials(),
                    &credential,
                    CodeExchange {
                        code: form.require("code")?,
                        redirect_uri: form.get("redirect_uri"),
                        code_verifier: form.get("code_verifier"),
                        resource: form.get("resource"),
                    },
                )
                .await?;
            return Ok(session_response(&issued));
        }
        "refresh_token" => {
            let credential = client_auth::client_credential_or_public(&call, &form, &audiences)?;
            let issued = app
                .core
                .oauth_refresh_grant(
                    &call.credentials(),
                    &credential,
                    form.require("refresh_token")?,
                    form.get("scope"),
                    form.get("resource"),
                )
                .await?;
            return Ok(session_response(&issued));
        }
        other => {
            return Err(HttpError::unsupported_grant_type(format!(
                "grant_type {} is not supported",
                Echo(other)
            )));
        }
    }
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
        refresh_token: None,
    })
    .into_response())
}
