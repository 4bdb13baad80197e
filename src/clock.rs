//! The one source of time.
//!
//! Every `iat`, `exp`, expiry check, grace window and rate-limit bucket
//! reads a [`Clock`] held by the server, so tests can move time instead of
//! sleeping. Production uses the system clock; tests use [`Clock::manual`]
//! and [`Clock::advance`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NANOS: u64 = 1_000_000_000;

/// A clock giving Unix time.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Nanoseconds since the Unix epoch, for a manual clock.
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock that stands at `unix_seconds` until moved with
    /// [`Clock::advance`] or [`Clock::set`]. Clones share the same time.
    pub fn manual(unix_seconds: i64) -> Self {
        Self {
            manual: Some(Arc::new(AtomicU64::new(to_nanos(unix_seconds)))),
        }
    }

    /// Seconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        i64::try_from(self.now_nanos() / NANOS).unwrap_or(i64::MAX)
    }

    /// Nanoseconds since the Unix epoch (for rate limiting).
    pub fn now_nanos(&self) -> u64 {
        match &self.manual {
            Some(t) => t.load(Ordering::SeqCst),
            #[allow(clippy::disallowed_methods)] // the one permitted reader
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                .unwrap_or(0),
        }
    }

    /// Moves a manual clock forward; does nothing to the system clock.
    pub fn advance(&self, by: Duration) {
        if let Some(t) = &self.manual {
            let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
            t.fetch_add(nanos, Ordering::SeqCst);
        }
    }

    /// Sets a manual clock; does nothing to the system clock.
    pub fn set(&self, unix_seconds: i64) {
        if let Some(t) = &self.manual {
            t.store(to_nanos(unix_seconds), Ordering::SeqCst);
        }
    }
}

fn to_nanos(unix_seconds: i64) -> u64 {
    u64::try_from(unix_seconds)
        .unwrap_or(0)
        .saturating_mul(NANOS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_time() {
        let clock = Clock::manual(1_000);
        let other = clock.clone();
        assert_eq!(clock.now(), 1_000);
        other.advance(Duration::from_secs(5));
        assert_eq!(clock.now(), 1_005);
        other.advance(Duration::from_millis(999));
        assert_eq!(clock.now(), 1_005);
        assert_eq!(clock.now_nanos(), 1_005_999_000_000);
        clock.set(42);
        assert_eq!(other.now(), 42);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(Clock::system().now() > 1_577_836_800);
    }
}
