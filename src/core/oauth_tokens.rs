//! Introspection (RFC 7662) and revocation (RFC 7009) of access tokens,
//! for the HTTP endpoints: the same verdicts as `VerifyToken`.
//!
//! Introspection is open to an OAuth client (which sees its own tokens
//! only; any other token is inactive to it) and to an API key or identity
//! with `tokens:verify` (which sees every token, and API keys too, as
//! `VerifyToken` does: an MCP server that checks its callers over HTTP). Revocation is a client
//! revoking one of its own tokens by `jti`: noted in the store and in
//! memory until the token expires, so it holds after a restart; any other
//! token (another client's, unknown, garbage) is left alone and the answer
//! is the same.

use std::sync::Arc;

use crate::core::client_auth::ClientCredential;
use crate::core::error::Error;
use crate::core::principal::TOKENS_VERIFY;
use crate::core::verify::{InactiveReason, TokenKind, VerifiedClaims, count_verdict};
use crate::core::{Core, Credentials, policy};
use crate::token::AccessClaims;

/// The verdict's reason for a token that is not the introspecting
/// client's own (RFC 7662 answers it inactive).
const OTHER_CLIENT: &str = "OTHER_CLIENT";

/// Who asks to introspect a token.
#[derive(Debug)]
pub enum Introspector<'a> {
    /// An OAuth client, by its credential.
    Client(&'a ClientCredential),
    /// The caller of the request's `authorization` (an API key).
    Caller,
}

/// What introspection found.
#[derive(Debug)]
pub enum Introspection {
    /// An active access token, with its claims.
    AccessToken(Arc<AccessClaims>),
    /// An active API key (only a `tokens:verify` caller learns of them),
    /// with its claims as `VerifyToken` answers them.
    ApiKey(VerifiedClaims),
    /// Anything else: RFC 7662 answers only `active: false`.
    Inactive,
}

impl Core {
    /// `POST /introspect`: the token's claims when it is active for the
    /// introspector; an API key's for a `tokens:verify` caller. A refused
    /// API key counts against no address (the endpoint has no
    /// `client_address`).
    ///
    /// # Errors
    /// Authentication (CLIENT_AUTH_FAILED, CREDENTIALS_MISSING,
    /// API_KEY_INVALID, ...), PERMISSION_DENIED without `tokens:verify`,
    /// RATE_LIMITED.
    pub async fn introspect(
        &self,
        creds: &Credentials<'_>,
        who: Introspector<'_>,
        token: &str,
    ) -> Result<Introspection, Error> {
        let own_only = match who {
            Introspector::Client(credential) => {
                Some(self.authenticate_oauth_client(creds, credential).await?)
            }
            Introspector::Caller => {
                let caller = self.authenticate(creds).await?;
                policy::require(&caller, TOKENS_VERIFY)?;
                None
            }
        };
        let kind = TokenKind::of(token);
        let (found, reason) = if kind == TokenKind::ApiKey {
            if own_only.is_some() {
                // An OAuth client has no business with API keys.
                (Introspection::Inactive, OTHER_CLIENT)
            } else {
                match self
                    .keys
                    .check(token, self.clock.now())
                    .map_err(|refusal| InactiveReason::from(&refusal))
                    .and_then(|entry| self.api_key_claims(&entry, &[]))
                {
                    Ok(claims) => (Introspection::ApiKey(claims), "ACTIVE"),
                    Err(reason) => (Introspection::Inactive, reason.as_str()),
                }
            }
        } else {
            match self.token_verdict(token, "", &[]) {
                Ok(claims) => match &own_only {
                    Some(client) if claims.client_id != client.client_id => {
                        (Introspection::Inactive, OTHER_CLIENT)
                    }
                    _ => (Introspection::AccessToken(claims), "ACTIVE"),
                },
                Err(reason) => (
                    Introspection::Inactive,
                    InactiveReason::from(reason).as_str(),
                ),
            }
        };
        count_verdict("introspect", kind, reason);
        Ok(found)
    }

    /// `POST /revoke`: revokes `token` if it is an active token of the
    /// client `credential` proves; returns whether it did.
    ///
    /// # Errors
    /// CLIENT_AUTH_FAILED, RATE_LIMITED; storage.
    pub async fn revoke_oauth_token(
        &self,
        creds: &Credentials<'_>,
        credential: &ClientCredential,
        token: &str,
    ) -> Result<bool, Error> {
        let client = self.authenticate_oauth_client(creds, credential).await?;
        let Ok(claims) = self.token_verdict(token, "", &[]) else {
            return Ok(false);
        };
        if claims.client_id != client.client_id {
            return Ok(false);
        }
        let audit = self.audit.ok(
            &client.client_id,
            "token.revoked",
            &claims.jti,
            creds.request_id,
        );
        self.store
            .revoke_token(&claims.jti, claims.exp, audit)
            .await?;
        self.revocations.revoke_token(&claims.jti, claims.exp);
        Ok(true)
    }
}
