//! Authorization server metadata (RFC 8414), served as
//! `/.well-known/oauth-authorization-server` and, for clients that look
//! there, `/.well-known/openid-configuration`.
//!
//! Where: RFC 8414 section 3.1 inserts the well-known suffix between the
//! host and the issuer's path, so an issuer `https://h/auth` has its
//! metadata at `/.well-known/oauth-authorization-server/auth` and
//! `/.well-known/openid-configuration/auth`; OpenID Connect Discovery
//! appends it instead (`/auth/.well-known/openid-configuration`), and MCP
//! clients try that too, so it is served as well. The un-suffixed
//! `/.well-known/oauth-authorization-server` of such an issuer would
//! describe the issuer `https://h`, which this server is not: it is 404.
//!
//! What: every endpoint URL is the issuer followed by the endpoint's path
//! (the listener serves the endpoints under the issuer's path). Only
//! endpoints that exist are named: `registration_endpoint` when Dynamic
//! Client Registration is on; `authorization_endpoint` joins when it is
//! built. `scopes_supported`
//! is left out: scopes are whatever the admin grants (no fixed list), and
//! naming the administrative ones to anyone who asks helps no client.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::App;

/// The RFC 8414 well-known suffix.
pub const OAUTH_SUFFIX: &str = "/.well-known/oauth-authorization-server";
/// The OpenID Connect Discovery well-known suffix.
pub const OPENID_SUFFIX: &str = "/.well-known/openid-configuration";
/// How long clients may cache the metadata, seconds.
const MAX_AGE_SECONDS: u32 = 300;

/// The algorithms a client assertion (`private_key_jwt`) may be signed
/// with.
const ASSERTION_ALGS: [&str; 9] = [
    "EdDSA", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
];

/// The client authentication methods of the introspection and revocation
/// endpoints (`none` is not one: they need a confidential client).
const ENDPOINT_AUTH_METHODS: [&str; 3] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];

/// The metadata document of `issuer`, whose endpoints are at their paths
/// ([`super::TOKEN_PATH`], ...) under its path; `registration` names the
/// registration endpoint (Dynamic Client Registration is on);
/// `metadata_documents` says whether client ids may be metadata document
/// URLs.
pub fn document(issuer: &str, registration: bool, metadata_documents: bool) -> serde_json::Value {
    use super::{
        AUTHORIZE_PATH, INTROSPECT_PATH, JWKS_PATH, REGISTER_PATH, REVOKE_PATH, TOKEN_PATH,
    };
    let mut doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}{AUTHORIZE_PATH}"),
        "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "introspection_endpoint": format!("{issuer}{INTROSPECT_PATH}"),
        "introspection_endpoint_auth_methods_supported": ENDPOINT_AUTH_METHODS,
        "introspection_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "revocation_endpoint": format!("{issuer}{REVOKE_PATH}"),
        "revocation_endpoint_auth_methods_supported": ENDPOINT_AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
            "none"
        ],
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "code_challenge_methods_supported": ["S256"],
        "client_id_metadata_document_supported": metadata_documents,
        "authorization_response_iss_parameter_supported": true
    });
    if registration {
        doc["registration_endpoint"] = json!(format!("{issuer}{REGISTER_PATH}"));
    }
    doc
}

/// The paths the metadata of an issuer with path `issuer_path` (`""` or
/// `/seg/...`) is served at.
pub fn paths(issuer_path: &str) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    paths.insert(format!("{OAUTH_SUFFIX}{issuer_path}"));
    paths.insert(format!("{OPENID_SUFFIX}{issuer_path}"));
    paths.insert(format!("{issuer_path}{OPENID_SUFFIX}"));
    paths
}

/// `GET` of any metadata path.
pub(super) async fn get(State(app): State<App>) -> Response {
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        app.metadata.clone(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={MAX_AGE_SECONDS}")) {
        response.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issuer_without_path_has_the_two_well_known_paths() {
        let p: Vec<_> = paths("").into_iter().collect();
        assert_eq!(p, [OAUTH_SUFFIX, OPENID_SUFFIX]);
    }

    #[test]
    fn an_issuer_with_a_path_has_it_inserted_and_appended() {
        let p: Vec<_> = paths("/auth").into_iter().collect();
        assert_eq!(
            p,
            [
                "/.well-known/oauth-authorization-server/auth",
                "/.well-known/openid-configuration/auth",
                "/auth/.well-known/openid-configuration",
            ]
        );
        // Inserted and appended can coincide; each path is routed once.
        assert_eq!(paths(OPENID_SUFFIX).len(), 2);
    }

    #[test]
    fn every_endpoint_is_under_the_issuer() {
        let d = document("https://h/auth", true, true);
        assert_eq!(d["issuer"], "https://h/auth");
        assert_eq!(d["registration_endpoint"], "https://h/auth/register");
        assert!(
            document("https://h/auth", false, false)
                .get("registration_endpoint")
                .is_none()
        );
        assert_eq!(d["token_endpoint"], "https://h/auth/token");
        assert_eq!(d["authorization_endpoint"], "https://h/auth/authorize");
        assert_eq!(d["jwks_uri"], "https://h/auth/jwks");
        assert_eq!(d["introspection_endpoint"], "https://h/auth/introspect");
        assert_eq!(d["revocation_endpoint"], "https://h/auth/revoke");
        assert_eq!(
            d["revocation_endpoint_auth_methods_supported"],
            serde_json::json!([
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt"
            ])
        );
        assert!(d.get("scopes_supported").is_none());
        assert_eq!(d["client_id_metadata_document_supported"], true);
        assert_eq!(
            document("https://h/auth", false, false)["client_id_metadata_document_supported"],
            false
        );
    }
}
