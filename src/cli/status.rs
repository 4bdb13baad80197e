//! `mcp-auth status`: what a running server says of itself
//! (`AdminService.GetStatus`): version, uptime, store backend, key ring,
//! counts and listener addresses.

use super::output::{age, time};
use super::{CliError, GlobalOpts, Output};

/// Runs `status`.
pub(super) async fn run(opts: &GlobalOpts, out: &Output) -> Result<u8, CliError> {
    let status = opts.client().await?.get_status().await?;
    out.print(&status, |s| {
        outln!("version:       {} (commit {})", s.version, s.commit);
        outln!(
            "started:       {} (up {})",
            time(s.started_at),
            age(s.uptime_seconds)
        );
        outln!("store:         {}", s.store_backend);
        if s.not_ready.is_empty() {
            outln!("ready:         yes");
        } else {
            outln!("ready:         no ({})", s.not_ready);
        }
        let shown = |a: &str| if a.is_empty() { "off" } else { a }.to_owned();
        if let Some(l) = &s.listeners {
            outln!("grpc:          {}", shown(&l.grpc));
            outln!("http:          {}", shown(&l.http));
            outln!("metrics:       {}", shown(&l.metrics));
        }
        if let Some(c) = &s.counts {
            match c.live_sessions {
                Some(n) => outln!("sessions:      {n} live (at maintenance's last count)"),
                None => outln!("sessions:      not counted yet (maintenance counts them)"),
            }
            outln!("api keys:      {}", c.api_keys);
            outln!("oauth clients: {}", c.oauth_clients);
            outln!("identities:    {}", c.identities);
            outln!("users:         {}", c.users);
            if let Some(n) = c.audit_chain_length {
                outln!("audit records: {n} (since the chain began)");
            }
        }
        outln!("signing keys:");
        for k in &s.signing_keys {
            let until = if k.removed_after > 0 {
                format!(", verifies until {}", time(k.removed_after))
            } else {
                String::new()
            };
            outln!(
                "  {}  {}  {:<7}  age {}{until}",
                k.kid,
                k.alg,
                k.state,
                age(k.age_seconds)
            );
        }
        if s.next_rotation_at > 0 {
            outln!("next rotation: {}", time(s.next_rotation_at));
        } else {
            outln!("next rotation: none scheduled (signing_key_rotation_days = 0)");
        }
    })?;
    Ok(0)
}
