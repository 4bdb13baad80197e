//! `TokenService`: CreateSession, RefreshSession, VerifyToken,
//! WatchRevocations, RevokeSession, RevokeSessions, ListSessions,
//! GetSession, GetJwks, WhoAmI.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tonic::{Request, Response, Status};

use super::call::Call;
use super::convert::{batch_to_pb, caller_to_pb, session_info, session_to_pb, verdict_to_pb};
use crate::core::{Core, Error, NewSession, Resume, TokenCheck};
use crate::pb;
use crate::store::{Cursor, SessionFilter};

/// The `TokenService` adapter.
pub(crate) struct TokenService {
    pub core: Arc<Core>,
    /// Turns true when the server begins to shut down: revocation streams
    /// end then.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

fn nonempty(v: String) -> Option<String> {
    (!v.is_empty()).then_some(v)
}

#[tonic::async_trait]
impl pb::token_service_server::TokenService for TokenService {
    async fn create_session(
        &self,
        request: Request<pb::CreateSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let (call, r) = Call::split(request);
        let req = NewSession {
            subject: r.subject,
            audience: r.audience,
            scopes: r.scopes,
            ttl_seconds: r.ttl_seconds,
            session_lifetime_seconds: r.session_lifetime_seconds,
        };
        let issued = self.core.create_session(&call.credentials(), req).await?;
        Ok(Response::new(session_to_pb(issued)))
    }

    async fn verify_token(
        &self,
        request: Request<pb::VerifyTokenRequest>,
    ) -> Result<Response<pb::VerifyTokenResponse>, Status> {
        let (call, r) = Call::split(request);
        let check = TokenCheck {
            token: &r.token,
            audience: &r.audience,
            required_scopes: &r.required_scopes,
            client_address: &r.client_address,
        };
        let verdict = self.core.verify_token(&call.credentials(), check).await?;
        if let Err(reason) = &verdict.claims {
            tracing::debug!(?reason, kind = ?verdict.kind, "token inactive");
        }
        Ok(Response::new(verdict_to_pb(verdict)))
    }

    type WatchRevocationsStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<pb::RevocationBatch, Status>> + Send>,
    >;

    async fn watch_revocations(
        &self,
        request: Request<pb::WatchRevocationsRequest>,
    ) -> Result<Response<Self::WatchRevocationsStream>, Status> {
        let (call, r) = Call::split(request);
        let resume = (!r.epoch.is_empty()).then_some(Resume {
            epoch: &r.epoch,
            position: r.position,
        });
        let watch = self
            .core
            .watch_revocations(&call.credentials(), resume)
            .await?;
        // One batch at a time, until the caller goes away (the stream is
        // dropped) or the server shuts down (the stream ends, so that
        // draining does not wait for it).
        let stream = futures_util::stream::unfold(
            (watch, self.stopping.clone()),
            |(mut watch, mut stopping)| async move {
                let batch = tokio::select! {
                    batch = watch.next() => batch,
                    _ = stopping.wait_for(|stop| *stop) => return None,
                };
                Some((Ok(batch_to_pb(batch)), (watch, stopping)))
            },
        );
        Ok(Response::new(Box::pin(stream)))
    }

    async fn revoke_session(
        &self,
        request: Request<pb::RevokeSessionRequest>,
    ) -> Result<Response<pb::RevokeSessionResponse>, Status> {
        let (call, r) = Call::split(request);
        let revoked_at = self
            .core
            .revoke_session(&call.credentials(), &r.session_id)
            .await?;
        Ok(Response::new(pb::RevokeSessionResponse { revoked_at }))
    }

    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let (call, r) = Call::split(request);
        let cursor = if r.page_token.is_empty() {
            None
        } else {
            let bad = || Error::invalid("page_token", "not a token from ListSessions");
            let bytes = URL_SAFE_NO_PAD.decode(&r.page_token).map_err(|_| bad())?;
            Some(Cursor::from_client(
                String::from_utf8(bytes).map_err(|_| bad())?,
            ))
        };
        let filter = SessionFilter {
            subject: nonempty(r.subject),
            client_id: nonempty(r.client_id),
        };
        let page = self
            .core
            .list_sessions(&call.credentials(), filter, cursor.as_ref(), r.page_size)
            .await?;
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: page
                .items
                .into_iter()
                .map(|s| session_info(s, self.core.now()))
                .collect(),
            next_page_token: page
                .next
                .map(|c| URL_SAFE_NO_PAD.encode(c.as_str()))
                .unwrap_or_default(),
        }))
    }

    async fn get_session(
        &self,
        request: Request<pb::GetSessionRequest>,
    ) -> Result<Response<pb::SessionInfo>, Status> {
        let (call, r) = Call::split(request);
        let session = self
            .core
            .get_session(&call.credentials(), &r.session_id)
            .await?;
        Ok(Response::new(session_info(session, self.core.now())))
    }

    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let (call, _) = Call::split(request);
        let caller = self.core.whoami(&call.credentials()).await?;
        Ok(Response::new(caller_to_pb(caller)))
    }

    async fn revoke_sessions(
        &self,
        request: Request<pb::RevokeSessionsRequest>,
    ) -> Result<Response<pb::RevokeSessionsResponse>, Status> {
        let (call, r) = Call::split(request);
        let revoked = self
            .core
            .revoke_subject_sessions(&call.credentials(), &r.subject)
            .await?;
        Ok(Response::new(pb::RevokeSessionsResponse { revoked }))
    }

    async fn get_jwks(
        &self,
        _request: Request<pb::GetJwksRequest>,
    ) -> Result<Response<pb::GetJwksResponse>, Status> {
        Ok(Response::new(pb::GetJwksResponse {
            jwks_json: self.core.jwks_json(),
        }))
    }

    async fn refresh_session(
        &self,
        request: Request<pb::RefreshSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let (call, r) = Call::split(request);
        let issued = self
            .core
            .refresh_session(&call.credentials(), &r.refresh_token, &r.scopes)
            .await?;
        Ok(Response::new(session_to_pb(issued)))
    }
}
