//! `UserService`: CreateUser, ListUsers, GetUser, SetPassword,
//! SetUserDisabled, DeleteUser, ListConsents, RevokeConsent. Passwords go to the core as
//! [`Secret`]s and never come back.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::call::Call;
use super::convert::{consent_to_pb, user_to_pb};
use crate::core::Core;
use crate::pb;
use crate::secret::Secret;

/// The `UserService` adapter.
pub(crate) struct UserService {
    pub core: Arc<Core>,
}

#[tonic::async_trait]
impl pb::user_service_server::UserService for UserService {
    async fn list_consents(
        &self,
        request: Request<pb::ListConsentsRequest>,
    ) -> Result<Response<pb::ListConsentsResponse>, Status> {
        let (call, r) = Call::split(request);
        let consents = self
            .core
            .list_consents(&call.credentials(), &r.user_id, &r.username)
            .await?;
        Ok(Response::new(pb::ListConsentsResponse {
            consents: consents.into_iter().map(consent_to_pb).collect(),
        }))
    }

    async fn revoke_consent(
        &self,
        request: Request<pb::RevokeConsentRequest>,
    ) -> Result<Response<pb::RevokeConsentResponse>, Status> {
        let (call, r) = Call::split(request);
        let sessions_revoked = self
            .core
            .revoke_consent(&call.credentials(), &r.user_id, &r.username, &r.client_id)
            .await?;
        Ok(Response::new(pb::RevokeConsentResponse {
            sessions_revoked,
        }))
    }

    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        let (call, r) = Call::split(request);
        let user = self
            .core
            .create_user(&call.credentials(), &r.username, Secret::new(r.password))
            .await?;
        Ok(Response::new(pb::CreateUserResponse {
            user: Some(user_to_pb(user)),
        }))
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        let (call, _) = Call::split(request);
        let users = self.core.list_users(&call.credentials()).await?;
        Ok(Response::new(pb::ListUsersResponse {
            users: users.into_iter().map(user_to_pb).collect(),
        }))
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let (call, r) = Call::split(request);
        let user = self
            .core
            .get_user(&call.credentials(), &r.user_id, &r.username)
            .await?;
        Ok(Response::new(user_to_pb(user)))
    }

    async fn set_password(
        &self,
        request: Request<pb::SetPasswordRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let (call, r) = Call::split(request);
        let user = self
            .core
            .set_password(&call.credentials(), &r.user_id, Secret::new(r.password))
            .await?;
        Ok(Response::new(user_to_pb(user)))
    }

    async fn set_user_disabled(
        &self,
        request: Request<pb::SetUserDisabledRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let (call, r) = Call::split(request);
        let user = self
            .core
            .set_user_disabled(&call.credentials(), &r.user_id, r.disabled)
            .await?;
        Ok(Response::new(user_to_pb(user)))
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        let (call, r) = Call::split(request);
        let user = self
            .core
            .delete_user(&call.credentials(), &r.user_id)
            .await?;
        Ok(Response::new(pb::DeleteUserResponse {
            user: Some(user_to_pb(user)),
        }))
    }
}
