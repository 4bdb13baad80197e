//! Revoked sessions, held in memory so token verification never reads
//! storage: loaded from the store at start and updated on every revoke;
//! maintenance drops sessions that can no longer matter.

use std::collections::HashSet;
use std::sync::RwLock;

/// Revoked session ids.
#[derive(Default)]
pub(crate) struct RevocationIndex {
    revoked: RwLock<HashSet<String>>,
}

impl RevocationIndex {
    /// The index of `ids`.
    pub fn new(ids: impl IntoIterator<Item = String>) -> Self {
        RevocationIndex {
            revoked: RwLock::new(ids.into_iter().collect()),
        }
    }

    /// Notes a revoked session.
    pub fn insert(&self, session_id: &str) {
        let mut set = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        set.insert(session_id.to_owned());
    }

    /// Forgets a session (it was removed from storage).
    pub fn remove(&self, session_id: &str) -> bool {
        let mut set = self.revoked.write().unwrap_or_else(|p| p.into_inner());
        set.remove(session_id)
    }

    /// How many revoked sessions are held.
    pub fn len(&self) -> usize {
        let set = self.revoked.read().unwrap_or_else(|p| p.into_inner());
        set.len()
    }

    /// Whether the session was revoked.
    pub fn contains(&self, session_id: &str) -> bool {
        let set = self.revoked.read().unwrap_or_else(|p| p.into_inner());
        set.contains(session_id)
    }
}
