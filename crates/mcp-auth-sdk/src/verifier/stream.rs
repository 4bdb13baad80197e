//! The revocation stream: a background task that keeps
//! `WatchRevocations` open, applies its batches to the held
//! [`RevocationSet`], evicts the cached verdicts of API keys it names and
//! hands the signing keys it names to the key store, resumes after a disconnect from the last epoch and position,
//! and reconnects with exponential backoff (100 ms doubling to 5 s). It
//! stops when the verifier's last clone is dropped (the [`StopGuard`]).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::oneshot;

use super::cache::VerdictCache;
use super::channel::Connection;
use super::keys::KeyStore;
use super::revocations::{Progress, RevocationSet, Revoked, Step, Target, is_stale, step};
use crate::clock::Clock;
use crate::pb;

/// First wait before reconnecting.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait before reconnecting.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the stream has told the verifier, shared with the verifications.
#[derive(Debug, Default)]
pub(crate) struct RevocationState {
    set: RwLock<RevocationSet>,
    progress: Mutex<Progress>,
    /// Clock time of the last batch taken; `i64::MIN` before the first.
    last_heard: AtomicI64,
    snapshots: AtomicU64,
}

impl RevocationState {
    /// Nothing heard yet.
    pub fn new() -> Self {
        RevocationState {
            last_heard: AtomicI64::new(i64::MIN),
            ..RevocationState::default()
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, RevocationSet> {
        self.set.read().unwrap_or_else(|p| p.into_inner())
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Clock time of the last batch, if any.
    pub fn last_heard(&self) -> Option<i64> {
        match self.last_heard.load(Ordering::Acquire) {
            i64::MIN => None,
            t => Some(t),
        }
    }

    /// Whether the held set is too old at `now` to vouch for a token.
    pub fn is_stale(&self, now: i64, staleness: i64) -> bool {
        is_stale(self.last_heard(), now, staleness)
    }

    /// Whether the held set revokes a token with these claims.
    pub fn is_revoked(&self, session_id: &str, jti: &str, client_id: &str, iat: i64) -> bool {
        self.read().is_revoked(session_id, jti, client_id, iat)
    }

    /// (epoch, position, snapshots taken, entries held).
    pub fn status(&self) -> (String, u64, u64, usize) {
        let p = self.progress().clone();
        (
            p.epoch,
            p.position,
            self.snapshots.load(Ordering::Acquire),
            self.read().len(),
        )
    }
}

#[cfg(test)]
impl RevocationState {
    /// Takes `entries` as a batch heard at `now` (tests).
    pub fn hear(&self, entries: Vec<Revoked>, snapshot: bool, now: i64) {
        self.set
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .apply(entries, snapshot);
        self.last_heard.store(now, Ordering::Release);
    }
}

/// Stops the stream's task when dropped.
#[derive(Debug)]
pub(crate) struct StopGuard {
    _stop: oneshot::Sender<()>,
    /// The task, to tell whether it has ended (tests).
    #[cfg_attr(not(test), allow(dead_code))]
    task: tokio::task::AbortHandle,
}

/// Everything the task touches.
pub(crate) struct Stream {
    /// The connection to mcp-auth.
    pub conn: Connection,
    /// What the verifications read.
    pub state: Arc<RevocationState>,
    /// Verdicts on API keys (evicted by `api_key_id` revocations).
    pub api_keys: Arc<VerdictCache>,
    /// The signing keys, if verification is offline.
    pub keys: Option<Arc<KeyStore>>,
    /// The verifier's clock.
    pub clock: Clock,
    /// Longest silence tolerated on an open stream before reconnecting.
    pub idle: Duration,
}

/// How a batch was taken.
enum Taken {
    Applied,
    /// Part of a snapshot that is not whole yet.
    Staged,
    /// It did not continue the held set: start again from a snapshot.
    Resync,
}

impl Stream {
    /// Spawns the task. The receiver completes once the first attempt is
    /// over: a snapshot taken, or the attempt failed.
    pub fn spawn(self) -> (StopGuard, oneshot::Receiver<()>) {
        let (stop_tx, stop_rx) = oneshot::channel();
        let (first_tx, first_rx) = oneshot::channel();
        let task = tokio::spawn(self.run(stop_rx, first_tx)).abort_handle();
        (
            StopGuard {
                _stop: stop_tx,
                task,
            },
            first_rx,
        )
    }

    async fn run(self, mut stop: oneshot::Receiver<()>, first: oneshot::Sender<()>) {
        let mut first = Some(first);
        let mut backoff = INITIAL_BACKOFF;
        // Whether the last attempt got batches (a failure after that
        // starts an outage, logged once at warn).
        let mut healthy = true;
        loop {
            let resume = self.state.progress().clone();
            let req = tonic::Request::new(pb::WatchRevocationsRequest {
                epoch: resume.epoch,
                position: resume.position,
            });
            let mut client = self.conn.client();
            let opened = tokio::select! {
                _ = &mut stop => return,
                opened = tokio::time::timeout(self.conn.timeout, client.watch_revocations(req)) => opened,
            };
            let mut failure: Option<String> = None;
            match opened {
                Ok(Ok(resp)) => {
                    let mut batches = resp.into_inner();
                    let mut staging = None;
                    loop {
                        let next = tokio::select! {
                            _ = &mut stop => return,
                            next = tokio::time::timeout(self.idle, batches.message()) => next,
                        };
                        match next {
                            Ok(Ok(Some(batch))) => match self.take(&mut staging, batch) {
                                Taken::Applied => {
                                    backoff = INITIAL_BACKOFF;
                                    healthy = true;
                                    if let Some(f) = first.take() {
                                        let _ = f.send(());
                                    }
                                }
                                Taken::Staged => {}
                                Taken::Resync => {
                                    tracing::debug!(
                                        "revocation stream: a batch does not continue the held set; asking for a snapshot"
                                    );
                                    *self.state.progress() = Progress::default();
                                    break;
                                }
                            },
                            Ok(Ok(None)) => {
                                failure = Some("mcp-auth ended the stream".to_owned());
                                break;
                            }
                            Ok(Err(status)) => {
                                failure = Some(describe(&status));
                                break;
                            }
                            Err(_) => {
                                failure = Some(format!("silent for {:?}", self.idle));
                                break;
                            }
                        }
                    }
                }
                Ok(Err(status)) => failure = Some(describe(&status)),
                Err(_) => {
                    failure = Some(format!("not opened within {:?}", self.conn.timeout));
                }
            }
            if let Some(cause) = failure {
                if healthy {
                    tracing::warn!(%cause, retry_in = ?backoff, "revocation stream from mcp-auth interrupted; reconnecting");
                } else {
                    tracing::debug!(%cause, retry_in = ?backoff, "revocation stream still down");
                }
                healthy = false;
            }
            if let Some(f) = first.take() {
                let _ = f.send(());
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Takes `batch`: applies it if it continues what is held, or stages
    /// it while a snapshot arrives in several batches (`staging`, for the
    /// current connection), swapping the snapshot in once it is whole.
    fn take(&self, staging: &mut Option<Staged>, batch: pb::RevocationBatch) -> Taken {
        let count = batch.revocations.len();
        let entries: Vec<Revoked> = batch.revocations.into_iter().filter_map(revoked).collect();
        if batch.snapshot || staging.is_some() {
            let staged = match staging.take() {
                _ if batch.snapshot => Staged {
                    epoch: batch.epoch,
                    position: batch.position,
                    entries,
                },
                Some(mut staged) => {
                    // A later batch of the snapshot: same run, same
                    // position, or the stream is confused.
                    if batch.epoch != staged.epoch || batch.position != staged.position {
                        return Taken::Resync;
                    }
                    staged.entries.extend(entries);
                    staged
                }
                None => return Taken::Resync,
            };
            if batch.snapshot_continues {
                *staging = Some(staged);
                return Taken::Staged;
            }
            let next = Progress {
                epoch: staged.epoch,
                position: staged.position,
            };
            self.apply(staged.entries, true, next);
            return Taken::Applied;
        }
        if batch.snapshot_continues {
            // The rest of a snapshot whose start was never seen.
            return Taken::Resync;
        }
        let held = self.state.progress().clone();
        match step(&held, &batch.epoch, batch.position, false, count) {
            Step::Apply(next) => {
                self.apply(entries, false, next);
                Taken::Applied
            }
            Step::Resync => Taken::Resync,
        }
    }

    /// Applies a whole batch (or a whole snapshot): the set, the API-key
    /// cache, the signing keys, then the progress and the time heard.
    fn apply(&self, entries: Vec<Revoked>, snapshot: bool, next: Progress) {
        let now = self.clock.now();
        let effects = {
            let mut set = self.state.set.write().unwrap_or_else(|p| p.into_inner());
            let effects = set.apply(entries, snapshot);
            set.prune(now);
            effects
        };
        if snapshot {
            // Whatever was missed before this snapshot may have revoked a
            // cached API key.
            self.api_keys.clear();
        }
        for id in &effects.api_keys {
            self.api_keys.evict(|v| v.verified.client_id == *id);
        }
        if let Some(keys) = &self.keys {
            if snapshot || !effects.signing_keys.is_empty() {
                keys.retire(&effects.signing_keys, snapshot);
            }
        }
        *self.state.progress() = next;
        if snapshot {
            self.state.snapshots.fetch_add(1, Ordering::AcqRel);
        }
        self.state.last_heard.store(now, Ordering::Release);
    }
}

/// A snapshot arriving in several batches: held aside until its last
/// batch, so the verifier never decides on half a snapshot.
pub(crate) struct Staged {
    epoch: String,
    position: u64,
    entries: Vec<Revoked>,
}

/// A revocation of the stream as the set holds it; `None` for one whose
/// target this SDK does not know (a newer server).
fn revoked(r: pb::Revocation) -> Option<Revoked> {
    use pb::revocation::Target as T;
    let target = match r.target? {
        T::SessionId(id) => Target::Session(id),
        T::TokenId(jti) => Target::Token(jti),
        T::ClientId(id) => Target::Client {
            id,
            issued_through: r.issued_through,
        },
        T::ApiKeyId(id) => Target::ApiKey(id),
        T::SigningKeyId(kid) => Target::SigningKey(kid),
    };
    Some(Revoked {
        target,
        expires_at: r.expires_at,
    })
}

/// A status, for logs: its code and reason (never a credential).
fn describe(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    let reason = status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_default();
    format!("{:?} {reason}: {}", status.code(), status.message())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::verifier::cache::{CachedVerdict, CredentialHash};
    use crate::verifier::channel::Target as Endpoint;
    use crate::verifier::keys::{KeySource, Refresh};
    use crate::verifier::offline::tests::{ISS, TestKey, claims};
    use pb::revocation::Target as T;

    fn revocation(target: T) -> pb::Revocation {
        pb::Revocation {
            target: Some(target),
            expires_at: 0,
            issued_through: 0,
        }
    }

    fn batch(
        epoch: &str,
        position: u64,
        snapshot: bool,
        rs: Vec<pb::Revocation>,
    ) -> pb::RevocationBatch {
        pb::RevocationBatch {
            epoch: epoch.into(),
            position,
            snapshot,
            revocations: rs,
            snapshot_continues: false,
        }
    }

    /// A batch of a snapshot that more batches continue.
    fn continued(mut b: pb::RevocationBatch) -> pb::RevocationBatch {
        b.snapshot_continues = true;
        b
    }

    fn key_verdict(id: &str) -> CachedVerdict {
        CachedVerdict {
            verified: crate::bench_support::api_key_verified(id, &[]),
            issued_at: 0,
        }
    }

    /// A stream over a connection that is never used, with keys k1, k2.
    async fn stream(clock: &Clock) -> (Stream, Arc<KeyStore>, TestKey, TestKey) {
        let conn = Connection::lazy(&Endpoint {
            url: "https://127.0.0.1:1",
            ca_pem: None,
            identity: None,
            api_key: Some("mcp_sk_test"),
            timeout: Duration::from_millis(100),
        })
        .unwrap();
        let (k1, k2) = (TestKey::new("k1"), TestKey::new("k2"));
        let keys = Arc::new(
            KeyStore::load(
                KeySource::Static(TestKey::jwks(&[&k1, &k2])),
                ISS,
                clock.clone(),
                Refresh {
                    every: 300,
                    unknown_kid_at_most_every: 10,
                },
            )
            .await
            .unwrap(),
        );
        let stream = Stream {
            conn,
            state: Arc::new(RevocationState::new()),
            api_keys: Arc::new(VerdictCache::new(10, 10)),
            keys: Some(keys.clone()),
            clock: clock.clone(),
            idle: Duration::from_secs(30),
        };
        (stream, keys, k1, k2)
    }

    #[tokio::test]
    async fn batches_update_the_set_the_caches_and_the_keys() {
        let clock = Clock::manual(1000);
        let (stream, keys, k1, k2) = stream(&clock).await;
        let (a, b) = (
            CredentialHash::of("mcp_sk_a"),
            CredentialHash::of("mcp_sk_b"),
        );
        stream.api_keys.insert(a, key_verdict("key_a"), 0, 1000, 0);

        // Nothing but a snapshot can start the stream.
        assert!(matches!(
            stream.take(&mut None, batch("e1", 3, false, vec![])),
            Taken::Resync
        ));
        assert_eq!(stream.state.last_heard(), None);
        assert!(matches!(
            stream.take(
                &mut None,
                batch(
                    "e1",
                    3,
                    true,
                    vec![revocation(T::SessionId("ses_1".into()))]
                )
            ),
            Taken::Applied
        ));
        assert_eq!(stream.state.last_heard(), Some(1000));
        assert!(stream.state.is_revoked("ses_1", "", "", 0));
        assert!(
            stream.api_keys.get(&a, 1000).is_none(),
            "a snapshot drops cached API keys"
        );

        // Continuing: an API key and a signing key.
        stream.api_keys.insert(
            a,
            key_verdict("key_a"),
            0,
            1000,
            stream.api_keys.generation(),
        );
        stream.api_keys.insert(
            b,
            key_verdict("key_b"),
            0,
            1000,
            stream.api_keys.generation(),
        );
        clock.set(1002);
        assert!(matches!(
            stream.take(
                &mut None,
                batch(
                    "e1",
                    5,
                    false,
                    vec![
                        revocation(T::ApiKeyId("key_a".into())),
                        revocation(T::SigningKeyId("k1".into())),
                    ]
                )
            ),
            Taken::Applied
        ));
        assert!(stream.api_keys.get(&a, 1002).is_none());
        assert!(stream.api_keys.get(&b, 1002).is_some());
        assert_eq!(
            keys.verify(&k1.sign(&claims(1000))).await,
            Err(mcp_auth_token::TokenReason::UnknownKey)
        );
        assert!(keys.verify(&k2.sign(&claims(1000))).await.is_ok());
        assert_eq!(stream.state.status(), ("e1".into(), 5, 1, 1));
        assert_eq!(stream.state.last_heard(), Some(1002));

        // A gap, or another run without a snapshot: resync, nothing taken.
        assert!(matches!(
            stream.take(&mut None, batch("e1", 7, false, vec![])),
            Taken::Resync
        ));
        assert!(matches!(
            stream.take(&mut None, batch("e2", 6, false, vec![])),
            Taken::Resync
        ));
        assert_eq!(stream.state.status().1, 5);
        // A heartbeat.
        clock.set(1010);
        assert!(matches!(
            stream.take(&mut None, batch("e1", 5, false, vec![])),
            Taken::Applied
        ));
        assert_eq!(stream.state.last_heard(), Some(1010));
    }

    #[tokio::test]
    async fn a_snapshot_in_several_batches_counts_only_once_whole() {
        let clock = Clock::manual(1000);
        let (stream, _, _, _) = stream(&clock).await;
        let mut staging = None;
        let ses = |id: &str| revocation(T::SessionId(id.into()));
        assert!(matches!(
            stream.take(&mut None, batch("e1", 2, true, vec![ses("ses_old")])),
            Taken::Applied
        ));
        // A fresh snapshot (the stream fell behind) in two batches: until
        // its last batch, the old set stands and nothing moves.
        assert!(matches!(
            stream.take(
                &mut staging,
                continued(batch("e1", 9, true, vec![ses("ses_a")]))
            ),
            Taken::Staged
        ));
        assert!(stream.state.is_revoked("ses_old", "", "", 0));
        assert!(!stream.state.is_revoked("ses_a", "", "", 0));
        assert_eq!(stream.state.status(), ("e1".into(), 2, 1, 1));
        assert!(matches!(
            stream.take(&mut staging, batch("e1", 9, false, vec![ses("ses_b")])),
            Taken::Applied
        ));
        assert!(staging.is_none());
        assert!(!stream.state.is_revoked("ses_old", "", "", 0));
        assert!(stream.state.is_revoked("ses_a", "", "", 0));
        assert!(stream.state.is_revoked("ses_b", "", "", 0));
        assert_eq!(stream.state.status(), ("e1".into(), 9, 2, 2));

        // A continuation at another position, or without its start: resync.
        assert!(matches!(
            stream.take(&mut staging, continued(batch("e1", 12, true, vec![]))),
            Taken::Staged
        ));
        assert!(matches!(
            stream.take(&mut staging, batch("e1", 13, false, vec![])),
            Taken::Resync
        ));
        assert!(matches!(
            stream.take(&mut None, continued(batch("e1", 9, false, vec![]))),
            Taken::Resync
        ));
        assert_eq!(stream.state.status(), ("e1".into(), 9, 2, 2));
    }

    #[tokio::test]
    async fn the_task_ends_with_its_guard() {
        let clock = Clock::manual(1000);
        let (stream, _, _, _) = stream(&clock).await;
        let (guard, first) = stream.spawn();
        // Nothing listens on port 1: the first attempt fails, then the
        // task waits to reconnect.
        first.await.unwrap();
        let task = guard.task.clone();
        assert!(!task.is_finished());
        drop(guard);
        for _ in 0..1000 {
            if task.is_finished() {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("the stream's task outlived its guard");
    }
}
