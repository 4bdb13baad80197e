//! `AuditService`: ListAuditEvents.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::call::Call;
use super::convert::event_to_pb;
use crate::core::audit::AuditQuery;
use crate::core::{Core, Error};
use crate::pb;

/// The `AuditService` adapter.
pub(crate) struct AuditService {
    pub core: Arc<Core>,
}

#[tonic::async_trait]
impl pb::audit_service_server::AuditService for AuditService {
    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let (call, r) = Call::split(request);
        let after = if r.page_token.is_empty() {
            0
        } else {
            r.page_token
                .parse()
                .map_err(|_| Error::invalid("page_token", "not a token from ListAuditEvents"))?
        };
        let query = AuditQuery {
            since: r.since,
            actor: r.actor,
            action: r.action,
            after,
            page_size: r.page_size,
        };
        let page = self
            .core
            .list_audit_events(&call.credentials(), query)
            .await?;
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: page.events.into_iter().map(event_to_pb).collect(),
            next_page_token: page.next.map(|n| n.to_string()).unwrap_or_default(),
            anchor_seq: page.anchor.seq,
            anchor_hash: page.anchor.hash,
        }))
    }
}
