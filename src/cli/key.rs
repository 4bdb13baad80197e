//! `mcp-auth key ...`: create, list, revoke, update and rotate API keys.

use time::OffsetDateTime;

use super::output::{plural, time};
use super::{CliError, GlobalOpts, KeyCommand, Output};
use crate::pb;

/// Runs a `key` subcommand.
pub(super) async fn run(cmd: KeyCommand, opts: &GlobalOpts, out: &Output) -> Result<u8, CliError> {
    match cmd {
        KeyCommand::Create {
            name,
            scopes,
            expires_in,
            rate_limit,
        } => {
            let expires_at = match expires_in {
                None | Some(0) => 0,
                Some(secs) => {
                    let secs = i64::try_from(secs)
                        .map_err(|_| CliError::Usage("--expires-in is too large".to_owned()))?;
                    OffsetDateTime::now_utc()
                        .unix_timestamp()
                        .saturating_add(secs)
                }
            };
            let resp = opts
                .client()
                .await?
                .create_api_key(pb::CreateApiKeyRequest {
                    name,
                    scopes,
                    expires_at,
                    rate_limit,
                })
                .await?;
            print_created(&resp, out)?;
        }
        KeyCommand::List => {
            let resp = opts
                .client()
                .await?
                .list_api_keys(pb::ListApiKeysRequest {})
                .await?;
            out.print_list(&resp.api_keys, |keys| {
                outln!(
                    "{:<26} {:<20} {:<12} {:<8} {:<20} SCOPES",
                    "KEY ID",
                    "NAME",
                    "PREFIX",
                    "STATUS",
                    "EXPIRES"
                );
                for k in keys {
                    outln!(
                        "{:<26} {:<20} {:<12} {:<8} {:<20} {}",
                        k.key_id,
                        k.name,
                        k.prefix,
                        status(k.status),
                        time(k.expires_at),
                        k.scopes.join(",")
                    );
                }
            })?;
        }
        KeyCommand::Show { key_id } => {
            let k = opts
                .client()
                .await?
                .get_api_key(pb::GetApiKeyRequest { key_id })
                .await?;
            out.print(&k, print_key)?;
        }
        KeyCommand::Revoke { key_id, no_cascade } => {
            let resp = opts
                .client()
                .await?
                .revoke_api_key(pb::RevokeApiKeyRequest {
                    key_id,
                    cascade: Some(!no_cascade),
                })
                .await?;
            out.print(&resp, |resp| {
                if let Some(k) = &resp.api_key {
                    if no_cascade {
                        outln!(
                            "revoked API key {} ({}); its sessions are kept",
                            k.key_id,
                            k.name
                        );
                    } else {
                        outln!(
                            "revoked API key {} ({}) and {}",
                            k.key_id,
                            k.name,
                            plural(resp.sessions_revoked, "of its sessions")
                        );
                    }
                }
            })?;
        }
        KeyCommand::Update { key_id, rate_limit } => {
            let k = opts
                .client()
                .await?
                .update_api_key(pb::UpdateApiKeyRequest { key_id, rate_limit })
                .await?;
            out.print(&k, print_key)?;
        }
        KeyCommand::Rotate {
            key_id,
            grace_seconds,
        } => {
            let resp = opts
                .client()
                .await?
                .rotate_api_key(pb::RotateApiKeyRequest {
                    key_id,
                    grace_seconds,
                })
                .await?;
            super::output::rotated_notice(out, grace_seconds);
            print_created(&resp, out)?;
        }
    }
    Ok(0)
}

/// A key's or session's status as the listings print it.
pub(super) fn status(status: i32) -> &'static str {
    match pb::RecordStatus::try_from(status) {
        Ok(pb::RecordStatus::Active) => "active",
        Ok(pb::RecordStatus::Expired) => "expired",
        Ok(pb::RecordStatus::Revoked) => "revoked",
        _ => "unknown",
    }
}

fn print_key(k: &pb::ApiKey) {
    outln!("key id:     {}", k.key_id);
    outln!("name:       {}", k.name);
    outln!("scopes:     {}", k.scopes.join(","));
    outln!("prefix:     {}", k.prefix);
    outln!("created:    {}", time(k.created_at));
    outln!("expires:    {}", time(k.expires_at));
    outln!("status:     {}", status(k.status));
    match &k.rate_limit {
        Some(l) => outln!("rate limit: {}/s, burst {}", l.requests_per_second, l.burst),
        None => outln!("rate limit: server default"),
    }
}

/// A new key or secret: the key, then the secret, shown this once.
fn print_created(resp: &pb::CreateApiKeyResponse, out: &Output) -> Result<(), CliError> {
    out.print(resp, |resp| {
        if let Some(k) = &resp.api_key {
            print_key(k);
        }
        outln!();
        outln!("secret (shown only now; store it safely):");
        outln!("{}", resp.secret);
    })
}
