//! `mcp-auth bench --seed-sessions N`: fills a stopped server's data
//! directory with live sessions, for measuring at scale.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crate::cli::CliError;
use crate::clock::Clock;
use crate::secret::SecretHash;
use crate::service::new_id;
use crate::store::{RefreshRecord, SessionRecord, Store};

/// Adds `n` live sessions (every hundredth revoked) to the data directory
/// of a stopped server, as one client `key_benchseed`, with their refresh
/// tokens and index entries, then flushes once.
pub(super) async fn seed(data_dir: &std::path::Path, n: u64) -> Result<u8, CliError> {
    let store = Store::open(data_dir).map_err(crate::Error::from)?;
    let now = Clock::system().now();
    let started = Instant::now();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for t in 0..threads {
        let store = store.clone();
        let done = done.clone();
        tasks.push(tokio::task::spawn_blocking(move || {
            for i in (t..n).step_by(usize::try_from(threads).unwrap_or(1)) {
                let hash = SecretHash::of(format!("seed-refresh-{now}-{i}").as_bytes());
                let record = SessionRecord {
                    session_id: new_id("ses_")?,
                    subject: format!("seed-user-{i}"),
                    client_id: "key_benchseed".to_owned(),
                    scopes: vec!["tools:read".to_owned(), "tools:call".to_owned()],
                    audience: "https://mcp.example.com".to_owned(),
                    created_at: now,
                    expires_at: now + 900,
                    revoked_at: (i % 100 == 99).then_some(now),
                    session_expires_at: now + 86_400,
                    last_refreshed_at: now,
                    refresh_hashes: vec![hash],
                    token_ttl: 900,
                };
                let refresh = RefreshRecord {
                    session_id: record.session_id.clone(),
                    issued_at: now,
                    spent_at: None,
                };
                store.insert_session(&record, Some((&hash, &refresh)))?;
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if d % 100_000 == 0 {
                    eprintln!("{d} sessions");
                }
            }
            Ok::<_, crate::Error>(())
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
