//! The browser flow's state in progress as typed entries of the store's
//! transient state ([`Store::put_transient`] and the rest): each a JSON
//! value of one domain type under a key of one [`TransientKind`], read
//! with the bytes it was read as, so that every change is a
//! compare-and-swap from exactly what was read. Two changes from one read
//! (a double submit, a code sent to two replicas at once) have one
//! winner; the other finds [`Swap::Conflict`].
//!
//! A kind holds at most its cap of live entries: an insertion past it is
//! refused (the caller answers RATE_LIMITED), as the in-memory maps that
//! came before refused one.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::{Store, StoreError, StoreResult, Swap, TransientKind};

/// An entry as it was read: its value, and the bytes a change compares
/// against.
#[derive(Debug)]
pub(crate) struct Held<T> {
    /// The value.
    pub(crate) value: T,
    raw: Vec<u8>,
}

/// The entries of one kind, each a `T`.
pub(crate) struct Entries<T> {
    store: Arc<dyn Store>,
    kind: TransientKind,
    /// What they are, for the error of one that does not decode.
    what: &'static str,
    /// Most live entries held at once.
    cap: usize,
    of: PhantomData<fn() -> T>,
}

fn encode<T: Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(format!("encode: {e}")))
}

impl<T: Serialize + DeserializeOwned> Entries<T> {
    /// The entries of `kind` in `store`, at most `cap` live at once.
    pub(crate) fn new(
        store: Arc<dyn Store>,
        kind: TransientKind,
        what: &'static str,
        cap: usize,
    ) -> Self {
        Entries {
            store,
            kind,
            what,
            cap,
            of: PhantomData,
        }
    }

    fn decode(&self, raw: Vec<u8>) -> StoreResult<Held<T>> {
        let value = serde_json::from_slice(&raw).map_err(|e| StoreError::Corrupt {
            what: self.what,
            message: e.to_string(),
        })?;
        Ok(Held { value, raw })
    }

    /// The entry under `key`, unless there is none or it ended by `now`.
    pub(crate) async fn get(&self, key: &[u8], now: i64) -> StoreResult<Option<Held<T>>> {
        self.store
            .transient(self.kind, key, now)
            .await?
            .map(|raw| self.decode(raw))
            .transpose()
    }

    /// Stores `value` under `key` (a fresh random key) until `expires_at`;
    /// `false` when the cap is reached (or, never in practice, the key is
    /// taken).
    pub(crate) async fn insert(
        &self,
        key: &[u8],
        value: &T,
        expires_at: i64,
        now: i64,
    ) -> StoreResult<bool> {
        if self
            .store
            .count_transients(self.kind, now, self.cap)
            .await?
            >= self.cap
        {
            return Ok(false);
        }
        let put = self
            .store
            .put_transient(self.kind, key, &encode(value)?, expires_at, now)
            .await?;
        Ok(put == Swap::Done)
    }

    /// Replaces `held` (under `key`) with `new`, ending at `expires_at`,
    /// unless it changed since it was read.
    pub(crate) async fn swap(
        &self,
        key: &[u8],
        held: &Held<T>,
        new: &T,
        expires_at: i64,
    ) -> StoreResult<Swap> {
        self.store
            .swap_transient(self.kind, key, &held.raw, &encode(new)?, expires_at)
            .await
    }

    /// Removes `held` (under `key`), unless it changed since it was read.
    pub(crate) async fn remove(&self, key: &[u8], held: &Held<T>) -> StoreResult<Swap> {
        self.store.remove_transient(self.kind, key, &held.raw).await
    }

    /// Removes the entry under `key` if it still is `value` (one this
    /// process stored: its encoding is the same bytes).
    pub(crate) async fn remove_value(&self, key: &[u8], value: &T) -> StoreResult<Swap> {
        self.store
            .remove_transient(self.kind, key, &encode(value)?)
            .await
    }

    /// Every live entry, with its key.
    pub(crate) async fn all(&self, now: i64) -> StoreResult<Vec<(Vec<u8>, Held<T>)>> {
        self.store
            .transients(self.kind, now)
            .await?
            .into_iter()
            .map(|(key, raw)| Ok((key, self.decode(raw)?)))
            .collect()
    }
}
