//! The `signature` scenario of `mcp-auth bench`: the bare signature check
//! of a server's token on this machine's cores, with no server in the
//! loop, for `verify-uncached` to be compared with.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mcp_auth_token::JwkSet;

use super::load::create;
use super::{BenchArgs, BenchReport, Scenario, summarize};
use crate::cli::CliError;
use crate::grpc::client::Client;
use crate::pb;

/// The bare signature check of one of the server's tokens, with its public
/// key from the JWKS (through the same `mcp-auth-token` verifier the
/// server uses), on as many threads as this machine has cores: no
/// parsing, no claims, no network. `verify-uncached` is measured against
/// it.
pub(super) async fn signature(args: &BenchArgs, client: &Client) -> Result<BenchReport, CliError> {
    let token = create(client, 0, args.session_lifetime())
        .await?
        .access_token;
    let jwks = client.get_jwks(pb::GetJwksRequest {}).await?.jwks_json;
    let unusable = || CliError::Usage("the server's token or JWKS is not usable".to_owned());
    let set = JwkSet::from_json(&jwks, &[]).map_err(|_| unusable())?;
    let check = set.bare_signature(&token).ok_or_else(unusable)?;
    let check = Arc::new(check);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let warmup = Duration::from_secs(args.warmup);
    let started = Instant::now();
    let measure_from = started + warmup;
    let deadline = measure_from + Duration::from_secs(args.duration);
    let budget = args
        .requests
        .map(|n| Arc::new(AtomicU64::new(n)))
        .unwrap_or_else(|| Arc::new(AtomicU64::new(u64::MAX)));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let check = check.clone();
            let budget = budget.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::new();
                let mut failed = 0u64;
                loop {
                    let now = Instant::now();
                    if now >= deadline {
                        break;
                    }
                    let counted = now >= measure_from;
                    if counted
                        && budget
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                                n.checked_sub(1)
                            })
                            .is_err()
                    {
                        break;
                    }
                    let good = check.verify();
                    if counted {
                        if good {
                            latencies.push(now.elapsed());
                        } else {
                            failed += 1;
                        }
                    }
                }
                (latencies, failed)
            })
        })
        .collect();
    let joined = tokio::task::spawn_blocking(move || {
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| CliError::Usage(format!("a bench thread failed: {e}")))?;
    let elapsed = measure_from.elapsed().as_secs_f64();
    let mut latencies = Vec::new();
    let mut errors = BTreeMap::new();
    for (l, failed) in joined {
        latencies.extend(l);
        if failed > 0 {
            *errors.entry("BadSignature".to_owned()).or_default() += failed;
        }
    }
    Ok(summarize(Scenario::Signature, latencies, errors, elapsed))
}
