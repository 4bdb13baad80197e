//! Sessions: creating them (an access token and a refresh token), refreshing
//! (rotation with reuse detection), revoking (one, by subject, by creator)
//! and listing. Verifying their access tokens is `verify`'s.

use crate::core::error::{Error, Reason};
use crate::core::fields::{MAX_NAME_LEN, check_id, check_text, new_id};
use crate::core::principal::{SESSIONS_CREATE, parse_scopes};
use crate::core::refresh::{self, Verdict};
use crate::core::{Core, Credentials, policy};
use crate::secret::{REFRESH_TOKEN_PREFIX, Secret, SecretHash, random_base62};
use crate::store::{Cursor, Page, RefreshToken, SessionFilter, SessionRecord, Swap, Versioned};
use crate::untrusted::Echo;

/// ListSessions page size when the request says 0.
const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest ListSessions page.
const MAX_PAGE_SIZE: usize = 500;
/// Longest refresh token looked at.
const MAX_REFRESH_TOKEN_LEN: usize = 256;
/// Attempts at a conditional write before giving up (each lost race means
/// another writer made progress).
const MAX_ATTEMPTS: usize = 16;

/// What CreateSession asks for.
#[derive(Clone, Debug)]
pub struct NewSession {
    /// Who the session speaks for.
    pub subject: String,
    /// The resource its tokens are for.
    pub audience: String,
    /// Scopes of the session.
    pub scopes: Vec<String>,
    /// Access-token lifetime; 0 the server default.
    pub ttl_seconds: u32,
    /// Absolute session lifetime; 0 the server maximum.
    pub session_lifetime_seconds: u32,
}

/// A session with fresh tokens, from CreateSession or RefreshSession.
#[derive(Clone, Debug)]
pub struct IssuedSession {
    /// The session as stored.
    pub record: SessionRecord,
    /// The signed access token.
    pub access_token: String,
    /// The refresh token, shown once.
    pub refresh_token: Secret,
    /// The access token's scopes.
    pub scopes: Vec<String>,
    /// The access token's expiry.
    pub expires_at: i64,
    /// When it was issued.
    pub issued_at: i64,
}

/// A session about to be stored, its caller checked.
pub(crate) struct SessionStart<'a> {
    /// Its id (`ses_...`), chosen by the caller.
    pub session_id: String,
    /// Who it speaks for.
    pub subject: String,
    /// The credential or OAuth client that started it.
    pub client_id: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// The resource its tokens are for.
    pub audience: String,
    /// Every resource granted (an OAuth grant's); empty: `audience` only.
    pub resources: Vec<String>,
    /// Access-token lifetime, seconds.
    pub ttl: u32,
    /// Absolute lifetime, seconds.
    pub lifetime: u32,
    /// Started by an OAuth grant (refreshed only at the token endpoint).
    pub oauth: bool,
    /// Who the audit record names.
    pub actor: &'a str,
    /// The request's id.
    pub request_id: &'a str,
}

/// A refresh token that names its session: `mcp_rt_<session id>.<secret>`,
/// so a refresh reads one record.
fn new_refresh_token(session_id: &str) -> Result<Secret, Error> {
    Ok(Secret::new(format!(
        "{REFRESH_TOKEN_PREFIX}{session_id}.{}",
        random_base62(43)?
    )))
}

/// The session a refresh token names, if it is of the current form.
pub(crate) fn refresh_token_session(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(REFRESH_TOKEN_PREFIX)?;
    let (session_id, secret) = rest.split_once('.')?;
    (check_id("refresh_token", session_id).is_ok() && !secret.is_empty()).then_some(session_id)
}

impl Core {
    /// `CreateSession`: needs `sessions:create` and every scope asked for.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT, storage.
    pub async fn create_session(
        &self,
        creds: &Credentials<'_>,
        req: NewSession,
    ) -> Result<IssuedSession, Error> {
        let caller = self.authenticate(creds).await?;
        policy::require(&caller, SESSIONS_CREATE)?;
        check_text("subject", &req.subject, MAX_NAME_LEN)?;
        check_text("audience", &req.audience, MAX_NAME_LEN)?;
        let scopes = parse_scopes("scopes", &req.scopes, false)?;
        policy::token_scopes_allowed("scopes", &scopes)?;
        policy::may_grant(&caller, &scopes)?;
        let s = &self.settings;
        let ttl = match req.ttl_seconds {
            0 => s.default_ttl,
            t if t > s.max_ttl => {
                return Err(Error::invalid(
                    "ttl_seconds",
                    format!("must be at most {} (the configured maximum)", s.max_ttl),
                ));
            }
            t => t,
        };
        let lifetime = match req.session_lifetime_seconds {
            0 => s.max_session_lifetime,
            t if t > s.max_session_lifetime => {
                return Err(Error::invalid(
                    "session_lifetime_seconds",
                    format!(
                        "must be at most {} (the configured maximum)",
                        s.max_session_lifetime
                    ),
                ));
            }
            t => t,
        };
        let session_id = new_id("ses_")?;
        self.start_session(SessionStart {
            session_id,
            subject: req.subject,
            client_id: caller.id.to_string(),
            scopes,
            audience: req.audience,
            resources: Vec::new(),
            ttl,
            lifetime,
            oauth: false,
            actor: &caller.id,
            request_id: creds.request_id,
        })
        .await
    }

    /// Stores a new session with its first refresh token and signs its
    /// first access token (audited `session.created`): for CreateSession
    /// and for the OAuth authorization code grant.
    ///
    /// # Errors
    /// Signing, storage.
    pub(crate) async fn start_session(&self, s: SessionStart<'_>) -> Result<IssuedSession, Error> {
        let now = self.clock.now();
        let refresh = new_refresh_token(&s.session_id)?;
        let session_expires_at = now + i64::from(s.lifetime);
        let record = SessionRecord {
            session_id: s.session_id,
            subject: s.subject,
            client_id: s.client_id,
            scopes: s.scopes,
            audience: s.audience,
            created_at: now,
            expires_at: (now + i64::from(s.ttl)).min(session_expires_at),
            revoked_at: None,
            session_expires_at,
            last_refreshed_at: now,
            token_ttl: s.ttl,
            refresh_tokens: vec![RefreshToken {
                hash: refresh.hash(),
                issued_at: now,
                spent_at: None,
            }],
            oauth: s.oauth,
            resources: s.resources,
        };
        let access_token = self
            .tokens
            .issue(&record, &record.scopes, now, record.expires_at)?;
        let audit = self
            .audit
            .ok(s.actor, "session.created", &record.session_id, s.request_id);
        self.store.insert_session(&record, audit).await?;
        // At debug: the audit trail records every session, and the rpc line
        // every call; one more line per session costs ~2% of the throughput.
        tracing::debug!(session_id = %record.session_id, client_id = %record.client_id, ttl = s.ttl, "session created");
        Ok(IssuedSession {
            scopes: record.scopes.clone(),
            expires_at: record.expires_at,
            issued_at: now,
            access_token,
            refresh_token: refresh,
            record,
        })
    }

    /// `RefreshSession`: the refresh token is the credential. A caller that
    /// sends another credential as well must be the session's creator.
    ///
    /// # Errors
    /// UNAUTHENTICATED for an unknown, reused (the session is revoked) or
    /// expired refresh token or session; INVALID_ARGUMENT when widening
    /// scopes; RATE_LIMITED while the peer is throttled; storage.
    pub async fn refresh_session(
        &self,
        creds: &Credentials<'_>,
        refresh_token: &str,
        scopes: &[String],
    ) -> Result<IssuedSession, Error> {
        let caller = if creds.presents_any() {
            Some(self.authenticate(creds).await?)
        } else {
            None
        };
        self.refresh_as(
            creds,
            caller.as_ref().map(|c| &*c.id),
            false,
            refresh_token,
            scopes,
            None,
        )
        .await
    }

    /// A refresh by `creator` (the credential sent with the token, if
    /// any): `oauth` says whether it comes from the token endpoint, which
    /// refreshes only sessions an OAuth grant started (and RefreshSession
    /// only the others).
    ///
    /// # Errors
    /// As [`Core::refresh_session`].
    pub(crate) async fn refresh_as(
        &self,
        creds: &Credentials<'_>,
        creator: Option<&str>,
        oauth: bool,
        refresh_token: &str,
        scopes: &[String],
        audience: Option<&str>,
    ) -> Result<IssuedSession, Error> {
        let bad_token = |message: &str| Error::refused(Reason::RefreshTokenInvalid, message);
        if refresh_token.len() > MAX_REFRESH_TOKEN_LEN
            || !refresh_token.starts_with(REFRESH_TOKEN_PREFIX)
        {
            let err = bad_token("malformed refresh token: expected mcp_rt_...");
            return Err(self.refused_credential(creds, "refresh token", err).await);
        }
        let presented = SecretHash::of(refresh_token.as_bytes());
        let legacy;
        let session_id = match refresh_token_session(refresh_token) {
            Some(id) => id,
            None => match self.store.legacy_refresh_session(&presented).await? {
                Some(id) => {
                    legacy = id;
                    legacy.as_str()
                }
                None => {
                    let err = bad_token("unknown refresh token");
                    return Err(self.refused_credential(creds, "refresh token", err).await);
                }
            },
        };
        let wanted = parse_scopes("scopes", scopes, true)?;
        let child = new_refresh_token(session_id)?;
        let rules = self.refresh_rules(oauth);
        for _ in 0..MAX_ATTEMPTS {
            let now = self.clock.now();
            let Some(current) = self.store.session(session_id).await? else {
                let err = bad_token("unknown refresh token");
                return Err(self.refused_credential(creds, "refresh token", err).await);
            };
            let child_token = RefreshToken {
                hash: child.hash(),
                issued_at: now,
                spent_at: None,
            };
            if current.record.oauth != oauth {
                return Err(Error::refused(
                    Reason::NotSessionCreator,
                    if oauth {
                        "this refresh token is of a session from CreateSession: refresh it with RefreshSession"
                    } else {
                        "this refresh token is of an OAuth session: its client refreshes it at the token endpoint (grant_type=refresh_token)"
                    },
                ));
            }
            if current.record.revoked_at.is_none()
                && policy::may_refresh(creator, &current.record).is_ok()
            {
                if let Some(again) = self
                    .refresh_replays
                    .replay(&presented, &wanted, audience, now)
                {
                    tracing::debug!(
                        session_id,
                        "refresh repeated within the grace window: same answer"
                    );
                    return Ok(again);
                }
            }
            let verdict = refresh::decide(
                &current.record,
                &presented,
                creator,
                &wanted,
                child_token,
                now,
                &rules,
            );
            match verdict {
                Verdict::Refuse(err) => {
                    if err.reason() == Reason::RefreshTokenInvalid {
                        return Err(self.refused_credential(creds, "refresh token", err).await);
                    }
                    return Err(err);
                }
                Verdict::Reused { session } => {
                    if self.reused(creds, &current, &session).await? == Swap::Done {
                        return Err(Error::refused(
                            Reason::RefreshTokenReused,
                            format!("refresh token reused: session {session_id} is revoked"),
                        ));
                    }
                }
                Verdict::Mint { session, exp } => {
                    let scopes = if wanted.is_empty() {
                        session.scopes.clone()
                    } else {
                        wanted.clone()
                    };
                    let access_token = match audience.filter(|a| *a != session.audience) {
                        // A token for another granted resource: signed for
                        // it, the session itself unchanged.
                        Some(other) => {
                            let mut view = session.clone();
                            other.clone_into(&mut view.audience);
                            self.tokens.issue(&view, &scopes, now, exp)?
                        }
                        None => self.tokens.issue(&session, &scopes, now, exp)?,
                    };
                    let audit = self.audit.ok(
                        &creds.peer_actor(),
                        "session.refreshed",
                        session_id,
                        creds.request_id,
                    );
                    if self
                        .store
                        .replace_session(&current, &session, audit)
                        .await?
                        == Swap::Done
                    {
                        tracing::debug!(session_id = %session.session_id, "session refreshed");
                        let issued = IssuedSession {
                            record: session,
                            access_token,
                            refresh_token: child,
                            scopes,
                            expires_at: exp,
                            issued_at: now,
                        };
                        if rules.reuse_grace > 0 {
                            self.refresh_replays.remember(
                                &presented,
                                &wanted,
                                audience,
                                &issued,
                                now,
                                now + rules.reuse_grace,
                            );
                        }
                        return Ok(issued);
                    }
                }
            }
        }
        Err(Error::Store(crate::store::StoreError::Backend(format!(
            "session {session_id}: too many concurrent writers"
        ))))
    }

    /// Revokes a session whose spent refresh token came back; the
    /// revocation and its audit record are durable together before the
    /// refusal goes out.
    async fn reused(
        &self,
        creds: &Credentials<'_>,
        current: &Versioned<SessionRecord>,
        revoked: &SessionRecord,
    ) -> Result<Swap, Error> {
        let audit = self.audit.entry(crate::core::audit::AuditEvent {
            actor: &creds.peer_actor(),
            action: "refresh_token.reused",
            target: &revoked.session_id,
            outcome: Reason::RefreshTokenReused.as_str(),
            request_id: creds.request_id,
        });
        let swap = self.store.replace_session(current, revoked, audit).await?;
        if swap == Swap::Done {
            self.revocations
                .revoke_session(&revoked.session_id, revoked.expires_at);
            tracing::warn!(session_id = %revoked.session_id, "refresh token reused; session revoked");
        }
        Ok(swap)
    }

    fn refresh_rules(&self, oauth: bool) -> refresh::RefreshRules {
        refresh::RefreshRules {
            reuse_grace: i64::from(if oauth {
                self.settings.oauth_refresh_grace
            } else {
                self.settings.refresh_reuse_grace
            }),
            idle_timeout: i64::from(self.settings.session_idle_timeout),
            default_ttl: self.settings.default_ttl,
            max_ttl: self.settings.max_ttl,
        }
    }

    /// `ListSessions`: an admin sees every session (as filtered), anyone
    /// else the sessions it created.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT, storage.
    pub async fn list_sessions(
        &self,
        creds: &Credentials<'_>,
        filter: SessionFilter,
        after: Option<&Cursor>,
        page_size: u32,
    ) -> Result<Page<SessionRecord>, Error> {
        let caller = self.authenticate(creds).await?;
        if let Some(subject) = &filter.subject {
            check_text("subject", subject, MAX_NAME_LEN)?;
        }
        let filter = policy::session_listing(&caller, filter)?;
        let limit = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => usize::try_from(n)
                .unwrap_or(MAX_PAGE_SIZE)
                .min(MAX_PAGE_SIZE),
        };
        Ok(self.store.sessions_page(&filter, after, limit).await?)
    }

    /// `GetSession`: one session as the caller's listing would show it;
    /// a session the caller may not see is NOT_FOUND, like one that does
    /// not exist.
    ///
    /// # Errors
    /// Authentication, INVALID_ARGUMENT, NOT_FOUND, storage.
    pub async fn get_session(
        &self,
        creds: &Credentials<'_>,
        session_id: &str,
    ) -> Result<SessionRecord, Error> {
        let caller = self.authenticate(creds).await?;
        check_id("session_id", session_id)?;
        self.store
            .session(session_id)
            .await?
            .map(|stored| stored.record)
            .filter(|session| policy::may_see_session(&caller, session))
            .ok_or_else(|| {
                Error::refused(Reason::SessionNotFound, format!("no session {session_id}"))
            })
    }

    /// `RevokeSession`: by its creator, or with `sessions:revoke`. Returns
    /// when it was revoked (the first revocation's time).
    ///
    /// # Errors
    /// Authentication, INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED,
    /// storage.
    pub async fn revoke_session(
        &self,
        creds: &Credentials<'_>,
        session_id: &str,
    ) -> Result<i64, Error> {
        let caller = self.authenticate(creds).await?;
        check_id("session_id", session_id)?;
        let not_found = || {
            Error::refused(
                Reason::SessionNotFound,
                format!("no session {}", Echo(session_id)),
            )
        };
        let session = self
            .store
            .session(session_id)
            .await?
            .ok_or_else(not_found)?
            .record;
        policy::may_revoke_session(&caller, &session)?;
        let ids = [session_id.to_owned()];
        let audit = self
            .audit
            .ok(&caller.id, "session.revoked", session_id, creds.request_id);
        for (id, expires_at) in self
            .store
            .revoke_sessions(&ids, self.clock.now(), audit)
            .await?
        {
            self.revocations.revoke_session(&id, expires_at);
        }
        tracing::info!(session_id = %session_id, "session revoked");
        let stored = self
            .store
            .session(session_id)
            .await?
            .ok_or_else(not_found)?;
        Ok(stored.record.revoked_at.unwrap_or_default())
    }

    /// `RevokeSessions`: every session of `subject` (an admin's call) or
    /// those of it that the caller created. Needs `sessions:revoke`.
    /// Returns how many this call revoked.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT, storage.
    pub async fn revoke_subject_sessions(
        &self,
        creds: &Credentials<'_>,
        subject: &str,
    ) -> Result<u32, Error> {
        let caller = self.authenticate(creds).await?;
        policy::require(&caller, crate::core::principal::SESSIONS_REVOKE)?;
        check_text("subject", subject, MAX_NAME_LEN)?;
        let filter = SessionFilter {
            subject: Some(subject.to_owned()),
            client_id: None,
        };
        let mut ids = Vec::new();
        for id in self.store.session_ids(&filter).await? {
            if self.revocations.contains(&id) {
                continue;
            }
            if let Some(s) = self.store.session(&id).await? {
                if policy::revokes_by_subject(&caller, &s.record.client_id) {
                    ids.push(id);
                }
            }
        }
        let target = format!("subject {subject} (sessions revoked: {})", ids.len());
        let audit = self.audit.ok(
            &caller.id,
            "session.revoked_subject",
            &target,
            creds.request_id,
        );
        let revoked = self.revoke_ids(&ids, audit).await?;
        tracing::info!(sessions = revoked, "sessions of a subject revoked");
        Ok(revoked)
    }

    /// Revokes every session created by `client_id` (an API key id, an
    /// identity name or an OAuth client id), for cascading revocation by
    /// `actor`.
    pub(crate) async fn revoke_sessions_of_client(
        &self,
        actor: &str,
        client_id: &str,
        request_id: &str,
    ) -> Result<u32, Error> {
        let filter = SessionFilter {
            subject: None,
            client_id: Some(client_id.to_owned()),
        };
        let n = self
            .revoke_sessions_matching(actor, &filter, client_id, request_id)
            .await?;
        if n > 0 {
            tracing::info!(client_id, sessions = n, "sessions revoked by cascade");
        }
        Ok(n)
    }

    /// Revokes every session `filter` matches that is not revoked yet,
    /// audited once as `session.revoked_cascade` with `what` and the count
    /// as target. Returns how many.
    ///
    /// # Errors
    /// Storage.
    pub(crate) async fn revoke_sessions_matching(
        &self,
        actor: &str,
        filter: &SessionFilter,
        what: &str,
        request_id: &str,
    ) -> Result<u32, Error> {
        let ids: Vec<String> = self
            .store
            .session_ids(filter)
            .await?
            .into_iter()
            .filter(|id| !self.revocations.contains(id))
            .collect();
        if ids.is_empty() {
            return Ok(0);
        }
        let target = format!("{what} (sessions revoked: {})", ids.len());
        let audit = self
            .audit
            .ok(actor, "session.revoked_cascade", &target, request_id);
        self.revoke_ids(&ids, audit).await
    }

    pub(crate) async fn revoke_ids(
        &self,
        ids: &[String],
        audit: crate::store::AuditEntry,
    ) -> Result<u32, Error> {
        let newly = self
            .store
            .revoke_sessions(ids, self.clock.now(), audit)
            .await?;
        for (id, expires_at) in &newly {
            self.revocations.revoke_session(id, *expires_at);
        }
        Ok(u32::try_from(newly.len()).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Clock;
    use crate::config::Config;
    use crate::store::Durability;

    #[tokio::test]
    async fn refresh_tokens_from_before_the_upgrade_still_refresh() {
        let dir = tempfile::tempdir().unwrap();
        let now = 1_800_000_000;
        let (spent, live) = crate::store::legacy_fixture(dir.path(), now);
        let config = Config::for_test(dir.path()).unwrap();
        let store = crate::store::open(dir.path(), Durability::Durable).unwrap();
        let (core, _) = Core::open(store, Clock::manual(now + 10), &config)
            .await
            .unwrap();
        let anonymous = Credentials::default();
        let issued = core.refresh_session(&anonymous, &live, &[]).await.unwrap();
        assert_eq!(issued.record.session_id, "ses_legacy");
        assert!(
            issued
                .refresh_token
                .expose()
                .starts_with("mcp_rt_ses_legacy."),
            "the new token names its session"
        );
        let err = core
            .refresh_session(&anonymous, &spent, &[])
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::RefreshTokenReused, "{err}");
    }

    #[test]
    fn refresh_tokens_name_their_session() {
        let t = new_refresh_token("ses_abc").unwrap();
        assert_eq!(refresh_token_session(t.expose()), Some("ses_abc"));
        assert_eq!(refresh_token_session("mcp_rt_legacy0000000000000000"), None);
        assert_eq!(refresh_token_session("mcp_rt_ses x.secret"), None);
        assert_eq!(refresh_token_session("mcp_rt_ses_abc."), None);
    }
}
