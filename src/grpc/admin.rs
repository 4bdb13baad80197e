//! `AdminService`: GetStatus.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::call::Call;
use super::convert::status_to_pb;
use crate::core::Core;
use crate::pb;

/// The `AdminService` adapter.
pub(crate) struct AdminService {
    pub core: Arc<Core>,
}

#[tonic::async_trait]
impl pb::admin_service_server::AdminService for AdminService {
    async fn get_status(
        &self,
        request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::ServerStatus>, Status> {
        let (call, _) = Call::split(request);
        let status = self.core.status(&call.credentials()).await?;
        Ok(Response::new(status_to_pb(status)))
    }
}
