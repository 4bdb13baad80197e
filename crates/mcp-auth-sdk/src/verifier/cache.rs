//! Positive caches of online verdicts: access tokens that `VerifyToken`
//! found active, and API keys. Keyed by the SHA-256 of the credential, so
//! no credential is held; bounded in size and lifetime. Refusals are
//! never cached: mcp-auth must see each bad credential to throttle its
//! sender.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::digest::{SHA256, digest};

use crate::claims::Verified;

/// SHA-256 of a credential: the key a verdict is cached under.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CredentialHash([u8; 32]);

impl CredentialHash {
    /// The hash of `credential`.
    pub fn of(credential: &str) -> Self {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, credential.as_bytes()).as_ref());
        CredentialHash(out)
    }
}

/// A verdict as cached: the claims, and what re-checking them on a hit
/// needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CachedVerdict {
    /// What the caller is given.
    pub verified: Verified,
    /// The token's `iat` (0 for an API key), for client revocations.
    pub issued_at: i64,
}

struct Entry {
    verdict: CachedVerdict,
    /// Unix seconds from which the entry is no longer used.
    until: i64,
}

struct Entries {
    map: HashMap<CredentialHash, Entry>,
    /// Bumped by every eviction of a credential's verdicts, so that a
    /// verdict fetched before it is not cached after it.
    generation: u64,
}

/// A bounded map from credential hashes to verdicts, each good until its
/// own deadline.
pub(crate) struct VerdictCache {
    entries: Mutex<Entries>,
    capacity: usize,
    ttl: i64,
}

impl VerdictCache {
    /// A cache of at most `capacity` verdicts (0: no caching), each kept
    /// at most `ttl` seconds.
    pub fn new(capacity: usize, ttl: i64) -> Self {
        VerdictCache {
            entries: Mutex::new(Entries {
                map: HashMap::new(),
                generation: 0,
            }),
            capacity,
            ttl: ttl.max(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The generation to pass to [`VerdictCache::insert`] for a verdict
    /// asked for now.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// The verdict cached for `key`, if still good at `now`.
    pub fn get(&self, key: &CredentialHash, now: i64) -> Option<CachedVerdict> {
        if self.capacity == 0 {
            return None;
        }
        let mut entries = self.lock();
        match entries.map.get(key) {
            Some(e) if now < e.until => Some(e.verdict.clone()),
            Some(_) => {
                entries.map.remove(key);
                None
            }
            None => None,
        }
    }

    /// Caches `verdict` for `key` from `now` until `now + ttl`, or until
    /// `expires_at` if sooner (0: no expiry of its own) — unless an
    /// eviction happened since `generation` was read, in which case the
    /// verdict may predate a revocation and is not kept. A full cache
    /// first drops its expired entries, then an arbitrary one.
    pub fn insert(
        &self,
        key: CredentialHash,
        verdict: CachedVerdict,
        expires_at: i64,
        now: i64,
        generation: u64,
    ) {
        if self.capacity == 0 || self.ttl == 0 {
            return;
        }
        let mut until = now.saturating_add(self.ttl);
        if expires_at > 0 {
            until = until.min(expires_at);
        }
        if until <= now {
            return;
        }
        let mut entries = self.lock();
        if entries.generation != generation {
            return;
        }
        if entries.map.len() >= self.capacity && !entries.map.contains_key(&key) {
            entries.map.retain(|_, e| now < e.until);
            if entries.map.len() >= self.capacity {
                if let Some(victim) = entries.map.keys().next().copied() {
                    entries.map.remove(&victim);
                }
            }
        }
        entries.map.insert(key, Entry { verdict, until });
    }

    /// Drops the verdicts `doomed` picks (say, an API key's after its
    /// revocation); returns how many.
    pub fn evict(&self, doomed: impl Fn(&CachedVerdict) -> bool) -> usize {
        let mut entries = self.lock();
        entries.generation = entries.generation.wrapping_add(1);
        let before = entries.map.len();
        entries.map.retain(|_, e| !doomed(&e.verdict));
        before - entries.map.len()
    }

    /// Drops every verdict.
    pub fn clear(&self) {
        let mut entries = self.lock();
        entries.generation = entries.generation.wrapping_add(1);
        entries.map.clear();
    }

    /// How many verdicts are held (expired ones included until touched).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn verdict(client: &str) -> CachedVerdict {
        CachedVerdict {
            verified: crate::bench_support::api_key_verified(client, &[]),
            issued_at: 0,
        }
    }

    #[test]
    fn entries_last_until_the_ttl_or_their_expiry() {
        let cache = VerdictCache::new(10, 10);
        let (a, b) = (CredentialHash::of("a"), CredentialHash::of("b"));
        cache.insert(a, verdict("key_a"), 0, 100, cache.generation());
        cache.insert(b, verdict("key_b"), 104, 100, cache.generation());
        assert_eq!(cache.get(&a, 109).unwrap(), verdict("key_a"));
        assert!(cache.get(&a, 110).is_none(), "ttl");
        assert!(cache.get(&b, 103).is_some());
        assert!(cache.get(&b, 104).is_none(), "its own expiry");
        // Already expired: not cached at all.
        cache.insert(a, verdict("key_a"), 100, 100, cache.generation());
        assert!(cache.get(&a, 100).is_none());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn a_full_cache_drops_expired_entries_then_any() {
        let cache = VerdictCache::new(2, 10);
        let keys: Vec<_> = (0..4).map(|i| CredentialHash::of(&i.to_string())).collect();
        cache.insert(keys[0], verdict("k0"), 0, 100, 0);
        cache.insert(keys[1], verdict("k1"), 0, 105, 0);
        // At 111, k0 has expired: it makes room.
        cache.insert(keys[2], verdict("k2"), 0, 111, 0);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&keys[1], 111).is_some());
        assert!(cache.get(&keys[2], 111).is_some());
        // Nothing expired: one entry goes, the new one is in.
        cache.insert(keys[3], verdict("k3"), 0, 112, 0);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&keys[3], 112).is_some());
    }

    #[test]
    fn evictions_drop_verdicts_and_stale_inserts() {
        let cache = VerdictCache::new(10, 10);
        let (a, b) = (CredentialHash::of("a"), CredentialHash::of("b"));
        let asked = cache.generation();
        cache.insert(a, verdict("key_a"), 0, 100, asked);
        cache.insert(b, verdict("key_b"), 0, 100, asked);
        assert_eq!(cache.evict(|v| v.verified.client_id == "key_a"), 1);
        assert!(cache.get(&a, 100).is_none());
        assert!(cache.get(&b, 100).is_some());
        // A verdict asked for before the eviction is not kept.
        cache.insert(a, verdict("key_a"), 0, 100, asked);
        assert!(cache.get(&a, 100).is_none());
        cache.insert(a, verdict("key_a"), 0, 100, cache.generation());
        assert!(cache.get(&a, 100).is_some());
        cache.clear();
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let cache = VerdictCache::new(0, 10);
        let a = CredentialHash::of("a");
        cache.insert(a, verdict("key_a"), 0, 100, 0);
        assert!(cache.get(&a, 100).is_none());
    }
}
