//! The authorization request (RFC 6749 section 4.1.1, OAuth 2.1, RFC
//! 8707): what `/authorize` receives, checked before anyone signs in.
//!
//! Two kinds of refusal, as RFC 6749 section 4.1.2.1 requires: while the
//! client or its redirect URI is in doubt (no `client_id`, an unknown
//! client, a refused metadata document, a redirect URI not registered for
//! it), the user is shown an error page and nothing is redirected
//! anywhere; once both are known good, every other refusal goes back to
//! the client's redirect URI with `error`, `state` and `iss`.
//!
//! The rules: `response_type=code` only; PKCE with S256 required; the
//! redirect URI one of the client's (exact, except the port of a
//! loopback `http` one); it may be left out when the client has exactly
//! one; `scope` within the client's allowed scopes (absent: all of them);
//! `resource` (may repeat, RFC 8707) each within its allowed resources
//! (absent: its only one); the client registered for
//! `authorization_code` and not disabled.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::core::cimd::is_document_url;
use crate::core::client_rules;
use crate::core::error::{Error, Reason};
use crate::core::grants::granted_scopes;
use crate::core::pkce;
use crate::core::{Core, Credentials};
use crate::store::{GrantType, OAuthClientRecord};
use crate::untrusted::Echo;

/// Longest `state` kept, bytes.
const MAX_STATE_LEN: usize = 1024;

/// The parameters of an authorization request, as sent.
#[derive(Clone, Debug, Default)]
pub struct AuthorizationRequest {
    /// `response_type`.
    pub response_type: Option<String>,
    /// `client_id`.
    pub client_id: Option<String>,
    /// `redirect_uri`.
    pub redirect_uri: Option<String>,
    /// `scope`.
    pub scope: Option<String>,
    /// `state`, returned unchanged.
    pub state: Option<String>,
    /// `code_challenge`.
    pub code_challenge: Option<String>,
    /// `code_challenge_method`.
    pub code_challenge_method: Option<String>,
    /// Every `resource`.
    pub resources: Vec<String>,
}

/// An authorization request that passed every check.
///
/// Kept in its interaction's entry in the store (serde JSON), the client's
/// record whole: a replica carrying the interaction on needs no fetch of a
/// metadata document, nor to have seen the client in its change feed yet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckedAuthorization {
    /// The client.
    #[serde(with = "whole_record")]
    pub client: Arc<OAuthClientRecord>,
    /// Where the answer goes.
    pub redirect_uri: String,
    /// `state`, to return.
    pub state: Option<String>,
    /// The scopes asked for (within the client's).
    pub scopes: Vec<String>,
    /// The resources (at least one): the code is good for each, and the
    /// token endpoint picks one per token.
    pub resources: Vec<String>,
    /// The PKCE challenge.
    pub code_challenge: String,
}

/// A shared client record as its record, in and out of JSON.
mod whole_record {
    use std::sync::Arc;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::store::OAuthClientRecord;

    pub(super) fn serialize<S: Serializer>(
        client: &Arc<OAuthClientRecord>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        client.as_ref().serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Arc<OAuthClientRecord>, D::Error> {
        OAuthClientRecord::deserialize(d).map(Arc::new)
    }
}

/// Why an authorization request is refused, and where the refusal goes.
#[derive(Debug)]
pub enum AuthorizeRefusal {
    /// Shown to the user; never redirected.
    Page(Error),
    /// Sent back to the client.
    Redirect {
        /// The client's redirect URI.
        redirect_uri: String,
        /// The request's `state`.
        state: Option<String>,
        /// What is wrong.
        error: Error,
    },
}

/// `redirect_uri` with `params` added to its query, and `iss` (RFC 9207):
/// where the browser goes back to the client. `None` when it cannot be
/// parsed (never for a redirect URI a client was registered with).
pub fn client_redirect_url(
    redirect_uri: &str,
    params: &[(&str, &str)],
    issuer: &str,
) -> Option<String> {
    let mut url = url::Url::parse(redirect_uri).ok()?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
        q.append_pair("iss", issuer);
    }
    Some(url.into())
}

/// The host (and port, if any) of a redirect URI: what the user is shown
/// of where the browser will go.
pub fn redirect_host(redirect_uri: &str) -> String {
    url::Url::parse(redirect_uri)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            })
        })
        .unwrap_or_else(|| redirect_uri.to_owned())
}

impl Core {
    /// Whether `client`, which was given no resources, may still ask for
    /// `resource` because this is a local development run (the generated
    /// TLS) and the resource is a loopback URL: an MCP server under
    /// development (`http://127.0.0.1:8080/mcp`), reached by a
    /// self-registered or metadata-document client. MCP clients register
    /// without `resource`; in production the operator lists resources
    /// (`dcr_allowed_resources`, `cimd_allowed_resources`).
    fn development_resource(&self, client: &OAuthClientRecord, resource: &str) -> bool {
        self.settings.development
            && client.allowed_resources.is_empty()
            && matches!(
                client.origin,
                crate::store::ClientOrigin::Dynamic | crate::store::ClientOrigin::MetadataDocument
            )
            && client_rules::is_loopback_url(resource)
    }

    /// Checks an authorization request (see the module documentation).
    ///
    /// # Errors
    /// Why it is refused, and whether the refusal may be redirected.
    pub async fn check_authorization_request(
        &self,
        creds: &Credentials<'_>,
        req: &AuthorizationRequest,
    ) -> Result<CheckedAuthorization, AuthorizeRefusal> {
        let page = |e: Error| AuthorizeRefusal::Page(e);
        let Some(client_id) = req.client_id.as_deref() else {
            return Err(page(Error::invalid("client_id", "is required")));
        };
        let client = if is_document_url(client_id) {
            self.metadata_client(creds, client_id).await.map_err(|e| {
                page(Error::refused(
                    Reason::ClientAuthFailed,
                    format!(
                        "the client metadata document {} was refused: {e}",
                        Echo(client_id)
                    ),
                ))
            })?
        } else {
            self.clients.get(client_id).ok_or_else(|| {
                page(Error::refused(
                    Reason::ClientNotFound,
                    format!("no OAuth client {}", Echo(client_id)),
                ))
            })?
        };
        let redirect_uri = match req.redirect_uri.as_deref() {
            Some(uri) => {
                if !client
                    .redirect_uris
                    .iter()
                    .any(|r| client_rules::redirect_uri_matches(r, uri))
                {
                    return Err(page(Error::refused(
                        Reason::RedirectUriInvalid,
                        format!(
                            "redirect_uri {} is not registered for this client",
                            Echo(uri)
                        ),
                    )));
                }
                uri.to_owned()
            }
            None => match client.redirect_uris.as_slice() {
                [only] => only.clone(),
                _ => {
                    return Err(page(Error::refused(
                        Reason::RedirectUriInvalid,
                        "redirect_uri is required: this client has several (or none)",
                    )));
                }
            },
        };
        let state = match req.state.as_deref() {
            Some(s) if s.len() > MAX_STATE_LEN => {
                return Err(page(Error::invalid(
                    "state",
                    format!("must be at most {MAX_STATE_LEN} bytes"),
                )));
            }
            s => s.map(str::to_owned),
        };
        let back = |error: Error| AuthorizeRefusal::Redirect {
            redirect_uri: redirect_uri.clone(),
            state: state.clone(),
            error,
        };
        match req.response_type.as_deref() {
            Some("code") => {}
            Some(other) => {
                return Err(back(Error::refused(
                    Reason::UnsupportedResponseType,
                    format!("response_type {} is not supported: use code", Echo(other)),
                )));
            }
            None => return Err(back(Error::invalid("response_type", "is required (code)"))),
        }
        if client.disabled {
            return Err(back(Error::refused(
                Reason::GrantNotAllowed,
                "this client is disabled",
            )));
        }
        if !client.allows_grant(GrantType::AuthorizationCode) {
            return Err(back(Error::refused(
                Reason::GrantNotAllowed,
                "this client is not registered for authorization_code",
            )));
        }
        let code_challenge = pkce::check_challenge(
            req.code_challenge.as_deref(),
            req.code_challenge_method.as_deref(),
        )
        .map_err(back)?;
        let scopes = granted_scopes(req.scope.as_deref(), &client.allowed_scopes).map_err(back)?;
        let resources = match req.resources.as_slice() {
            [] => match client.allowed_resources.as_slice() {
                [only] => vec![only.clone()],
                _ => {
                    return Err(back(Error::refused(
                        Reason::ResourceNotAllowed,
                        "name the resource: this client is allowed several (or none)",
                    )));
                }
            },
            asked => {
                let mut resources: Vec<String> = Vec::with_capacity(asked.len());
                for r in asked {
                    if !client.allowed_resources.contains(r)
                        && !self.development_resource(&client, r)
                    {
                        return Err(back(Error::refused(
                            Reason::ResourceNotAllowed,
                            format!("resource {} is not allowed for this client", Echo(r)),
                        )));
                    }
                    if !resources.contains(r) {
                        resources.push(r.clone());
                    }
                }
                resources
            }
        };
        Ok(CheckedAuthorization {
            client,
            redirect_uri,
            state,
            scopes,
            resources,
            code_challenge,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_redirect_back_keeps_the_query_and_ends_with_iss() {
        assert_eq!(
            client_redirect_url(
                "https://app.example/cb?x=1",
                &[("error", "access_denied"), ("state", "a b")],
                "https://as.example"
            )
            .as_deref(),
            Some(
                "https://app.example/cb?x=1&error=access_denied&state=a+b&iss=https%3A%2F%2Fas.example"
            )
        );
        assert_eq!(client_redirect_url("not a url", &[], "https://as"), None);
        assert_eq!(redirect_host("https://app.example/cb?x=1"), "app.example");
        assert_eq!(redirect_host("http://127.0.0.1:5173/cb"), "127.0.0.1:5173");
    }
}
