//! `WatchRevocations`: the revocation feed as one verifier's stream of
//! batches. It opens with a snapshot of every revocation that still
//! matters (or, for a verifier that resumes within this run, with what it
//! missed), then carries each new revocation as it happens, and a
//! heartbeat (an empty batch) whenever it has been quiet for the
//! configured period. A stream that falls too far behind gets a fresh
//! snapshot.
//!
//! The stream has no end of its own: the transport ends it when the caller
//! goes away or the server shuts down.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::clock::Clock;
use crate::core::error::Error;
use crate::core::principal::TOKENS_VERIFY;
use crate::core::revocations::{FeedEntry, Live, Revocation, RevocationIndex, Snapshot};
use crate::core::{Core, Credentials, policy};

/// Most revocations in one batch.
pub(crate) const MAX_BATCH: usize = 1000;

/// One message of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevocationBatch {
    /// The run of the server the positions belong to.
    pub epoch: Arc<str>,
    /// The position of the last revocation in the batch; of the stream so
    /// far, for a heartbeat; the snapshot's, for each batch of a snapshot.
    pub position: u64,
    /// The first batch of a snapshot: it replaces everything held before.
    pub snapshot: bool,
    /// More batches of this snapshot follow (`snapshot` false, the same
    /// position): until the last one, the snapshot is not complete.
    pub snapshot_continues: bool,
    /// The revocations; none for a heartbeat.
    pub revocations: Vec<Revocation>,
}

/// Where a verifier resumes: the epoch and position of the last batch it
/// received.
#[derive(Clone, Copy, Debug)]
pub struct Resume<'a> {
    /// The epoch.
    pub epoch: &'a str,
    /// The position.
    pub position: u64,
}

/// One verifier's stream of revocation batches.
pub struct RevocationWatch {
    index: Arc<RevocationIndex>,
    clock: Clock,
    live: Live,
    /// Batches to send before anything live (a snapshot's, a resume's).
    pending: VecDeque<RevocationBatch>,
    /// The position the stream has carried the verifier to.
    position: u64,
    heartbeat: Interval,
}

impl std::fmt::Debug for RevocationWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationWatch")
            .field("position", &self.position)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Core {
    /// `WatchRevocations`: needs `tokens:verify`. Resumes after `resume`
    /// when this run still holds everything since; otherwise starts with a
    /// snapshot.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, RESOURCE_EXHAUSTED.
    pub async fn watch_revocations(
        &self,
        creds: &Credentials<'_>,
        resume: Option<Resume<'_>>,
    ) -> Result<RevocationWatch, Error> {
        let caller = self.authenticate(creds).await?;
        policy::require(&caller, TOKENS_VERIFY)?;
        let period = self.settings.revocation_heartbeat;
        let mut heartbeat = tokio::time::interval_at(Instant::now() + period, period);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let resumed = resume.and_then(|r| {
            self.revocations
                .resume(r.epoch, r.position)
                .map(|(after, live)| (r.position, after, live))
        });
        let snapshot = resumed.is_none();
        let (position, after, live, fresh) = match resumed {
            Some((position, after, live)) => (position, after, live, None),
            None => {
                let (fresh, live) = self.revocations.subscribe(self.clock.now());
                (fresh.position, Vec::new(), live, Some(fresh))
            }
        };
        let mut watch = RevocationWatch {
            index: self.revocations.clone(),
            clock: self.clock.clone(),
            live,
            pending: VecDeque::new(),
            position,
            heartbeat,
        };
        match fresh {
            Some(fresh) => watch.queue_snapshot(fresh),
            None => watch.replay(&after),
        }
        tracing::debug!(caller = %caller.id, snapshot, position, "revocation stream opened");
        Ok(watch)
    }
}

impl RevocationWatch {
    /// The next batch: what is queued, else the next revocations as they
    /// happen, else a heartbeat when the period has passed quietly.
    /// Cancel-safe: dropping the future loses nothing.
    pub async fn next(&mut self) -> RevocationBatch {
        loop {
            if let Some(batch) = self.pending.pop_front() {
                self.heartbeat.reset();
                return batch;
            }
            tokio::select! {
                received = self.live.recv() => match received {
                    Ok(entry) => {
                        if let Some(batch) = self.live_batch(entry) {
                            self.heartbeat.reset();
                            return batch;
                        }
                    }
                    // Too far behind, or (never, while the index lives) no
                    // sender: start over.
                    Err(RecvError::Lagged(_) | RecvError::Closed) => self.resnapshot(),
                },
                _ = self.heartbeat.tick() => return self.batch(Vec::new(), false, false),
            }
        }
    }

    /// The batch of `first` and whatever else has arrived since (up to
    /// [`MAX_BATCH`]); `None` when it is one the stream has carried
    /// already, or when a gap or a lag made it start over (a snapshot is
    /// then queued).
    fn live_batch(&mut self, first: Arc<FeedEntry>) -> Option<RevocationBatch> {
        let mut revocations = Vec::new();
        let mut next = Some(first);
        while let Some(entry) = next.take() {
            // Skip what the snapshot or the replay already held.
            if entry.position > self.position {
                if entry.position != self.position + 1 {
                    self.resnapshot();
                    return None;
                }
                revocations.push(entry.revocation.clone());
                self.position = entry.position;
            }
            if revocations.len() >= MAX_BATCH {
                break;
            }
            next = match self.live.try_recv() {
                Ok(e) => Some(e),
                Err(TryRecvError::Empty | TryRecvError::Closed) => None,
                Err(TryRecvError::Lagged(_)) => {
                    self.resnapshot();
                    return None;
                }
            };
        }
        if revocations.is_empty() {
            return None;
        }
        Some(self.batch(revocations, false, false))
    }

    /// Queues what came after the stream's position, in batches.
    fn replay(&mut self, after: &[Arc<FeedEntry>]) {
        if after.is_empty() {
            // Say at once that the stream resumed where the verifier was.
            let batch = self.batch(Vec::new(), false, false);
            self.pending.push_back(batch);
            return;
        }
        for chunk in after.chunks(MAX_BATCH) {
            let revocations = chunk.iter().map(|e| e.revocation.clone()).collect();
            self.position = chunk.last().map_or(self.position, |e| e.position);
            let batch = self.batch(revocations, false, false);
            self.pending.push_back(batch);
        }
    }

    /// Queues `snapshot` in batches of at most [`MAX_BATCH`], the first
    /// marked as a snapshot, all at its position.
    fn queue_snapshot(&mut self, snapshot: Snapshot) {
        self.pending.clear();
        self.position = snapshot.position;
        let mut rest = snapshot.revocations;
        let mut first = true;
        loop {
            let tail = rest.split_off(rest.len().min(MAX_BATCH));
            let more = !tail.is_empty();
            let batch = self.batch(rest, first, more);
            self.pending.push_back(batch);
            first = false;
            if !more {
                break;
            }
            rest = tail;
        }
    }

    /// Starts over with a fresh snapshot and subscription.
    fn resnapshot(&mut self) {
        let (snapshot, live) = self.index.subscribe(self.clock.now());
        tracing::debug!(
            position = snapshot.position,
            "revocation stream fell behind; sending a fresh snapshot"
        );
        self.live = live;
        self.queue_snapshot(snapshot);
    }

    fn batch(
        &self,
        revocations: Vec<Revocation>,
        snapshot: bool,
        snapshot_continues: bool,
    ) -> RevocationBatch {
        RevocationBatch {
            epoch: self.index.epoch().clone(),
            position: self.position,
            snapshot,
            snapshot_continues,
            revocations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::core::revocations::RevocationTarget;

    /// A stream over `index` from a fresh snapshot, as
    /// [`Core::watch_revocations`] opens one.
    fn watch(index: &Arc<RevocationIndex>, heartbeat: Duration) -> RevocationWatch {
        let (snapshot, live) = index.subscribe(0);
        let mut w = RevocationWatch {
            index: index.clone(),
            clock: Clock::manual(0),
            live,
            pending: VecDeque::new(),
            position: 0,
            heartbeat: tokio::time::interval_at(Instant::now() + heartbeat, heartbeat),
        };
        w.queue_snapshot(snapshot);
        w
    }

    fn sessions(batch: &RevocationBatch) -> Vec<String> {
        batch
            .revocations
            .iter()
            .map(|r| match &r.target {
                RevocationTarget::Session(id) => id.clone(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    const LONG: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn a_large_snapshot_comes_in_batches_of_at_most_a_thousand() {
        let index = Arc::new(RevocationIndex::new("e".to_owned(), 3600));
        for i in 0..2500 {
            index.revoke_session(&format!("ses_{i}"), 100);
        }
        let mut w = watch(&index, LONG);
        let mut shapes = Vec::new();
        for _ in 0..3 {
            let b = w.next().await;
            assert_eq!(b.position, 2500);
            shapes.push((b.snapshot, b.snapshot_continues, b.revocations.len()));
        }
        assert_eq!(
            shapes,
            [(true, true, 1000), (false, true, 1000), (false, false, 500)]
        );

        // An empty snapshot is one batch.
        let empty = Arc::new(RevocationIndex::new("e".to_owned(), 3600));
        let b = watch(&empty, LONG).next().await;
        assert_eq!(
            (b.snapshot, b.snapshot_continues, b.position),
            (true, false, 0)
        );
        assert!(b.revocations.is_empty());
    }

    #[tokio::test]
    async fn what_arrives_together_goes_out_together_in_order() {
        let index = Arc::new(RevocationIndex::new("e".to_owned(), 3600));
        let mut w = watch(&index, LONG);
        assert!(w.next().await.snapshot);
        for i in 0..3 {
            index.revoke_session(&format!("ses_{i}"), 100);
        }
        let b = w.next().await;
        assert_eq!((b.snapshot, b.position), (false, 3));
        assert_eq!(sessions(&b), ["ses_0", "ses_1", "ses_2"]);
        for i in 3..(3 + MAX_BATCH + 1) {
            index.revoke_session(&format!("ses_{i}"), 100);
        }
        let b = w.next().await;
        assert_eq!(b.revocations.len(), MAX_BATCH);
        assert_eq!(b.position, 3 + u64::try_from(MAX_BATCH).unwrap());
        let b = w.next().await;
        assert_eq!(b.revocations.len(), 1);
        assert_eq!(sessions(&b), [format!("ses_{}", 3 + MAX_BATCH)]);
    }

    #[tokio::test]
    async fn a_stream_that_falls_behind_gets_a_fresh_snapshot() {
        let index = Arc::new(RevocationIndex::new("e".to_owned(), 3600));
        let mut w = watch(&index, LONG);
        assert!(w.next().await.snapshot);
        // More than the live channel holds, unread.
        let n = 5000;
        for i in 0..n {
            index.revoke_session(&format!("ses_{i}"), 100);
        }
        let b = w.next().await;
        assert!(b.snapshot, "{:?}", (b.position, b.revocations.len()));
        assert_eq!(b.position, n);
        let mut held = b.revocations.len();
        let mut last = b;
        while last.snapshot_continues {
            last = w.next().await;
            held += last.revocations.len();
        }
        assert_eq!(held, 5000);
        // Then live again, from there.
        index.revoke_session("ses_next", 100);
        let b = w.next().await;
        assert_eq!((b.snapshot, b.position), (false, n + 1));
        assert_eq!(sessions(&b), ["ses_next"]);
    }

    #[tokio::test]
    async fn a_quiet_stream_beats() {
        let index = Arc::new(RevocationIndex::new("e".to_owned(), 3600));
        index.revoke_session("ses_a", 100);
        let mut w = watch(&index, Duration::from_millis(50));
        assert!(w.next().await.snapshot);
        let b = w.next().await;
        assert_eq!((b.snapshot, b.position, b.revocations.len()), (false, 1, 0));
        assert_eq!(&*b.epoch, "e");
    }

    #[tokio::test]
    async fn a_resumed_stream_replays_in_batches_then_goes_live() {
        let index = Arc::new(RevocationIndex::new("e".to_owned(), 3600));
        for i in 0..1500 {
            index.revoke_session(&format!("ses_{i}"), 100);
        }
        let (after, live) = index.resume("e", 200).unwrap();
        let mut w = RevocationWatch {
            index: index.clone(),
            clock: Clock::manual(0),
            live,
            pending: VecDeque::new(),
            position: 200,
            heartbeat: tokio::time::interval_at(Instant::now() + LONG, LONG),
        };
        w.replay(&after);
        let b = w.next().await;
        assert_eq!(
            (b.snapshot, b.position, b.revocations.len()),
            (false, 1200, 1000)
        );
        assert_eq!(sessions(&b)[0], "ses_200");
        let b = w.next().await;
        assert_eq!((b.position, b.revocations.len()), (1500, 300));
        index.revoke_session("ses_live", 100);
        let b = w.next().await;
        assert_eq!(
            (b.position, sessions(&b)),
            (1501, vec!["ses_live".to_owned()])
        );
    }
}
