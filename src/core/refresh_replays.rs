//! Racing refreshes without forks. Real clients refresh from several
//! processes at once with the same refresh token; rotation would then
//! treat the second as reuse and revoke the session. Within the grace
//! window a repeat of the same refresh (the same spent token, the same
//! scopes) gets the very answer the first got (the same access token and
//! the same new refresh token), so both processes go on with one token
//! and no second line of tokens ever exists. Kept in memory for the
//! window only (a few seconds); after it, or without a remembered answer,
//! a spent token is treated as the refresh rules say.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::core::sessions::IssuedSession;
use crate::secret::SecretHash;

/// Most answers remembered at once.
const MAX_REMEMBERED: usize = 100_000;

struct Remembered {
    scopes: Vec<String>,
    audience: Option<String>,
    issued: IssuedSession,
    until: i64,
}

/// Recent refresh answers, by the hash of the refresh token spent.
#[derive(Default)]
pub(crate) struct RefreshReplays {
    by_token: Mutex<HashMap<[u8; 32], Remembered>>,
}

impl RefreshReplays {
    /// Remembers the answer to a refresh of the token hashing to `spent`
    /// asking for `scopes` (and `audience`), until `until`.
    pub fn remember(
        &self,
        spent: &SecretHash,
        scopes: &[String],
        audience: Option<&str>,
        issued: &IssuedSession,
        now: i64,
        until: i64,
    ) {
        let mut map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_REMEMBERED {
            map.retain(|_, r| now < r.until);
            if map.len() >= MAX_REMEMBERED {
                return;
            }
        }
        map.insert(
            spent.0,
            Remembered {
                scopes: scopes.to_vec(),
                audience: audience.map(str::to_owned),
                issued: issued.clone(),
                until,
            },
        );
    }

    /// The answer remembered for a repeat of the refresh of `spent` with
    /// `scopes`, while its window lasts.
    pub fn replay(
        &self,
        spent: &SecretHash,
        scopes: &[String],
        audience: Option<&str>,
        now: i64,
    ) -> Option<IssuedSession> {
        let map = self.by_token.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&spent.0)
            .filter(|r| now < r.until && r.scopes == scopes && r.audience.as_deref() == audience)
            .map(|r| r.issued.clone())
    }

    /// Drops what is over (maintenance).
    pub fn evict(&self, now: i64) {
        self.by_token
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, r| now < r.until);
    }
}
