//! What token verification treats as revoked, held in memory so it never
//! reads storage: revoked sessions, single access tokens revoked by `jti`
//! (RFC 7009, until they expire), OAuth clients whose tokens are revoked
//! (deleted or disabled clients, and clients enabled again, whose older
//! tokens stay revoked), and revoked API keys. Loaded from the store at
//! start and updated on every change; maintenance drops what can no longer
//! matter.
//!
//! The same index is the revocation feed that offline verifiers follow
//! (`WatchRevocations`): every change that makes verification refuse
//! something more gets the next position of this run of the server (its
//! epoch), under the same lock as the change itself, so a snapshot of the
//! index and the position it stands at always agree. The last
//! [`FEED_MEMORY`] entries are kept for verifiers that reconnect, and each
//! new one is broadcast to the open streams.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use tokio::sync::broadcast;

use crate::token::AccessClaims;

/// A client's tokens are all revoked, whenever they were issued.
pub(crate) const ALL_TOKENS: i64 = i64::MAX;

/// Feed entries kept for verifiers that resume after a reconnect.
pub(crate) const FEED_MEMORY: usize = 10_000;

/// Entries an open stream may fall behind by before it is sent a fresh
/// snapshot instead.
const LIVE_CAPACITY: usize = 4096;

/// What a revocation makes verifiers refuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RevocationTarget {
    /// Every token of this session.
    Session(String),
    /// The one access token with this `jti`.
    Token(String),
    /// Every token of this OAuth client issued (`iat`) at or before
    /// `issued_through` ([`i64::MAX`]: all of them). A later entry for the
    /// same client replaces an earlier one.
    Client {
        /// The client's id.
        client_id: String,
        /// Unix seconds.
        issued_through: i64,
    },
    /// This API key.
    ApiKey(String),
}

/// One thing verifiers must refuse, until `expires_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// What is revoked.
    pub target: RevocationTarget,
    /// Unix seconds after which it can no longer matter (every token it
    /// concerns has expired); 0: until further notice.
    pub expires_at: i64,
}

/// A subscription to the revocations of the feed as they happen.
pub(crate) type Live = broadcast::Receiver<Arc<FeedEntry>>;

/// A revocation at its place in the feed.
#[derive(Debug)]
pub(crate) struct FeedEntry {
    /// Its position: one more than the one before it, in this run.
    pub position: u64,
    /// What it revokes.
    pub revocation: Revocation,
}

/// Every revocation that still matters, as of one position of the feed.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// The position of the last revocation it includes (0: none yet).
    pub position: u64,
    /// The revocations.
    pub revocations: Vec<Revocation>,
}

#[derive(Default)]
struct Revoked {
    /// Revoked session → when its newest access token expires.
    sessions: HashMap<String, i64>,
    /// Client id → the newest `iat` of its revoked tokens
    /// ([`ALL_TOKENS`]: every token), and when that can no longer matter
    /// (0: until further notice).
    clients: HashMap<String, (i64, i64)>,
    /// Revoked access tokens: `jti` → the token's `exp`.
    tokens: HashMap<String, i64>,
    /// Revoked API keys → their expiry (0: never).
    api_keys: HashMap<String, i64>,
    /// The position of the last revocation of this run.
    position: u64,
    /// The last [`FEED_MEMORY`] revocations, oldest first.
    recent: VecDeque<Arc<FeedEntry>>,
}

/// The revoked sessions, tokens, client tokens and API keys, and the feed
/// of their revocations.
pub(crate) struct RevocationIndex {
    revoked: RwLock<Revoked>,
    /// The epoch of this run: positions compare only within it.
    epoch: Arc<str>,
    /// Longest token lifetime, seconds: how long a client's revocation
    /// matters after the last token it concerns was issued.
    max_token_ttl: i64,
    live: broadcast::Sender<Arc<FeedEntry>>,
}

impl RevocationIndex {
    /// An empty index for a run identified by `epoch`, whose tokens live
    /// at most `max_token_ttl` seconds.
    pub fn new(epoch: String, max_token_ttl: u32) -> Self {
        RevocationIndex {
            revoked: RwLock::new(Revoked::default()),
            epoch: epoch.into(),
            max_token_ttl: i64::from(max_token_ttl),
            live: broadcast::channel(LIVE_CAPACITY).0,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Revoked> {
        self.revoked.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Revoked> {
        self.revoked.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The epoch of this run.
    pub fn epoch(&self) -> &Arc<str> {
        &self.epoch
    }

    // Loading, at start: what the store holds, without feed entries (a
    // snapshot shows it).

    /// Notes a session revoked before this run, whose newest token expires
    /// at `expires_at`.
    pub fn load_session(&self, session_id: String, expires_at: i64) {
        self.write().sessions.insert(session_id, expires_at);
    }

    /// Notes the revoked tokens of a client before this run (see
    /// [`RevocationIndex::revoke_client_tokens`]).
    pub fn load_client(&self, client_id: String, through: i64) {
        let entry = (through, self.client_horizon(through));
        self.write().clients.insert(client_id, entry);
    }

    /// Notes a client deleted at `deleted_at`, before this run.
    pub fn load_deleted_client(&self, client_id: String, deleted_at: i64) {
        let entry = (ALL_TOKENS, deleted_at.saturating_add(self.max_token_ttl));
        self.write().clients.insert(client_id, entry);
    }

    /// Notes an access token revoked before this run.
    pub fn load_token(&self, jti: String, exp: i64) {
        self.write().tokens.insert(jti, exp);
    }

    /// Notes an API key revoked before this run.
    pub fn load_api_key(&self, key_id: String, expires_at: i64) {
        self.write().api_keys.insert(key_id, expires_at);
    }

    // Recording, during the run: the index and the feed in one step.

    /// Notes `revocation` in the feed (under the caller's write lock).
    fn append(&self, r: &mut Revoked, revocation: Revocation) {
        r.position += 1;
        let entry = Arc::new(FeedEntry {
            position: r.position,
            revocation,
        });
        if r.recent.len() == FEED_MEMORY {
            r.recent.pop_front();
        }
        r.recent.push_back(entry.clone());
        // No stream open is no error.
        let _ = self.live.send(entry);
    }

    /// Revokes a session whose newest access token expires at
    /// `expires_at`. Returns whether it was not revoked before.
    pub fn revoke_session(&self, session_id: &str, expires_at: i64) -> bool {
        let mut r = self.write();
        if r.sessions.contains_key(session_id) {
            return false;
        }
        r.sessions.insert(session_id.to_owned(), expires_at);
        let revocation = Revocation {
            target: RevocationTarget::Session(session_id.to_owned()),
            expires_at,
        };
        self.append(&mut r, revocation);
        true
    }

    /// Revokes the tokens of client `client_id` issued at or before
    /// `through` (Unix seconds; [`ALL_TOKENS`] for all of them), replacing
    /// what was noted for it. Only a change reaches the feed, and every
    /// change does (re-enabling a client narrows what is revoked:
    /// verifiers must learn that too).
    pub fn revoke_client_tokens(&self, client_id: &str, through: i64) {
        self.note_client(client_id, through, self.client_horizon(through));
    }

    /// Revokes every token of a client deleted at `deleted_at`: they all
    /// expire within the longest token lifetime.
    pub fn revoke_deleted_client(&self, client_id: &str, deleted_at: i64) {
        let horizon = deleted_at.saturating_add(self.max_token_ttl);
        self.note_client(client_id, ALL_TOKENS, horizon);
    }

    fn note_client(&self, client_id: &str, through: i64, expires_at: i64) {
        let mut r = self.write();
        if r.clients.get(client_id) == Some(&(through, expires_at)) {
            return;
        }
        r.clients
            .insert(client_id.to_owned(), (through, expires_at));
        let revocation = Revocation {
            target: RevocationTarget::Client {
                client_id: client_id.to_owned(),
                issued_through: through,
            },
            expires_at,
        };
        self.append(&mut r, revocation);
    }

    /// When a client's revocation through `through` can no longer matter:
    /// the longest token lifetime after it; never for all its tokens.
    fn client_horizon(&self, through: i64) -> i64 {
        if through == ALL_TOKENS {
            0
        } else {
            through.saturating_add(self.max_token_ttl)
        }
    }

    /// Revokes the one access token `jti`, which expires at `exp`.
    pub fn revoke_token(&self, jti: &str, exp: i64) {
        let mut r = self.write();
        if r.tokens.contains_key(jti) {
            return;
        }
        r.tokens.insert(jti.to_owned(), exp);
        let revocation = Revocation {
            target: RevocationTarget::Token(jti.to_owned()),
            expires_at: exp,
        };
        self.append(&mut r, revocation);
    }

    /// Notes the API key `key_id` revoked (authentication reads the key's
    /// own record; this is for the feed). Its expiry is `expires_at`.
    pub fn revoke_api_key(&self, key_id: &str, expires_at: i64) {
        let mut r = self.write();
        if r.api_keys.contains_key(key_id) {
            return;
        }
        r.api_keys.insert(key_id.to_owned(), expires_at);
        let revocation = Revocation {
            target: RevocationTarget::ApiKey(key_id.to_owned()),
            expires_at,
        };
        self.append(&mut r, revocation);
    }

    // Forgetting, by maintenance: what can no longer matter.

    /// Forgets a session (it was removed from storage).
    pub fn remove(&self, session_id: &str) -> bool {
        self.write().sessions.remove(session_id).is_some()
    }

    /// Forgets what was noted for client `client_id`.
    pub fn forget_client(&self, client_id: &str) {
        self.write().clients.remove(client_id);
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

    // Reading.

    /// How many revoked sessions are held.
    pub fn len(&self) -> usize {
        self.read().sessions.len()
    }

    /// How many revocation streams follow the index live.
    pub fn subscribers(&self) -> usize {
        self.live.receiver_count()
    }

    /// Whether the session was revoked.
    pub fn contains(&self, session_id: &str) -> bool {
        self.read().sessions.contains_key(session_id)
    }

    /// Whether a token with these claims is revoked: its session was, it
    /// was revoked itself, or its client's tokens up to its `iat` were. One
    /// lock, one to three hash lookups.
    pub fn is_revoked(&self, claims: &AccessClaims) -> bool {
        let r = self.read();
        r.sessions.contains_key(claims.session_id())
            || (!r.tokens.is_empty() && r.tokens.contains_key(claims.jti.as_str()))
            || (!r.clients.is_empty()
                && r.clients
                    .get(claims.client_id.as_str())
                    .is_some_and(|(through, _)| claims.iat <= *through))
    }

    /// Every revocation that still matters at `now`, at the position it
    /// stands at, and a subscription to every later one: taken together,
    /// so nothing falls between them.
    pub fn subscribe(&self, now: i64) -> (Snapshot, Live) {
        let r = self.read();
        let live = self.live.subscribe();
        let matters = |expires_at: i64| expires_at == 0 || expires_at > now;
        let mut revocations = Vec::with_capacity(
            r.sessions.len() + r.clients.len() + r.tokens.len() + r.api_keys.len(),
        );
        let sessions = r.sessions.iter().map(|(id, exp)| Revocation {
            target: RevocationTarget::Session(id.clone()),
            expires_at: *exp,
        });
        let tokens = r.tokens.iter().map(|(jti, exp)| Revocation {
            target: RevocationTarget::Token(jti.clone()),
            expires_at: *exp,
        });
        let clients = r.clients.iter().map(|(id, (through, exp))| Revocation {
            target: RevocationTarget::Client {
                client_id: id.clone(),
                issued_through: *through,
            },
            expires_at: *exp,
        });
        let api_keys = r.api_keys.iter().map(|(id, exp)| Revocation {
            target: RevocationTarget::ApiKey(id.clone()),
            expires_at: *exp,
        });
        revocations.extend(
            sessions
                .chain(tokens)
                .chain(clients)
                .chain(api_keys)
                .filter(|rev| matters(rev.expires_at)),
        );
        let snapshot = Snapshot {
            position: r.position,
            revocations,
        };
        (snapshot, live)
    }

    /// What came after `position` of `epoch`, and a subscription to every
    /// later revocation, if this run still holds all of it: `None` for
    /// another epoch, a position this run never reached, or one too far
    /// behind.
    pub fn resume(&self, epoch: &str, position: u64) -> Option<(Vec<Arc<FeedEntry>>, Live)> {
        if epoch != &*self.epoch {
            return None;
        }
        let r = self.read();
        let oldest = r.recent.front().map_or(r.position + 1, |e| e.position);
        if position > r.position || position.saturating_add(1) < oldest {
            return None;
        }
        let live = self.live.subscribe();
        let after = r
            .recent
            .iter()
            .filter(|e| e.position > position)
            .cloned()
            .collect();
        Some((after, live))
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

    fn index() -> RevocationIndex {
        RevocationIndex::new("e1".to_owned(), 3600)
    }

    fn targets(s: &Snapshot) -> Vec<RevocationTarget> {
        let mut t: Vec<RevocationTarget> = s.revocations.iter().map(|r| r.target.clone()).collect();
        t.sort_by_key(|t| format!("{t:?}"));
        t
    }

    #[test]
    fn sessions_and_client_tokens_up_to_a_time() {
        let index = index();
        index.load_session("ses_gone".to_owned(), 100);
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
        let index = index();
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

    #[test]
    fn each_new_revocation_takes_the_next_position_once() {
        let index = index();
        index.load_session("ses_old".to_owned(), 500);
        let (snapshot, mut live) = index.subscribe(0);
        assert_eq!(snapshot.position, 0, "loading is not a revocation");
        assert_eq!(
            targets(&snapshot),
            [RevocationTarget::Session("ses_old".into())]
        );

        assert!(index.revoke_session("ses_a", 900));
        assert!(!index.revoke_session("ses_a", 900), "once");
        index.revoke_token("at_1", 800);
        index.revoke_token("at_1", 800);
        index.revoke_api_key("key_a", 0);
        index.revoke_api_key("key_a", 0);
        index.revoke_client_tokens("cli_a", ALL_TOKENS);
        index.revoke_client_tokens("cli_a", ALL_TOKENS);
        // Enabled again at 1000: narrower, and news for verifiers.
        index.revoke_client_tokens("cli_a", 1000);
        index.revoke_deleted_client("cli_b", 2000);
        // Disabled, then deleted: the same tokens, but now with an end.
        index.revoke_client_tokens("cli_c", ALL_TOKENS);
        index.revoke_deleted_client("cli_c", 3000);
        index.revoke_deleted_client("cli_c", 3000);

        let mut got = Vec::new();
        while let Ok(e) = live.try_recv() {
            got.push((e.position, e.revocation.clone()));
        }
        let want = [
            (1, RevocationTarget::Session("ses_a".into()), 900),
            (2, RevocationTarget::Token("at_1".into()), 800),
            (3, RevocationTarget::ApiKey("key_a".into()), 0),
            (
                4,
                RevocationTarget::Client {
                    client_id: "cli_a".into(),
                    issued_through: ALL_TOKENS,
                },
                0,
            ),
            (
                5,
                RevocationTarget::Client {
                    client_id: "cli_a".into(),
                    issued_through: 1000,
                },
                4600,
            ),
            (
                6,
                RevocationTarget::Client {
                    client_id: "cli_b".into(),
                    issued_through: ALL_TOKENS,
                },
                5600,
            ),
            (
                7,
                RevocationTarget::Client {
                    client_id: "cli_c".into(),
                    issued_through: ALL_TOKENS,
                },
                0,
            ),
            (
                8,
                RevocationTarget::Client {
                    client_id: "cli_c".into(),
                    issued_through: ALL_TOKENS,
                },
                6600,
            ),
        ]
        .map(|(p, target, expires_at)| (p, Revocation { target, expires_at }));
        assert_eq!(got, want);
    }

    #[test]
    fn a_snapshot_holds_what_still_matters() {
        let index = index();
        index.load_session("ses_old".to_owned(), 50);
        index.revoke_session("ses_new", 500);
        index.revoke_token("at_gone", 99);
        index.revoke_token("at_live", 101);
        index.revoke_api_key("key_never", 0);
        index.revoke_api_key("key_expired", 10);
        index.revoke_client_tokens("cli_off", ALL_TOKENS);
        let (snapshot, _) = index.subscribe(100);
        assert_eq!(snapshot.position, 6);
        assert_eq!(
            targets(&snapshot),
            [
                RevocationTarget::ApiKey("key_never".into()),
                RevocationTarget::Client {
                    client_id: "cli_off".into(),
                    issued_through: ALL_TOKENS
                },
                RevocationTarget::Session("ses_new".into()),
                RevocationTarget::Token("at_live".into()),
            ]
        );
    }

    #[test]
    fn a_resume_gets_what_came_after_while_it_is_held() {
        let index = index();
        for i in 0..5 {
            index.revoke_session(&format!("ses_{i}"), 100);
        }
        let (after, _) = index.resume("e1", 3).unwrap();
        let positions: Vec<u64> = after.iter().map(|e| e.position).collect();
        assert_eq!(positions, [4, 5]);
        assert!(index.resume("e1", 5).unwrap().0.is_empty());
        assert!(index.resume("e1", 0).is_some(), "all of it is held");
        assert!(index.resume("e1", 6).is_none(), "never reached");
        assert!(index.resume("e0", 3).is_none(), "another run");

        for i in 5..FEED_MEMORY + 10 {
            index.revoke_session(&format!("ses_{i}"), 100);
        }
        assert!(index.resume("e1", 3).is_none(), "too far behind");
        let held_from = u64::try_from(FEED_MEMORY + 10 - FEED_MEMORY).unwrap();
        assert!(index.resume("e1", held_from).is_some());
        assert!(index.resume("e1", held_from - 1).is_none());
    }
}
