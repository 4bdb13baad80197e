//! mcp-auth's signing keys, as offline verification needs them: fetched
//! from `GetJwks` or from `jwks_uri` over HTTPS, held as one
//! `mcp_auth_token::JwkSet`, refreshed in the background every
//! `refresh_interval`, and fetched again at once for a token whose `kid`
//! is unknown (a key rotation) — at most once per `refetch_interval`, so
//! tokens with made-up `kid`s cannot make the verifier hammer mcp-auth.
//! A failed fetch keeps the keys held. A key the revocation stream names
//! is dropped from the time it names (at once, or when a retired key's
//! last tokens have expired), and stays dropped across fetches.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mcp_auth_token::{AccessClaims, JwkSet, TokenReason};

use super::channel::Connection;
use crate::clock::Clock;
use crate::pb;

/// Largest JWK Set document accepted over HTTP.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Where the JWK Set comes from.
pub(crate) enum KeySource {
    /// `TokenService.GetJwks`.
    Grpc(Connection),
    /// mcp-auth's `jwks_uri`.
    Http {
        /// reqwest on rustls, trusting `ca_pem` if given.
        client: reqwest::Client,
        /// `https://.../jwks`.
        url: String,
        /// Each fetch's deadline.
        timeout: Duration,
    },
    /// A fixed document (unit tests and benches): never refreshed.
    Static(String),
}

impl KeySource {
    /// The JWK Set document, as text.
    async fn fetch(&self) -> Result<String, String> {
        match self {
            KeySource::Grpc(conn) => {
                let mut client = conn.client();
                let call = client.get_jwks(conn.request(pb::GetJwksRequest {}));
                match tokio::time::timeout(conn.timeout, call).await {
                    Ok(Ok(resp)) => Ok(resp.into_inner().jwks_json),
                    Ok(Err(status)) => Err(format!("GetJwks failed: {:?}", status.code())),
                    Err(_) => Err(format!("GetJwks took longer than {:?}", conn.timeout)),
                }
            }
            KeySource::Http {
                client,
                url,
                timeout,
            } => {
                let fetch = async {
                    let mut resp = client
                        .get(url)
                        .header("accept", "application/json")
                        .send()
                        .await
                        .map_err(|e| format!("GET {url}: {e}"))?;
                    if !resp.status().is_success() {
                        return Err(format!("GET {url}: HTTP {}", resp.status()));
                    }
                    let mut body = Vec::new();
                    while let Some(chunk) =
                        resp.chunk().await.map_err(|e| format!("GET {url}: {e}"))?
                    {
                        body.extend_from_slice(&chunk);
                        if body.len() > MAX_JWKS_BYTES {
                            return Err(format!("GET {url}: the JWK Set is over 1 MiB"));
                        }
                    }
                    String::from_utf8(body).map_err(|_| format!("GET {url}: not UTF-8"))
                };
                tokio::time::timeout(*timeout, fetch)
                    .await
                    .unwrap_or_else(|_| Err(format!("GET {url} took longer than {timeout:?}")))
            }
            KeySource::Static(json) => Ok(json.clone()),
        }
    }

    fn refreshes(&self) -> bool {
        !matches!(self, KeySource::Static(_))
    }
}

/// How often keys are fetched again.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Refresh {
    /// Seconds between background fetches.
    pub every: i64,
    /// Least seconds between two fetches for unknown `kid`s (and between
    /// attempts after a failed background fetch).
    pub unknown_kid_at_most_every: i64,
}

/// The held keys and the schedule of their refreshes.
pub(crate) struct KeyStore {
    source: KeySource,
    issuer: String,
    clock: Clock,
    refresh: Refresh,
    set: RwLock<Arc<JwkSet>>,
    /// Kids the revocation stream revoked, each with the time from which
    /// its tokens are refused (0: at once): removed from the held set at
    /// that time, and from every set fetched after it.
    retirements: Mutex<HashMap<String, i64>>,
    /// The earliest retirement still to apply (`i64::MAX`: none).
    next_retirement: AtomicI64,
    /// Clock time from which a background refresh is due.
    next_refresh_at: AtomicI64,
    /// Clock time of the last fetch for an unknown `kid` (`i64::MIN`:
    /// none yet).
    last_unknown_fetch: AtomicI64,
    /// Bumped by every successful fetch.
    generation: AtomicU64,
    refreshing: AtomicBool,
    /// One fetch at a time for unknown kids; the others wait for it.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("keys", &self.current().len())
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// Fetches the keys once, for tokens of `issuer`.
    ///
    /// # Errors
    /// Why the keys could not be fetched or used.
    pub async fn load(
        source: KeySource,
        issuer: &str,
        clock: Clock,
        refresh: Refresh,
    ) -> Result<Self, String> {
        let json = source.fetch().await?;
        let set = JwkSet::from_json(&json, &[issuer]).map_err(|e| e.to_string())?;
        if set.is_empty() {
            return Err("mcp-auth's JWK Set holds no key".to_owned());
        }
        let now = clock.now();
        Ok(KeyStore {
            source,
            issuer: issuer.to_owned(),
            refresh,
            set: RwLock::new(Arc::new(set)),
            retirements: Mutex::new(HashMap::new()),
            next_retirement: AtomicI64::new(i64::MAX),
            next_refresh_at: AtomicI64::new(now.saturating_add(refresh.every)),
            last_unknown_fetch: AtomicI64::new(i64::MIN),
            generation: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
            fetching: tokio::sync::Mutex::new(()),
            clock,
        })
    }

    /// The keys held now.
    pub fn current(&self) -> Arc<JwkSet> {
        self.set.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn retirements(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.retirements.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fetches the keys and puts them in place (without the retired
    /// ones); on failure keeps what is held.
    async fn fetch_now(&self) -> Result<(), String> {
        let json = self.source.fetch().await?;
        let mut set =
            JwkSet::from_json(&json, &[self.issuer.as_str()]).map_err(|e| e.to_string())?;
        let now = self.clock.now();
        {
            let retirements = self.retirements();
            for (kid, from) in retirements.iter() {
                if *from <= now {
                    set.remove_key(kid);
                }
            }
            // Under the retirements' lock, so that a retirement applied
            // meanwhile is not undone by this older document.
            *self.set.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(set);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Drops from the held set the keys whose retirement has come at
    /// `now`.
    fn retire_due(&self, now: i64) {
        if now < self.next_retirement.load(Ordering::Acquire) {
            return;
        }
        let retirements = self.retirements();
        let mut held = self.set.write().unwrap_or_else(|p| p.into_inner());
        let due: Vec<&String> = retirements
            .iter()
            .filter(|(kid, from)| **from <= now && held.contains(kid))
            .map(|(kid, _)| kid)
            .collect();
        if !due.is_empty() {
            let mut set = JwkSet::clone(&held);
            for kid in due {
                set.remove_key(kid);
            }
            *held = Arc::new(set);
        }
        let next = retirements
            .values()
            .copied()
            .filter(|from| *from > now)
            .min()
            .unwrap_or(i64::MAX);
        self.next_retirement.store(next, Ordering::Release);
    }

    /// Takes the stream's word on signing keys: each kid is refused from
    /// its time on (0: at once). `replace` (a snapshot) forgets what was
    /// said before; keys already dropped come back at the next fetch if
    /// mcp-auth still publishes them.
    pub fn retire(&self, kids: &[(String, i64)], replace: bool) {
        {
            let mut retirements = self.retirements();
            if replace {
                retirements.clear();
            }
            for (kid, from) in kids {
                retirements.insert(kid.clone(), *from);
            }
        }
        self.next_retirement.store(i64::MIN, Ordering::Release);
        self.retire_due(self.clock.now());
    }

    /// Starts a background fetch if one is due and none is running.
    fn refresh_if_due(self: &Arc<Self>, now: i64) {
        if !self.source.refreshes()
            || now < self.next_refresh_at.load(Ordering::Acquire)
            || self.refreshing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let store = Arc::clone(self);
        tokio::spawn(async move {
            let next = match store.fetch_now().await {
                Ok(()) => store.refresh.every,
                Err(cause) => {
                    tracing::warn!(%cause, "cannot refresh mcp-auth's signing keys; keeping the held ones");
                    store.refresh.unknown_kid_at_most_every
                }
            };
            store
                .next_refresh_at
                .store(store.clock.now().saturating_add(next), Ordering::Release);
            store.refreshing.store(false, Ordering::Release);
        });
    }

    /// Verifies `token`'s form, key, signature and issuer with the held
    /// keys; for an unknown `kid`, fetches the keys again first if the
    /// last such fetch is at least `unknown_kid_at_most_every` old.
    ///
    /// # Errors
    /// Why the token is refused.
    pub async fn verify(self: &Arc<Self>, token: &str) -> Result<AccessClaims, TokenReason> {
        let now = self.clock.now();
        self.retire_due(now);
        self.refresh_if_due(now);
        let seen = self.generation.load(Ordering::Acquire);
        match self.current().verify(token) {
            Err(TokenReason::UnknownKey) => {}
            verdict => return verdict,
        }
        let _one_at_a_time = self.fetching.lock().await;
        if self.generation.load(Ordering::Acquire) == seen && self.may_fetch_for_unknown_kid(now) {
            match self.fetch_now().await {
                Ok(()) => tracing::debug!("fetched mcp-auth's signing keys for an unknown kid"),
                Err(cause) => {
                    tracing::warn!(%cause, "cannot fetch mcp-auth's signing keys for an unknown kid; keeping the held ones")
                }
            }
        }
        self.current().verify(token)
    }

    /// Whether a fetch for an unknown kid may happen at `now`; if so, it
    /// is counted as happening.
    fn may_fetch_for_unknown_kid(&self, now: i64) -> bool {
        let last = self.last_unknown_fetch.load(Ordering::Acquire);
        let due = last == i64::MIN
            || now.saturating_sub(last) >= self.refresh.unknown_kid_at_most_every
            || now < last;
        due && self
            .last_unknown_fetch
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::verifier::offline::tests::{ISS, TestKey, claims};

    fn refresh() -> Refresh {
        Refresh {
            every: 300,
            unknown_kid_at_most_every: 10,
        }
    }

    #[tokio::test]
    async fn retired_keys_are_dropped_from_their_time_and_stay_dropped() {
        let (k1, k2) = (TestKey::new("k1"), TestKey::new("k2"));
        let source = KeySource::Static(TestKey::jwks(&[&k1, &k2]));
        let clock = Clock::manual(1000);
        let store = Arc::new(
            KeyStore::load(source, ISS, clock.clone(), refresh())
                .await
                .unwrap(),
        );
        let (t1, t2) = (k1.sign(&claims(1000)), k2.sign(&claims(1000)));
        assert!(store.verify(&t1).await.is_ok());
        // k1 at once; k2 from 1100 (a retired key whose tokens run out).
        store.retire(&[("k1".to_owned(), 0), ("k2".to_owned(), 1100)], false);
        assert_eq!(store.verify(&t1).await, Err(TokenReason::UnknownKey));
        assert!(store.verify(&t2).await.is_ok());
        clock.set(1099);
        assert!(store.verify(&t2).await.is_ok());
        clock.set(1100);
        assert_eq!(store.verify(&t2).await, Err(TokenReason::UnknownKey));
        // A fetch brings nothing back from the document.
        store.fetch_now().await.unwrap();
        assert_eq!(store.verify(&t1).await, Err(TokenReason::UnknownKey));
        assert_eq!(store.verify(&t2).await, Err(TokenReason::UnknownKey));
        // A snapshot without them: the next fetch restores them.
        store.retire(&[], true);
        store.fetch_now().await.unwrap();
        assert!(store.verify(&t1).await.is_ok());
        assert!(store.verify(&t2).await.is_ok());
    }

    #[tokio::test]
    async fn unknown_kid_fetches_are_bounded() {
        let k1 = TestKey::new("k1");
        let clock = Clock::manual(1000);
        let store = KeyStore::load(
            KeySource::Static(TestKey::jwks(&[&k1])),
            ISS,
            clock.clone(),
            refresh(),
        )
        .await
        .unwrap();
        assert!(
            store.may_fetch_for_unknown_kid(1000),
            "the first one at once"
        );
        assert!(!store.may_fetch_for_unknown_kid(1009));
        assert!(store.may_fetch_for_unknown_kid(1010));
        assert!(!store.may_fetch_for_unknown_kid(1010));
    }

    #[tokio::test]
    async fn an_empty_set_is_not_a_start() {
        let err = KeyStore::load(
            KeySource::Static(r#"{"keys":[]}"#.to_owned()),
            ISS,
            Clock::manual(0),
            refresh(),
        )
        .await
        .unwrap_err();
        assert!(err.contains("no key"), "{err}");
    }
}
