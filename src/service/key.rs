//! `KeyService`: RotateSigningKey. Needs scope `admin`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::State;
use crate::auth::{ADMIN, request_id};
use crate::error::Error;
use crate::pb;

/// The `KeyService` implementation.
pub(crate) struct KeyService {
    state: Arc<State>,
}

impl KeyService {
    pub fn new(state: Arc<State>) -> Self {
        KeyService { state }
    }

    async fn rotate(
        &self,
        req: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<pb::RotateSigningKeyResponse, Error> {
        let s = &self.state;
        let caller = s.auth.authenticate(&req)?;
        caller.require(ADMIN)?;
        let rid = request_id(&req);
        let (kid, previous_kid) = s.tokens.rotate(&s.store, s.clock.now()).await?;
        tracing::info!(kid = %kid, previous = %previous_kid, "signing key rotated");
        s.audit_ok(&rid, &caller.id, "signing_key.rotated", &kid)
            .await?;
        Ok(pb::RotateSigningKeyResponse { kid, previous_kid })
    }
}

#[tonic::async_trait]
impl pb::key_service_server::KeyService for KeyService {
    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::RotateSigningKeyResponse>, Status> {
        Ok(Response::new(self.rotate(request).await?))
    }
}
