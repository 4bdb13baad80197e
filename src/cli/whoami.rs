//! `mcp-auth whoami`: which credential the client commands call with
//! (the API key in `MCP_AUTH_API_KEY`, or `--cert`), and its scopes.

use super::output::time;
use super::{CliError, GlobalOpts, Output};

/// Runs `whoami`.
pub(super) async fn run(opts: &GlobalOpts, out: &Output) -> Result<u8, CliError> {
    let me = opts.client().await?.who_am_i().await?;
    out.print(&me, |me| {
        let kind = match me.kind() {
            crate::pb::who_am_i_response::Kind::Identity => "identity (client certificate)",
            _ => "API key",
        };
        outln!("kind:       {kind}");
        outln!("client id:  {}", me.client_id);
        outln!("name:       {}", me.name);
        outln!("scopes:     {}", me.scopes.join(","));
        outln!("expires:    {}", time(me.expires_at));
        match &me.rate_limit {
            Some(l) => outln!("rate limit: {}/s, burst {}", l.requests_per_second, l.burst),
            None => outln!("rate limit: server default"),
        }
    })?;
    Ok(0)
}
