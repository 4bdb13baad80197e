//! `KeyService`: RotateSigningKey.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::call::Call;
use crate::core::Core;
use crate::pb;

/// The `KeyService` adapter.
pub(crate) struct KeyService {
    pub core: Arc<Core>,
}

#[tonic::async_trait]
impl pb::key_service_server::KeyService for KeyService {
    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::RotateSigningKeyResponse>, Status> {
        let (call, _) = Call::split(request);
        let (kid, previous_kid) = self.core.rotate_signing_key(&call.credentials()).await?;
        Ok(Response::new(pb::RotateSigningKeyResponse {
            kid,
            previous_kid,
        }))
    }
}
