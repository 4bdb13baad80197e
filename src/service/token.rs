//! `TokenService`: CreateSession, VerifyToken, RevokeSession, GetJwks,
//! RefreshSession.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{State, check_id, check_text, new_id};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::audit::AuditEvent;
use crate::auth::{
    ADMIN, RESERVED_SCOPES, SESSIONS_CREATE, SESSIONS_REVOKE, TOKENS_VERIFY, parse_scopes,
    peer_actor, request_id,
};
use crate::error::{Error, Reason};
use crate::pb;
use crate::secret::{REFRESH_TOKEN_PREFIX, Secret};
use crate::store::{RefreshDecision, RefreshOutcome, RefreshRecord, SessionFilter, SessionRecord};
use crate::token::{AccessClaims, TokenReason};

/// Longest subject or audience, in bytes.
const MAX_NAME_LEN: usize = 256;
/// ListSessions page size when the request says 0.
const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest ListSessions page.
const MAX_PAGE_SIZE: usize = 500;

/// The `TokenService` implementation.
pub(crate) struct TokenService {
    state: Arc<State>,
}

impl TokenService {
    pub fn new(state: Arc<State>) -> Self {
        TokenService { state }
    }

    async fn create_session(
        &self,
        req: Request<pb::CreateSessionRequest>,
    ) -> Result<pb::Session, Error> {
        let s = &self.state;
        let caller = s.auth.authenticate(&req)?;
        caller.require(SESSIONS_CREATE)?;
        let rid = request_id(&req);
        let r = req.into_inner();
        check_text("subject", &r.subject, MAX_NAME_LEN)?;
        check_text("audience", &r.audience, MAX_NAME_LEN)?;
        let scopes = parse_scopes("scopes", &r.scopes, false)?;
        if let Some(reserved) = scopes
            .iter()
            .find(|sc| RESERVED_SCOPES.contains(&sc.as_str()))
        {
            return Err(Error::invalid(
                "scopes",
                format!("{reserved} is a service scope and cannot be put in a token"),
            ));
        }
        caller.require_all(&scopes)?;
        let ttl = match r.ttl_seconds {
            0 => s.default_ttl,
            t if t > s.max_ttl => {
                return Err(Error::invalid(
                    "ttl_seconds",
                    format!("must be at most {} (the configured maximum)", s.max_ttl),
                ));
            }
            t => t,
        };
        let lifetime = match r.session_lifetime_seconds {
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
        let now = s.clock.now();
        let caller_id = caller.id.clone();
        let session_expires_at = now + i64::from(lifetime);
        let refresh = Secret::generate_refresh_token()?;
        let refresh_hash = refresh.hash();
        let record = SessionRecord {
            session_id: new_id("ses_")?,
            subject: r.subject,
            client_id: caller.id.to_string(),
            scopes,
            audience: r.audience,
            created_at: now,
            expires_at: (now + i64::from(ttl)).min(session_expires_at),
            revoked_at: None,
            session_expires_at,
            last_refreshed_at: now,
            refresh_hashes: vec![refresh_hash],
            token_ttl: ttl,
        };
        let access_token = s
            .tokens
            .issue(&record, &record.scopes, now, record.expires_at)?;
        let first = RefreshRecord {
            session_id: record.session_id.clone(),
            issued_at: now,
            spent_at: None,
        };
        s.store
            .insert_session(&record, Some((&refresh_hash, &first)))?;
        // At debug: the audit trail records every session, and the rpc line
        // every call; one more line per session costs ~2% of the throughput.
        tracing::debug!(session_id = %record.session_id, client_id = %record.client_id, ttl, "session created");
        s.commit_audited(&rid, &caller_id, "session.created", &record.session_id)
            .await?;
        let scopes = record.scopes.clone();
        Ok(session_to_pb(record, scopes, access_token, &refresh, now))
    }

    fn list_sessions(
        &self,
        req: Request<pb::ListSessionsRequest>,
    ) -> Result<pb::ListSessionsResponse, Error> {
        let s = &self.state;
        let caller = s.auth.authenticate(&req)?;
        let r = req.into_inner();
        let nonempty = |v: String| (!v.is_empty()).then_some(v);
        let mut filter = SessionFilter {
            subject: nonempty(r.subject),
            client_id: nonempty(r.client_id),
        };
        if let Some(subject) = &filter.subject {
            check_text("subject", subject, MAX_NAME_LEN)?;
        }
        if !caller.has(ADMIN) {
            // Everyone but an admin sees only the sessions it created.
            match &filter.client_id {
                Some(other) if **other != *caller.id => caller.require(ADMIN)?,
                _ => filter.client_id = Some(caller.id.to_string()),
            }
        }
        let cursor = if r.page_token.is_empty() {
            None
        } else {
            Some(
                URL_SAFE_NO_PAD
                    .decode(&r.page_token)
                    .map_err(|_| Error::invalid("page_token", "not a token from ListSessions"))?,
            )
        };
        let limit = match r.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => usize::try_from(n)
                .unwrap_or(MAX_PAGE_SIZE)
                .min(MAX_PAGE_SIZE),
        };
        let (page, next) = s.store.sessions_page(&filter, cursor.as_deref(), limit)?;
        Ok(pb::ListSessionsResponse {
            sessions: page.into_iter().map(session_info).collect(),
            next_page_token: next.map(|c| URL_SAFE_NO_PAD.encode(c)).unwrap_or_default(),
        })
    }

    async fn revoke_sessions(
        &self,
        req: Request<pb::RevokeSessionsRequest>,
    ) -> Result<pb::RevokeSessionsResponse, Error> {
        let s = &self.state;
        let caller = s.auth.authenticate(&req)?;
        caller.require(SESSIONS_REVOKE)?;
        let rid = request_id(&req);
        let subject = req.into_inner().subject;
        check_text("subject", &subject, MAX_NAME_LEN)?;
        let mut ids = Vec::new();
        for id in s.store.session_ids_by_subject(&subject)? {
            if caller.has(ADMIN) {
                ids.push(id);
            } else if let Some(rec) = s.store.session(&id)? {
                if *rec.client_id == *caller.id {
                    ids.push(id);
                }
            }
        }
        let revoked = s.revoke_sessions(&ids).await?;
        tracing::info!(sessions = revoked, "sessions of a subject revoked");
        let target = format!("subject {subject} (sessions revoked: {revoked})");
        s.audit_ok(&rid, &caller.id, "session.revoked_subject", &target)
            .await?;
        Ok(pb::RevokeSessionsResponse { revoked })
    }

    async fn refresh_session(
        &self,
        req: Request<pb::RefreshSessionRequest>,
    ) -> Result<pb::Session, Error> {
        let s = &self.state;
        s.auth.check_peer(&req)?;
        let peer = req.remote_addr();
        let rid = request_id(&req);
        // The refresh token is the credential; a caller that sends another
        // one as well must be the session's creator.
        let sends_credential = req.metadata().contains_key("authorization")
            || req.peer_certs().is_some_and(|chain| !chain.is_empty());
        let caller = if sends_credential {
            Some(s.auth.authenticate(&req)?)
        } else {
            None
        };
        let r = req.into_inner();
        let presented = Some(r.refresh_token.as_str())
            .filter(|t| t.starts_with(REFRESH_TOKEN_PREFIX) && t.len() <= 256)
            .map(Secret::new)
            .ok_or_else(|| {
                s.auth
                    .record_failure(peer, "refresh token", Reason::RefreshTokenInvalid, &rid);
                Error::refused(
                    Reason::RefreshTokenInvalid,
                    "malformed refresh token: expected mcp_rt_...",
                )
            })?;
        let wanted = parse_scopes("scopes", &r.scopes, true)?;
        let now = s.clock.now();
        let child = Secret::generate_refresh_token()?;
        let child_hash = child.hash();
        let grace = i64::from(s.refresh_reuse_grace);
        let idle = i64::from(s.session_idle_timeout);
        let default_ttl = s.default_ttl;
        let max_ttl = s.max_ttl;
        // The lifetime the session asked for at creation, within today's
        // maximum; older sessions get the default.
        let token_ttl = |session: &SessionRecord| {
            i64::from(if session.token_ttl > 0 {
                session.token_ttl.min(max_ttl)
            } else {
                default_ttl
            })
        };
        let outcome = s
            .store
            .refresh(&presented.hash(), now, |found| {
                let Some((token, session)) = found else {
                    return RefreshDecision::Refuse(Error::refused(
                        Reason::RefreshTokenInvalid,
                        "unknown refresh token",
                    ));
                };
                if let Some(c) = &caller {
                    if *c.id != *session.client_id {
                        return RefreshDecision::Refuse(Error::refused(
                            Reason::NotSessionCreator,
                            "a caller that sends a credential with a refresh token must be the session's creator",
                        ));
                    }
                }
                if session.revoked_at.is_some() {
                    return RefreshDecision::Refuse(Error::refused(
                        Reason::SessionRevoked,
                        format!("session {} was revoked", session.session_id),
                    ));
                }
                if now >= session.session_expires_at || now >= session.last_refreshed_at + idle {
                    return RefreshDecision::Refuse(Error::refused(
                        Reason::SessionExpired,
                        format!(
                            "session {} has expired (absolute lifetime or idle timeout); sign in again",
                            session.session_id
                        ),
                    ));
                }
                if let Some(spent) = token.spent_at {
                    if now - spent >= grace {
                        let mut revoked = session.clone();
                        revoked.revoked_at = Some(now);
                        return RefreshDecision::Revoke {
                            session: revoked,
                            error: Error::refused(
                                Reason::RefreshTokenReused,
                                format!(
                                    "refresh token reused: session {} is revoked",
                                    session.session_id
                                ),
                            ),
                        };
                    }
                }
                if let Some(extra) = wanted.iter().find(|w| !session.scopes.contains(w)) {
                    return RefreshDecision::Refuse(Error::invalid(
                        "scopes",
                        format!("{extra} is not a scope of the session; refresh may only narrow"),
                    ));
                }
                let ttl = token_ttl(session);
                let mut next = session.clone();
                next.last_refreshed_at = now;
                next.expires_at = next.expires_at.max((now + ttl).min(session.session_expires_at));
                next.refresh_hashes.push(child_hash);
                RefreshDecision::Mint {
                    session: next,
                    child: child_hash,
                    child_record: RefreshRecord {
                        session_id: session.session_id.clone(),
                        issued_at: now,
                        spent_at: None,
                    },
                }
            })
            .await?;
        let session = match outcome {
            RefreshOutcome::Minted(session) => session,
            RefreshOutcome::Revoked(session, err) => {
                s.revocations.insert(&session.session_id);
                // The revocation and its audit record become durable
                // together before the refusal goes out.
                s.audit.append_unflushed(AuditEvent {
                    actor: &peer_actor(peer),
                    action: "refresh_token.reused",
                    target: &session.session_id,
                    outcome: "REFRESH_TOKEN_REUSED",
                    request_id: &rid,
                });
                s.store.flush().await?;
                tracing::warn!(session_id = %session.session_id, "refresh token reused; session revoked");
                return Err(err);
            }
            RefreshOutcome::Refused(err) => {
                if err.reason() == Reason::RefreshTokenInvalid {
                    s.auth
                        .record_failure(peer, "refresh token", Reason::RefreshTokenInvalid, &rid);
                }
                return Err(err);
            }
        };
        let scopes = if wanted.is_empty() {
            session.scopes.clone()
        } else {
            wanted
        };
        let exp = (now + token_ttl(&session)).min(session.session_expires_at);
        let access_token = s.tokens.issue(&session, &scopes, now, exp)?;
        tracing::debug!(session_id = %session.session_id, "session refreshed");
        s.commit_audited(
            &rid,
            &peer_actor(peer),
            "session.refreshed",
            &session.session_id,
        )
        .await?;
        let mut out = session_to_pb(session, scopes, access_token, &child, now);
        out.expires_at = exp;
        Ok(out)
    }

    fn verify_token(
        &self,
        req: Request<pb::VerifyTokenRequest>,
    ) -> Result<pb::VerifyTokenResponse, Error> {
        let s = &self.state;
        let caller = s.auth.authenticate(&req)?;
        caller.require(TOKENS_VERIFY)?;
        let r = req.into_inner();
        if r.audience.len() > MAX_NAME_LEN {
            return Err(Error::invalid(
                "audience",
                format!("must be at most {MAX_NAME_LEN} bytes"),
            ));
        }
        let required = parse_scopes("required_scopes", &r.required_scopes, true)?;
        let verdict = s.tokens.verify(&r.token, s.clock.now()).and_then(|claims| {
            if s.revocations.contains(&claims.jti) {
                Err(TokenReason::Revoked)
            } else if !r.audience.is_empty() && claims.aud != r.audience {
                Err(TokenReason::WrongAudience)
            } else if !required
                .iter()
                .all(|want| claims.scopes().any(|have| have == want))
            {
                Err(TokenReason::InsufficientScope)
            } else {
                Ok(claims)
            }
        });
        Ok(match verdict {
            Ok(claims) => pb::VerifyTokenResponse {
                active: true,
                reason: pb::TokenReason::Unspecified.into(),
                claims: Some(claims_to_pb(&claims)),
            },
            Err(reason) => {
                tracing::debug!(?reason, "token inactive");
                pb::VerifyTokenResponse {
                    active: false,
                    reason: reason_to_pb(reason).into(),
                    claims: None,
                }
            }
        })
    }

    async fn revoke_session(
        &self,
        req: Request<pb::RevokeSessionRequest>,
    ) -> Result<pb::RevokeSessionResponse, Error> {
        let s = &self.state;
        let caller = s.auth.authenticate(&req)?;
        let rid = request_id(&req);
        let r = req.into_inner();
        check_id("session_id", &r.session_id)?;
        let not_found = || Error::Refused {
            reason: Reason::SessionNotFound,
            message: format!("no session {}", r.session_id),
        };
        let session = s.store.session(&r.session_id)?.ok_or_else(not_found)?;
        if *session.client_id != *caller.id {
            caller.require(SESSIONS_REVOKE)?;
        }
        let revoked = s
            .store
            .revoke_session(&r.session_id, s.clock.now())
            .await?
            .ok_or_else(not_found)?;
        s.revocations.insert(&r.session_id);
        tracing::info!(session_id = %r.session_id, "session revoked");
        s.audit_ok(&rid, &caller.id, "session.revoked", &r.session_id)
            .await?;
        Ok(pb::RevokeSessionResponse {
            revoked_at: revoked.revoked_at.unwrap_or_default(),
        })
    }
}

fn session_info(r: SessionRecord) -> pb::SessionInfo {
    pb::SessionInfo {
        session_id: r.session_id,
        subject: r.subject,
        client_id: r.client_id,
        scopes: r.scopes,
        audience: r.audience,
        created_at: r.created_at,
        expires_at: r.session_expires_at,
        revoked: r.revoked_at.is_some(),
        last_refreshed_at: r.last_refreshed_at,
    }
}

fn session_to_pb(
    record: SessionRecord,
    scopes: Vec<String>,
    access_token: String,
    refresh: &Secret,
    now: i64,
) -> pb::Session {
    pb::Session {
        session_id: record.session_id,
        access_token,
        refresh_token: refresh.expose().to_owned(),
        token_type: "Bearer".to_owned(),
        expires_at: record.expires_at,
        scopes,
        subject: record.subject,
        audience: record.audience,
        issued_at: now,
        client_id: record.client_id,
        session_expires_at: record.session_expires_at,
    }
}

fn claims_to_pb(c: &AccessClaims) -> pb::TokenClaims {
    pb::TokenClaims {
        scopes: c.scopes().map(str::to_owned).collect(),
        subject: c.sub.clone(),
        audience: c.aud.clone(),
        session_id: c.jti.clone(),
        client_id: c.client_id.clone(),
        issued_at: c.iat,
        expires_at: c.exp,
        issuer: c.iss.clone(),
    }
}

fn reason_to_pb(r: TokenReason) -> pb::TokenReason {
    match r {
        TokenReason::Expired => pb::TokenReason::Expired,
        TokenReason::Revoked => pb::TokenReason::Revoked,
        TokenReason::BadSignature => pb::TokenReason::BadSignature,
        TokenReason::Malformed => pb::TokenReason::Malformed,
        TokenReason::WrongAudience => pb::TokenReason::WrongAudience,
        TokenReason::InsufficientScope => pb::TokenReason::InsufficientScope,
        TokenReason::NotYetValid => pb::TokenReason::NotYetValid,
        TokenReason::UnknownKey => pb::TokenReason::UnknownKey,
        TokenReason::WrongIssuer => pb::TokenReason::WrongIssuer,
    }
}

#[tonic::async_trait]
impl pb::token_service_server::TokenService for TokenService {
    async fn create_session(
        &self,
        request: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        Ok(Response::new(self.create_session(request).await?))
    }

    async fn verify_token(
        &self,
        request: Request<pb::VerifyTokenRequest>,
    ) -> Result<Response<pb::VerifyTokenResponse>, Status> {
        Ok(Response::new(self.verify_token(request)?))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::RevokeSessionResponse>, Status> {
        Ok(Response::new(self.revoke_session(request).await?))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        Ok(Response::new(self.list_sessions(request)?))
    }

    async fn revoke_sessions(
        &self,
        request: Request<pb::RevokeSessionsRequest>,
    ) -> Result<Response<pb::RevokeSessionsResponse>, Status> {
        Ok(Response::new(self.revoke_sessions(request).await?))
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        Ok(Response::new(pb::GetJwksResponse {
            jwks_json: self.state.tokens.ring().jwks_json().to_owned(),
        }))
    }

    async fn refresh_session(
        &self,
        request: Request<pb::RefreshSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        Ok(Response::new(self.refresh_session(request).await?))
    }
}
