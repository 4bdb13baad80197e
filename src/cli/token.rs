//! `mcp-auth token verify` and `mcp-auth jwks`: checking access tokens,
//! and the public keys to check them offline.

use super::output::{print_json, time};
use super::{CliError, ClientOpts, TokenCommand, arg_or_stdin};
use crate::pb;

/// Exit status of `token verify` for a token that is not active.
const EXIT_INACTIVE: u8 = 3;

/// Runs a `token` subcommand.
pub(super) async fn run(cmd: TokenCommand) -> Result<u8, CliError> {
    let TokenCommand::Verify {
        token,
        audience,
        required_scopes,
        opts,
    } = cmd;
    let token = arg_or_stdin(token, "the token")?;
    let resp = opts
        .client()
        .await?
        .verify_token(pb::VerifyTokenRequest {
            token,
            audience,
            required_scopes,
        })
        .await?;
    let reason = resp.reason().as_str_name();
    if opts.json {
        let mut value = serde_json::to_value(&resp)
            .map_err(|e| CliError::Usage(format!("cannot print JSON: {e}")))?;
        if resp.active {
            if let Some(obj) = value.as_object_mut() {
                obj.remove("reason");
            }
        } else {
            value["reason"] = reason.into();
        }
        print_json(&value)?;
    } else if let (true, Some(c)) = (resp.active, &resp.claims) {
        outln!("active:     true");
        outln!("subject:    {}", c.subject);
        outln!("audience:   {}", c.audience);
        outln!("scopes:     {}", c.scopes.join(","));
        outln!("session id: {}", c.session_id);
        outln!("client id:  {}", c.client_id);
        outln!("issued:     {}", time(c.issued_at));
        outln!("expires:    {}", time(c.expires_at));
    } else {
        outln!("active:     false");
        outln!("reason:     {reason}");
    }
    Ok(if resp.active { 0 } else { EXIT_INACTIVE })
}

/// Runs `jwks`: prints the server's JWK Set. Sends no API key.
pub(super) async fn jwks(opts: ClientOpts) -> Result<u8, CliError> {
    let resp = opts
        .anonymous_client()
        .await?
        .get_jwks(pb::GetJwksRequest {})
        .await?;
    let value: serde_json::Value = serde_json::from_str(&resp.jwks_json)
        .map_err(|e| CliError::Usage(format!("server sent a JWKS that is not JSON: {e}")))?;
    print_json(&value)?;
    Ok(0)
}
