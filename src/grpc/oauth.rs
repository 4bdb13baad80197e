//! `OAuthService`: GetLoginRequest, AcceptLogin, RejectLogin, for the
//! application that signs users in when `login_url` is set (see
//! [`crate::core::delegated_login`]).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::call::Call;
use crate::core::Core;
use crate::pb;

/// The `OAuthService` adapter.
pub(crate) struct OAuthService {
    pub core: Arc<Core>,
}

#[tonic::async_trait]
impl pb::o_auth_service_server::OAuthService for OAuthService {
    async fn get_login_request(
        &self,
        request: Request<pb::GetLoginRequestRequest>,
    ) -> Result<Response<pb::LoginRequest>, Status> {
        let (call, r) = Call::split(request);
        let l = self
            .core
            .get_login_request(&call.credentials(), &r.login_challenge)
            .await?;
        Ok(Response::new(pb::LoginRequest {
            client_id: l.client_id,
            client_name: l.client_name,
            scopes: l.scopes,
            resource: l.resource,
            redirect_host: l.redirect_host,
            expires_at: l.expires_at,
        }))
    }

    async fn accept_login(
        &self,
        request: Request<pb::AcceptLoginRequest>,
    ) -> Result<Response<pb::AcceptLoginResponse>, Status> {
        let (call, r) = Call::split(request);
        let redirect_to = self
            .core
            .accept_login(
                &call.credentials(),
                &r.login_challenge,
                &r.subject,
                r.remember_seconds,
            )
            .await?;
        Ok(Response::new(pb::AcceptLoginResponse { redirect_to }))
    }

    async fn reject_login(
        &self,
        request: Request<pb::RejectLoginRequest>,
    ) -> Result<Response<pb::RejectLoginResponse>, Status> {
        let (call, r) = Call::split(request);
        let redirect_to = self
            .core
            .reject_login(
                &call.credentials(),
                &r.login_challenge,
                &r.error,
                &r.error_description,
            )
            .await?;
        Ok(Response::new(pb::RejectLoginResponse { redirect_to }))
    }
}
