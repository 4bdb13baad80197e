//! Who is calling, and what they may do.
//!
//! [`Authenticator::authenticate`] is the one place a request's credential
//! is resolved into a [`Principal`], whether it is an API key or a client
//! certificate (mutual TLS); [`Principal::require`] is the one place scopes
//! are checked. Identity grants and revoked certificate serials are held in
//! an in-memory [`IdentityIndex`], so no request reads storage for them.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use tonic::Request;
use tonic::metadata::MetadataMap;

use crate::audit::{AuditEvent, AuditLog};
use crate::ca::parse_client_cert;
use crate::clock::Clock;
use crate::error::{Error, Reason};
use crate::limits::{Limits, RateLimit};
use crate::secret::{API_KEY_PREFIX, SecretHash};
use crate::store::{IdentityRecord, Store, StoreError};

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

/// Scopes that govern this service; they never travel inside tokens.
pub(crate) const RESERVED_SCOPES: [&str; 7] = [
    ADMIN,
    KEYS_ADMIN,
    SESSIONS_CREATE,
    SESSIONS_REVOKE,
    TOKENS_VERIFY,
    IDENTITIES_ADMIN,
    AUDIT_READ,
];

/// Most scopes in one request.
pub(crate) const MAX_SCOPES: usize = 64;
/// Longest scope, in bytes.
pub(crate) const MAX_SCOPE_LEN: usize = 128;

/// Longest credential we will hash and look up.
const MAX_CREDENTIAL_LEN: usize = 256;

/// An authenticated caller.
#[derive(Clone, Debug)]
pub(crate) struct Principal {
    /// The credential's id (an API key id); becomes `client_id` in tokens.
    pub id: Arc<str>,
    /// The scopes granted to the credential.
    pub scopes: Arc<[String]>,
    /// The credential's own rate limit, if it overrides the default.
    pub rate_limit: Option<RateLimit>,
}

impl Principal {
    /// Whether the caller holds `scope` (`admin` holds every scope).
    pub fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope || s == ADMIN)
    }

    /// Succeeds if the caller holds `scope`.
    ///
    /// # Errors
    /// PERMISSION_DENIED naming the missing scope.
    pub fn require(&self, scope: &str) -> Result<(), Error> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(Error::PermissionDenied {
                scope: scope.to_owned(),
                message: format!("this call needs scope {scope}, which the credential lacks"),
            })
        }
    }

    /// Succeeds if the caller holds every scope in `scopes`, e.g. to put
    /// them in a token or grant them to a new key.
    ///
    /// # Errors
    /// PERMISSION_DENIED naming the first missing scope.
    pub fn require_all<'a>(
        &self,
        scopes: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), Error> {
        match scopes.into_iter().find(|s| !self.has(s)) {
            None => Ok(()),
            Some(scope) => Err(Error::PermissionDenied {
                scope: scope.clone(),
                message: format!("cannot grant scope {scope}: the credential does not hold it"),
            }),
        }
    }
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
                    "scope {:?} must be 1 to {MAX_SCOPE_LEN} characters of A-Z a-z 0-9 : . _ / -",
                    truncate(s, 40)
                ),
            ));
        }
        if !out.contains(s) {
            out.push(s.clone());
        }
    }
    Ok(out)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Identity grants and revoked certificate serials, in memory: loaded from
/// the store at start and updated by every write that changes them.
#[derive(Default)]
pub(crate) struct IdentityIndex {
    grants: RwLock<HashMap<String, IdentityRecord>>,
    revoked: RwLock<HashSet<String>>,
}

impl IdentityIndex {
    /// The index of what `store` holds.
    ///
    /// # Errors
    /// Storage failed.
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        let grants = store
            .identities()?
            .into_iter()
            .map(|r| (r.name.clone(), r))
            .collect();
        let revoked = store
            .revoked_certs()?
            .into_iter()
            .map(|r| r.serial)
            .collect();
        Ok(IdentityIndex {
            grants: RwLock::new(grants),
            revoked: RwLock::new(revoked),
        })
    }

    pub fn set(&self, record: IdentityRecord) {
        let mut grants = self.grants.write().unwrap_or_else(|p| p.into_inner());
        grants.insert(record.name.clone(), record);
    }

    pub fn remove(&self, name: &str) {
        let mut grants = self.grants.write().unwrap_or_else(|p| p.into_inner());
        grants.remove(name);
    }

    pub fn revoke(&self, serial: &str) {
        let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        revoked.insert(serial.to_owned());
    }

    pub fn grant(&self, name: &str) -> Option<IdentityRecord> {
        let grants = self.grants.read().unwrap_or_else(|p| p.into_inner());
        grants.get(name).cloned()
    }

    fn is_revoked(&self, serial: &str) -> bool {
        let revoked = self.revoked.read().unwrap_or_else(|p| p.into_inner());
        revoked.contains(serial)
    }
}

/// Resolves request credentials into a [`Principal`].
#[derive(Clone)]
pub(crate) struct Authenticator {
    store: Store,
    clock: Clock,
    identities: Arc<IdentityIndex>,
    trust_domain: String,
    limits: Arc<Limits>,
    audit: Arc<AuditLog>,
}

/// The peer's address as an audit actor.
pub(crate) fn peer_actor(peer: Option<std::net::SocketAddr>) -> String {
    match peer {
        Some(addr) => format!("peer:{}", addr.ip()),
        None => "peer:unknown".to_owned(),
    }
}

impl Authenticator {
    pub fn new(
        store: Store,
        clock: Clock,
        identities: Arc<IdentityIndex>,
        trust_domain: String,
        limits: Arc<Limits>,
        audit: Arc<AuditLog>,
    ) -> Self {
        Authenticator {
            store,
            clock,
            identities,
            trust_domain,
            limits,
            audit,
        }
    }

    /// Refuses a request from a peer whose failed authentications ran its
    /// allowance dry, before any credential is looked at.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED when the peer is throttled.
    pub fn check_peer<T>(&self, request: &Request<T>) -> Result<(), Error> {
        let Some(addr) = request.remote_addr() else {
            return Ok(());
        };
        self.limits.check_peer(addr.ip()).inspect_err(|_| {
            self.audit.record_aggregated(AuditEvent {
                actor: &peer_actor(Some(addr)),
                action: "rate_limit.hit",
                target: "failed authentications",
                outcome: "RATE_LIMITED",
                request_id: &request_id(request),
            });
        })
    }

    /// Counts a failed authentication (a bad API key, certificate or
    /// refresh token) against the request's peer address.
    pub fn record_failure(
        &self,
        peer: Option<std::net::SocketAddr>,
        credential: &str,
        reason: Reason,
        request_id: &str,
    ) {
        self.audit.record_aggregated(AuditEvent {
            actor: &peer_actor(peer),
            action: "auth.failed",
            target: credential,
            outcome: reason.as_str(),
            request_id,
        });
        if let Some(addr) = peer {
            self.limits.record_failure(addr.ip());
        }
    }

    /// The caller behind a request: the client certificate's identity if
    /// the TLS handshake presented one, else the API key in its
    /// `authorization` metadata.
    ///
    /// # Errors
    /// INVALID_ARGUMENT when both are present; UNAUTHENTICATED when the
    /// credential is missing, malformed, unknown, revoked or expired;
    /// PERMISSION_DENIED for a disabled identity; INTERNAL if storage
    /// fails.
    pub fn authenticate<T>(&self, request: &Request<T>) -> Result<Principal, Error> {
        self.check_peer(request)?;
        let principal = match self.resolve(request) {
            Ok(p) => p,
            Err(err) => {
                // A missing credential is not a guess; only wrong ones count.
                if err.reason().code() == tonic::Code::Unauthenticated
                    && err.reason() != Reason::CredentialsMissing
                {
                    let kind = if request.peer_certs().is_some_and(|c| !c.is_empty()) {
                        "client certificate"
                    } else {
                        "api key"
                    };
                    self.record_failure(
                        request.remote_addr(),
                        kind,
                        err.reason(),
                        &request_id(request),
                    );
                }
                return Err(err);
            }
        };
        tracing::Span::current().record("caller", &*principal.id);
        self.limits
            .check_caller(&principal.id, principal.rate_limit)
            .inspect_err(|_| {
                self.audit.record_aggregated(AuditEvent {
                    actor: &principal.id,
                    action: "rate_limit.hit",
                    target: "request rate",
                    outcome: "RATE_LIMITED",
                    request_id: &request_id(request),
                });
            })?;
        Ok(principal)
    }

    fn resolve<T>(&self, request: &Request<T>) -> Result<Principal, Error> {
        let metadata = request.metadata();
        let leaf = request
            .peer_certs()
            .and_then(|chain| chain.first().cloned());
        let principal = match leaf {
            Some(_) if metadata.contains_key("authorization") => {
                return Err(Error::refused(
                    Reason::CredentialsConflict,
                    "send one credential: a client certificate or an API key, not both",
                ));
            }
            Some(cert) => self.certificate(&cert)?,
            None => self.api_key(metadata)?,
        };
        Ok(principal)
    }

    /// The identity of a client certificate the TLS layer has verified.
    fn certificate(&self, der: &[u8]) -> Result<Principal, Error> {
        let info = parse_client_cert(der, &self.trust_domain)
            .map_err(|msg| Error::refused(Reason::CertificateInvalid, msg))?;
        if self.identities.is_revoked(&info.serial) {
            return Err(Error::refused(
                Reason::CertificateRevoked,
                format!("client certificate {} was revoked", info.serial),
            ));
        }
        match self.identities.grant(&info.name) {
            Some(grant) if grant.disabled => Err(Error::refused(
                Reason::IdentityDisabled,
                format!("identity {} is disabled", info.name),
            )),
            Some(grant) => Ok(Principal {
                id: info.name.into(),
                scopes: grant.scopes.into(),
                rate_limit: grant.rate_limit,
            }),
            // Authenticated, but granted nothing: every call that needs a
            // scope is PERMISSION_DENIED.
            None => Ok(Principal {
                id: info.name.into(),
                scopes: Arc::new([]),
                rate_limit: None,
            }),
        }
    }

    /// The API key of `authorization: Bearer mcp_sk_...`. The secret is
    /// hashed and looked up by its hash; the match is confirmed in constant
    /// time.
    fn api_key(&self, metadata: &MetadataMap) -> Result<Principal, Error> {
        let Some(value) = metadata.get("authorization") else {
            return Err(Error::refused(
                Reason::CredentialsMissing,
                "missing credentials: send metadata `authorization: Bearer mcp_sk_...` or a client certificate",
            ));
        };
        // Hashed where it lies in the request: no copy of the secret.
        let hash = value
            .to_str()
            .ok()
            .and_then(bearer)
            .filter(|s| s.starts_with(API_KEY_PREFIX) && s.len() <= MAX_CREDENTIAL_LEN)
            .map(|s| SecretHash::of(s.as_bytes()))
            .ok_or_else(|| {
                Error::refused(
                    Reason::ApiKeyInvalid,
                    "malformed credentials: expected `Bearer mcp_sk_...`",
                )
            })?;
        let invalid = || Error::refused(Reason::ApiKeyInvalid, "invalid API key");
        let entry = self.store.api_key_by_hash(&hash)?.ok_or_else(invalid)?;
        let record = &entry.record;
        let now = self.clock.now();
        let current = record.secret_hash == hash;
        let previous = record
            .previous
            .as_ref()
            .filter(|p| p.secret_hash == hash)
            .map(|p| p.valid_until);
        if record.revoked_at.is_some() {
            return Err(Error::refused(
                Reason::ApiKeyRevoked,
                format!("API key {} was revoked", record.key_id),
            ));
        }
        if record.expires_at != 0 && now >= record.expires_at {
            return Err(Error::refused(
                Reason::ApiKeyExpired,
                format!("API key {} has expired", record.key_id),
            ));
        }
        match (current, previous) {
            (true, _) => {}
            (false, Some(valid_until)) if now < valid_until => {}
            (false, Some(_)) => {
                return Err(Error::refused(
                    Reason::ApiKeyInvalid,
                    format!(
                        "this secret of API key {} was rotated out and its grace period has ended",
                        record.key_id
                    ),
                ));
            }
            (false, None) => return Err(invalid()),
        }
        Ok(Principal {
            id: entry.id.clone(),
            scopes: entry.scopes.clone(),
            rate_limit: record.rate_limit,
        })
    }
}

/// The request's id: its `x-request-id` metadata, which the server's
/// request-id layer sets when the caller did not send a usable one.
pub(crate) fn request_id<T>(request: &Request<T>) -> String {
    request
        .metadata()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Metadata carrying the request id.
pub(crate) const REQUEST_ID_HEADER: &str = "x-request-id";

/// Whether a caller-sent request id is usable as is.
pub(crate) fn is_usable_request_id(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= 64 && v.iter().all(u8::is_ascii_graphic)
}

/// The credential of an `authorization` value with the `Bearer` scheme
/// (case-insensitive, RFC 6750).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(scopes: &[&str]) -> Principal {
        Principal {
            id: "key_1".into(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            rate_limit: None,
        }
    }

    #[test]
    fn admin_implies_every_scope() {
        let admin = principal(&["admin"]);
        assert!(admin.require(KEYS_ADMIN).is_ok());
        assert!(admin.require("tools:read").is_ok());
    }

    #[test]
    fn missing_scope_is_named() {
        let p = principal(&["sessions:create"]);
        match p.require(TOKENS_VERIFY) {
            Err(Error::PermissionDenied { scope, message }) => {
                assert_eq!(scope, "tokens:verify");
                assert!(message.contains("tokens:verify"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn scope_syntax() {
        assert!(is_valid_scope("tools:read"));
        assert!(is_valid_scope("a/b.c_d-e:F9"));
        assert!(!is_valid_scope(""));
        assert!(!is_valid_scope("tools read"));
        assert!(!is_valid_scope("tööls"));
        assert!(!is_valid_scope(&"a".repeat(129)));
        assert!(is_valid_scope(&"a".repeat(128)));
    }

    #[test]
    fn parse_scopes_dedups_and_limits() {
        let v = |xs: &[&str]| xs.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            parse_scopes("scopes", &v(&["a", "b", "a"]), false).unwrap(),
            v(&["a", "b"])
        );
        assert!(parse_scopes("scopes", &[], false).is_err());
        assert!(parse_scopes("scopes", &[], true).unwrap().is_empty());
        let many: Vec<String> = (0..65).map(|i| format!("s{i}")).collect();
        assert!(matches!(
            parse_scopes("scopes", &many, false),
            Err(Error::InvalidArgument {
                field: "scopes",
                ..
            })
        ));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}
