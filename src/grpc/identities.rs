//! `IdentityService`: SetIdentity, ListIdentities, DeleteIdentity,
//! RevokeCertificate.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::call::Call;
use super::convert::{identity_to_pb, rate_limit_from_pb};
use crate::core::{Core, IdentityGrant};
use crate::pb;

/// The `IdentityService` adapter.
pub(crate) struct IdentityService {
    pub core: Arc<Core>,
}

#[tonic::async_trait]
impl pb::identity_service_server::IdentityService for IdentityService {
    async fn set_identity(
        &self,
        request: Request<pb::SetIdentityRequest>,
    ) -> Result<Response<pb::Identity>, Status> {
        let (call, r) = Call::split(request);
        let grant = IdentityGrant {
            name: r.name,
            scopes: r.scopes,
            disabled: r.disabled,
            rate_limit: rate_limit_from_pb(r.rate_limit),
        };
        let stored = self.core.set_identity(&call.credentials(), grant).await?;
        Ok(Response::new(identity_to_pb(
            self.core.trust_domain(),
            stored,
        )))
    }

    async fn list_identities(
        &self,
        request: Request<pb::ListIdentitiesRequest>,
    ) -> Result<Response<pb::ListIdentitiesResponse>, Status> {
        let (call, _) = Call::split(request);
        let all = self.core.list_identities(&call.credentials()).await?;
        let td = self.core.trust_domain();
        Ok(Response::new(pb::ListIdentitiesResponse {
            identities: all.into_iter().map(|r| identity_to_pb(td, r)).collect(),
        }))
    }

    async fn delete_identity(
        &self,
        request: Request<pb::DeleteIdentityRequest>,
    ) -> Result<Response<pb::DeleteIdentityResponse>, Status> {
        let (call, r) = Call::split(request);
        let sessions_revoked = self
            .core
            .delete_identity(&call.credentials(), &r.name, r.cascade.unwrap_or(true))
            .await?;
        Ok(Response::new(pb::DeleteIdentityResponse {
            sessions_revoked,
        }))
    }

    async fn revoke_certificate(
        &self,
        request: Request<pb::RevokeCertificateRequest>,
    ) -> Result<Response<pb::RevokeCertificateResponse>, Status> {
        let (call, r) = Call::split(request);
        let revoked = self
            .core
            .revoke_certificate(&call.credentials(), &r.serial)
            .await?;
        Ok(Response::new(pb::RevokeCertificateResponse {
            serial: revoked.serial,
            revoked_at: revoked.revoked_at,
        }))
    }
}
