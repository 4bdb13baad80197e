//! Who is calling: the one place a request's [`Credentials`] become a
//! [`Principal`], whether they carry an API key or a client certificate
//! (mutual TLS), with the per-caller rate limit and the throttle on failed
//! authentication per peer address.

use std::net::IpAddr;
use std::sync::Arc;

use metrics::Counter;

use crate::ca::parse_client_cert;
use crate::core::audit::AuditEvent;
use crate::core::error::{Error, Kind, Reason};
use crate::core::principal::{CallerKind, Principal};
use crate::core::{Core, Credentials};
use crate::telemetry::{self, Family};

impl Core {
    /// The caller behind `creds`: the client certificate's identity if the
    /// TLS handshake presented one, else the API key of its `authorization`
    /// value. Then the caller's own request rate is checked.
    ///
    /// A refused credential counts against the peer's allowance of failed
    /// authentications; while that allowance is dry, refused credentials
    /// get RATE_LIMITED. A valid credential is always looked at and served,
    /// so one misbehaving client behind a shared address (a NAT, a sidecar,
    /// a load balancer) locks out no one else.
    ///
    /// # Errors
    /// INVALID_ARGUMENT when both kinds, or several `authorization`
    /// values, are sent; UNAUTHENTICATED when the credential is missing,
    /// malformed, unknown, revoked or expired; PERMISSION_DENIED for a
    /// disabled identity; RESOURCE_EXHAUSTED when the caller's rate, or
    /// the peer's failures, ran dry.
    pub(crate) async fn authenticate(&self, creds: &Credentials<'_>) -> Result<Principal, Error> {
        // Nothing is decided from memory that may be out of date.
        self.feed.check()?;
        let principal = match self.resolve(creds) {
            Ok(p) => p,
            Err(err) => {
                let what = if creds.client_cert.is_some() {
                    "client certificate"
                } else {
                    "api key"
                };
                return Err(self.refused_credential(creds, what, err).await);
            }
        };
        tracing::Span::current().record("caller", &*principal.id);
        self.take_request(creds, &principal.id, principal.rate_limit)
            .await?;
        Ok(principal)
    }

    /// Takes one request from the bucket of the authenticated caller `id`
    /// (its own limit, or the server's default); a refusal is audited
    /// (aggregated) as `rate_limit.hit`. For every kind of caller: API
    /// keys, identities, OAuth clients.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED (`RATE_LIMITED`).
    pub(crate) async fn take_request(
        &self,
        creds: &Credentials<'_>,
        id: &str,
        own: Option<crate::store::RateLimit>,
    ) -> Result<(), Error> {
        if let Err(limited) = self.limits.check_caller(id, own) {
            self.audit
                .record_aggregated(AuditEvent {
                    actor: id,
                    action: "rate_limit.hit",
                    target: "request rate",
                    outcome: "RATE_LIMITED",
                    request_id: creds.request_id,
                })
                .await;
            return Err(limited);
        }
        Ok(())
    }

    /// What a refused credential (`what`: an API key, a certificate, a
    /// refresh token) is answered with: its own error, counted against the
    /// peer, or RATE_LIMITED while the peer is throttled. A missing
    /// credential is not a guess and is not counted.
    pub(crate) async fn refused_credential(
        &self,
        creds: &Credentials<'_>,
        what: &str,
        err: Error,
    ) -> Error {
        if err.kind() != Kind::Unauthenticated || err.reason() == Reason::CredentialsMissing {
            return err;
        }
        let failure = FailedAuthentication {
            address: creds.peer.map(|addr| addr.ip()),
            actor: &creds.peer_actor(),
            what,
            reason: err.reason(),
            request_id: creds.request_id,
        };
        match self.count_failure(failure).await {
            Ok(()) => err,
            Err(limited) => limited,
        }
    }

    /// Counts one failed authentication against its address (if known)
    /// and audits it (aggregated, `auth.failed`); while that address's
    /// allowance of failures is spent, refuses instead (audited,
    /// aggregated, as `rate_limit.hit`). The one throttle on guessing, for
    /// callers of this service and for the API keys an MCP server hands
    /// `VerifyToken`.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED (`RATE_LIMITED`) with the time to wait.
    pub(crate) async fn count_failure(&self, f: FailedAuthentication<'_>) -> Result<(), Error> {
        static FAILURES: Family<Counter, 1> =
            Family::counters(telemetry::AUTH_FAILURES, ["reason"]);
        FAILURES.increment([f.reason.as_str()]);
        if let Some(address) = f.address {
            if let Err(limited) = self.limits.check_peer(address) {
                self.audit
                    .record_aggregated(AuditEvent {
                        actor: f.actor,
                        action: "rate_limit.hit",
                        target: "failed authentications",
                        outcome: "RATE_LIMITED",
                        request_id: f.request_id,
                    })
                    .await;
                return Err(limited);
            }
            self.limits.record_failure(address);
        }
        self.audit
            .record_aggregated(AuditEvent {
                actor: f.actor,
                action: "auth.failed",
                target: f.what,
                outcome: f.reason.as_str(),
                request_id: f.request_id,
            })
            .await;
        Ok(())
    }

    fn resolve(&self, creds: &Credentials<'_>) -> Result<Principal, Error> {
        if creds.authorization_count > 1 {
            return Err(Error::refused(
                Reason::CredentialsConflict,
                "send one `authorization` value, not several",
            ));
        }
        match creds.client_cert {
            Some(_) if creds.authorization_count > 0 => Err(Error::refused(
                Reason::CredentialsConflict,
                "send one credential: a client certificate or an API key, not both",
            )),
            Some(cert) => self.certificate(cert),
            None => self.api_key(creds.authorization),
        }
    }

    /// The identity of a client certificate the TLS layer has verified.
    fn certificate(&self, der: &[u8]) -> Result<Principal, Error> {
        let info = parse_client_cert(der, &self.settings.trust_domain)
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
                kind: CallerKind::Identity,
                scopes: grant.scopes.into(),
                rate_limit: grant.rate_limit,
            }),
            // Authenticated, but granted nothing: every call that needs a
            // scope is PERMISSION_DENIED.
            None => Ok(Principal {
                id: info.name.into(),
                kind: CallerKind::Identity,
                scopes: Arc::new([]),
                rate_limit: None,
            }),
        }
    }

    /// The API key of `authorization: Bearer mcp_sk_...`, as
    /// [`ApiKeyIndex::check`](crate::core::api_keys::ApiKeyIndex::check)
    /// decides it.
    fn api_key(&self, authorization: Option<&str>) -> Result<Principal, Error> {
        let Some(value) = authorization else {
            return Err(Error::refused(
                Reason::CredentialsMissing,
                "missing credentials: send metadata `authorization: Bearer mcp_sk_...` or a client certificate",
            ));
        };
        let secret = bearer(value).unwrap_or_default();
        let entry = self
            .keys
            .check(secret, self.clock.now())
            .map_err(|refusal| refusal.to_error())?;
        Ok(Principal {
            id: entry.id.clone(),
            kind: CallerKind::ApiKey,
            scopes: entry.scopes.clone(),
            rate_limit: entry.record.rate_limit,
        })
    }
}

/// One refused credential, as [`Core::count_failure`] counts it.
pub(crate) struct FailedAuthentication<'a> {
    /// The address it came from, if known: the one whose allowance it
    /// spends.
    pub address: Option<IpAddr>,
    /// Who the audit record names (`peer:<ip>`).
    pub actor: &'a str,
    /// What was refused (`api key`, `refresh token`, ...).
    pub what: &'a str,
    /// Why.
    pub reason: Reason,
    /// The request's id.
    pub request_id: &'a str,
}

/// The credential of an `authorization` value with the `Bearer` scheme
/// (case-insensitive, RFC 6750).
pub(crate) fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
    }
}
