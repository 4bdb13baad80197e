//! What a verified credential says: who the caller is, for which client,
//! with which scopes. Handlers find it in the request's extensions.

/// What kind of credential the caller presented.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A signed access token (RFC 9068 JWT) from mcp-auth.
    AccessToken,
    /// An API key, `mcp_sk_...`.
    ApiKey,
}

/// A credential the verifier accepted. Never holds the credential itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// What the caller presented.
    pub kind: TokenKind,
    /// The user or service the credential speaks for (for an API key, the
    /// key's id).
    pub subject: String,
    /// The credential behind the token: the OAuth client, the API key
    /// (`key_...`) or the service identity that created its session (for
    /// an API key, the key's id).
    pub client_id: String,
    /// Application scopes (never mcp-auth's own service scopes such as
    /// `admin`).
    pub scopes: Vec<String>,
    /// The resource the token is for (empty for an API key, which has
    /// none).
    pub audience: String,
    /// The issuer (mcp-auth's URL); empty for an API key.
    pub issuer: String,
    /// The session the token belongs to (empty for an API key).
    pub session_id: String,
    /// The token's own id, `jti` (empty for an API key).
    pub token_id: String,
    /// Unix seconds after which the credential is expired; 0 for an API
    /// key that never expires.
    pub expires_at: i64,
}

impl Verified {
    /// Whether the credential carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Whether the credential carries every scope of `scopes`.
    pub fn has_all<'a>(&self, scopes: impl IntoIterator<Item = &'a str>) -> bool {
        scopes.into_iter().all(|s| self.has_scope(s))
    }
}

/// mcp-auth's own service scopes (its `RESERVED_SCOPES`): they govern
/// mcp-auth itself, never an MCP server, so they never reach
/// [`Verified::scopes`] even if a credential carries them (an API key
/// with `tokens:verify`, say).
pub(crate) const SERVICE_SCOPES: [&str; 10] = [
    "admin",
    "keys:admin",
    "sessions:create",
    "sessions:revoke",
    "tokens:verify",
    "identities:admin",
    "audit:read",
    "clients:admin",
    "users:admin",
    "oauth:login",
];

/// `scopes` without mcp-auth's service scopes, in their order, each once.
pub(crate) fn application_scopes<'a>(scopes: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for scope in scopes {
        if !scope.is_empty() && !SERVICE_SCOPES.contains(&scope) && !out.iter().any(|s| s == scope)
        {
            out.push(scope.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_scopes_never_reach_the_application() {
        let scopes = application_scopes(
            "tools:read admin tokens:verify tools:read  oauth:login files:write".split(' '),
        );
        assert_eq!(scopes, ["tools:read", "files:write"]);
        for s in SERVICE_SCOPES {
            assert!(application_scopes([s]).is_empty(), "{s}");
        }
    }
}
