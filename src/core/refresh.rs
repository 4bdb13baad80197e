//! The refresh decision, as a pure function: given a session as stored,
//! the presented refresh token and the time, what happens. The operation
//! loads the session, calls [`decide`], and writes what it says with one
//! conditional write; a lost race is decided again on the fresh record.

use crate::core::error::{Error, Reason};
use crate::core::policy;
use crate::secret::SecretHash;
use crate::store::{REFRESH_HISTORY, RefreshToken, SessionRecord};
use crate::untrusted::Echo;

/// The rules a refresh is decided by.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RefreshRules {
    /// Window in which a spent token may be presented again (clients that
    /// race), seconds.
    pub reuse_grace: i64,
    /// A session not refreshed for this long is over, seconds.
    pub idle_timeout: i64,
    /// Token lifetime of sessions that did not ask for one.
    pub default_ttl: u32,
    /// Longest token lifetime today.
    pub max_ttl: u32,
}

impl RefreshRules {
    /// The lifetime of `session`'s access tokens: what it asked for at
    /// creation, within today's maximum; older sessions get the default.
    pub fn token_ttl(&self, session: &SessionRecord) -> i64 {
        i64::from(if session.token_ttl > 0 {
            session.token_ttl.min(self.max_ttl)
        } else {
            self.default_ttl
        })
    }
}

/// What a refresh does.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Write `session` (the presented token spent, `child` added) and issue
    /// an access token expiring at `exp`.
    Mint {
        /// The session to write.
        session: SessionRecord,
        /// Expiry of the new access token.
        exp: i64,
    },
    /// A spent token came back outside the grace window: write `session`,
    /// now revoked, and refuse with REFRESH_TOKEN_REUSED.
    Reused {
        /// The revoked session to write.
        session: SessionRecord,
    },
    /// Write nothing and refuse.
    Refuse(Error),
}

/// Decides a refresh of `session` with the token hashing to `presented`,
/// by `creator` (the id of the credential sent with it, if any), narrowing to `wanted`
/// scopes (all of the session's if empty), at `now`; `child` is the new
/// refresh token to add if one is minted.
pub(crate) fn decide(
    session: &SessionRecord,
    presented: &SecretHash,
    creator: Option<&str>,
    wanted: &[String],
    child: RefreshToken,
    now: i64,
    rules: &RefreshRules,
) -> Verdict {
    let Some(token) = session.refresh_tokens.iter().find(|t| t.hash == *presented) else {
        return Verdict::Refuse(Error::refused(
            Reason::RefreshTokenInvalid,
            "unknown refresh token",
        ));
    };
    if let Err(e) = policy::may_refresh(creator, session) {
        return Verdict::Refuse(e);
    }
    if session.revoked_at.is_some() {
        return Verdict::Refuse(Error::refused(
            Reason::SessionRevoked,
            format!("session {} was revoked", session.session_id),
        ));
    }
    if now >= session.session_expires_at || now >= session.last_refreshed_at + rules.idle_timeout {
        return Verdict::Refuse(Error::refused(
            Reason::SessionExpired,
            format!(
                "session {} has expired (absolute lifetime or idle timeout); sign in again",
                session.session_id
            ),
        ));
    }
    if let Some(spent) = token.spent_at {
        if now - spent >= rules.reuse_grace {
            let mut revoked = session.clone();
            revoked.revoked_at = Some(now);
            return Verdict::Reused { session: revoked };
        }
        // Within the window: the operation answers a repeat of the same
        // refresh with the same tokens (see `refresh_replays`); anything
        // else is refused without harm, and never mints a second line of
        // tokens.
        return Verdict::Refuse(Error::refused(
            Reason::RefreshTokenInvalid,
            "this refresh token was just used: go on with the refresh token its refresh returned",
        ));
    }
    if let Some(extra) = wanted.iter().find(|w| !session.scopes.contains(w)) {
        return Verdict::Refuse(Error::invalid(
            "scopes",
            format!(
                "{} is not a scope of the session; refresh may only narrow",
                Echo(extra)
            ),
        ));
    }
    let ttl = rules.token_ttl(session);
    let exp = (now + ttl).min(session.session_expires_at);
    let mut next = session.clone();
    for t in next.refresh_tokens.iter_mut() {
        if t.hash == *presented {
            t.spent_at.get_or_insert(now);
        }
    }
    next.refresh_tokens.push(child);
    let excess = next.refresh_tokens.len().saturating_sub(REFRESH_HISTORY);
    next.refresh_tokens.drain(..excess);
    next.last_refreshed_at = now;
    next.expires_at = next.expires_at.max(exp);
    Verdict::Mint { session: next, exp }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: RefreshRules = RefreshRules {
        reuse_grace: 2,
        idle_timeout: 100,
        default_ttl: 50,
        max_ttl: 60,
    };

    fn token(name: &str, issued_at: i64) -> RefreshToken {
        RefreshToken {
            hash: SecretHash::of(name.as_bytes()),
            issued_at,
            spent_at: None,
        }
    }

    fn session() -> SessionRecord {
        SessionRecord {
            session_id: "ses_1".into(),
            subject: "u".into(),
            client_id: "key_a".into(),
            scopes: vec!["a".into(), "b".into()],
            audience: "aud".into(),
            created_at: 1_000,
            expires_at: 1_050,
            revoked_at: None,
            session_expires_at: 2_000,
            last_refreshed_at: 1_000,
            token_ttl: 0,
            oauth: false,
            resources: Vec::new(),
            refresh_tokens: vec![token("rt1", 1_000)],
        }
    }

    fn h(name: &str) -> SecretHash {
        SecretHash::of(name.as_bytes())
    }

    fn refused(v: Verdict) -> Reason {
        match v {
            Verdict::Refuse(e) => e.reason(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_live_token_mints_a_child_and_is_spent() {
        let s = session();
        let Verdict::Mint { session: next, exp } =
            decide(&s, &h("rt1"), None, &[], token("rt2", 1_010), 1_010, &RULES)
        else {
            panic!("expected a mint");
        };
        assert_eq!(exp, 1_060);
        assert_eq!(next.expires_at, 1_060);
        assert_eq!(next.last_refreshed_at, 1_010);
        assert_eq!(next.refresh_tokens.len(), 2);
        assert_eq!(next.refresh_tokens[0].spent_at, Some(1_010));
        assert_eq!(next.refresh_tokens[1].hash, h("rt2"));
        assert_eq!(next.refresh_tokens[1].spent_at, None);
    }

    #[test]
    fn a_spent_token_within_grace_is_refused_harmlessly_and_outside_revokes() {
        let mut s = session();
        s.refresh_tokens[0].spent_at = Some(1_010);
        s.refresh_tokens.push(token("rt2", 1_010));
        assert_eq!(
            refused(decide(
                &s,
                &h("rt1"),
                None,
                &[],
                token("rt3", 1_011),
                1_011,
                &RULES
            )),
            Reason::RefreshTokenInvalid
        );
        match decide(&s, &h("rt1"), None, &[], token("rt3", 1_012), 1_012, &RULES) {
            Verdict::Reused { session } => assert_eq!(session.revoked_at, Some(1_012)),
            other => panic!("expected reuse, got {other:?}"),
        }
    }

    #[test]
    fn refusals_in_order() {
        let s = session();
        let child = || token("x", 0);
        assert_eq!(
            refused(decide(&s, &h("nope"), None, &[], child(), 1_010, &RULES)),
            Reason::RefreshTokenInvalid
        );
        let other = "key_b";
        assert_eq!(
            refused(decide(
                &s,
                &h("rt1"),
                Some(other),
                &[],
                child(),
                1_010,
                &RULES
            )),
            Reason::NotSessionCreator
        );
        let mut revoked = s.clone();
        revoked.revoked_at = Some(1_005);
        assert_eq!(
            refused(decide(
                &revoked,
                &h("rt1"),
                None,
                &[],
                child(),
                1_010,
                &RULES
            )),
            Reason::SessionRevoked
        );
        assert_eq!(
            refused(decide(&s, &h("rt1"), None, &[], child(), 1_100, &RULES)),
            Reason::SessionExpired,
            "idle timeout"
        );
        let mut young = s.clone();
        young.last_refreshed_at = 1_990;
        assert_eq!(
            refused(decide(&young, &h("rt1"), None, &[], child(), 2_000, &RULES)),
            Reason::SessionExpired,
            "absolute lifetime"
        );
        assert_eq!(
            refused(decide(
                &s,
                &h("rt1"),
                None,
                &["c".to_owned()],
                child(),
                1_010,
                &RULES
            )),
            Reason::InvalidField,
            "refresh may only narrow"
        );
    }

    #[test]
    fn token_lifetime_is_the_sessions_within_todays_maximum() {
        let mut s = session();
        s.token_ttl = 90;
        s.expires_at = 0;
        let Verdict::Mint { exp, .. } =
            decide(&s, &h("rt1"), None, &[], token("rt2", 0), 1_010, &RULES)
        else {
            panic!("expected a mint");
        };
        assert_eq!(exp, 1_070, "90 asked, 60 allowed today");
        s.session_expires_at = 1_020;
        let Verdict::Mint { exp, .. } =
            decide(&s, &h("rt1"), None, &[], token("rt2", 0), 1_010, &RULES)
        else {
            panic!("expected a mint");
        };
        assert_eq!(exp, 1_020, "never past the session's end");
    }

    #[test]
    fn history_is_bounded() {
        let mut s = session();
        for i in 0..REFRESH_HISTORY * 2 {
            let current = s.refresh_tokens.last().unwrap().hash;
            let now = 1_000 + i as i64;
            s.last_refreshed_at = now;
            match decide(
                &s,
                &current,
                None,
                &[],
                token(&format!("t{i}"), now),
                now,
                &RULES,
            ) {
                Verdict::Mint { session, .. } => s = session,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(s.refresh_tokens.len(), REFRESH_HISTORY);
        assert!(s.refresh_tokens.last().unwrap().spent_at.is_none());
    }
}
