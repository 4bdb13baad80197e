//! The change feed of a store several processes share: what each write
//! changed of the records every replica holds in memory (API keys, OAuth
//! clients, identity grants, revocations, the key ring), in commit order,
//! so the other replicas can bring their memory up to date. A backend
//! only one process opens (the embedded one) has no feed: that process
//! made every change itself.
//!
//! A change names what changed, not how: a reader reads the record again
//! (it may have changed once more since; the read is what counts). Only
//! the revocations carry their data, as the in-memory index holds them.

use serde::{Deserialize, Serialize};

/// One change a write committed, as the feed carries it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// An API key was created or changed (scopes, secret, rate limit,
    /// revocation).
    ApiKey {
        /// Its id.
        key_id: String,
    },
    /// An OAuth client was registered or changed (scopes, secrets,
    /// disabled, tokens revoked).
    Client {
        /// Its id.
        client_id: String,
    },
    /// An OAuth client was deleted at `deleted_at`: its tokens are revoked.
    ClientDeleted {
        /// Its id.
        client_id: String,
        /// Unix seconds.
        deleted_at: i64,
    },
    /// A session was revoked; its newest access token expires at
    /// `expires_at`.
    SessionRevoked {
        /// Its id.
        session_id: String,
        /// Unix seconds.
        expires_at: i64,
    },
    /// One access token was revoked (RFC 7009) until `expires_at`.
    TokenRevoked {
        /// Its `jti`.
        jti: String,
        /// Unix seconds.
        expires_at: i64,
    },
    /// An identity grant was created, changed or deleted.
    Identity {
        /// Its name.
        name: String,
    },
    /// A client certificate was revoked.
    CertRevoked {
        /// Its serial, in hex.
        serial: String,
    },
    /// The key ring changed (a key added, retired or removed).
    SigningKeys,
}

/// Changes after a position of the feed, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangePage {
    /// Each change at its position.
    pub changes: Vec<(u64, Change)>,
    /// The position this page reaches: the last change's, or the one asked
    /// after when there was none.
    pub position: u64,
    /// Changes after the position asked were pruned before they were read:
    /// the reader missed some and must read everything again.
    pub gap: bool,
}

impl ChangePage {
    /// No change after `position`.
    pub fn empty(position: u64) -> Self {
        ChangePage {
            changes: Vec::new(),
            position,
            gap: false,
        }
    }
}
