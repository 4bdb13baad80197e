//! Authorization codes (RFC 6749 section 4.1, OAuth 2.1): issued by the
//! authorization endpoint once the user approved, exchanged once at the
//! token endpoint. A code is `mcp_ac_` and 43 base62 characters (256
//! bits from the OS CSPRNG); only its SHA-256 is kept, in the store (so
//! any replica of a shared one exchanges a code another issued), for
//! [`CODE_LIFETIME`] seconds. A code is bound to its client, redirect URI,
//! PKCE challenge, user, scopes and resources.
//!
//! A code is spent by its first exchange: a compare-and-swap in the store
//! from its pending entry to its spent one, so of two exchanges at once,
//! on one replica or two, exactly one wins. The spent code is remembered,
//! with the session its exchange started, until it would have expired and
//! a minute more: a second exchange of it is refused and revokes that
//! session (RFC 6749 section 4.1.2: the code may have been stolen). A
//! second exchange that comes while the first is still making its
//! session finds nothing to revoke yet; it marks the code replayed, and
//! the first, once its session is stored, looks for the mark and revokes
//! the session itself ([`AuthorizationCodes::replayed`]): whichever comes
//! last revokes.
//!
//! Codes are transient entries of the store, never worth keeping longer
//! than a minute: a code not exchanged in time is unknown, and the client
//! starts the authorization again.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::core::transient::Entries;
use crate::secret::SecretHash;
use crate::store::{Store, StoreResult, Swap, TransientKind};

/// Seconds a code may be exchanged after it was issued.
pub(crate) const CODE_LIFETIME: i64 = 60;
/// Seconds a spent code is remembered beyond its lifetime.
const SPENT_MEMORY: i64 = 60;
/// Most codes (pending and spent) held at once: with codes living two
/// minutes in all, room for over 800 authorizations a second.
pub(crate) const MAX_CODES: usize = 100_000;

/// What the user approved at the authorization endpoint, for one code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovedAuthorization {
    /// The client.
    pub client_id: String,
    /// The redirect URI of the request (already matched against the
    /// client's).
    pub redirect_uri: String,
    /// The PKCE challenge (S256).
    pub code_challenge: String,
    /// The user.
    pub subject: String,
    /// The scopes approved (within the client's).
    pub scopes: Vec<String>,
    /// The resources approved (within the client's; at least one).
    pub resources: Vec<String>,
}

/// What a code stands for: what was approved, until when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CodeGrant {
    /// What the user approved (its tokens are for one of the resources
    /// each).
    pub approved: ApprovedAuthorization,
    /// When it stops being exchangeable.
    pub expires_at: i64,
}

/// A code's entry in the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Entry {
    /// Issued, not yet exchanged.
    Pending(CodeGrant),
    /// Exchanged: the session that exchange started.
    Spent {
        client_id: String,
        session_id: String,
        /// When it is forgotten (its entry's end).
        forget_at: i64,
        /// Whether it was presented again since.
        replayed: bool,
    },
}

/// What taking a code found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// A live code, now spent (by `session_id`, which its exchange must
    /// start).
    Fresh(CodeGrant),
    /// A code exchanged before: the session it started.
    Spent {
        /// The client it was issued to.
        client_id: String,
        /// The session its first exchange started.
        session_id: String,
    },
    /// No such code, or it expired.
    Unknown,
}

/// The codes, by hash, in the store.
pub(crate) struct AuthorizationCodes {
    entries: Entries<Entry>,
}

impl AuthorizationCodes {
    /// The codes kept in `store`.
    pub(crate) fn new(store: Arc<dyn Store>) -> Self {
        AuthorizationCodes {
            entries: Entries::new(store, TransientKind::Code, "authorization code", MAX_CODES),
        }
    }

    /// Remembers a code; `false` when too many are held.
    ///
    /// # Errors
    /// The store's.
    pub async fn insert(&self, hash: &SecretHash, grant: CodeGrant, now: i64) -> StoreResult<bool> {
        let forget_at = grant.expires_at + SPENT_MEMORY;
        self.entries
            .insert(&hash.0, &Entry::Pending(grant), forget_at, now)
            .await
    }

    /// Takes the code hashing to `hash` at `now`: a live one becomes spent
    /// by `session_id` (one taker wins; the others find it spent); a spent
    /// one is marked replayed.
    ///
    /// # Errors
    /// The store's.
    pub async fn take(&self, hash: &SecretHash, now: i64, session_id: &str) -> StoreResult<Taken> {
        // An entry only moves on (pending, spent, replayed), so a swap
        // lost to another taker is tried again at most twice.
        for _ in 0..3 {
            let Some(held) = self.entries.get(&hash.0, now).await? else {
                return Ok(Taken::Unknown);
            };
            match &held.value {
                Entry::Pending(grant) if now < grant.expires_at => {
                    let forget_at = grant.expires_at + SPENT_MEMORY;
                    let spent = Entry::Spent {
                        client_id: grant.approved.client_id.clone(),
                        session_id: session_id.to_owned(),
                        forget_at,
                        replayed: false,
                    };
                    if self.entries.swap(&hash.0, &held, &spent, forget_at).await? == Swap::Done {
                        return Ok(Taken::Fresh(grant.clone()));
                    }
                }
                Entry::Pending(_) => return Ok(Taken::Unknown),
                Entry::Spent {
                    client_id,
                    session_id,
                    forget_at,
                    replayed,
                } => {
                    let taken = Taken::Spent {
                        client_id: client_id.clone(),
                        session_id: session_id.clone(),
                    };
                    if *replayed {
                        return Ok(taken);
                    }
                    let marked = Entry::Spent {
                        client_id: client_id.clone(),
                        session_id: session_id.clone(),
                        forget_at: *forget_at,
                        replayed: true,
                    };
                    if self
                        .entries
                        .swap(&hash.0, &held, &marked, *forget_at)
                        .await?
                        == Swap::Done
                    {
                        return Ok(taken);
                    }
                }
            }
        }
        Ok(Taken::Unknown)
    }

    /// Whether the code hashing to `hash`, spent, was presented again: its
    /// exchange, having stored its session, revokes it then.
    ///
    /// # Errors
    /// The store's.
    pub async fn replayed(&self, hash: &SecretHash, now: i64) -> StoreResult<bool> {
        Ok(matches!(
            self.entries.get(&hash.0, now).await?.map(|h| h.value),
            Some(Entry::Spent { replayed: true, .. })
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Durability;

    fn grant(expires_at: i64) -> CodeGrant {
        CodeGrant {
            approved: ApprovedAuthorization {
                client_id: "cli_a".into(),
                redirect_uri: "https://app.example/cb".into(),
                code_challenge: "c".into(),
                subject: "alice".into(),
                scopes: vec!["tools:read".into()],
                resources: vec!["https://mcp.example.com".into()],
            },
            expires_at,
        }
    }

    fn codes() -> (tempfile::TempDir, AuthorizationCodes) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(dir.path(), Durability::Durable).unwrap();
        (dir, AuthorizationCodes::new(store))
    }

    #[tokio::test]
    async fn a_code_is_taken_once_then_remembered_as_spent_and_replayed_then_forgotten() {
        let (_dir, codes) = codes();
        let h = SecretHash::of(b"mcp_ac_x");
        assert!(codes.insert(&h, grant(160), 100).await.unwrap());
        assert_eq!(
            codes.take(&h, 110, "ses_1").await.unwrap(),
            Taken::Fresh(grant(160))
        );
        assert!(!codes.replayed(&h, 110).await.unwrap());
        let spent = Taken::Spent {
            client_id: "cli_a".into(),
            session_id: "ses_1".into(),
        };
        assert_eq!(codes.take(&h, 120, "ses_2").await.unwrap(), spent);
        assert!(codes.replayed(&h, 120).await.unwrap(), "marked replayed");
        assert_eq!(
            codes.take(&h, 130, "ses_3").await.unwrap(),
            spent,
            "and spent still"
        );
        assert_eq!(codes.take(&h, 220, "ses_4").await.unwrap(), Taken::Unknown);
    }

    #[tokio::test]
    async fn an_expired_code_is_unknown() {
        let (_dir, codes) = codes();
        let h = SecretHash::of(b"mcp_ac_y");
        assert!(codes.insert(&h, grant(160), 100).await.unwrap());
        assert_eq!(codes.take(&h, 160, "ses_1").await.unwrap(), Taken::Unknown);
        assert_eq!(
            codes
                .take(&SecretHash::of(b"other"), 100, "s")
                .await
                .unwrap(),
            Taken::Unknown
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_many_takers_at_once_one_gets_the_code_and_the_others_find_it_spent() {
        let (_dir, codes) = codes();
        let codes = Arc::new(codes);
        let h = SecretHash::of(b"mcp_ac_z");
        assert!(codes.insert(&h, grant(160), 100).await.unwrap());
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let codes = codes.clone();
                tokio::spawn(async move { codes.take(&h, 110, &format!("ses_{i}")).await.unwrap() })
            })
            .collect();
        let mut fresh = 0;
        for t in tasks {
            match t.await.unwrap() {
                Taken::Fresh(_) => fresh += 1,
                Taken::Spent { .. } => {}
                Taken::Unknown => panic!("a racing taker found no code"),
            }
        }
        assert_eq!(fresh, 1);
        assert!(codes.replayed(&h, 110).await.unwrap());
    }
}
