//! Background maintenance, so the service can run for months without its
//! storage growing or its keys going stale: automatic signing-key rotation,
//! removal of retired keys whose tokens have all expired, removal of
//! sessions that can no longer matter (with their refresh tokens, index
//! entries and in-memory revocation entries), and forgetting deleted OAuth
//! clients once their tokens have all expired, and deleting dynamically
//! registered clients that never completed a grant.
//!
//! [`Maintenance::run_once`] does one pass at the server's clock; the server
//! runs it every `maintenance_interval_seconds`, and tests call it directly
//! after moving a manual clock.

use std::sync::Arc;

use crate::config::Config;
use crate::core::Core;
use crate::core::error::Error;
use crate::store::{Cursor, SessionFilter, SessionRecord};

/// Sessions examined per storage batch; the task yields between batches so
/// it never stalls RPCs.
const BATCH: usize = 256;

/// Runs maintenance passes against the server's state.
#[derive(Clone)]
pub struct Maintenance {
    core: Arc<Core>,
    rotation_days: u32,
    audit_retention_days: u32,
    /// Seconds an unused dynamic client is kept
    /// (`dcr_unused_client_ttl_seconds`).
    dcr_unused_client_ttl: u32,
    /// Most sessions one pass examines (`maintenance_sessions_per_pass`).
    /// A larger store is swept over several passes, each going on where the
    /// last stopped, so a pass costs a bounded time (about a second of one
    /// core at the default 65,536) however many sessions there are.
    sessions_per_pass: usize,
    /// Where the session sweep goes on at the next pass (`None`: from the
    /// start), and the sessions that can still be refreshed it counted
    /// so far in this round of passes.
    sweep_from: Arc<std::sync::Mutex<(Option<Cursor>, u64)>>,
}

/// What one pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// The new active key, if the pass rotated.
    pub rotated_to: Option<String>,
    /// Retired signing keys removed from the ring and the JWKS.
    pub signing_keys_removed: usize,
    /// Sessions removed from storage.
    pub sessions_removed: usize,
    /// Refresh tokens removed with them.
    pub refresh_tokens_removed: usize,
    /// Sessions examined and kept (every stored session, unless the store
    /// holds more than one pass sweeps).
    pub sessions_remaining: usize,
    /// Entries left in the in-memory revocation index.
    pub revocations_remaining: usize,
    /// Ended entries of the browser flow removed from the store
    /// (interactions, login sessions, login challenges and verifiers,
    /// authorization codes).
    pub transient_entries_removed: usize,
    /// Entries left in the rate limiters after evicting idle ones.
    pub limiter: crate::core::limits::LimiterSize,
    /// Audit records older than the retention removed.
    pub audit_records_removed: usize,
    /// Deleted OAuth clients forgotten (their tokens have all expired).
    pub deleted_clients_forgotten: usize,
    /// Revoked access tokens forgotten (they have expired).
    pub revoked_tokens_forgotten: usize,
    /// Dynamically registered clients deleted because they never
    /// completed a grant within `dcr_unused_client_ttl_seconds`.
    pub unused_dynamic_clients_pruned: usize,
}

impl Maintenance {
    pub(crate) fn new(core: Arc<Core>, config: &Config) -> Self {
        Maintenance {
            core,
            rotation_days: config.signing_key_rotation_days,
            audit_retention_days: config.audit_retention_days,
            dcr_unused_client_ttl: config.dcr_unused_client_ttl,
            sessions_per_pass: usize::try_from(config.maintenance_sessions_per_pass)
                .unwrap_or(usize::MAX)
                .max(1),
            sweep_from: Arc::default(),
        }
    }

    /// One maintenance pass at the server clock's current time.
    ///
    /// # Errors
    /// Storage or key generation failed; the next pass tries again.
    pub async fn run_once(&self) -> Result<MaintenanceReport, Error> {
        let s = &self.core;
        let now = s.clock.now();
        let mut report = MaintenanceReport::default();

        if self.rotation_days > 0 {
            let due = s.tokens.ring().active_key().is_some_and(|(_, created)| {
                created + i64::from(self.rotation_days) * 86_400 <= now
            });
            if due {
                let (kid, previous) = s.rotate_now(None).await?;
                tracing::info!(kid = %kid, previous = %previous, "signing key rotated on schedule");
                report.rotated_to = Some(kid);
            }
        }
        report.signing_keys_removed = s.prune_signing_keys().await?;

        let idle = i64::from(s.settings.session_idle_timeout);
        let dead = |r: &SessionRecord| {
            r.expires_at <= now
                && (r.revoked_at.is_some()
                    || now >= r.session_expires_at
                    || now >= r.last_refreshed_at + idle)
        };
        let live = |r: &SessionRecord| {
            r.revoked_at.is_none() && now < r.session_expires_at && now < r.last_refreshed_at + idle
        };
        let (mut cursor, mut live_sessions) =
            std::mem::take(&mut *self.sweep_from.lock().unwrap_or_else(|p| p.into_inner()));
        let mut examined = 0;
        loop {
            let page_size = BATCH.min(self.sessions_per_pass.saturating_sub(examined).max(1));
            let page = s
                .store
                .sessions_page(&SessionFilter::default(), cursor.as_ref(), page_size)
                .await?;
            examined += page.items.len();
            let (gone, kept): (Vec<_>, Vec<_>) = page.items.into_iter().partition(|r| dead(r));
            report.sessions_remaining += kept.len();
            live_sessions += kept.iter().filter(|r| live(r)).count() as u64;
            let ids: Vec<String> = gone.iter().map(|r| r.session_id.clone()).collect();
            report.sessions_removed += s.store.delete_sessions(&ids).await?;
            report.refresh_tokens_removed +=
                gone.iter().map(|r| r.refresh_tokens.len()).sum::<usize>();
            for r in &gone {
                s.revocations.remove(&r.session_id);
            }
            match page.next {
                Some(c) if examined >= self.sessions_per_pass => {
                    *self.sweep_from.lock().unwrap_or_else(|p| p.into_inner()) =
                        (Some(c), live_sessions);
                    break;
                }
                Some(c) => cursor = Some(c),
                None => {
                    // The round of passes saw every session.
                    s.note_sessions(live_sessions);
                    break;
                }
            }
            tokio::task::yield_now().await;
        }
        report.unused_dynamic_clients_pruned = s
            .prune_unused_dynamic_clients(self.dcr_unused_client_ttl)
            .await?;
        report.deleted_clients_forgotten = s.sweep_deleted_clients().await?;
        let expired = s.revocations.forget_expired_tokens(now);
        report.revoked_tokens_forgotten = s.store.forget_revoked_tokens(&expired).await?;
        report.revocations_remaining = s.revocations.len();
        report.limiter = s.limits.evict_idle();
        s.assertions.evict_expired(now);
        s.metadata_clients.evict_stale(now);
        // The browser flow's ended entries: interactions, login sessions,
        // login challenges and verifiers, authorization codes.
        report.transient_entries_removed = s.store.evict_transients(now).await?;
        s.refresh_replays.evict(now);
        s.audit.evict_idle().await;
        s.store
            .prune_changes(crate::core::follow::KEEP_CHANGES)
            .await?;
        let keep_from = now - i64::from(self.audit_retention_days) * 86_400;
        loop {
            let pruned = s.store.prune_audit(keep_from, BATCH).await?;
            report.audit_records_removed += pruned;
            if pruned < BATCH {
                break;
            }
            tokio::task::yield_now().await;
        }
        if report.sessions_removed > 0
            || report.signing_keys_removed > 0
            || report.audit_records_removed > 0
            || report.deleted_clients_forgotten > 0
            || report.revoked_tokens_forgotten > 0
            || report.unused_dynamic_clients_pruned > 0
        {
            tracing::info!(
                sessions_removed = report.sessions_removed,
                refresh_tokens_removed = report.refresh_tokens_removed,
                signing_keys_removed = report.signing_keys_removed,
                sessions_remaining = report.sessions_remaining,
                revocations_remaining = report.revocations_remaining,
                audit_records_removed = report.audit_records_removed,
                deleted_clients_forgotten = report.deleted_clients_forgotten,
                revoked_tokens_forgotten = report.revoked_tokens_forgotten,
                unused_dynamic_clients_pruned = report.unused_dynamic_clients_pruned,
                "maintenance"
            );
        }
        Ok(report)
    }
}
