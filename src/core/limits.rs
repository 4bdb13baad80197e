//! Rate limits: a token bucket (GCRA, from `governor`) per authenticated
//! caller, with a server-wide default and per-credential overrides, and a
//! throttle on failed authentication per peer IP address so guessing
//! secrets over the network is slow.
//!
//! All state is in memory and bounded: caller buckets exist only for
//! authenticated credentials, failure buckets only per address, and the
//! maintenance pass evicts idle entries. Buckets read the server's
//! [`Clock`], so tests move time instead of sleeping.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Reference;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{NotUntil, Quota, RateLimiter};

use crate::clock::Clock;
use crate::core::error::Error;
pub use crate::store::RateLimit;
use crate::telemetry::Family;

/// A caller bucket unused this long is evicted by maintenance.
const IDLE_NANOS: u64 = 10 * 60 * 1_000_000_000;

/// Checks a rate limit from a request or the configuration.
///
/// # Errors
/// INVALID_ARGUMENT naming `field` when a value is 0 or too large.
pub(crate) fn validate(limit: RateLimit, field: &'static str) -> Result<RateLimit, Error> {
    limit.checked().map_err(|m| Error::invalid(field, m))
}

fn quota(limit: RateLimit) -> Quota {
    let rps = NonZeroU32::new(limit.requests_per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rps).allow_burst(burst)
}

/// The server clock, as `governor` wants it.
#[derive(Clone)]
struct LimiterClock(Clock);

impl governor::clock::Clock for LimiterClock {
    type Instant = Nanos;
    fn now(&self) -> Nanos {
        Nanos::from(self.0.now_nanos())
    }
}

type Bucket = RateLimiter<NotKeyed, InMemoryState, LimiterClock, NoOpMiddleware<Nanos>>;
type PeerBuckets =
    RateLimiter<IpAddr, DashMapStateStore<IpAddr>, LimiterClock, NoOpMiddleware<Nanos>>;
type AccountBuckets =
    RateLimiter<String, DashMapStateStore<String>, LimiterClock, NoOpMiddleware<Nanos>>;

struct CallerBucket {
    limit: RateLimit,
    bucket: Arc<Bucket>,
    last_used: u64,
}

/// The server's rate limiters.
pub(crate) struct Limits {
    clock: Clock,
    /// Applies to callers without an override; `None` means unlimited.
    default: Option<RateLimit>,
    callers: Mutex<HashMap<String, CallerBucket>>,
    failures: PeerBuckets,
    /// Dynamic client registrations per peer address.
    registrations: PeerBuckets,
    /// Peers whose failure bucket ran dry, and until when (nanos).
    blocked: Mutex<HashMap<IpAddr, u64>>,
    /// Failed sign-ins per username (whether or not it names a user).
    account_failures: AccountBuckets,
    /// Usernames whose failure bucket ran dry, and until when (nanos).
    blocked_accounts: Mutex<HashMap<String, u64>>,
}

/// How many entries the limiters hold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LimiterSize {
    /// Caller buckets.
    pub callers: usize,
    /// Peer failure buckets.
    pub peers: usize,
    /// Peers currently blocked.
    pub blocked: usize,
}

/// Counts one refusal because the allowance `limit` ran dry.
pub(crate) fn count_refusal(limit: &'static str) {
    static REFUSALS: Family<metrics::Counter, 1> =
        Family::counters(crate::telemetry::RATE_LIMITED, ["limit"]);
    REFUSALS.increment([limit]);
}

impl Limits {
    /// Limits with a default per-caller rate (`None`: unlimited) and an
    /// allowance of failed authentications per peer address per minute,
    /// and one of client registrations per peer address per hour.
    pub fn new(
        clock: Clock,
        default: Option<RateLimit>,
        failures_per_minute: u32,
        registrations_per_hour: u32,
    ) -> Self {
        let per_minute = NonZeroU32::new(failures_per_minute).unwrap_or(NonZeroU32::MIN);
        let failures = RateLimiter::dashmap_with_clock(
            Quota::per_minute(per_minute),
            LimiterClock(clock.clone()),
        );
        let account_failures = RateLimiter::dashmap_with_clock(
            Quota::per_minute(per_minute),
            LimiterClock(clock.clone()),
        );
        let per_hour = NonZeroU32::new(registrations_per_hour).unwrap_or(NonZeroU32::MIN);
        let registrations =
            RateLimiter::dashmap_with_clock(Quota::per_hour(per_hour), LimiterClock(clock.clone()));
        Limits {
            clock,
            default,
            callers: Mutex::new(HashMap::new()),
            failures,
            registrations,
            blocked: Mutex::new(HashMap::new()),
            account_failures,
            blocked_accounts: Mutex::new(HashMap::new()),
        }
    }

    /// Refuses a sign-in as `username` while that name's failed sign-ins
    /// ran its allowance dry (the same allowance per minute as an
    /// address's), so guessing one account's password from many
    /// addresses is slowed as well.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED (`RATE_LIMITED`) with the time to wait.
    pub fn check_account(&self, username: &str) -> Result<(), Error> {
        let now = self.clock.now_nanos();
        let mut blocked = self
            .blocked_accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match blocked.get(username) {
            Some(&until) if until > now => {
                count_refusal("account_sign_ins");
                Err(Error::RateLimited {
                    retry_after: Duration::from_nanos(until - now),
                    message: "too many failed sign-ins for this account; back off".to_owned(),
                })
            }
            Some(_) => {
                blocked.remove(username);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failed sign-in as `username`.
    pub fn record_account_failure(&self, username: &str) {
        let key = username.to_owned();
        if let Err(not_until) = self.account_failures.check_key(&key) {
            let until = not_until.earliest_possible();
            let mut blocked = self
                .blocked_accounts
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if blocked.len() < 100_000 {
                blocked.insert(key, until.as_u64());
            }
            tracing::warn!("failed sign-ins for one account throttled");
        }
    }

    /// Takes one request from `caller`'s bucket.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED (`RATE_LIMITED`) with the time to wait.
    pub fn check_caller(&self, caller: &str, own: Option<RateLimit>) -> Result<(), Error> {
        let Some(limit) = own.or(self.default) else {
            return Ok(());
        };
        let now = self.clock.now_nanos();
        let bucket = {
            let mut callers = self.callers.lock().unwrap_or_else(|p| p.into_inner());
            let entry = callers
                .entry(caller.to_owned())
                .or_insert_with(|| CallerBucket {
                    limit,
                    bucket: Arc::new(self.bucket(limit)),
                    last_used: now,
                });
            if entry.limit != limit {
                // The credential's limit changed: start a fresh bucket.
                entry.limit = limit;
                entry.bucket = Arc::new(self.bucket(limit));
            }
            entry.last_used = now;
            entry.bucket.clone()
        };
        bucket.check().map_err(|not_until| {
            count_refusal("credential");
            self.limited(&not_until, "this credential's request rate")
        })
    }

    fn bucket(&self, limit: RateLimit) -> Bucket {
        RateLimiter::direct_with_clock(quota(limit), LimiterClock(self.clock.clone()))
    }

    /// Refuses a refused credential from a peer whose failed
    /// authentications ran its allowance dry. Asked only after a
    /// credential failed: a valid credential from a throttled address is
    /// served.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED (`RATE_LIMITED`) with the time to wait.
    pub fn check_peer(&self, peer: IpAddr) -> Result<(), Error> {
        let now = self.clock.now_nanos();
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        match blocked.get(&peer) {
            Some(&until) if until > now => {
                count_refusal("failed_authentications");
                Err(Error::RateLimited {
                    retry_after: Duration::from_nanos(until - now),
                    message: "too many failed authentications from this address; back off"
                        .to_owned(),
                })
            }
            Some(_) => {
                blocked.remove(&peer);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Counts a failed authentication against `peer`; when its allowance
    /// runs out, the peer is blocked until the bucket refills by one.
    pub fn record_failure(&self, peer: IpAddr) {
        if let Err(not_until) = self.failures.check_key(&peer) {
            let until = not_until.earliest_possible();
            let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
            blocked.insert(peer, until.as_u64());
            tracing::warn!(peer = %peer, "failed authentications throttled");
        }
    }

    /// Takes one client registration from `peer`'s hourly allowance.
    ///
    /// # Errors
    /// RESOURCE_EXHAUSTED (`RATE_LIMITED`) with the time to wait.
    pub fn check_registration(&self, peer: IpAddr) -> Result<(), Error> {
        self.registrations.check_key(&peer).map_err(|not_until| {
            count_refusal("registrations");
            self.limited(
                &not_until,
                "the client registrations allowed per address per hour",
            )
        })
    }

    fn limited(&self, not_until: &NotUntil<Nanos>, what: &str) -> Error {
        let now = Nanos::from(self.clock.now_nanos());
        let wait = not_until.earliest_possible().duration_since(now);
        Error::RateLimited {
            retry_after: Duration::from(wait),
            message: format!("rate limited: {what} is exceeded; retry later"),
        }
    }

    /// Evicts idle caller buckets, peer buckets back at full allowance and
    /// expired blocks. Returns what is left.
    pub fn evict_idle(&self) -> LimiterSize {
        let now = self.clock.now_nanos();
        {
            let mut callers = self.callers.lock().unwrap_or_else(|p| p.into_inner());
            callers.retain(|_, c| now.saturating_sub(c.last_used) < IDLE_NANOS);
        }
        {
            let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
            blocked.retain(|_, until| *until > now);
        }
        self.blocked_accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, until| *until > now);
        self.account_failures.retain_recent();
        self.account_failures.shrink_to_fit();
        self.failures.retain_recent();
        self.failures.shrink_to_fit();
        self.registrations.retain_recent();
        self.registrations.shrink_to_fit();
        self.size()
    }

    /// Current sizes.
    pub fn size(&self) -> LimiterSize {
        LimiterSize {
            callers: self.callers.lock().map(|c| c.len()).unwrap_or(0),
            peers: self.failures.len(),
            blocked: self.blocked.lock().map(|b| b.len()).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rps: u32, burst: u32) -> Option<RateLimit> {
        Some(RateLimit {
            requests_per_second: rps,
            burst,
        })
    }

    #[test]
    fn caller_bucket_allows_burst_then_refills_with_the_clock() {
        let clock = Clock::manual(1_000);
        let limits = Limits::new(clock.clone(), limit(2, 3), 10, 20);
        for _ in 0..3 {
            limits.check_caller("k", None).unwrap();
        }
        match limits.check_caller("k", None) {
            Err(Error::RateLimited { retry_after, .. }) => {
                assert_eq!(retry_after, Duration::from_millis(500));
            }
            other => panic!("expected RateLimited, got {other:?}"),
        }
        // Another caller has its own bucket.
        limits.check_caller("other", None).unwrap();
        clock.advance(Duration::from_millis(500));
        limits.check_caller("k", None).unwrap();
        // An override replaces the default.
        for _ in 0..10 {
            limits.check_caller("big", limit(1, 10)).unwrap();
        }
        assert!(limits.check_caller("big", limit(1, 10)).is_err());
    }

    #[test]
    fn failures_block_a_peer_and_idle_state_is_evicted() {
        let clock = Clock::manual(1_000);
        let limits = Limits::new(clock.clone(), None, 3, 20);
        let bad: IpAddr = "192.0.2.1".parse().unwrap();
        let good: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            limits.check_peer(bad).unwrap();
            limits.record_failure(bad);
        }
        limits.check_peer(bad).unwrap();
        limits.record_failure(bad); // the fourth runs dry
        assert!(matches!(
            limits.check_peer(bad),
            Err(Error::RateLimited { .. })
        ));
        limits.check_peer(good).unwrap();
        assert_eq!(limits.size().blocked, 1);

        clock.advance(Duration::from_secs(3600));
        limits.check_peer(bad).unwrap();
        let size = limits.evict_idle();
        assert_eq!(size, LimiterSize::default());
    }

    #[test]
    fn failed_sign_ins_throttle_the_account_whatever_the_address() {
        let clock = Clock::manual(1_000);
        let limits = Limits::new(clock.clone(), None, 3, 20);
        for _ in 0..4 {
            limits.check_account("alice").unwrap();
            limits.record_account_failure("alice");
        }
        match limits.check_account("alice") {
            Err(Error::RateLimited { retry_after, .. }) => {
                assert!(retry_after <= Duration::from_secs(20), "{retry_after:?}");
            }
            other => panic!("expected RateLimited, got {other:?}"),
        }
        limits.check_account("bob").unwrap();
        clock.advance(Duration::from_secs(20));
        limits.check_account("alice").unwrap();
        limits.evict_idle();
    }

    #[test]
    fn limits_are_validated() {
        assert!(
            validate(
                RateLimit {
                    requests_per_second: 0,
                    burst: 1
                },
                "rate_limit"
            )
            .is_err()
        );
        assert!(
            validate(
                RateLimit {
                    requests_per_second: 1,
                    burst: 0
                },
                "rate_limit"
            )
            .is_err()
        );
        assert!(
            validate(
                RateLimit {
                    requests_per_second: 5,
                    burst: 10
                },
                "rate_limit"
            )
            .is_ok()
        );
    }
}
