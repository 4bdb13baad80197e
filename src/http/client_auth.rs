//! Which OAuth client authentication a request uses (RFC 6749 section
//! 2.3, RFC 7523): HTTP Basic (`client_secret_basic`, the id and secret
//! each form-urlencoded before base64, section 2.3.1), `client_id` and
//! `client_secret` in the form (`client_secret_post`), or
//! `client_assertion_type` and `client_assertion` in the form
//! (`private_key_jwt`); at `/introspect` also `Authorization: Bearer`
//! with an API key. Exactly one per request: two are `invalid_request`.
//! Which method the client registered is the core's to check.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::credentials::Call;
use super::error::HttpError;
use super::form::{Form, decode};
use crate::core::{ClientCredential, Error, JWT_BEARER_ASSERTION, Reason};
use crate::secret::Secret;
use crate::store::AuthMethod;

/// Longest `Authorization: Basic` value decoded, bytes.
const MAX_BASIC_LEN: usize = 1024;

/// What a request presents to authenticate itself.
#[derive(Debug)]
pub(crate) enum Presented {
    /// An OAuth client credential.
    Client(ClientCredential),
    /// `Authorization: Bearer ...` (an API key), for the core to resolve.
    Bearer,
    /// Nothing.
    Nothing,
}

/// The one authentication `call` and `form` present; `audiences` are the
/// URLs a client assertion may be addressed to.
///
/// # Errors
/// `invalid_request` (CREDENTIALS_CONFLICT) for two methods or several
/// `Authorization` values; INVALID_FIELD for a wrong assertion type or a
/// `client_id` that contradicts the Basic one. An `Authorization` value
/// of another scheme or a malformed Basic one is an unusable credential,
/// for the core to refuse (and count) as any failed one.
pub(crate) fn presented(
    call: &Call,
    form: &Form,
    audiences: &[String],
) -> Result<Presented, HttpError> {
    if call.authorization_count() > 1 {
        return Err(conflict("send one Authorization header, not several"));
    }
    let header = call.authorization();
    let in_form = [
        form.get("client_secret").is_some(),
        form.get("client_assertion").is_some() || form.get("client_assertion_type").is_some(),
    ];
    let count = usize::from(header.is_some()) + in_form.iter().filter(|b| **b).count();
    if count > 1 {
        return Err(conflict(
            "use one client authentication method per request (RFC 6749 section 2.3)",
        ));
    }
    if let Some(value) = header {
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return Ok(Presented::Bearer);
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Ok(Presented::Client(ClientCredential::Unusable {
                why: "use HTTP Basic, the form, or a client assertion",
            }));
        }
        let Some((client_id, secret)) = basic(rest.trim()) else {
            return Ok(Presented::Client(ClientCredential::Unusable {
                why: "malformed Basic credentials",
            }));
        };
        if form.get("client_id").is_some_and(|id| id != client_id) {
            return Err(Error::invalid(
                "client_id",
                "differs from the client id of the Authorization header",
            )
            .into());
        }
        return Ok(Presented::Client(ClientCredential::Secret {
            client_id,
            secret,
            method: AuthMethod::ClientSecretBasic,
        }));
    }
    if let Some(secret) = form.get("client_secret") {
        let Some(client_id) = form.get("client_id") else {
            return Err(Error::invalid("client_id", "client_secret needs a client_id").into());
        };
        return Ok(Presented::Client(ClientCredential::Secret {
            client_id: client_id.to_owned(),
            secret: Secret::new(secret),
            method: AuthMethod::ClientSecretPost,
        }));
    }
    if in_form[1] {
        if form.get("client_assertion_type") != Some(JWT_BEARER_ASSERTION) {
            return Err(Error::invalid(
                "client_assertion_type",
                format!("must be {JWT_BEARER_ASSERTION}"),
            )
            .into());
        }
        let Some(assertion) = form.get("client_assertion") else {
            return Err(Error::invalid("client_assertion", "is missing").into());
        };
        return Ok(Presented::Client(ClientCredential::Assertion {
            client_id: form.get("client_id").map(str::to_owned),
            assertion: Secret::new(assertion),
            audiences: audiences.to_vec(),
        }));
    }
    Ok(Presented::Nothing)
}

/// The client credential of a request that must present one (`/token`,
/// `/revoke`).
///
/// # Errors
/// As [`presented`]; CREDENTIALS_MISSING (`invalid_client`) for none, and
/// CLIENT_AUTH_FAILED for a Bearer value.
pub(crate) fn client_credential(
    call: &Call,
    form: &Form,
    audiences: &[String],
) -> Result<ClientCredential, HttpError> {
    match presented(call, form, audiences)? {
        Presented::Client(c) => Ok(c),
        Presented::Bearer => Err(auth_failed(
            "client authentication failed: this endpoint takes a client's credential, not a Bearer token",
        )),
        Presented::Nothing => Err(Error::refused(
            Reason::CredentialsMissing,
            "client authentication is required: HTTP Basic, client_secret in the form, or a client assertion",
        )
        .into()),
    }
}

/// The client credential of a request at the code exchange or a
/// refresh: as [`client_credential`], except that a `client_id` alone
/// names a public client (PKCE or the refresh token proves the rest).
///
/// # Errors
/// As [`client_credential`].
pub(crate) fn client_credential_or_public(
    call: &Call,
    form: &Form,
    audiences: &[String],
) -> Result<ClientCredential, HttpError> {
    match (presented(call, form, audiences)?, form.get("client_id")) {
        (Presented::Nothing, Some(client_id)) => Ok(ClientCredential::Public {
            client_id: client_id.to_owned(),
        }),
        _ => client_credential(call, form, audiences),
    }
}

/// The client id and secret of a Basic credential; `None` when it is
/// malformed.
fn basic(encoded: &str) -> Option<(String, Secret)> {
    if encoded.is_empty() || encoded.len() > MAX_BASIC_LEN {
        return None;
    }
    let bytes = STANDARD.decode(encoded).ok()?;
    let at = bytes.iter().position(|b| *b == b':')?;
    let id = decode(&bytes[..at]).ok()?;
    let secret = decode(&bytes[at + 1..]).ok()?;
    if id.is_empty() {
        return None;
    }
    Some((id, Secret::new(secret)))
}

fn conflict(message: &str) -> HttpError {
    Error::refused(Reason::CredentialsConflict, message).into()
}

fn auth_failed(message: &str) -> HttpError {
    Error::refused(Reason::ClientAuthFailed, message).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_is_form_urlencoded_inside_base64() {
        let raw = STANDARD.encode("cli%3Aa:se+cr%25et");
        let (id, secret) = basic(&raw).unwrap();
        assert_eq!(id, "cli:a");
        assert_eq!(secret.expose(), "se cr%et");
        for bad in [
            "",
            "!!!",
            &STANDARD.encode("nocolon"),
            &STANDARD.encode(":x"),
        ] {
            assert!(basic(bad).is_none(), "{bad}");
        }
    }
}
