//! Who a caller is once authenticated: the [`Principal`], the scopes that
//! govern this service, and the syntax of scopes.

use std::sync::Arc;

use crate::core::error::Error;
use crate::store::RateLimit;
use crate::untrusted::Echo;

/// Implies every other scope.
pub(crate) const ADMIN: &str = "admin";
/// Manage API keys.
pub(crate) const KEYS_ADMIN: &str = "keys:admin";
/// Create sessions (mint access tokens).
pub(crate) const SESSIONS_CREATE: &str = "sessions:create";
/// Revoke any session.
pub(crate) const SESSIONS_REVOKE: &str = "sessions:revoke";
/// Verify tokens.
pub(crate) const TOKENS_VERIFY: &str = "tokens:verify";
/// Manage mTLS identities and revoke client certificates.
pub(crate) const IDENTITIES_ADMIN: &str = "identities:admin";
/// Read the audit trail.
pub(crate) const AUDIT_READ: &str = "audit:read";
/// Manage OAuth clients.
pub(crate) const CLIENTS_ADMIN: &str = "clients:admin";
/// Manage the built-in user accounts.
pub(crate) const USERS_ADMIN: &str = "users:admin";
/// Answer login challenges: the application that signs users in for the
/// browser flow (`login_url`).
pub(crate) const OAUTH_LOGIN: &str = "oauth:login";
/// Read the server's status (`GetStatus`: version, key ring, counts,
/// listeners).
pub(crate) const STATUS_READ: &str = "status:read";
/// Take a backup of the store (`BackupStore`): it holds the private
/// signing keys.
pub(crate) const STORE_BACKUP: &str = "store:backup";

/// Scopes that govern this service; they never travel inside tokens.
pub(crate) const RESERVED_SCOPES: [&str; 12] = [
    ADMIN,
    KEYS_ADMIN,
    SESSIONS_CREATE,
    SESSIONS_REVOKE,
    TOKENS_VERIFY,
    IDENTITIES_ADMIN,
    AUDIT_READ,
    CLIENTS_ADMIN,
    USERS_ADMIN,
    OAUTH_LOGIN,
    STATUS_READ,
    STORE_BACKUP,
];

/// Whether `scope` is one of the service's own scopes, which govern this
/// service and never count as an application's.
pub(crate) fn is_service_scope(scope: &str) -> bool {
    RESERVED_SCOPES.contains(&scope)
}

/// Most scopes in one request.
pub(crate) const MAX_SCOPES: usize = 64;
/// Longest scope, in bytes.
pub(crate) const MAX_SCOPE_LEN: usize = 128;

/// Which kind of credential authenticated a caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallerKind {
    /// An API key.
    ApiKey,
    /// A client certificate naming a service identity.
    Identity,
}

/// An authenticated caller.
#[derive(Clone, Debug)]
pub(crate) struct Principal {
    /// The credential's id (an API key id or identity name); becomes
    /// `client_id` in tokens.
    pub id: Arc<str>,
    /// Which kind of credential it is.
    pub kind: CallerKind,
    /// The scopes granted to the credential.
    pub scopes: Arc<[String]>,
    /// The credential's own rate limit, if it overrides the default.
    pub rate_limit: Option<RateLimit>,
}

/// Whether `s` is a well-formed scope: 1 to 128 characters of
/// `[A-Za-z0-9:._/-]`.
pub(crate) fn is_valid_scope(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_SCOPE_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'_' | b'/' | b'-'))
}

/// Validates a list of scopes from a request and removes duplicates,
/// keeping the first occurrence's order.
///
/// # Errors
/// INVALID_ARGUMENT naming `field` when the list is empty (and
/// `allow_empty` is false), longer than 64, or has a malformed scope.
pub(crate) fn parse_scopes(
    field: &'static str,
    scopes: &[String],
    allow_empty: bool,
) -> Result<Vec<String>, Error> {
    if scopes.is_empty() && !allow_empty {
        return Err(Error::invalid(field, "at least one scope is required"));
    }
    if scopes.len() > MAX_SCOPES {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_SCOPES} scopes are allowed"),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(scopes.len());
    for s in scopes {
        if !is_valid_scope(s) {
            return Err(Error::invalid(
                field,
                format!(
                    "scope {} must be 1 to {MAX_SCOPE_LEN} characters of A-Z a-z 0-9 : . _ / -",
                    Echo(s)
                ),
            ));
        }
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    Ok(out)
}

impl Principal {
    /// Whether the caller holds `scope` (`admin` holds every scope).
    pub fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope || s == ADMIN)
    }
}
