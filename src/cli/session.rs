//! `mcp-auth session ...`: create, refresh, list and revoke sessions.

use time::OffsetDateTime;

use super::output::{plural, print_json, show, time};
use super::{CliError, SessionCommand, arg_or_stdin};
use crate::pb;

/// Sessions asked for per `ListSessions` page.
const PAGE_SIZE: u32 = 500;

/// Runs a `session` subcommand.
pub(super) async fn run(cmd: SessionCommand) -> Result<u8, CliError> {
    match cmd {
        SessionCommand::Create {
            subject,
            scopes,
            audience,
            ttl_seconds,
            session_lifetime_seconds,
            opts,
        } => {
            let s = opts
                .client()
                .await?
                .create_session(pb::CreateSessionRequest {
                    subject,
                    scopes,
                    audience,
                    ttl_seconds,
                    session_lifetime_seconds,
                })
                .await?;
            print_session(&s, opts.json)?;
        }
        SessionCommand::Refresh {
            refresh_token,
            scopes,
            opts,
        } => {
            let refresh_token = arg_or_stdin(refresh_token, "the refresh token")?;
            // The refresh token is the credential: no API key is sent (a
            // client certificate given with --cert still is).
            let s = opts
                .anonymous_client()
                .await?
                .refresh_session(pb::RefreshSessionRequest {
                    refresh_token,
                    scopes,
                })
                .await?;
            print_session(&s, opts.json)?;
        }
        SessionCommand::List {
            subject,
            client_id,
            opts,
        } => {
            let client = opts.client().await?;
            let mut all = Vec::new();
            let mut page_token = String::new();
            loop {
                let page = client
                    .list_sessions(pb::ListSessionsRequest {
                        subject: subject.clone(),
                        client_id: client_id.clone(),
                        page_token,
                        page_size: PAGE_SIZE,
                    })
                    .await?;
                all.extend(page.sessions);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            if opts.json {
                print_json(&all)?;
            } else {
                print_sessions(&all);
            }
        }
        SessionCommand::RevokeAll { subject, opts } => {
            let resp = opts
                .client()
                .await?
                .revoke_sessions(pb::RevokeSessionsRequest {
                    subject: subject.clone(),
                })
                .await?;
            show(opts.json, &resp, |r| {
                outln!("revoked {} of {subject}", plural(r.revoked, "sessions"));
            })?;
        }
        SessionCommand::Revoke { session_id, opts } => {
            let resp = opts
                .client()
                .await?
                .revoke_session(pb::RevokeSessionRequest {
                    session_id: session_id.clone(),
                })
                .await?;
            show(opts.json, &resp, |r| {
                outln!("revoked session {session_id} at {}", time(r.revoked_at));
            })?;
        }
    }
    Ok(0)
}

fn print_session(s: &pb::Session, json: bool) -> Result<(), CliError> {
    if json {
        return print_json(s);
    }
    outln!("session id:    {}", s.session_id);
    outln!("subject:       {}", s.subject);
    outln!("audience:      {}", s.audience);
    outln!("scopes:        {}", s.scopes.join(","));
    outln!("expires:       {}", time(s.expires_at));
    outln!("session ends:  {}", time(s.session_expires_at));
    outln!("access token:");
    outln!("{}", s.access_token);
    outln!("refresh token (single use):");
    outln!("{}", s.refresh_token);
    Ok(())
}

/// The `session list` table.
fn print_sessions(sessions: &[pb::SessionInfo]) {
    outln!(
        "{:<26} {:<20} {:<26} {:<8} {:<20} SCOPES",
        "SESSION ID",
        "SUBJECT",
        "CLIENT ID",
        "STATUS",
        "EXPIRES"
    );
    let now = OffsetDateTime::now_utc().unix_timestamp();
    for s in sessions {
        let status = if s.revoked {
            "revoked"
        } else if s.expires_at <= now {
            "expired"
        } else {
            "active"
        };
        outln!(
            "{:<26} {:<20} {:<26} {:<8} {:<20} {}",
            s.session_id,
            s.subject,
            s.client_id,
            status,
            time(s.expires_at),
            s.scopes.join(",")
        );
    }
}
