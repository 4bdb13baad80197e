//! `POST /revoke` (RFC 7009): a client revokes one of its own access
//! tokens (client-authenticated as [`client_auth`](super::client_auth)
//! reads it). Whatever `token` is (its own, another client's, unknown,
//! garbage) the answer is 200 with an empty body (section 2.2);
//! `token_type_hint` is ignored.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::credentials::Call;
use super::error::HttpError;
use super::form::Form;
use super::{App, client_auth};

/// `POST` of the revocation endpoint.
pub(super) async fn post(
    State(app): State<App>,
    call: Call,
    form: Form,
) -> Result<Response, HttpError> {
    let audiences = app.audiences(super::REVOKE_PATH);
    let credential = client_auth::client_credential(&call, &form, &audiences)?;
    let token = form.require("token")?;
    app.core
        .revoke_oauth_token(&call.credentials(), &credential, token)
        .await?;
    Ok(StatusCode::OK.into_response())
}
