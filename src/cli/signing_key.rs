//! `mcp-auth signing-key rotate`: a new active token signing key.

use super::{CliError, GlobalOpts, Output, SigningKeyCommand};
use crate::pb;

/// Runs a `signing-key` subcommand.
pub(super) async fn run(
    cmd: SigningKeyCommand,
    opts: &GlobalOpts,
    out: &Output,
) -> Result<u8, CliError> {
    let SigningKeyCommand::Rotate = cmd;
    let resp = opts
        .client()
        .await?
        .rotate_signing_key(pb::RotateSigningKeyRequest {})
        .await?;
    out.print(&resp, |r| {
        outln!("active signing key: {}", r.kid);
        outln!(
            "retired:            {} (verifies its tokens until they expire)",
            r.previous_kid
        );
    })?;
    Ok(0)
}
