//! `mcp-auth key ...`: create, list, revoke, update and rotate API keys.

use time::OffsetDateTime;

use super::output::{plural, print_json, show, time};
use super::{CliError, KeyCommand};
use crate::pb;

/// Runs a `key` subcommand.
pub(super) async fn run(cmd: KeyCommand) -> Result<u8, CliError> {
    match cmd {
        KeyCommand::Create {
            name,
            scopes,
            expires_in,
            rate_limit,
            opts,
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
            print_created(&resp, opts.json)?;
        }
        KeyCommand::List { opts } => {
            let resp = opts
                .client()
                .await?
                .list_api_keys(pb::ListApiKeysRequest {})
                .await?;
            if opts.json {
                print_json(&resp)?;
            } else {
                outln!(
                    "{:<26} {:<20} {:<12} {:<8} {:<20} SCOPES",
                    "KEY ID",
                    "NAME",
                    "PREFIX",
                    "STATUS",
                    "EXPIRES"
                );
                for k in &resp.api_keys {
                    let status = if k.revoked { "revoked" } else { "active" };
                    outln!(
                        "{:<26} {:<20} {:<12} {:<8} {:<20} {}",
                        k.key_id,
                        k.name,
                        k.prefix,
                        status,
                        time(k.expires_at),
                        k.scopes.join(",")
                    );
                }
            }
        }
        KeyCommand::Revoke {
            key_id,
            no_cascade,
            opts,
        } => {
            let resp = opts
                .client()
                .await?
                .revoke_api_key(pb::RevokeApiKeyRequest {
                    key_id,
                    cascade: Some(!no_cascade),
                })
                .await?;
            if opts.json {
                print_json(&resp)?;
            } else if let Some(k) = &resp.api_key {
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
        }
        KeyCommand::Update {
            key_id,
            rate_limit,
            opts,
        } => {
            let k = opts
                .client()
                .await?
                .update_api_key(pb::UpdateApiKeyRequest { key_id, rate_limit })
                .await?;
            show(opts.json, &k, print_key)?;
        }
        KeyCommand::Rotate {
            key_id,
            grace_seconds,
            opts,
        } => {
            let resp = opts
                .client()
                .await?
                .rotate_api_key(pb::RotateApiKeyRequest {
                    key_id,
                    grace_seconds,
                })
                .await?;
            if !opts.json {
                if grace_seconds == 0 {
                    outln!("rotated; the previous secret no longer works\n");
                } else {
                    outln!("rotated; the previous secret works for {grace_seconds} more seconds\n");
                }
            }
            print_created(&resp, opts.json)?;
        }
    }
    Ok(0)
}

fn print_key(k: &pb::ApiKey) {
    outln!("key id:     {}", k.key_id);
    outln!("name:       {}", k.name);
    outln!("scopes:     {}", k.scopes.join(","));
    outln!("prefix:     {}", k.prefix);
    outln!("created:    {}", time(k.created_at));
    outln!("expires:    {}", time(k.expires_at));
    outln!("revoked:    {}", k.revoked);
    match &k.rate_limit {
        Some(l) => outln!("rate limit: {}/s, burst {}", l.requests_per_second, l.burst),
        None => outln!("rate limit: server default"),
    }
}

/// A new key or secret: the key, then the secret, shown this once.
fn print_created(resp: &pb::CreateApiKeyResponse, json: bool) -> Result<(), CliError> {
    if json {
        return print_json(resp);
    }
    if let Some(k) = &resp.api_key {
        print_key(k);
    }
    outln!();
    outln!("secret (shown only now; store it safely):");
    outln!("{}", resp.secret);
    Ok(())
}
