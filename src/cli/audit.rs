//! `mcp-auth audit ...`: listing the audit trail and verifying its hash
//! chain, offline or through a running server.

use super::output::{print_json, time};
use super::{AuditCommand, CliError};
use crate::grpc::client::Client;
use crate::pb;

/// Events asked for per `ListAuditEvents` page.
const PAGE_SIZE: u32 = 1000;

/// Runs an `audit` subcommand.
pub(super) async fn run(cmd: AuditCommand) -> Result<u8, CliError> {
    match cmd {
        AuditCommand::List {
            since,
            actor,
            action,
            opts,
        } => {
            let client = opts.client().await?;
            let events = all_audit_events(&client, since, &actor, &action).await?.0;
            if opts.json {
                print_json(&events)?;
            } else {
                outln!(
                    "{:>6} {:<20} {:<28} {:<24} {:<20} TARGET",
                    "SEQ",
                    "TIME",
                    "ACTOR",
                    "ACTION",
                    "OUTCOME"
                );
                for e in &events {
                    outln!(
                        "{:>6} {:<20} {:<28} {:<24} {:<20} {}",
                        e.seq,
                        time(e.time),
                        e.actor,
                        e.action,
                        e.outcome,
                        e.target
                    );
                }
            }
            Ok(0)
        }
        AuditCommand::Verify { data_dir, opts } => {
            let verdict = match data_dir {
                Some(dir) => match crate::core::audit::verify_data_dir(&dir).await {
                    Ok((n, anchor)) => Ok((n, anchor)),
                    Err(crate::core::audit::AuditVerifyError::Broken(b)) => Err(b),
                    Err(e) => return Err(CliError::Usage(e.to_string())),
                },
                None => {
                    let client = opts.client().await?;
                    let (events, anchor) = all_audit_events(&client, 0, "", "").await?;
                    let records: Vec<_> = events
                        .into_iter()
                        .map(crate::grpc::convert::event_from_pb)
                        .collect();
                    let anchor_seq = anchor.seq;
                    crate::core::audit::verify_chain(&anchor, &records).map(|n| (n, anchor_seq))
                }
            };
            match verdict {
                Ok((n, anchor)) => {
                    let records = if n == 1 { "record" } else { "records" };
                    outln!("audit chain intact: {n} {records} after seq {anchor}");
                    Ok(0)
                }
                Err(broken) => {
                    outln!("audit chain BROKEN: {broken}");
                    Ok(1)
                }
            }
        }
    }
}

/// Every audit event matching the filters, and the chain's anchor.
async fn all_audit_events(
    client: &Client,
    since: i64,
    actor: &str,
    action: &str,
) -> Result<(Vec<pb::AuditEvent>, crate::core::audit::AuditAnchor), CliError> {
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_audit_events(pb::ListAuditEventsRequest {
                since,
                actor: actor.to_owned(),
                action: action.to_owned(),
                page_token,
                page_size: PAGE_SIZE,
            })
            .await?;
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            let anchor = crate::core::audit::AuditAnchor {
                seq: page.anchor_seq,
                hash: page.anchor_hash,
            };
            return Ok((events, anchor));
        }
        page_token = page.next_page_token;
    }
}
