//! `mcp-auth bench --seed-sessions N`: fills a stopped server's data
//! directory with live sessions, for measuring at scale.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::cli::CliError;
use crate::clock::Clock;
use crate::secret::{SecretHash, random_base62};
use crate::store::{AuditEntry, Durability, RefreshToken, SessionRecord};

/// Adds `n` live sessions (every hundredth revoked) to the data directory
/// of a stopped server, as one client `key_benchseed`, through the store's
/// interface (each with its audit record, as the server writes them), then
/// flushes once.
pub(super) async fn seed(data_dir: &std::path::Path, n: u64) -> Result<u8, CliError> {
    let store = crate::store::open(data_dir, Durability::Unsafe).map_err(crate::Error::from)?;
    let now = Clock::system().now();
    let started = Instant::now();
    let writers = 64;
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..writers {
        let store = store.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..n).step_by(usize::try_from(writers).unwrap_or(1)) {
                let session_id = format!(
                    "ses_{}",
                    random_base62(22).map_err(|e| CliError::Usage(e.to_string()))?
                );
                let record = SessionRecord {
                    subject: format!("seed-user-{i}"),
                    client_id: "key_benchseed".to_owned(),
                    scopes: vec!["tools:read".to_owned(), "tools:call".to_owned()],
                    audience: "https://mcp.example.com".to_owned(),
                    created_at: now,
                    expires_at: now + 900,
                    revoked_at: (i % 100 == 99).then_some(now),
                    session_expires_at: now + 86_400,
                    last_refreshed_at: now,
                    token_ttl: 900,
                    oauth: false,
                    resources: Vec::new(),
                    refresh_tokens: vec![RefreshToken {
                        hash: SecretHash::of(format!("seed-refresh-{now}-{i}").as_bytes()),
                        issued_at: now,
                        spent_at: None,
                    }],
                    session_id,
                };
                let audit = AuditEntry {
                    time: now,
                    actor: "bench-seed".to_owned(),
                    action: "session.created".to_owned(),
                    target: record.session_id.clone(),
                    outcome: "ok".to_owned(),
                    request_id: String::new(),
                };
                store
                    .insert_session(&record, audit)
                    .await
                    .map_err(crate::Error::from)?;
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d % 100_000 == 0 {
                    eprintln!("{d} sessions");
                }
            }
            Ok::<_, CliError>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| CliError::Usage(format!("a seeding task failed: {e}")))??;
    }
    store.flush().await.map_err(crate::Error::from)?;
    outln!(
        "added {n} sessions ({} revoked) to {} in {:.1} s",
        n / 100,
        data_dir.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(0)
}
