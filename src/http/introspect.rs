//! `POST /introspect` (RFC 7662): authenticated by an OAuth client (any
//! method of [`client_auth`](super::client_auth); it sees its own tokens
//! only) or by `Authorization: Bearer` with an API key that has
//! `tokens:verify` (every token); without a credential, 401. The verdict
//! is `VerifyToken`'s with no audience required: an active token's claims,
//! else exactly `{"active": false}`. `token_type_hint` is ignored.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::App;
use super::client_auth::{self, Presented};
use super::credentials::Call;
use super::error::HttpError;
use super::form::Form;
use crate::core::{Error, Introspector, Reason};

/// `POST` of the introspection endpoint.
pub(super) async fn post(
    State(app): State<App>,
    call: Call,
    form: Form,
) -> Result<Response, HttpError> {
    let audiences = app.audiences(super::INTROSPECT_PATH);
    let presented = client_auth::presented(&call, &form, &audiences)?;
    let who = match &presented {
        Presented::Client(c) => Introspector::Client(c),
        Presented::Bearer => Introspector::Caller,
        Presented::Nothing => {
            return Err(Error::refused(
                Reason::CredentialsMissing,
                "introspection needs a client's credential or `Authorization: Bearer` with an API key that has tokens:verify",
            )
            .into());
        }
    };
    let token = form.require("token")?;
    let verdict = app.core.introspect(&call.credentials(), who, token).await?;
    let body = match verdict {
        Ok(c) => json!({
            "active": true,
            "scope": c.scope,
            "client_id": c.client_id,
            "sub": c.sub,
            "aud": c.aud,
            "iss": c.iss,
            "exp": c.exp,
            "iat": c.iat,
            "nbf": c.nbf,
            "jti": c.jti,
            "token_type": "Bearer",
        }),
        Err(_) => json!({"active": false}),
    };
    Ok(Json(body).into_response())
}
