//! `mcp-auth token verify`, `mcp-auth token watch` and `mcp-auth jwks`:
//! checking access tokens, following revocations, and the public keys to
//! check tokens offline.

use super::output::time;
use super::{CliError, GlobalOpts, Output, TokenCommand, arg_or_stdin};
use crate::pb;

/// Exit status of `token verify` for a token that is not active.
const EXIT_INACTIVE: u8 = 3;

/// Runs a `token` subcommand.
pub(super) async fn run(
    cmd: TokenCommand,
    opts: &GlobalOpts,
    out: &Output,
) -> Result<u8, CliError> {
    match cmd {
        TokenCommand::Verify {
            token,
            audience,
            any_audience: _,
            required_scopes,
        } => verify(token, audience, required_scopes, opts, out).await,
        TokenCommand::Watch { count } => watch(count, opts, out).await,
    }
}

/// `token watch`: the revocation stream, a line per revocation (a JSON
/// object per revocation with `--json`), from the snapshot on.
async fn watch(count: u64, opts: &GlobalOpts, out: &Output) -> Result<u8, CliError> {
    let mut stream = opts
        .client()
        .await?
        .watch_revocations(pb::WatchRevocationsRequest {
            epoch: String::new(),
            position: 0,
        })
        .await?;
    let mut seen = 0u64;
    // A snapshot's later batches follow one marked `snapshot_continues`.
    let mut continued = false;
    while let Some(batch) = stream.message().await? {
        let from = if batch.snapshot || continued {
            "snapshot"
        } else {
            "live"
        };
        continued = batch.snapshot_continues;
        for r in &batch.revocations {
            use pb::revocation::Target;
            let (what, id) = match &r.target {
                Some(Target::SessionId(id)) => ("session", id.as_str()),
                Some(Target::TokenId(id)) => ("token", id.as_str()),
                Some(Target::ClientId(id)) => ("client", id.as_str()),
                Some(Target::ApiKeyId(id)) => ("api key", id.as_str()),
                Some(Target::SigningKeyId(id)) => ("signing key", id.as_str()),
                None => ("unknown", "-"),
            };
            let value = serde_json::json!({
                "position": batch.position,
                "from": from,
                "target": what,
                "id": id,
                "expires_at": r.expires_at,
                "issued_through": r.issued_through,
            });
            out.print(&value, |_| {
                let until = if r.expires_at == 0 {
                    "-".to_owned()
                } else {
                    time(r.expires_at)
                };
                outln!("{from:<8} {what:<11} {id} until {until}");
            })?;
            seen += 1;
            if count > 0 && seen >= count {
                return Ok(0);
            }
        }
    }
    Ok(0)
}

/// `token verify`.
async fn verify(
    token: Option<String>,
    audience: Option<String>,
    required_scopes: Vec<String>,
    opts: &GlobalOpts,
    out: &Output,
) -> Result<u8, CliError> {
    // clap lets through only one of --audience and --any-audience; an
    // empty audience is the wire's "any".
    let audience = audience.unwrap_or_default();
    let token = arg_or_stdin(token, "the token")?;
    let resp = opts
        .client()
        .await?
        .verify_token(pb::VerifyTokenRequest {
            client_address: String::new(),
            token,
            audience,
            required_scopes,
        })
        .await?;
    let mut value = serde_json::to_value(&resp)
        .map_err(|e| CliError::Usage(format!("cannot print JSON: {e}")))?;
    if let Some(obj) = value.as_object_mut() {
        // Only one of them means anything: the claims of an active
        // token, the reason of an inactive one.
        obj.remove(if resp.active { "reason" } else { "claims" });
    }
    let kind = match resp.token_kind() {
        pb::TokenKind::ApiKey => "API key",
        pb::TokenKind::AccessToken => "access token",
        pb::TokenKind::Unspecified => "unknown",
    };
    let or_dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    out.print(&value, |_| {
        if let (true, Some(c)) = (resp.active, &resp.claims) {
            outln!("active:     true");
            outln!("subject:    {}", c.subject);
            outln!("audience:   {}", or_dash(&c.audience));
            outln!("scopes:     {}", c.scopes.join(","));
            outln!("session id: {}", or_dash(&c.session_id));
            outln!("client id:  {}", c.client_id);
            outln!("issued:     {}", time(c.issued_at));
            outln!("expires:    {}", time(c.expires_at));
            outln!("kind:       {kind}");
        } else {
            outln!("active:     false");
            outln!("reason:     {}", resp.reason().as_str_name());
            outln!("kind:       {kind}");
        }
    })?;
    Ok(if resp.active { 0 } else { EXIT_INACTIVE })
}

/// Runs `jwks`: the server's JWK Set (as JSON with `--json`, else one
/// line per key). Sends no API key.
pub(super) async fn jwks(opts: &GlobalOpts, out: &Output) -> Result<u8, CliError> {
    let resp = opts
        .anonymous_client()
        .await?
        .get_jwks(pb::GetJwksRequest {})
        .await?;
    let value: serde_json::Value = serde_json::from_str(&resp.jwks_json)
        .map_err(|e| CliError::Usage(format!("server sent a JWKS that is not JSON: {e}")))?;
    out.print(&value, |set| {
        let text = |key: &serde_json::Value, name: &str| {
            key.get(name)
                .and_then(serde_json::Value::as_str)
                .unwrap_or("-")
                .to_owned()
        };
        outln!("{:<44} {:<6} {:<4} CURVE", "KID", "ALG", "KTY");
        for key in set
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
        {
            outln!(
                "{:<44} {:<6} {:<4} {}",
                text(key, "kid"),
                text(key, "alg"),
                text(key, "kty"),
                text(key, "crv")
            );
        }
    })?;
    Ok(0)
}
