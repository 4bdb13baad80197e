//! `POST /register`: Dynamic Client Registration (RFC 7591). The body is
//! a JSON object of client metadata (`Content-Type: application/json`,
//! bounded as every body); unknown members are ignored (section 2). Who
//! may register follows `dcr`: anyone (`open`), callers presenting the
//! initial access token as `Authorization: Bearer` (`token`, compared in
//! constant time, never logged), or nobody (`off`: the route is not
//! served, 404). Each peer address has an hourly allowance of
//! registrations (429 with `Retry-After`). The core registers the client
//! with origin Dynamic; a client that never completes a grant is pruned
//! by maintenance. Answers are `Cache-Control: no-store` (the route's
//! layer); refusals are mapped in [`super::register_error`].

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::App;
use super::credentials::Call;
use super::error::HttpError;
use super::register_error::{invalid_metadata, registration_error};
use crate::core::NewClient;
use crate::secret::Secret;
use crate::store::GrantType;

/// The content type of a registration request.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// `resource`: one URL or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The client metadata this server reads (RFC 7591 section 2); anything
/// else in the object is ignored.
#[derive(Deserialize)]
struct Metadata {
    client_name: Option<String>,
    redirect_uris: Option<Vec<String>>,
    grant_types: Option<Vec<String>>,
    token_endpoint_auth_method: Option<String>,
    scope: Option<String>,
    resource: Option<OneOrMany>,
    jwks: Option<Value>,
    jwks_uri: Option<Value>,
}

/// Whether `value` names JSON (parameters allowed).
fn is_json(value: &str) -> bool {
    value
        .split(';')
        .next()
        .is_some_and(|e| e.trim().eq_ignore_ascii_case(JSON_CONTENT_TYPE))
}

/// Refuses a caller without the initial access token when one is
/// required: 401 `invalid_token` with a Bearer challenge.
fn check_initial_token(app: &App, call: &Call) -> Result<(), HttpError> {
    let Some(expected) = &app.settings.dcr_token_hash else {
        return Ok(());
    };
    let presented = call
        .authorization()
        .filter(|_| call.authorization_count() == 1)
        .and_then(|v| {
            v.split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        })
        .map(|(_, token)| token.trim());
    match presented {
        Some(token) if Secret::new(token).hash() == *expected => Ok(()),
        found => {
            tracing::info!(
                presented = found.is_some(),
                "registration refused: initial access token"
            );
            Err(HttpError::with_code(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "registration needs the initial access token as Authorization: Bearer",
                None,
            ))
        }
    }
}

/// A registration request's body read as a [`NewClient`], the scopes of
/// a request without `scope` being `default_scopes` (`dcr_default_scopes`).
pub(crate) fn new_client_from_body(
    body: &[u8],
    default_scopes: &[String],
) -> Result<NewClient, HttpError> {
    let metadata: Metadata = serde_json::from_slice(body).map_err(|e| {
        invalid_metadata(format!(
            "the body is not a JSON object of client metadata: {}",
            crate::untrusted::Echo(&e.to_string())
        ))
    })?;
    new_client(default_scopes, metadata)
}

/// The metadata read as a [`NewClient`], with this server's defaults.
fn new_client(default_scopes: &[String], m: Metadata) -> Result<NewClient, HttpError> {
    if m.jwks_uri.is_some() {
        return Err(invalid_metadata(
            "jwks_uri is not supported: send the public keys as jwks",
        ));
    }
    let Some(name) = m.client_name else {
        return Err(invalid_metadata("client_name is required"));
    };
    let redirect_uris = m.redirect_uris.unwrap_or_default();
    let grant_types = match m.grant_types {
        Some(g) => g,
        None if !redirect_uris.is_empty() => vec![
            GrantType::AuthorizationCode.as_str().to_owned(),
            GrantType::RefreshToken.as_str().to_owned(),
        ],
        None => {
            return Err(invalid_metadata(
                "grant_types is required without redirect_uris: give redirect_uris (authorization_code), or grant_types [\"client_credentials\"] with a confidential token_endpoint_auth_method",
            ));
        }
    };
    let Some(scopes) = crate::core::self_registered_scopes(m.scope.as_deref(), default_scopes)
    else {
        return Err(invalid_metadata(
            "scope is required: this server has no default scopes for registered clients",
        ));
    };
    let allowed_resources = match m.resource {
        None => Vec::new(),
        Some(OneOrMany::One(r)) => vec![r],
        Some(OneOrMany::Many(r)) => r,
    };
    let jwks = crate::core::jwks_member(m.jwks).map_err(invalid_metadata)?;
    Ok(NewClient {
        name,
        redirect_uris,
        grant_types,
        allowed_scopes: scopes,
        allowed_resources,
        token_endpoint_auth_method: m
            .token_endpoint_auth_method
            .unwrap_or_else(|| "client_secret_basic".to_owned()),
        jwks,
        skip_consent: false,
    })
}

/// `POST` of the registration endpoint.
pub(super) async fn post(State(app): State<App>, req: Request) -> Result<Response, HttpError> {
    let (parts, body) = req.into_parts();
    let call = Call::from_parts(&parts);
    check_initial_token(&app, &call)?;
    let json_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(is_json);
    if !json_type {
        return Err(HttpError::invalid_request(format!(
            "the content type must be {JSON_CONTENT_TYPE}"
        )));
    }
    let limit = app.settings.body_limit;
    let body = axum::body::to_bytes(body, limit).await.map_err(|err| {
        if super::form::is_length_limit(&err) {
            HttpError::body_too_large(limit)
        } else {
            HttpError::invalid_request("the request body could not be read")
        }
    })?;
    let new = new_client_from_body(&body, &app.settings.dcr_default_scopes)?;
    let creds = call.credentials();
    let created = app
        .core
        .register_dynamic_client(creds.peer.map(|p| p.ip()), creds.request_id, new)
        .await
        .map_err(registration_error)?;
    let r = &created.record;
    let mut out = json!({
        "client_id": r.client_id,
        "client_id_issued_at": r.created_at,
        "client_name": r.name,
        "redirect_uris": r.redirect_uris,
        "grant_types": r.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "token_endpoint_auth_method": r.token_endpoint_auth_method.as_str(),
        "scope": r.allowed_scopes.join(" "),
    });
    if r.allows_grant(GrantType::AuthorizationCode) {
        out["response_types"] = json!(["code"]);
    }
    if !r.allowed_resources.is_empty() {
        out["resource"] = json!(r.allowed_resources);
    }
    if let Some(jwks) = r
        .jwks
        .as_deref()
        .and_then(|j| serde_json::from_str::<Value>(j).ok())
    {
        out["jwks"] = jwks;
    }
    if let Some(secret) = &created.secret {
        out["client_secret"] = json!(secret.expose());
        out["client_secret_expires_at"] = json!(0);
    }
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("application/x-www-form-urlencoded"));
        assert!(!is_json("text/json"));
    }
}
