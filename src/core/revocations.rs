//! What token verification treats as revoked, held in memory so it never
//! reads storage: revoked sessions, single access tokens revoked by `jti`
//! (RFC 7009, until they expire), and OAuth clients whose tokens are
//! revoked (deleted or disabled clients, and clients enabled again, whose
//! older tokens stay revoked). Loaded from the store at start and updated
//! on every change; maintenance drops what can no longer matter.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;

use crate::token::AccessClaims;

/// A client's tokens are all revoked, whenever they were issued.
pub(crate) const ALL_TOKENS: i64 = i64::MAX;

#[derive(Default)]
struct Revoked {
    sessions: HashSet<String>,
    /// Client id → the newest `iat` of its revoked tokens
    /// ([`ALL_TOKENS`]: every token).
    clients: HashMap<String, i64>,
    /// Revoked access tokens: `jti` → the token's `exp`.
    tokens: HashMap<String, i64>,
}

/// Revoked session ids, and the tokens of OAuth clients that are revoked.
#[derive(Default)]
pub(crate) struct RevocationIndex {
    revoked: RwLock<Revoked>,
}

impl RevocationIndex {
    /// The index of the revoked sessions `ids`.
    pub fn new(ids: impl IntoIterator<Item = String>) -> Self {
        RevocationIndex {
            revoked: RwLock::new(Revoked {
                sessions: ids.into_iter().collect(),
                clients: HashMap::new(),
                tokens: HashMap::new(),
            }),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Revoked> {
        self.revoked.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Revoked> {
        self.revoked.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes a revoked session.
    pub fn insert(&self, session_id: &str) {
        self.write().sessions.insert(session_id.to_owned());
    }

    /// Forgets a session (it was removed from storage).
    pub fn remove(&self, session_id: &str) -> bool {
        self.write().sessions.remove(session_id)
    }

    /// How many revoked sessions are held.
    pub fn len(&self) -> usize {
        self.read().sessions.len()
    }

    /// Whether the session was revoked.
    pub fn contains(&self, session_id: &str) -> bool {
        self.read().sessions.contains(session_id)
    }

    /// Revokes the tokens of client `client_id` issued at or before
    /// `through` (Unix seconds; [`ALL_TOKENS`] for all of them), replacing
    /// what was noted for it.
    pub fn revoke_client_tokens(&self, client_id: &str, through: i64) {
        self.write().clients.insert(client_id.to_owned(), through);
    }

    /// Forgets what was noted for client `client_id`.
    pub fn forget_client(&self, client_id: &str) {
        self.write().clients.remove(client_id);
    }

    /// Revokes the one access token `jti`, which expires at `exp`.
    pub fn revoke_token(&self, jti: &str, exp: i64) {
        self.write().tokens.insert(jti.to_owned(), exp);
    }

    /// Forgets the revoked tokens expired by `now` (they verify as
    /// EXPIRED anyway); returns their `jti`s.
    pub fn forget_expired_tokens(&self, now: i64) -> Vec<String> {
        let mut r = self.write();
        let gone: Vec<String> = r
            .tokens
            .iter()
            .filter(|(_, exp)| **exp <= now)
            .map(|(jti, _)| jti.clone())
            .collect();
        for jti in &gone {
            r.tokens.remove(jti);
        }
        gone
    }

    /// Whether a token with these claims is revoked: its session was, it
    /// was revoked itself, or its client's tokens up to its `iat` were. One
    /// lock, one to three hash lookups.
    pub fn is_revoked(&self, claims: &AccessClaims) -> bool {
        let r = self.read();
        r.sessions.contains(claims.session_id())
            || (!r.tokens.is_empty() && r.tokens.contains_key(claims.jti.as_str()))
            || (!r.clients.is_empty()
                && r.clients
                    .get(claims.client_id.as_str())
                    .is_some_and(|through| claims.iat <= *through))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(sid: &str, client: &str, iat: i64) -> AccessClaims {
        AccessClaims {
            iss: "https://iss".into(),
            sub: "u".into(),
            aud: "a".into(),
            exp: iat + 60,
            iat,
            nbf: iat,
            jti: "at_1".into(),
            sid: Some(sid.into()),
            client_id: client.into(),
            scope: String::new(),
        }
    }

    #[test]
    fn sessions_and_client_tokens_up_to_a_time() {
        let index = RevocationIndex::new(["ses_gone".to_owned()]);
        assert!(index.is_revoked(&claims("ses_gone", "key_a", 5)));
        assert!(!index.is_revoked(&claims("ses_live", "cli_a", 5)));
        index.revoke_client_tokens("cli_a", ALL_TOKENS);
        assert!(index.is_revoked(&claims("ses_live", "cli_a", 5)));
        assert!(!index.is_revoked(&claims("ses_live", "cli_b", 5)));
        index.revoke_client_tokens("cli_a", 10);
        assert!(index.is_revoked(&claims("ses_live", "cli_a", 10)));
        assert!(!index.is_revoked(&claims("ses_live", "cli_a", 11)));
        index.forget_client("cli_a");
        assert!(!index.is_revoked(&claims("ses_live", "cli_a", 5)));
    }

    #[test]
    fn single_tokens_until_they_expire() {
        let index = RevocationIndex::default();
        let c = claims("ses_live", "cli_a", 5);
        assert!(!index.is_revoked(&c));
        index.revoke_token(&c.jti, 65);
        assert!(index.is_revoked(&c));
        let mut other = c.clone();
        other.jti = "at_2".into();
        assert!(!index.is_revoked(&other));
        assert!(index.forget_expired_tokens(64).is_empty());
        assert_eq!(index.forget_expired_tokens(65), ["at_1"]);
        assert!(!index.is_revoked(&c));
    }
}
