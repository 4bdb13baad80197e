//! Authorization codes (RFC 6749 section 4.1, OAuth 2.1): issued by the
//! authorization endpoint once the user approved, exchanged once at the
//! token endpoint. A code is `mcp_ac_` and 43 base62 characters (256
//! bits from the OS CSPRNG); only its SHA-256 is kept, in memory, for
//! [`CODE_LIFETIME`] seconds. A code is bound to its client, redirect URI,
//! PKCE challenge, user, scopes and resources.
//!
//! A code is spent by its first exchange. The spent code is remembered,
//! with the session its exchange started, until it would have expired and
//! a minute more: a second exchange of it is refused and revokes that
//! session (RFC 6749 section 4.1.2: the code may have been stolen).
//!
//! Codes live in memory only: a restart forgets the codes not yet
//! exchanged, and the client starts the authorization again. They are
//! never worth keeping longer than a minute.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::secret::SecretHash;

/// Seconds a code may be exchanged after it was issued.
pub(crate) const CODE_LIFETIME: i64 = 60;
/// Seconds a spent code is remembered beyond its lifetime.
const SPENT_MEMORY: i64 = 60;
/// Most codes (pending and spent) held at once.
pub(crate) const MAX_CODES: usize = 100_000;

/// What the user approved at the authorization endpoint, for one code.
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CodeGrant {
    /// What the user approved (its tokens are for one of the resources
    /// each).
    pub approved: ApprovedAuthorization,
    /// When it stops being exchangeable.
    pub expires_at: i64,
}

enum Entry {
    Pending(CodeGrant),
    Spent {
        client_id: String,
        session_id: String,
        forget_at: i64,
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

/// The codes, by hash.
#[derive(Default)]
pub(crate) struct AuthorizationCodes {
    by_hash: Mutex<HashMap<[u8; 32], Entry>>,
}

impl AuthorizationCodes {
    /// Remembers a code; `false` when too many are held (after dropping
    /// what is over).
    pub fn insert(&self, hash: &SecretHash, grant: CodeGrant, now: i64) -> bool {
        let mut map = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CODES {
            map.retain(|_, e| alive(e, now));
            if map.len() >= MAX_CODES {
                return false;
            }
        }
        map.insert(hash.0, Entry::Pending(grant));
        true
    }

    /// Takes the code hashing to `hash` at `now`: a live one becomes spent
    /// by `session_id`.
    pub fn take(&self, hash: &SecretHash, now: i64, session_id: &str) -> Taken {
        let mut map = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = map.get_mut(&hash.0) else {
            return Taken::Unknown;
        };
        match entry {
            Entry::Pending(grant) if now < grant.expires_at => {
                let grant = grant.clone();
                *entry = Entry::Spent {
                    client_id: grant.approved.client_id.clone(),
                    session_id: session_id.to_owned(),
                    forget_at: grant.expires_at + SPENT_MEMORY,
                };
                Taken::Fresh(grant)
            }
            Entry::Pending(_) => Taken::Unknown,
            Entry::Spent {
                client_id,
                session_id,
                forget_at,
            } if now < *forget_at => Taken::Spent {
                client_id: client_id.clone(),
                session_id: session_id.clone(),
            },
            Entry::Spent { .. } => Taken::Unknown,
        }
    }

    /// Drops expired codes and forgotten spent ones (maintenance); returns
    /// how many are left.
    pub fn evict(&self, now: i64) -> usize {
        let mut map = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, e| alive(e, now));
        map.len()
    }
}

fn alive(entry: &Entry, now: i64) -> bool {
    match entry {
        Entry::Pending(g) => now < g.expires_at + SPENT_MEMORY,
        Entry::Spent { forget_at, .. } => now < *forget_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_code_is_taken_once_then_remembered_as_spent_then_forgotten() {
        let codes = AuthorizationCodes::default();
        let h = SecretHash::of(b"mcp_ac_x");
        assert!(codes.insert(&h, grant(160), 100));
        assert_eq!(codes.take(&h, 110, "ses_1"), Taken::Fresh(grant(160)));
        assert_eq!(
            codes.take(&h, 120, "ses_2"),
            Taken::Spent {
                client_id: "cli_a".into(),
                session_id: "ses_1".into()
            }
        );
        assert_eq!(codes.take(&h, 220, "ses_3"), Taken::Unknown);
        assert_eq!(codes.evict(220), 0);
    }

    #[test]
    fn an_expired_code_is_unknown() {
        let codes = AuthorizationCodes::default();
        let h = SecretHash::of(b"mcp_ac_y");
        assert!(codes.insert(&h, grant(160), 100));
        assert_eq!(codes.take(&h, 160, "ses_1"), Taken::Unknown);
        assert_eq!(
            codes.take(&SecretHash::of(b"other"), 100, "s"),
            Taken::Unknown
        );
    }
}
