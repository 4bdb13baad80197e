//! `AdminService`: GetStatus, BackupStore.

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

    type BackupStoreStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::BackupChunk, Status>> + Send>>;

    async fn backup_store(
        &self,
        request: Request<pb::BackupStoreRequest>,
    ) -> Result<Response<Self::BackupStoreStream>, Status> {
        let (call, _) = Call::split(request);
        let bytes = self.core.backup_store(&call.credentials()).await?;
        // Each chunk is copied out as it is sent, so the backup is not
        // held twice.
        let chunks = (0..bytes.len().div_ceil(BACKUP_CHUNK)).map(move |i| {
            let end = bytes.len().min((i + 1) * BACKUP_CHUNK);
            Ok(pb::BackupChunk {
                data: bytes[i * BACKUP_CHUNK..end].to_vec(),
            })
        });
        Ok(Response::new(Box::pin(tokio_stream::iter(chunks))))
    }
}

/// Bytes of the backup per streamed message: well under gRPC's 4 MiB
/// default message limit.
const BACKUP_CHUNK: usize = 256 * 1024;
