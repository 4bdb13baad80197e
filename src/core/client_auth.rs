//! Authenticating an OAuth client at an OAuth endpoint (token,
//! introspection, revocation): by its secret (`client_secret_basic`,
//! `client_secret_post`) or by a signed JWT (`private_key_jwt`), always
//! with the method the client is registered with. A refusal is
//! CLIENT_AUTH_FAILED (`invalid_client`), counted against the peer's
//! allowance of failed authentications and audited (aggregated) like any
//! refused credential; an authenticated client then takes one request from
//! its own rate-limit bucket.

use std::fmt;
use std::sync::Arc;

use crate::core::cimd::{CimdError, is_document_url};
use crate::core::client_assertion::{self, AssertionError};
use crate::core::client_index::ClientAuthError;
use crate::core::error::{Error, Reason};
use crate::core::{Core, Credentials};
use crate::secret::Secret;
use crate::store::{AuthMethod, OAuthClientRecord};
use crate::untrusted::Echo;

/// What an OAuth client presents to prove who it is.
pub enum ClientCredential {
    /// A client secret: `method` says where it was sent (HTTP Basic or the
    /// form).
    Secret {
        /// The client id.
        client_id: String,
        /// The secret.
        secret: Secret,
        /// `client_secret_basic` or `client_secret_post`.
        method: AuthMethod,
    },
    /// A JWT client assertion (RFC 7523), for `private_key_jwt`.
    Assertion {
        /// The `client_id` the request sent besides, if any: it must be
        /// the assertion's `sub`.
        client_id: Option<String>,
        /// The assertion.
        assertion: Secret,
        /// The URLs the assertion's `aud` may name: the endpoint's and
        /// the issuer.
        audiences: Vec<String>,
    },
    /// A public client (`token_endpoint_auth_method: none`) naming
    /// itself with `client_id` alone: only where something else proves
    /// the request (PKCE at the code exchange, the refresh token).
    Public {
        /// The client id.
        client_id: String,
    },
    /// Something that cannot be a client credential (a malformed
    /// `Authorization: Basic`, another scheme): refused, and counted
    /// like a wrong secret.
    Unusable {
        /// What is wrong with it, for the caller.
        why: &'static str,
    },
}

impl fmt::Debug for ClientCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientCredential::Secret {
                client_id, method, ..
            } => f
                .debug_struct("Secret")
                .field("client_id", client_id)
                .field("method", method)
                .finish_non_exhaustive(),
            ClientCredential::Assertion { client_id, .. } => f
                .debug_struct("Assertion")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
            ClientCredential::Public { client_id } => f
                .debug_struct("Public")
                .field("client_id", client_id)
                .finish(),
            ClientCredential::Unusable { why } => {
                f.debug_struct("Unusable").field("why", why).finish()
            }
        }
    }
}

/// Why a client credential failed, before it becomes the one refusal.
enum Failure {
    Secret(ClientAuthError),
    Assertion(AssertionError),
    /// The client id is a URL whose metadata document was refused.
    Metadata(String, CimdError),
    /// Not a client credential at all.
    Unusable(&'static str),
}

impl Failure {
    /// What the client is told: unknown clients and wrong secrets alike.
    fn message(&self) -> String {
        match self {
            Failure::Secret(ClientAuthError::UnknownClient | ClientAuthError::WrongSecret) => {
                "client authentication failed: unknown client or wrong secret".to_owned()
            }
            Failure::Secret(e) => format!("client authentication failed: {e}"),
            Failure::Assertion(e) => format!("client authentication failed: {e}"),
            Failure::Unusable(why) => format!("client authentication failed: {why}"),
            Failure::Metadata(url, e) => format!(
                "client authentication failed: the client metadata document {} was refused: {e}",
                Echo(url)
            ),
        }
    }

    fn as_str(&self) -> &'static str {
        match self {
            Failure::Secret(e) => e.as_str(),
            Failure::Assertion(e) => e.as_str(),
            Failure::Metadata(_, e) => e.as_str(),
            Failure::Unusable(_) => "UNUSABLE_CREDENTIAL",
        }
    }
}

impl Core {
    /// The OAuth client `credential` proves, at an OAuth endpoint; then
    /// the client's request rate is checked (the server's default caller
    /// limit, keyed by client id).
    ///
    /// # Errors
    /// UNAUTHENTICATED (`CLIENT_AUTH_FAILED`) for an unknown client, a
    /// wrong secret, another method than the registered one, a bad,
    /// expired or replayed assertion, a disabled client; RATE_LIMITED when
    /// the peer's failures or the client's rate ran dry.
    pub async fn authenticate_oauth_client(
        &self,
        creds: &Credentials<'_>,
        credential: &ClientCredential,
    ) -> Result<Arc<OAuthClientRecord>, Error> {
        self.feed.check()?;
        let client = match self.check_client_credential(creds, credential).await {
            Ok(client) => client,
            Err(Failure::Metadata(_, CimdError::Limited(limited))) => return Err(limited),
            Err(failure) => {
                tracing::info!(failure = failure.as_str(), "oauth client refused");
                let err = Error::refused(Reason::ClientAuthFailed, failure.message());
                return Err(self.refused_credential(creds, "oauth client", err).await);
            }
        };
        tracing::Span::current().record("caller", &*client.client_id);
        self.take_request(creds, &client.client_id, None).await?;
        Ok(client)
    }

    async fn check_client_credential(
        &self,
        creds: &Credentials<'_>,
        credential: &ClientCredential,
    ) -> Result<Arc<OAuthClientRecord>, Failure> {
        match credential {
            ClientCredential::Unusable { why } => Err(Failure::Unusable(why)),
            ClientCredential::Public { client_id } => {
                let client = if is_document_url(client_id) {
                    self.metadata_client(creds, client_id)
                        .await
                        .map_err(|e| Failure::Metadata(client_id.clone(), e))?
                } else {
                    self.clients
                        .get(client_id)
                        .ok_or(Failure::Secret(ClientAuthError::UnknownClient))?
                };
                if client.token_endpoint_auth_method != AuthMethod::None {
                    return Err(Failure::Secret(ClientAuthError::WrongMethod));
                }
                if client.disabled {
                    return Err(Failure::Secret(ClientAuthError::Disabled));
                }
                Ok(client)
            }
            ClientCredential::Secret {
                client_id,
                secret,
                method,
            } => self
                .authenticate_client_secret(client_id, secret.expose(), *method)
                .map_err(Failure::Secret),
            ClientCredential::Assertion {
                client_id,
                assertion,
                audiences,
            } => {
                let assertion = assertion.expose();
                let sub = client_assertion::unverified_subject(assertion)
                    .ok_or(Failure::Assertion(AssertionError::Malformed))?;
                if client_id.as_ref().is_some_and(|id| *id != sub) {
                    return Err(Failure::Assertion(AssertionError::Subject));
                }
                let client = if is_document_url(&sub) {
                    self.metadata_client(creds, &sub)
                        .await
                        .map_err(|e| Failure::Metadata(sub.clone(), e))?
                } else {
                    self.clients
                        .get(&sub)
                        .ok_or(Failure::Secret(ClientAuthError::UnknownClient))?
                };
                if client.token_endpoint_auth_method != AuthMethod::PrivateKeyJwt {
                    return Err(Failure::Secret(ClientAuthError::WrongMethod));
                }
                let now = self.clock.now();
                let audiences: Vec<&str> = audiences.iter().map(String::as_str).collect();
                let (jti, exp) = client_assertion::check(&client, assertion, &audiences, now)
                    .map_err(Failure::Assertion)?;
                self.assertions
                    .spend(&client.client_id, &jti, exp, now)
                    .map_err(Failure::Assertion)?;
                if client.disabled {
                    return Err(Failure::Secret(ClientAuthError::Disabled));
                }
                Ok(client)
            }
        }
    }
}
