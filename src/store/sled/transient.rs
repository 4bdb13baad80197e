//! Transient entries in the `transient` tree: the key is the kind's number
//! and the caller's key; the stored value is the entry's end (Unix
//! seconds, eight bytes big endian) and the caller's value. Every
//! conditional write is a loop of a read and sled's compare-and-swap of the
//! whole stored bytes, so it is decided against exactly what was read,
//! without the write lock; each write is flushed before it returns, as
//! every write of this backend.

use super::SledStore;
use crate::store::model::{Swap, TransientKind};
use crate::store::{StoreError, StoreResult};

/// The tree's key of `key` of `kind`.
fn tree_key(kind: TransientKind, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len());
    k.push(kind.number());
    k.extend_from_slice(key);
    k
}

/// The stored bytes of `value` ending at `expires_at`.
fn stored(value: &[u8], expires_at: i64) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + value.len());
    v.extend_from_slice(&expires_at.to_be_bytes());
    v.extend_from_slice(value);
    v
}

/// The end and the value of stored bytes.
fn split(bytes: &[u8]) -> StoreResult<(i64, &[u8])> {
    let (end, value) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| StoreError::Corrupt {
            what: "transient entry",
            message: format!("{} bytes, shorter than its end", bytes.len()),
        })?;
    Ok((i64::from_be_bytes(*end), value))
}

impl SledStore {
    /// Writes `new` (or removes, `None`) at `key` if the stored bytes still
    /// are those `current` holds; whether it did. Durable when it did.
    async fn cas(
        &self,
        key: &[u8],
        current: sled::IVec,
        new: Option<Vec<u8>>,
    ) -> StoreResult<bool> {
        match self.transient.compare_and_swap(key, Some(current), new)? {
            Ok(()) => {
                self.durable().await?;
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    }

    pub(super) async fn put_transient_entry(
        &self,
        kind: TransientKind,
        key: &[u8],
        value: &[u8],
        expires_at: i64,
        now: i64,
    ) -> StoreResult<Swap> {
        let key = tree_key(kind, key);
        let new = stored(value, expires_at);
        loop {
            let current = self.transient.get(&key)?;
            if let Some(c) = &current {
                if split(c)?.0 > now {
                    return Ok(Swap::Conflict);
                }
            }
            if self
                .transient
                .compare_and_swap(&key, current, Some(new.as_slice()))?
                .is_ok()
            {
                self.durable().await?;
                return Ok(Swap::Done);
            }
            // Changed since it was read: look again.
        }
    }

    pub(super) fn transient_entry(
        &self,
        kind: TransientKind,
        key: &[u8],
        now: i64,
    ) -> StoreResult<Option<Vec<u8>>> {
        let Some(bytes) = self.transient.get(tree_key(kind, key))? else {
            return Ok(None);
        };
        let (end, value) = split(&bytes)?;
        Ok((end > now).then(|| value.to_vec()))
    }

    /// Replaces (`new` some) or removes the entry at `key` of `kind` if its
    /// value still is `expected`.
    pub(super) async fn swap_transient_entry(
        &self,
        kind: TransientKind,
        key: &[u8],
        expected: &[u8],
        new: Option<(&[u8], i64)>,
    ) -> StoreResult<Swap> {
        let key = tree_key(kind, key);
        let new = new.map(|(value, expires_at)| stored(value, expires_at));
        loop {
            let Some(current) = self.transient.get(&key)? else {
                return Ok(Swap::Conflict);
            };
            if split(&current)?.1 != expected {
                return Ok(Swap::Conflict);
            }
            if self.cas(&key, current, new.clone()).await? {
                return Ok(Swap::Done);
            }
            // Changed since it was read (perhaps only its end): look again.
        }
    }

    pub(super) fn count_transient_entries(
        &self,
        kind: TransientKind,
        now: i64,
        limit: usize,
    ) -> StoreResult<usize> {
        let mut n = 0;
        for item in self.transient.scan_prefix([kind.number()]) {
            if n >= limit {
                break;
            }
            let (_, v) = item?;
            if split(&v)?.0 > now {
                n += 1;
            }
        }
        Ok(n)
    }

    pub(super) fn transient_entries(
        &self,
        kind: TransientKind,
        now: i64,
    ) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut live = Vec::new();
        for item in self.transient.scan_prefix([kind.number()]) {
            let (k, v) = item?;
            let (end, value) = split(&v)?;
            if end > now {
                live.push((k[1..].to_vec(), value.to_vec()));
            }
        }
        Ok(live)
    }

    pub(super) async fn evict_transient_entries(&self, now: i64) -> StoreResult<usize> {
        let mut gone = 0;
        for item in self.transient.iter() {
            let (k, v) = item?;
            if split(&v)?.0 <= now
                && self
                    .transient
                    .compare_and_swap(&k, Some(&v), None as Option<&[u8]>)?
                    .is_ok()
            {
                gone += 1;
            }
        }
        if gone > 0 {
            self.durable().await?;
        }
        Ok(gone)
    }
}
