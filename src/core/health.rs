//! Whether this server is ready to serve (what `/readyz` and the gRPC
//! health service answer), and the figures of its state the metrics'
//! gauges show, each read from memory: no query per probe or scrape.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::core::Core;
use crate::telemetry::Gauges;

/// What readiness depends on that only the server knows: whether it is
/// shutting down; the last sessions count of maintenance; and when and
/// where it began serving.
#[derive(Debug)]
pub(crate) struct Health {
    draining: AtomicBool,
    /// Sessions that can still be refreshed, as the last full sweep
    /// counted them; `u64::MAX` before one.
    sessions: AtomicU64,
    /// When and where the server began serving (`GetStatus`).
    pub(crate) serving: std::sync::OnceLock<crate::core::status::Serving>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            draining: AtomicBool::new(false),
            sessions: AtomicU64::new(u64::MAX),
            serving: std::sync::OnceLock::new(),
        }
    }
}

/// Why the server is not ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotReady {
    /// Graceful shutdown began: load balancers should send no more.
    ShuttingDown,
    /// A shared store's change feed has not been read for longer than
    /// `store_max_staleness_seconds`: verification refuses.
    StoreUnavailable,
    /// The key ring has no active signing key.
    NoSigningKey,
}

impl NotReady {
    /// The reason, as a probe's answer says it.
    pub fn as_str(self) -> &'static str {
        match self {
            NotReady::ShuttingDown => "shutting_down",
            NotReady::StoreUnavailable => "store_unavailable",
            NotReady::NoSigningKey => "no_signing_key",
        }
    }
}

impl Core {
    /// Whether the server is ready: its store open and current (a shared
    /// store's feed read within the staleness bound), its key ring
    /// holding an active key, and not shutting down.
    ///
    /// # Errors
    /// Why it is not.
    pub fn readiness(&self) -> Result<(), NotReady> {
        if self.health.draining.load(Ordering::Acquire) {
            return Err(NotReady::ShuttingDown);
        }
        if self.feed.check().is_err() {
            return Err(NotReady::StoreUnavailable);
        }
        if self.tokens.ring().active_key().is_none() {
            return Err(NotReady::NoSigningKey);
        }
        Ok(())
    }

    /// Marks the start of graceful shutdown: from now on the server is
    /// not ready.
    pub fn begin_draining(&self) {
        self.health.draining.store(true, Ordering::Release);
    }

    /// Notes the sessions a full maintenance sweep found that can still
    /// be refreshed.
    pub(crate) fn note_sessions(&self, live: u64) {
        self.health.sessions.store(live, Ordering::Relaxed);
    }

    /// This server's gauges, now.
    pub fn gauges(&self) -> Gauges {
        let now = self.clock.now();
        let sessions = self.health.sessions.load(Ordering::Relaxed);
        let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        Gauges {
            sessions: (sessions != u64::MAX).then_some(sessions),
            api_keys: as_u64(self.keys.live(now)),
            clients: as_u64(self.clients.len()),
            signing_key_age_seconds: self
                .tokens
                .ring()
                .active_key()
                .map(|(_, created)| (now - created).max(0)),
            revocation_subscribers: as_u64(self.revocations.subscribers()),
            audit_chain_length: self.store.audit_chain_length(),
            ready: self.readiness().is_ok(),
        }
    }
}
