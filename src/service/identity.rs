//! `IdentityService`: SetIdentity, ListIdentities, DeleteIdentity,
//! RevokeCertificate. Every call needs `identities:admin`; a caller may
//! grant only scopes it holds itself.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{State, rate_limit_from_pb, rate_limit_to_pb};
use crate::auth::{IDENTITIES_ADMIN, Principal, parse_scopes, request_id};
use crate::ca::{normalize_serial, spiffe_id, validate_identity_name};
use crate::error::{Error, Reason};
use crate::pb;
use crate::store::IdentityRecord;

/// The `IdentityService` implementation.
pub(crate) struct IdentityService {
    state: Arc<State>,
}

impl IdentityService {
    pub fn new(state: Arc<State>) -> Self {
        IdentityService { state }
    }

    fn admin<T>(&self, req: &Request<T>) -> Result<Principal, Error> {
        let caller = self.state.auth.authenticate(req)?;
        caller.require(IDENTITIES_ADMIN)?;
        Ok(caller)
    }

    /// Changing or deleting an existing grant needs every scope it holds,
    /// so a delegated admin cannot disarm a stronger identity.
    fn may_manage(&self, caller: &Principal, name: &str) -> Result<(), Error> {
        match self.state.identities.grant(name) {
            Some(existing) => caller.require_all(&existing.scopes),
            None => Ok(()),
        }
    }

    fn to_pb(&self, r: IdentityRecord) -> pb::Identity {
        pb::Identity {
            spiffe_id: spiffe_id(&self.state.trust_domain, &r.name),
            name: r.name,
            scopes: r.scopes,
            disabled: r.disabled,
            created_at: r.created_at,
            updated_at: r.updated_at,
            rate_limit: rate_limit_to_pb(r.rate_limit),
        }
    }

    async fn set(&self, req: Request<pb::SetIdentityRequest>) -> Result<pb::Identity, Error> {
        let caller = self.admin(&req)?;
        let rid = request_id(&req);
        let r = req.into_inner();
        validate_identity_name(&r.name).map_err(|m| Error::invalid("name", m))?;
        let scopes = parse_scopes("scopes", &r.scopes, true)?;
        let rate_limit = rate_limit_from_pb("rate_limit", r.rate_limit)?;
        caller.require_all(&scopes)?;
        self.may_manage(&caller, &r.name)?;
        let now = self.state.clock.now();
        let stored = self
            .state
            .store
            .put_identity(IdentityRecord {
                name: r.name,
                scopes,
                disabled: r.disabled,
                created_at: now,
                updated_at: now,
                rate_limit,
            })
            .await?;
        self.state.identities.set(stored.clone());
        let target = format!(
            "{} (scopes: {}; disabled: {})",
            stored.name,
            stored.scopes.join(","),
            stored.disabled
        );
        self.state
            .audit_ok(&rid, &caller.id, "identity.set", &target)
            .await?;
        tracing::info!(identity = %stored.name, disabled = stored.disabled, "identity set");
        Ok(self.to_pb(stored))
    }

    fn list(
        &self,
        req: Request<pb::ListIdentitiesRequest>,
    ) -> Result<pb::ListIdentitiesResponse, Error> {
        self.admin(&req)?;
        let identities = self
            .state
            .store
            .identities()?
            .into_iter()
            .map(|r| self.to_pb(r))
            .collect();
        Ok(pb::ListIdentitiesResponse { identities })
    }

    async fn delete(
        &self,
        req: Request<pb::DeleteIdentityRequest>,
    ) -> Result<pb::DeleteIdentityResponse, Error> {
        let caller = self.admin(&req)?;
        let rid = request_id(&req);
        let r = req.into_inner();
        let name = r.name;
        validate_identity_name(&name).map_err(|m| Error::invalid("name", m))?;
        self.may_manage(&caller, &name)?;
        if !self.state.store.delete_identity(&name).await? {
            return Err(Error::refused(
                Reason::IdentityNotFound,
                format!("no identity {name}"),
            ));
        }
        self.state.identities.remove(&name);
        tracing::info!(identity = %name, "identity deleted");
        let sessions_revoked = if r.cascade.unwrap_or(true) {
            self.state.revoke_sessions_of_client(&name).await?
        } else {
            0
        };
        let target = format!("{name} (sessions revoked: {sessions_revoked})");
        self.state
            .audit_ok(&rid, &caller.id, "identity.deleted", &target)
            .await?;
        Ok(pb::DeleteIdentityResponse { sessions_revoked })
    }

    async fn revoke_certificate(
        &self,
        req: Request<pb::RevokeCertificateRequest>,
    ) -> Result<pb::RevokeCertificateResponse, Error> {
        let caller = self.admin(&req)?;
        let rid = request_id(&req);
        let serial =
            normalize_serial(&req.into_inner().serial).map_err(|m| Error::invalid("serial", m))?;
        let revoked = self
            .state
            .store
            .revoke_cert(&serial, self.state.clock.now())
            .await?;
        self.state.identities.revoke(&serial);
        self.state
            .audit_ok(&rid, &caller.id, "certificate.revoked", &serial)
            .await?;
        tracing::info!(serial = %serial, "client certificate revoked");
        Ok(pb::RevokeCertificateResponse {
            serial: revoked.serial,
            revoked_at: revoked.revoked_at,
        })
    }
}

#[tonic::async_trait]
impl pb::identity_service_server::IdentityService for IdentityService {
    async fn set_identity(
        &self,
        request: Request<pb::SetIdentityRequest>,
    ) -> Result<Response<pb::Identity>, Status> {
        Ok(Response::new(self.set(request).await?))
    }

    async fn list_identities(
        &self,
        request: Request<pb::ListIdentitiesRequest>,
    ) -> Result<Response<pb::ListIdentitiesResponse>, Status> {
        Ok(Response::new(self.list(request)?))
    }

    async fn delete_identity(
        &self,
        request: Request<pb::DeleteIdentityRequest>,
    ) -> Result<Response<pb::DeleteIdentityResponse>, Status> {
        Ok(Response::new(self.delete(request).await?))
    }

    async fn revoke_certificate(
        &self,
        request: Request<pb::RevokeCertificateRequest>,
    ) -> Result<Response<pb::RevokeCertificateResponse>, Status> {
        Ok(Response::new(self.revoke_certificate(request).await?))
    }
}
