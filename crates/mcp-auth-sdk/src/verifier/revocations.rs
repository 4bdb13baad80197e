//! What the revocation stream says to refuse, held in memory: revoked
//! sessions, single tokens (`jti`) and OAuth clients' tokens up to an
//! `iat`, with the same semantics as mcp-auth's own index (`is_revoked`).
//! (Signing keys go to the key store, API keys to the cache.) Also the pure decisions around it: whether a batch
//! continues what is held or calls for a fresh snapshot, and whether the
//! stream has been silent too long to trust.

use std::collections::HashMap;

/// One thing the stream says to refuse (a `pb::Revocation`, converted at
/// the stream's edge).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// Every token of this session.
    Session(String),
    /// The one access token with this `jti`.
    Token(String),
    /// The tokens of this OAuth client issued at or before `issued_through`.
    Client {
        /// The client's id (the tokens' `client_id`).
        id: String,
        /// Newest revoked `iat`; `i64::MAX` for all of them.
        issued_through: i64,
    },
    /// An API key: drop its cached verdicts.
    ApiKey(String),
    /// A signing key: refuse what it signs from the entry's `expires_at`
    /// on (at once if 0). Not held here but by the key store.
    SigningKey(String),
}

/// A [`Target`] and when it stops mattering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Revoked {
    /// What is revoked.
    pub target: Target,
    /// Unix seconds after which the tokens concerned have all expired;
    /// 0: until further notice. For a signing key: from when its tokens
    /// are refused (0: at once).
    pub expires_at: i64,
}

/// What applying a batch asks of the rest of the verifier.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Effects {
    /// API keys whose cached verdicts must go.
    pub api_keys: Vec<String>,
    /// Signing keys to refuse, each from when (0: at once).
    pub signing_keys: Vec<(String, i64)>,
}

/// The held revocations; each value is the entry's `expires_at`.
#[derive(Debug, Default)]
pub(crate) struct RevocationSet {
    sessions: HashMap<String, i64>,
    tokens: HashMap<String, i64>,
    /// Client id → (`issued_through`, `expires_at`).
    clients: HashMap<String, (i64, i64)>,
}

impl RevocationSet {
    /// Applies a batch; a snapshot replaces everything held before.
    pub fn apply(&mut self, batch: Vec<Revoked>, snapshot: bool) -> Effects {
        if snapshot {
            *self = RevocationSet::default();
        }
        let mut effects = Effects::default();
        for r in batch {
            let exp = r.expires_at;
            match r.target {
                Target::Session(id) => {
                    self.sessions.insert(id, exp);
                }
                Target::Token(jti) => {
                    self.tokens.insert(jti, exp);
                }
                // As mcp-auth's index: the latest word on a client
                // replaces the earlier one (enabled again after being
                // disabled: only the older tokens stay revoked).
                Target::Client { id, issued_through } => {
                    self.clients.insert(id, (issued_through, exp));
                }
                Target::ApiKey(id) => effects.api_keys.push(id),
                Target::SigningKey(kid) => effects.signing_keys.push((kid, exp)),
            }
        }
        effects
    }

    /// Forgets the entries whose `expires_at` has passed at `now`: the
    /// tokens they concern are expired anyway.
    pub fn prune(&mut self, now: i64) {
        let live = |exp: i64| exp == 0 || exp > now;
        self.sessions.retain(|_, exp| live(*exp));
        self.tokens.retain(|_, exp| live(*exp));
        self.clients.retain(|_, (_, exp)| live(*exp));
    }

    /// Whether a token of session `session_id`, id `jti`, client
    /// `client_id`, issued at `iat`, is revoked: its session was, it was
    /// itself, or its client's tokens up to its `iat` were.
    pub fn is_revoked(&self, session_id: &str, jti: &str, client_id: &str, iat: i64) -> bool {
        (!session_id.is_empty() && self.sessions.contains_key(session_id))
            || (!jti.is_empty() && self.tokens.contains_key(jti))
            || self
                .clients
                .get(client_id)
                .is_some_and(|(through, _)| iat <= *through)
    }

    /// How many entries are held.
    pub fn len(&self) -> usize {
        self.sessions.len() + self.tokens.len() + self.clients.len()
    }
}

/// Where the stream stands: the last batch taken, to resume after.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// The server run of the last batch; empty before the first snapshot.
    pub epoch: String,
    /// The position of the last batch.
    pub position: u64,
}

/// What to do with an arriving batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Apply it; `Progress` becomes this.
    Apply(Progress),
    /// It does not continue what is held (another epoch without a
    /// snapshot, or a gap in positions): drop the stream and ask for a
    /// snapshot.
    Resync,
}

/// Decides on a batch of `count` revocations at `position` in `epoch`,
/// given what was taken so far. Positions grow by one per revocation, so
/// a batch continues the held set when its position is the held one plus
/// its count; a batch behind that (a repeat) is harmless and applied.
pub(crate) fn step(
    held: &Progress,
    epoch: &str,
    position: u64,
    snapshot: bool,
    count: usize,
) -> Step {
    let next = Progress {
        epoch: epoch.to_owned(),
        position,
    };
    if snapshot {
        return Step::Apply(next);
    }
    if held.epoch.is_empty() || held.epoch != epoch {
        return Step::Resync;
    }
    let count = u64::try_from(count).unwrap_or(u64::MAX);
    if position > held.position.saturating_add(count) {
        return Step::Resync;
    }
    Step::Apply(Progress {
        epoch: next.epoch,
        position: position.max(held.position),
    })
}

/// Whether a stream last heard from at `last_heard` (never: `None`) is too
/// stale at `now` to vouch that a token is not revoked.
pub(crate) fn is_stale(last_heard: Option<i64>, now: i64, staleness: i64) -> bool {
    match last_heard {
        None => true,
        Some(t) => now.saturating_sub(t) > staleness,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(target: Target, expires_at: i64) -> Revoked {
        Revoked { target, expires_at }
    }

    #[test]
    fn sessions_tokens_and_clients_up_to_an_iat() {
        let mut set = RevocationSet::default();
        let effects = set.apply(
            vec![
                r(Target::Session("ses_gone".into()), 0),
                r(Target::Token("at_gone".into()), 500),
                r(
                    Target::Client {
                        id: "cli_a".into(),
                        issued_through: 10,
                    },
                    0,
                ),
                r(Target::ApiKey("key_x".into()), 0),
            ],
            true,
        );
        assert_eq!(effects.api_keys, ["key_x"]);
        assert!(set.is_revoked("ses_gone", "at_1", "key_a", 5));
        assert!(set.is_revoked("ses_live", "at_gone", "key_a", 5));
        assert!(!set.is_revoked("ses_live", "at_1", "key_a", 5));
        assert!(set.is_revoked("ses_live", "at_1", "cli_a", 10));
        assert!(!set.is_revoked("ses_live", "at_1", "cli_a", 11));
        assert!(!set.is_revoked("", "", "cli_b", 1));
        // The latest word on a client replaces the earlier one.
        set.apply(
            vec![r(
                Target::Client {
                    id: "cli_a".into(),
                    issued_through: i64::MAX,
                },
                0,
            )],
            false,
        );
        assert!(set.is_revoked("ses_live", "at_1", "cli_a", 1_000_000));
        assert_eq!(set.len(), 3);
    }

    #[test]
    fn a_snapshot_replaces_everything() {
        let mut set = RevocationSet::default();
        set.apply(vec![r(Target::Session("ses_a".into()), 0)], true);
        set.apply(vec![r(Target::Session("ses_b".into()), 0)], false);
        assert!(set.is_revoked("ses_a", "", "", 0));
        set.apply(vec![r(Target::Session("ses_c".into()), 0)], true);
        assert!(!set.is_revoked("ses_a", "", "", 0));
        assert!(!set.is_revoked("ses_b", "", "", 0));
        assert!(set.is_revoked("ses_c", "", "", 0));
    }

    #[test]
    fn entries_are_pruned_once_they_cannot_matter() {
        let mut set = RevocationSet::default();
        let effects = set.apply(
            vec![
                r(Target::Session("ses_short".into()), 100),
                r(Target::Session("ses_forever".into()), 0),
                r(Target::Token("at_1".into()), 101),
                r(
                    Target::Client {
                        id: "cli_a".into(),
                        issued_through: 50,
                    },
                    100,
                ),
                r(Target::SigningKey("kid_1".into()), 100),
            ],
            true,
        );
        assert_eq!(effects.signing_keys, [("kid_1".to_owned(), 100)]);
        set.prune(99);
        assert_eq!(set.len(), 4);
        set.prune(100);
        assert!(!set.is_revoked("ses_short", "", "", 0));
        assert!(set.is_revoked("ses_forever", "", "", 0));
        assert!(set.is_revoked("", "at_1", "", 0));
        assert!(!set.is_revoked("", "", "cli_a", 1));
        set.prune(101);
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn batches_continue_the_held_set_or_call_for_a_snapshot() {
        let none = Progress::default();
        let held = Progress {
            epoch: "e1".into(),
            position: 10,
        };
        let at = |epoch: &str, position| {
            Step::Apply(Progress {
                epoch: epoch.into(),
                position,
            })
        };
        // A snapshot is always taken; anything else needs one first.
        assert_eq!(step(&none, "e1", 7, true, 3), at("e1", 7));
        assert_eq!(step(&none, "e1", 7, false, 0), Step::Resync);
        // Continuing: a heartbeat, then two revocations.
        assert_eq!(step(&held, "e1", 10, false, 0), at("e1", 10));
        assert_eq!(step(&held, "e1", 12, false, 2), at("e1", 12));
        // A gap: something was missed.
        assert_eq!(step(&held, "e1", 13, false, 2), Step::Resync);
        assert_eq!(step(&held, "e1", 11, false, 0), Step::Resync);
        // A repeat is harmless; the position never goes back.
        assert_eq!(step(&held, "e1", 9, false, 1), at("e1", 10));
        // Another run of the server, without a snapshot.
        assert_eq!(step(&held, "e2", 11, false, 1), Step::Resync);
        assert_eq!(step(&held, "e2", 3, true, 3), at("e2", 3));
    }

    #[test]
    fn staleness() {
        assert!(is_stale(None, 100, 30), "before the first snapshot");
        assert!(!is_stale(Some(100), 100, 30));
        assert!(!is_stale(Some(100), 130, 30));
        assert!(is_stale(Some(100), 131, 30));
        // A clock set back: not stale.
        assert!(!is_stale(Some(100), 50, 30));
    }
}
