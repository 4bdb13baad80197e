//! `mcp-auth audit ...`: listing the audit trail and verifying its hash
//! chain, offline or through a running server.

use super::output::time;
use super::{AuditCommand, CliError, GlobalOpts, Output};
use crate::grpc::client::Client;
use crate::pb;

/// Events asked for per `ListAuditEvents` page.
const PAGE_SIZE: u32 = 1000;

/// Runs an `audit` subcommand.
pub(super) async fn run(
    cmd: AuditCommand,
    opts: &GlobalOpts,
    out: &Output,
) -> Result<u8, CliError> {
    match cmd {
        AuditCommand::List {
            since,
            limit,
            actor,
            action,
        } => {
            let client = opts.client().await?;
            let (events, _, more) = audit_events(&client, since, &actor, &action, limit).await?;
            out.print_list(&events, |events| {
                outln!(
                    "{:>6} {:<20} {:<28} {:<24} {:<20} TARGET",
                    "SEQ",
                    "TIME",
                    "ACTOR",
                    "ACTION",
                    "OUTCOME"
                );
                for e in events {
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
            })?;
            if more {
                eprintln!(
                    "showing the first {limit} matching events; narrow with --since or raise --limit (0 for all)"
                );
            }
            Ok(0)
        }
        AuditCommand::Verify { data_dir } => {
            let verdict = match data_dir {
                Some(dir) => match crate::core::audit::verify_data_dir(&dir).await {
                    Ok((n, anchor)) => Ok((n, anchor)),
                    Err(crate::core::audit::AuditVerifyError::Broken(b)) => Err(b),
                    Err(e) => return Err(CliError::Usage(e.to_string())),
                },
                None => {
                    let client = opts.client().await?;
                    let (events, anchor, _) = audit_events(&client, 0, "", "", 0).await?;
                    let records: Vec<_> = events
                        .into_iter()
                        .map(crate::grpc::convert::event_from_pb)
                        .collect();
                    let anchor_seq = anchor.seq;
                    crate::core::audit::verify_chain(&anchor, &records).map(|n| (n, anchor_seq))
                }
            };
            /// The verdict as `--json` prints it.
            #[derive(serde::Serialize)]
            struct Verdict {
                intact: bool,
                #[serde(skip_serializing_if = "Option::is_none")]
                records: Option<u64>,
                #[serde(skip_serializing_if = "Option::is_none")]
                after_seq: Option<u64>,
                #[serde(skip_serializing_if = "Option::is_none")]
                broken: Option<String>,
            }
            let shown = match &verdict {
                Ok((n, anchor)) => Verdict {
                    intact: true,
                    records: Some(*n),
                    after_seq: Some(*anchor),
                    broken: None,
                },
                Err(broken) => Verdict {
                    intact: false,
                    records: None,
                    after_seq: None,
                    broken: Some(broken.to_string()),
                },
            };
            out.print(&shown, |v| match (&v.broken, v.records, v.after_seq) {
                (Some(broken), _, _) => outln!("audit chain BROKEN: {broken}"),
                (None, n, anchor) => {
                    let n = n.unwrap_or_default();
                    let records = if n == 1 { "record" } else { "records" };
                    outln!(
                        "audit chain intact: {n} {records} after seq {}",
                        anchor.unwrap_or_default()
                    );
                }
            })?;
            Ok(if verdict.is_ok() { 0 } else { 1 })
        }
    }
}

/// The first `limit` audit events matching the filters (every one for
/// 0), the chain's anchor, and whether more matched.
async fn audit_events(
    client: &Client,
    since: i64,
    actor: &str,
    action: &str,
    limit: u32,
) -> Result<(Vec<pb::AuditEvent>, crate::core::audit::AuditAnchor, bool), CliError> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
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
        let full = limit != 0 && events.len() >= limit;
        if full || page.next_page_token.is_empty() {
            let more = full && (events.len() > limit || !page.next_page_token.is_empty());
            if limit != 0 {
                events.truncate(limit);
            }
            let anchor = crate::core::audit::AuditAnchor {
                seq: page.anchor_seq,
                hash: page.anchor_hash,
            };
            return Ok((events, anchor, more));
        }
        page_token = page.next_page_token;
    }
}
