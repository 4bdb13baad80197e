//! Keeping this replica's memory current when other replicas write the
//! same store (PostgreSQL): the follower reads the store's change feed
//! whenever the database signals a commit, and at least every
//! [`POLL_PERIOD`], and applies each change to the in-memory indexes the
//! hot path reads (API keys, OAuth clients, identity grants, revoked
//! certificates, revocations, the key ring). Revocations enter the
//! revocation index as this replica's own do, so its `WatchRevocations`
//! streams carry them too.
//!
//! A change is applied by reading the record again, under the same lock
//! the core's own writes of that kind hold, so a change read late never
//! undoes a newer one. A follower that fell behind the feed's pruning
//! reads everything again.
//!
//! Fail closed: while the feed cannot be read, the replica keeps
//! verifying from memory for `store_max_staleness`, then [`Feed::check`]
//! refuses with [`Reason::StoreUnavailable`] until a read succeeds. The
//! time is the runtime's monotonic clock: this bounds how long the
//! replica has been cut off, not when tokens expire.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::core::Core;
use crate::core::error::{Error, Reason};
use crate::store::{Change, Store};
use crate::token::{KeyRing, TokenIssuer};

/// Longest wait between two reads of the feed when no notification comes.
pub(crate) const POLL_PERIOD: Duration = Duration::from_millis(250);

/// Most changes read at once.
const PAGE: usize = 1000;

/// Changes the feed keeps for replicas that fall behind (pruned by
/// maintenance); one further behind reads everything again.
pub(crate) const KEEP_CHANGES: usize = 100_000;

/// Where this replica stands in its store's change feed.
pub(crate) struct Feed {
    /// Whether the store is shared (else there is nothing to follow and
    /// memory is never stale).
    shared: bool,
    /// The position of the last change applied.
    position: AtomicU64,
    /// When this was made: what `last_read` counts from.
    origin: Instant,
    /// When the feed was last read, in microseconds since `origin`: an
    /// atomic, as every authenticated call reads it.
    last_read: AtomicU64,
    /// How long memory may go without a read before it is refused.
    max_staleness: Duration,
}

impl Feed {
    /// The feed of `store`, read up to `position` just now.
    pub fn new(store: &dyn Store, position: u64, max_staleness: Duration) -> Feed {
        Feed {
            shared: store.shared(),
            position: AtomicU64::new(position),
            origin: Instant::now(),
            last_read: AtomicU64::new(0),
            max_staleness,
        }
    }

    /// Whether there is a feed to follow.
    pub fn shared(&self) -> bool {
        self.shared
    }

    /// Microseconds since `origin`.
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn mark_read(&self) {
        self.last_read.fetch_max(self.now(), Ordering::Relaxed);
    }

    /// How long since the feed was last read.
    fn staleness(&self) -> Duration {
        let last = self.last_read.load(Ordering::Relaxed);
        Duration::from_micros(self.now().saturating_sub(last))
    }

    /// Refuses when memory may be out of date: the store is shared and its
    /// feed has not been read for longer than the bound.
    ///
    /// # Errors
    /// [`Reason::StoreUnavailable`].
    pub fn check(&self) -> Result<(), Error> {
        if !self.shared {
            return Ok(());
        }
        let stale = self.staleness();
        if stale <= self.max_staleness {
            return Ok(());
        }
        Err(Error::refused(
            Reason::StoreUnavailable,
            format!(
                "this replica has not been able to read its database for {}s (store_max_staleness_seconds is {}): it does not verify from memory that may be out of date; retry on another replica or later",
                stale.as_secs(),
                self.max_staleness.as_secs()
            ),
        ))
    }
}

impl Core {
    /// Follows the store's change feed until `stop` turns true (at
    /// shutdown). Does nothing for a store only this process writes.
    pub async fn follow_changes(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        if !self.feed.shared() {
            return;
        }
        let mut failing = false;
        loop {
            let waited = tokio::select! {
                _ = stop.changed() => return,
                waited = self.store.wait_for_change(POLL_PERIOD) => waited,
            };
            if waited.is_err() {
                // No listening connection now: poll on the timer alone.
                tokio::select! {
                    _ = stop.changed() => return,
                    () = tokio::time::sleep(POLL_PERIOD) => {}
                }
            }
            match self.catch_up().await {
                Ok(()) => {
                    if failing {
                        tracing::info!("reading the database's changes again");
                    }
                    failing = false;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(cause = %e, "cannot read the database's changes; verifying from memory until store_max_staleness_seconds, then refusing");
                    }
                    failing = true;
                }
            }
        }
    }

    /// Reads and applies every change after this replica's position.
    ///
    /// # Errors
    /// Storage failed; what was applied stays applied.
    pub(crate) async fn catch_up(&self) -> Result<(), Error> {
        loop {
            let after = self.feed.position.load(Ordering::SeqCst);
            let page = self.store.changes_after(after, PAGE).await?;
            if page.gap {
                tracing::warn!(
                    position = after,
                    "this replica fell behind the database's change feed: reading everything again"
                );
                let position = self.store.change_position().await?;
                self.reload().await?;
                self.feed.position.store(position, Ordering::SeqCst);
                continue;
            }
            let full = page.changes.len() >= PAGE;
            for (position, change) in page.changes {
                self.apply(change).await?;
                self.feed.position.store(position, Ordering::SeqCst);
            }
            if !full {
                self.feed.mark_read();
                return Ok(());
            }
        }
    }

    /// Brings memory in step with one change.
    async fn apply(&self, change: Change) -> Result<(), Error> {
        match change {
            Change::ApiKey { key_id } => {
                let _one = self.key_writes.lock().await;
                if let Some(v) = self.store.api_key(&key_id).await? {
                    let record = v.record;
                    if record.revoked_at.is_some() {
                        self.revocations
                            .revoke_api_key(&record.key_id, record.expires_at);
                    }
                    self.keys.set(record);
                }
            }
            Change::Client { client_id } => {
                let _one = self.client_writes.lock().await;
                if let Some(v) = self.store.client(&client_id).await? {
                    self.note_client(v.record);
                }
            }
            Change::ClientDeleted {
                client_id,
                deleted_at,
            } => {
                let _one = self.client_writes.lock().await;
                self.clients.remove(&client_id);
                self.revocations
                    .revoke_deleted_client(&client_id, deleted_at);
            }
            Change::SessionRevoked {
                session_id,
                expires_at,
            } => {
                self.revocations.revoke_session(&session_id, expires_at);
            }
            Change::TokenRevoked { jti, expires_at } => {
                self.revocations.revoke_token(&jti, expires_at);
            }
            Change::Identity { name } => {
                let _one = self.identity_writes.lock().await;
                let grant = self
                    .store
                    .identities()
                    .await?
                    .into_iter()
                    .find(|g| g.name == name);
                match grant {
                    Some(g) => self.identities.set(g),
                    None => self.identities.remove(&name),
                }
            }
            Change::CertRevoked { serial } => self.identities.revoke(&serial),
            Change::SigningKeys => self.reload_ring().await?,
        }
        Ok(())
    }

    /// An OAuth client as stored now, in the client index and the
    /// revocation index.
    fn note_client(&self, record: crate::store::OAuthClientRecord) {
        self.note_client_tokens(&record);
        self.clients.set(record);
    }

    /// The key ring as stored now.
    async fn reload_ring(&self) -> Result<(), Error> {
        let _one = self.key_changes.lock().await;
        let records = self.store.signing_keys().await?;
        let ring = KeyRing::from_records(
            records,
            &TokenIssuer::accepted_issuers(self.tokens.issuer()),
        )?;
        self.tokens.swap(ring);
        Ok(())
    }

    /// Everything the feed keeps current, read again (after falling behind
    /// its pruning).
    async fn reload(&self) -> Result<(), Error> {
        {
            let _one = self.key_writes.lock().await;
            for record in self.store.api_keys().await? {
                if record.revoked_at.is_some() {
                    self.revocations
                        .revoke_api_key(&record.key_id, record.expires_at);
                }
                self.keys.set(record);
            }
        }
        {
            let _one = self.client_writes.lock().await;
            for record in self.store.clients().await? {
                self.note_client(record);
            }
            for (client_id, deleted_at) in self.store.deleted_clients().await? {
                self.clients.remove(&client_id);
                self.revocations
                    .revoke_deleted_client(&client_id, deleted_at);
            }
        }
        {
            let _one = self.identity_writes.lock().await;
            let grants = self.store.identities().await?;
            self.identities.replace_grants(grants);
            for cert in self.store.revoked_certs().await? {
                self.identities.revoke(&cert.serial);
            }
        }
        for (id, expires_at) in self.store.revoked_sessions().await? {
            self.revocations.revoke_session(&id, expires_at);
        }
        for (jti, expires_at) in self.store.revoked_tokens().await? {
            self.revocations.revoke_token(&jti, expires_at);
        }
        self.reload_ring().await
    }
}
