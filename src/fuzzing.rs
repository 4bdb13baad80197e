//! Entry points for the fuzz targets (`fuzz/`), built only with the
//! `fuzzing` feature, which only the fuzz crate enables. Each hands raw
//! bytes to the crate's own parsers and checks (the ones a request
//! reaches before any store or network), and asserts what must hold for
//! every input: a refusal is the caller's error (INVALID_ARGUMENT, 400,
//! 401...), never INTERNAL or a 500. A panic here is a finding.
//!
//! The gRPC entry points live in the adapter (`grpc::fuzzing`), which
//! alone names tonic; they are re-exported here.
//!
//! Nothing here is an API: it may change with any parser it reaches.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::core::Error;
pub use crate::grpc::fuzzing::{GRPC_REQUESTS, grpc_request};

/// Asserts that `err`, as the HTTP adapter answers it, is the caller's
/// error (a 4xx, never a 500).
fn assert_caller_error(err: Error) {
    assert_http_caller_error(&crate::http::error::HttpError::from(err));
}

/// Asserts that an HTTP refusal is a 4xx.
fn assert_http_caller_error(err: &crate::http::error::HttpError) {
    assert!(
        err.status().is_client_error(),
        "a bad input answered {}: {}",
        err.status(),
        err.code()
    );
}

/// The HTTP side of `Authorization`: `values` as the request's
/// `Authorization` headers (those that are header values at all), `form`
/// as its form body, through the request's credentials
/// ([`crate::http::credentials::Call`]) and the endpoints' choice of
/// client authentication (`http::client_auth`: Basic decoded, Bearer, a
/// form secret or assertion).
pub fn http_authorization(values: &[&[u8]], form: &[u8]) {
    use axum::http::{HeaderValue, Request, header::AUTHORIZATION};

    use crate::http::client_auth;
    use crate::http::credentials::Call;
    use crate::http::form::Form;

    let mut req = Request::builder();
    for v in values {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            req = req.header(AUTHORIZATION, v);
        }
    }
    let Ok(req) = req.body(()) else {
        return;
    };
    let (parts, ()) = req.into_parts();
    let call = Call::from_parts(&parts);
    let creds = call.credentials();
    assert_eq!(creds.authorization_count, call.authorization_count());
    let form = match Form::parse(form) {
        Ok(f) => f,
        Err(e) => return assert_http_caller_error(&e),
    };
    let audiences = ["https://auth.example.com/token".to_owned()];
    for result in [
        client_auth::presented(&call, &form, &audiences).map(drop),
        client_auth::client_credential(&call, &form, &audiences).map(drop),
        client_auth::client_credential_or_public(&call, &form, &audiences).map(drop),
    ] {
        if let Err(e) = result {
            assert_http_caller_error(&e);
        }
    }
    api_key(creds.authorization);
}

/// The gRPC side of `authorization`: `values` as the request's
/// `authorization` metadata, through the gRPC adapter's credentials
/// (`grpc::fuzzing::grpc_credentials`), then the `Bearer` API key as
/// authentication reads and checks it, its refusal as gRPC answers it.
pub fn grpc_authorization(values: &[&[u8]]) {
    if let Some(refusal) =
        api_key_refusal(crate::grpc::fuzzing::grpc_credentials(values).as_deref())
    {
        crate::grpc::fuzzing::assert_caller_error(refusal);
    }
}

/// An `authorization` value's API key, read as authentication reads it
/// and checked against an index of none, as `/introspect` checks a Bearer caller.
fn api_key(value: Option<&str>) {
    if let Some(refusal) = api_key_refusal(value) {
        assert_caller_error(refusal);
    }
}

/// The refusal of `value`'s API key by an index of none (which must
/// refuse every key).
fn api_key_refusal(value: Option<&str>) -> Option<Error> {
    let secret = crate::core::authn::bearer(value?).unwrap_or_default();
    let index = crate::core::api_keys::ApiKeyIndex::default();
    match index.check(secret, 0) {
        Ok(_) => panic!("an empty index accepted a key"),
        Err(refusal) => Some(refusal.to_error()),
    }
}

/// A form body (or query string) as the OAuth endpoints read it, with
/// `content_type` as its `Content-Type`: the strict parse, the lookups
/// the handlers make and the PKCE parameters of an authorization
/// request.
pub fn form(content_type: &str, body: &[u8]) {
    use crate::http::form::{Form, is_form_content_type};

    let _ = is_form_content_type(content_type);
    for parsed in [
        Form::parse(body),
        Form::parse_repeating(body, &["resource"]),
    ] {
        match parsed {
            Ok(f) => {
                let names: Vec<String> = f.names().map(str::to_owned).collect();
                for n in &names {
                    let _ = f.all(n);
                    if let Err(e) = f.require(n) {
                        assert_http_caller_error(&e);
                    }
                }
                if let Err(e) = crate::core::pkce::check_challenge(
                    f.get("code_challenge"),
                    f.get("code_challenge_method"),
                ) {
                    assert_caller_error(e);
                }
            }
            Err(e) => assert_http_caller_error(&e),
        }
    }
}

/// A Dynamic Client Registration body (`POST /register`), read as the
/// endpoint reads it, then checked as the core checks a new client.
pub fn register(body: &[u8]) {
    let defaults = ["tools:call".to_owned()];
    match crate::http::register::new_client_from_body(body, &defaults) {
        Ok(new) => {
            if let Err(e) = crate::core::clients::check_new(&new) {
                assert_caller_error(e);
            }
        }
        Err(e) => assert_http_caller_error(&e),
    }
}

/// A client-id URL and the metadata document fetched from it, checked as
/// `core::cimd` checks them (no fetch: the body is given).
pub fn cimd(url: &str, body: &[u8]) {
    use std::sync::OnceLock;

    use crate::core::cimd::{CimdSettings, MetadataClients};

    static CLIENTS: OnceLock<MetadataClients> = OnceLock::new();
    let clients = CLIENTS.get_or_init(|| {
        MetadataClients::new(
            None,
            CimdSettings {
                allowed_hosts: vec!["app.example.com".to_owned(), "*.example.org".to_owned()],
                default_scopes: vec!["tools:call".to_owned()],
                allowed_resources: vec!["https://mcp.example.com".to_owned()],
            },
        )
        .expect("settings without a fetch policy")
    });
    let _ = clients.check_url(url);
    let _ = clients.client_from(url, body, 0);
}

/// A client assertion (`private_key_jwt`, RFC 7523) presented by a client
/// whose registered keys are `jwks`, at `now`, as the token endpoint
/// checks it; and its unverified subject, as client authentication
/// reads it first.
pub fn client_assertion(client_id: &str, jwks: &str, assertion: &str, now: i64) {
    use crate::core::client_assertion::{check, unverified_subject};
    use crate::store::{AuthMethod, ClientOrigin, GrantType, OAuthClientRecord};

    let _ = unverified_subject(assertion);
    let client = OAuthClientRecord {
        client_id: client_id.to_owned(),
        name: "fuzz".to_owned(),
        secret_hash: None,
        secret_prefix: None,
        previous_secret: None,
        secret_rotated_at: None,
        redirect_uris: Vec::new(),
        grant_types: vec![GrantType::ClientCredentials],
        allowed_scopes: vec!["tools:call".to_owned()],
        allowed_resources: vec!["https://mcp.example.com".to_owned()],
        token_endpoint_auth_method: AuthMethod::PrivateKeyJwt,
        jwks: Some(jwks.to_owned()),
        created_at: 0,
        updated_at: 0,
        disabled: false,
        tokens_valid_after: None,
        origin: ClientOrigin::Registered,
        last_grant_at: None,
        skip_consent: false,
    };
    let _ = check(
        &client,
        assertion,
        &["https://auth.example.com/token", "https://auth.example.com"],
        now,
    );
}

/// PEM and DER as the server reads them: `data[0]` picks the reader, the
/// rest is its input (for two inputs, split at the first NUL byte).
/// 0: a presented client certificate (DER); 1: a CA certificate and key
/// (PEM, as `ca` loads them); 2: the HTTP listener's certificate chain
/// and key (PEM, rustls); 3: the names and serials the CA and the CLI
/// take; 4: a PEM block's DER, fingerprinted.
pub fn pem(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let (first, second) = match rest.iter().position(|b| *b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match which % 5 {
        0 => {
            let _ = crate::ca::parse_client_cert(rest, crate::ca::DEFAULT_TRUST_DOMAIN);
        }
        1 => {
            let _ =
                crate::ca::ca_from_pem(text(first), &text(second), std::path::Path::new("ca.pem"));
        }
        2 => {
            let ck = crate::tls::CertifiedKey {
                cert_pem: text(first),
                key_pem: text(second),
            };
            let _ = crate::tls::http_server_config(&ck);
        }
        3 => {
            let s = text(rest);
            let _ = crate::ca::validate_identity_name(&s);
            let _ = crate::ca::validate_trust_domain(&s);
            let _ = crate::ca::validate_dns_name(&s);
            let _ = crate::ca::normalize_serial(&s);
        }
        _ => {
            if let Ok(der) = crate::ca::pem_der(&text(rest)) {
                let _ = crate::ca::fingerprint(&der);
                let _ = crate::ca::parse_client_cert(&der, crate::ca::DEFAULT_TRUST_DOMAIN);
            }
        }
    }
}
