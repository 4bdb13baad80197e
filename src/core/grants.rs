//! The OAuth grants of the token endpoint: `client_credentials` (RFC 6749
//! section 4.4), a confidential client getting a token for itself.
//!
//! The token is the same RFC 9068 JWT `CreateSession` issues, with `sub`
//! and `client_id` the client's id, `aud` the resource (RFC 8707) and no
//! `sid`: a `client_credentials` token has no session record (no durable
//! write per token). Its `jti` stands for it: `/revoke` revokes that
//! `jti`, and deleting or disabling the client revokes all its tokens.
//! Grants are audited aggregated (`oauth.token`, at most one record per
//! client per ten seconds, with the count of those folded into it).

use crate::core::audit::AuditEvent;
use crate::core::client_auth::ClientCredential;
use crate::core::error::{Error, Reason};
use crate::core::{Core, Credentials};
use crate::store::GrantType;
use crate::token::NewToken;
use crate::untrusted::Echo;

/// Longest `scope` parameter looked at, bytes.
const MAX_SCOPE_LEN: usize = 2048;

/// What a `client_credentials` request asks for, besides who asks.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientCredentialsRequest<'a> {
    /// `scope`: space-separated; absent or empty for every scope the
    /// client is allowed.
    pub scope: Option<&'a str>,
    /// `resource` (RFC 8707): absent when the client is allowed exactly
    /// one.
    pub resource: Option<&'a str>,
}

/// An access token from a grant.
#[derive(Debug)]
pub struct GrantedToken {
    /// The signed access token.
    pub access_token: String,
    /// Its lifetime, seconds.
    pub expires_in: u32,
    /// Its scopes, space-separated.
    pub scope: String,
    /// Its audience (the resource).
    pub audience: String,
}

impl Core {
    /// `grant_type=client_credentials`: authenticates the client, checks
    /// it may use the grant, the scopes and the resource, and issues a
    /// token of the server's default lifetime.
    ///
    /// # Errors
    /// CLIENT_AUTH_FAILED, RATE_LIMITED (see
    /// [`Core::authenticate_oauth_client`]); GRANT_NOT_ALLOWED when the
    /// client is not registered for the grant; SCOPE_NOT_ALLOWED;
    /// RESOURCE_NOT_ALLOWED; INVALID_FIELD for an oversize scope; signing.
    pub async fn client_credentials_grant(
        &self,
        creds: &Credentials<'_>,
        credential: &ClientCredential,
        req: ClientCredentialsRequest<'_>,
    ) -> Result<GrantedToken, Error> {
        let client = self.authenticate_oauth_client(creds, credential).await?;
        if !client.allows_grant(GrantType::ClientCredentials) {
            return Err(Error::refused(
                Reason::GrantNotAllowed,
                format!(
                    "client {} is not registered for client_credentials",
                    client.client_id
                ),
            ));
        }
        let scopes = granted_scopes(req.scope, &client.allowed_scopes)?;
        let audience = match req.resource {
            Some(r) if client.allowed_resources.iter().any(|a| a == r) => r.to_owned(),
            Some(r) => {
                return Err(Error::refused(
                    Reason::ResourceNotAllowed,
                    format!("resource {} is not allowed for this client", Echo(r)),
                ));
            }
            None => match client.allowed_resources.as_slice() {
                [only] => only.clone(),
                _ => {
                    return Err(Error::refused(
                        Reason::ResourceNotAllowed,
                        "name the resource: this client is allowed several",
                    ));
                }
            },
        };
        let now = self.clock.now();
        let ttl = self.settings.default_ttl;
        let scope = scopes.join(" ");
        let (access_token, _jti) = self.tokens.issue_new(NewToken {
            sub: &client.client_id,
            aud: &audience,
            client_id: &client.client_id,
            sid: None,
            scope: scope.clone(),
            now,
            exp: now + i64::from(ttl),
        })?;
        self.note_first_grant(&client).await?;
        self.audit
            .record_aggregated(AuditEvent {
                actor: &client.client_id,
                action: "oauth.token",
                target: "client_credentials",
                outcome: "ok",
                request_id: creds.request_id,
            })
            .await;
        Ok(GrantedToken {
            access_token,
            expires_in: ttl,
            scope,
            audience,
        })
    }
}

/// The scopes `asked` (space-separated; absent or empty: all of
/// `allowed`), each one of `allowed`, without repeats, in the order asked.
///
/// # Errors
/// SCOPE_NOT_ALLOWED naming the first scope not allowed; INVALID_FIELD for
/// an oversize parameter.
pub(crate) fn granted_scopes(
    asked: Option<&str>,
    allowed: &[String],
) -> Result<Vec<String>, Error> {
    let asked = asked.unwrap_or_default();
    if asked.len() > MAX_SCOPE_LEN {
        return Err(Error::invalid(
            "scope",
            format!("must be at most {MAX_SCOPE_LEN} bytes"),
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for s in asked.split(' ').filter(|s| !s.is_empty()) {
        if !allowed.iter().any(|a| a == s) {
            return Err(Error::refused(
                Reason::ScopeNotAllowed,
                format!("scope {} is not allowed for this client", Echo(s)),
            ));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    if out.is_empty() {
        out = allowed.to_vec();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        vec!["tools:read".to_owned(), "tools:call".to_owned()]
    }

    #[test]
    fn scopes_are_a_subset_or_all() {
        assert_eq!(granted_scopes(None, &allowed()).unwrap(), allowed());
        assert_eq!(granted_scopes(Some(""), &allowed()).unwrap(), allowed());
        assert_eq!(
            granted_scopes(Some("tools:call  tools:call"), &allowed()).unwrap(),
            ["tools:call"]
        );
        let err = granted_scopes(Some("tools:read admin"), &allowed()).unwrap_err();
        assert_eq!(err.reason(), Reason::ScopeNotAllowed);
        let err = granted_scopes(Some(&"x".repeat(5000)), &allowed()).unwrap_err();
        assert_eq!(err.reason(), Reason::InvalidField);
    }
}
