//! `mcp-auth identity ...`: the scopes granted to mTLS identities.

use super::{CliError, GlobalOpts, IdentityCommand, Output};
use crate::pb;

/// Runs an `identity` subcommand.
pub(super) async fn run(
    cmd: IdentityCommand,
    opts: &GlobalOpts,
    out: &Output,
) -> Result<u8, CliError> {
    match cmd {
        IdentityCommand::Set {
            name,
            scopes,
            disabled,
            rate_limit,
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
            out.print(&resp, print_identity)?;
        }
        IdentityCommand::List => {
            let resp = opts
                .client()
                .await?
                .list_identities(pb::ListIdentitiesRequest {})
                .await?;
            out.print_list(&resp.identities, |all| {
                outln!("{:<24} {:<9} {:<44} SCOPES", "NAME", "STATUS", "SPIFFE ID");
                for i in all {
                    print_identity(i);
                }
            })?;
        }
        IdentityCommand::Delete { name, no_cascade } => {
            let resp = opts
                .client()
                .await?
                .delete_identity(pb::DeleteIdentityRequest {
                    name: name.clone(),
                    cascade: Some(!no_cascade),
                })
                .await?;
            out.print(&resp, |resp| {
                if no_cascade {
                    outln!("deleted identity {name}; its sessions are kept");
                } else {
                    outln!(
                        "deleted identity {name} and revoked {} of its sessions",
                        resp.sessions_revoked
                    );
                }
            })?;
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
