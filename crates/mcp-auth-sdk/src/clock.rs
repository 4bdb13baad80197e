//! The one source of time of the SDK: the system clock, or a manual one
//! that tests set, so expiry, leeway, cache lifetimes and the revocation
//! stream's staleness can be tested without waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds, from the system or from a value tests set.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Clock { manual: None }
    }

    /// A clock that stands at `now` until [`Clock::set`] or
    /// [`Clock::advance`] moves it; clones share the time.
    pub fn manual(now: i64) -> Self {
        Clock {
            manual: Some(Arc::new(AtomicI64::new(now))),
        }
    }

    /// Unix seconds now.
    // The one reader of the system's time in the SDK.
    #[allow(clippy::disallowed_methods)]
    pub fn now(&self) -> i64 {
        match &self.manual {
            Some(t) => t.load(Ordering::Relaxed),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or(0),
        }
    }

    /// Sets a manual clock to `now` (no effect on the system clock).
    pub fn set(&self, now: i64) {
        if let Some(t) = &self.manual {
            t.store(now, Ordering::Relaxed);
        }
    }

    /// Moves a manual clock forward by `seconds` (no effect on the system
    /// clock).
    pub fn advance(&self, seconds: i64) {
        if let Some(t) = &self.manual {
            t.fetch_add(seconds, Ordering::Relaxed);
        }
    }
}
