//! `mcp-auth identity ...`: the scopes granted to mTLS identities.

use super::output::{print_json, show};
use super::{CliError, IdentityCommand};
use crate::pb;

/// Runs an `identity` subcommand.
pub(super) async fn run(cmd: IdentityCommand) -> Result<u8, CliError> {
    match cmd {
        IdentityCommand::Set {
            name,
            scopes,
            disabled,
            rate_limit,
            opts,
        } => {
            let resp = opts
                .client()
                .await?
                .set_identity(pb::SetIdentityRequest {
                    name,
                    scopes,
                    disabled,
                    rate_limit,
                })
                .await?;
            show(opts.json, &resp, print_identity)?;
        }
        IdentityCommand::List { opts } => {
            let resp = opts
                .client()
                .await?
                .list_identities(pb::ListIdentitiesRequest {})
                .await?;
            if opts.json {
                print_json(&resp)?;
            } else {
                outln!("{:<24} {:<9} {:<44} SCOPES", "NAME", "STATUS", "SPIFFE ID");
                for i in &resp.identities {
                    print_identity(i);
                }
            }
        }
        IdentityCommand::Delete {
            name,
            no_cascade,
            opts,
        } => {
            let resp = opts
                .client()
                .await?
                .delete_identity(pb::DeleteIdentityRequest {
                    name: name.clone(),
                    cascade: Some(!no_cascade),
                })
                .await?;
            if opts.json {
                print_json(&resp)?;
            } else if no_cascade {
                outln!("deleted identity {name}; its sessions are kept");
            } else {
                outln!(
                    "deleted identity {name} and revoked {} of its sessions",
                    resp.sessions_revoked
                );
            }
        }
    }
    Ok(0)
}

/// One row of the identity table.
fn print_identity(i: &pb::Identity) {
    let status = if i.disabled { "disabled" } else { "enabled" };
    outln!(
        "{:<24} {:<9} {:<44} {}",
        i.name,
        status,
        i.spiffe_id,
        i.scopes.join(",")
    );
}
