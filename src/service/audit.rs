//! `AuditService`: ListAuditEvents. Needs scope `audit:read`.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::State;
use crate::audit::AuditRecord;
use crate::auth::AUDIT_READ;
use crate::error::Error;
use crate::pb;

/// ListAuditEvents page size when the request says 0.
const DEFAULT_PAGE_SIZE: usize = 100;
/// Largest ListAuditEvents page.
const MAX_PAGE_SIZE: usize = 1000;
/// Records examined per storage read while filtering.
const SCAN_BATCH: usize = 512;

/// The `AuditService` implementation.
pub(crate) struct AuditService {
    state: Arc<State>,
}

impl AuditService {
    pub fn new(state: Arc<State>) -> Self {
        AuditService { state }
    }

    fn list(
        &self,
        req: Request<pb::ListAuditEventsRequest>,
    ) -> Result<pb::ListAuditEventsResponse, Error> {
        let s = &self.state;
        s.auth.authenticate(&req)?.require(AUDIT_READ)?;
        let r = req.into_inner();
        let mut after: u64 = if r.page_token.is_empty() {
            0
        } else {
            r.page_token
                .parse()
                .map_err(|_| Error::invalid("page_token", "not a token from ListAuditEvents"))?
        };
        let limit = match r.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n => usize::try_from(n)
                .unwrap_or(MAX_PAGE_SIZE)
                .min(MAX_PAGE_SIZE),
        };
        let wanted = |e: &AuditRecord| {
            e.time >= r.since
                && (r.actor.is_empty() || e.actor == r.actor)
                && (r.action.is_empty() || e.action == r.action)
        };
        let mut events = Vec::new();
        let mut more = false;
        'scan: loop {
            let batch = s.store.audit_page(after, SCAN_BATCH)?;
            let exhausted = batch.len() < SCAN_BATCH;
            for e in batch {
                after = e.seq;
                if wanted(&e) {
                    events.push(event_to_pb(e));
                    if events.len() == limit {
                        more = true;
                        break 'scan;
                    }
                }
            }
            if exhausted {
                break;
            }
        }
        let anchor = s.store.audit_anchor()?;
        Ok(pb::ListAuditEventsResponse {
            events,
            next_page_token: if more {
                after.to_string()
            } else {
                String::new()
            },
            anchor_seq: anchor.seq,
            anchor_hash: anchor.hash,
        })
    }
}

fn event_to_pb(e: AuditRecord) -> pb::AuditEvent {
    pb::AuditEvent {
        seq: e.seq,
        time: e.time,
        actor: e.actor,
        action: e.action,
        target: e.target,
        outcome: e.outcome,
        request_id: e.request_id,
        prev_hash: e.prev_hash,
        hash: e.hash,
    }
}

/// The domain record of a listed event, for verifying a chain client-side.
pub(crate) fn event_from_pb(e: pb::AuditEvent) -> AuditRecord {
    AuditRecord {
        seq: e.seq,
        time: e.time,
        actor: e.actor,
        action: e.action,
        target: e.target,
        outcome: e.outcome,
        request_id: e.request_id,
        prev_hash: e.prev_hash,
        hash: e.hash,
    }
}

#[tonic::async_trait]
impl pb::audit_service_server::AuditService for AuditService {
    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        Ok(Response::new(self.list(request)?))
    }
}
