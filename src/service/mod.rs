//! The gRPC services, one file each. Handlers authenticate through
//! [`Authenticator`], check scopes on the [`Principal`](crate::auth::Principal),
//! do the work against the [`Store`] and [`TokenIssuer`], and convert
//! between protobuf and domain types here at the edge. Errors go out
//! through the one `From<Error> for Status`.

pub(crate) mod api_key;
pub(crate) mod audit;
pub(crate) mod identity;
pub(crate) mod key;
pub(crate) mod token;

use std::sync::Arc;

use crate::audit::{AuditEvent, AuditLog};
use crate::auth::{Authenticator, IdentityIndex};
use crate::clock::Clock;
use crate::error::Error;
use crate::limits::{Limits, RateLimit};
use crate::secret::random_base62;
use crate::store::Store;
use crate::token::{RevocationIndex, TokenIssuer};

/// What every handler shares.
pub(crate) struct State {
    pub store: Store,
    pub clock: Clock,
    pub auth: Authenticator,
    /// The audit trail.
    pub audit: Arc<AuditLog>,
    /// Rate limiters, shared with `auth`; maintenance evicts idle entries.
    pub limits: Arc<Limits>,
    /// mTLS identity grants and revoked certificates, shared with `auth`.
    pub identities: Arc<IdentityIndex>,
    /// SPIFFE trust domain of client certificate identities.
    pub trust_domain: String,
    pub tokens: TokenIssuer,
    pub revocations: RevocationIndex,
    /// Token lifetime when a request asks for 0, seconds.
    pub default_ttl: u32,
    /// Longest token lifetime a request may ask for, seconds.
    pub max_ttl: u32,
    /// Longest (and default) session lifetime, seconds.
    pub max_session_lifetime: u32,
    /// Idle timeout of a session, seconds.
    pub session_idle_timeout: u32,
    /// Grace window for re-presenting a spent refresh token, seconds.
    pub refresh_reuse_grace: u32,
}

impl State {
    /// Appends the audit record of a change staged in the store but not yet
    /// flushed, then makes both durable with one (group) flush. The flush's
    /// failure is the caller's error: nothing is acknowledged unflushed.
    pub(crate) async fn commit_audited(
        &self,
        request_id: &str,
        actor: &str,
        action: &str,
        target: &str,
    ) -> Result<(), Error> {
        self.audit.append_unflushed(AuditEvent {
            actor,
            action,
            target,
            outcome: "ok",
            request_id,
        });
        self.store.flush().await?;
        Ok(())
    }

    /// Records a successful security event, durably.
    pub(crate) async fn audit_ok(
        &self,
        request_id: &str,
        actor: &str,
        action: &str,
        target: &str,
    ) -> Result<(), Error> {
        // The action has happened: a failing audit write must not turn its
        // reply into an error (a new key's secret would be lost). It is
        // logged loudly instead.
        if let Err(err) = self
            .audit
            .record(AuditEvent {
                actor,
                action,
                target,
                outcome: "ok",
                request_id,
            })
            .await
        {
            tracing::error!(cause = %err, action, target, "could not write the audit record");
        }
        Ok(())
    }

    /// Revokes `ids` durably and in the in-memory index; returns how many
    /// were not revoked before.
    pub(crate) async fn revoke_sessions(&self, ids: &[String]) -> Result<u32, Error> {
        let newly = self.store.revoke_sessions(ids, self.clock.now()).await?;
        for id in &newly {
            self.revocations.insert(id);
        }
        Ok(u32::try_from(newly.len()).unwrap_or(u32::MAX))
    }

    /// Revokes every session created by `client_id` (an API key id or an
    /// identity name), for cascading revocation.
    pub(crate) async fn revoke_sessions_of_client(&self, client_id: &str) -> Result<u32, Error> {
        let ids = self.store.session_ids_by_client(client_id)?;
        let n = self.revoke_sessions(&ids).await?;
        if n > 0 {
            tracing::info!(client_id, sessions = n, "sessions revoked by cascade");
        }
        Ok(n)
    }
}

/// A request's rate limit, validated.
pub(crate) fn rate_limit_from_pb(
    field: &'static str,
    limit: Option<crate::pb::RateLimit>,
) -> Result<Option<RateLimit>, Error> {
    limit
        .map(|l| {
            RateLimit {
                requests_per_second: l.requests_per_second,
                burst: l.burst,
            }
            .validate(field)
        })
        .transpose()
}

pub(crate) fn rate_limit_to_pb(limit: Option<RateLimit>) -> Option<crate::pb::RateLimit> {
    limit.map(|l| crate::pb::RateLimit {
        requests_per_second: l.requests_per_second,
        burst: l.burst,
    })
}

/// Longest id (key id, session id) accepted in a request.
const MAX_ID_LEN: usize = 64;

/// A fresh random id such as `ses_...` (22 base62 characters, ~131 bits).
pub(crate) fn new_id(prefix: &str) -> Result<String, Error> {
    Ok(format!("{prefix}{}", random_base62(22)?))
}

/// Checks a request's id field: non-empty, short, printable ASCII.
pub(crate) fn check_id(field: &'static str, id: &str) -> Result<(), Error> {
    if id.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            field,
            format!("must be at most {MAX_ID_LEN} printable ASCII characters"),
        ));
    }
    Ok(())
}

/// Checks a free-text request field: 1 to `max` bytes, no control
/// characters.
pub(crate) fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.len() > max {
        return Err(Error::invalid(
            field,
            format!("must be at most {max} bytes"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_id_checks() {
        assert!(check_text("subject", "user-1", 256).is_ok());
        assert!(check_text("subject", "", 256).is_err());
        assert!(check_text("subject", &"x".repeat(257), 256).is_err());
        assert!(check_text("subject", "a\nb", 256).is_err());
        assert!(check_id("key_id", "key_abc").is_ok());
        assert!(check_id("key_id", "key abc").is_err());
        assert!(check_id("key_id", &"k".repeat(65)).is_err());
        assert!(new_id("ses_").unwrap().starts_with("ses_"));
    }
}
