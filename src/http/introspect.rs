//! `POST /introspect` (RFC 7662): authenticated by an OAuth client (any
//! method of [`client_auth`](super::client_auth); it sees its own tokens
//! only) or by `Authorization: Bearer` with an API key that has
//! `tokens:verify` (every token, and API keys: `token_kind` tells which);
//! without a credential, 401. The verdict is `VerifyToken`'s with no
//! audience required: an active token's claims, else exactly
//! `{"active": false}`. `token_type_hint` is ignored.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::App;
use super::client_auth::{self, Presented};
use super::credentials::Call;
use super::error::HttpError;
use super::form::Form;
use crate::core::{Error, Introspection, Introspector, Reason};

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
        Introspection::AccessToken(c) => json!({
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
            "token_kind": "access_token",
        }),
        Introspection::ApiKey(k) => {
            let mut body = json!({
                "active": true,
                "scope": k.scopes.join(" "),
                "client_id": k.client_id,
                "sub": k.subject,
                "iss": k.issuer,
                "iat": k.issued_at,
                "token_type": "Bearer",
                "token_kind": "api_key",
            });
            if k.expires_at != 0 {
                body["exp"] = json!(k.expires_at);
            }
            body
        }
        Introspection::Inactive => json!({"active": false}),
    };
    Ok(Json(body).into_response())
}
