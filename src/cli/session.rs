//! `mcp-auth session ...`: create, refresh, list and revoke sessions.

use super::key::status;
use super::output::{plural, time};
use super::{CliError, GlobalOpts, Output, SessionCommand, arg_or_stdin};
use crate::pb;

/// Sessions asked for per `ListSessions` page.
const PAGE_SIZE: u32 = 500;

/// Runs a `session` subcommand.
pub(super) async fn run(
    cmd: SessionCommand,
    opts: &GlobalOpts,
    out: &Output,
) -> Result<u8, CliError> {
    match cmd {
        SessionCommand::Create {
            subject,
            scopes,
            audience,
            ttl_seconds,
            session_lifetime_seconds,
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
            print_session(&s, out)?;
        }
        SessionCommand::Refresh {
            refresh_token,
            scopes,
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
            print_session(&s, out)?;
        }
        SessionCommand::List { subject, client_id } => {
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
            out.print_list(&all, print_sessions)?;
        }
        SessionCommand::Show { session_id } => {
            let s = opts
                .client()
                .await?
                .get_session(pb::GetSessionRequest { session_id })
                .await?;
            out.print(&s, print_session_info)?;
        }
        SessionCommand::RevokeAll { subject } => {
            let resp = opts
                .client()
                .await?
                .revoke_sessions(pb::RevokeSessionsRequest {
                    subject: subject.clone(),
                })
                .await?;
            out.print(&resp, |r| {
                outln!("revoked {} of {subject}", plural(r.revoked, "sessions"));
            })?;
        }
        SessionCommand::Revoke { session_id } => {
            let resp = opts
                .client()
                .await?
                .revoke_session(pb::RevokeSessionRequest {
                    session_id: session_id.clone(),
                })
                .await?;
            out.print(&resp, |r| {
                outln!("revoked session {session_id} at {}", time(r.revoked_at));
            })?;
        }
    }
    Ok(0)
}

fn print_session(s: &pb::Session, out: &Output) -> Result<(), CliError> {
    out.print(s, |s| {
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
    })
}

/// `session show`: one session's fields (never its tokens).
fn print_session_info(s: &pb::SessionInfo) {
    outln!("session id:     {}", s.session_id);
    outln!("subject:        {}", s.subject);
    outln!("client id:      {}", s.client_id);
    outln!("audience:       {}", s.audience);
    outln!("scopes:         {}", s.scopes.join(","));
    outln!("status:         {}", status(s.status));
    outln!("created:        {}", time(s.created_at));
    outln!("last refreshed: {}", time(s.last_refreshed_at));
    outln!("session ends:   {}", time(s.expires_at));
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
    for s in sessions {
        outln!(
            "{:<26} {:<20} {:<26} {:<8} {:<20} {}",
            s.session_id,
            s.subject,
            s.client_id,
            status(s.status),
            time(s.expires_at),
            s.scopes.join(",")
        );
    }
}
