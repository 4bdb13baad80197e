//! The sled backend's session indexes, in memory: sessions by subject and
//! by creator, and the revoked ones. Rebuilt from the `sessions` tree at
//! open (one pass, a few seconds for a million sessions), so a session is
//! one record on disk and creating it is one write.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use serde::Deserialize;

use crate::store::model::SessionRecord;

/// The fields of a stored session the indexes need; decoding only these
/// keeps the pass at open cheap.
#[derive(Deserialize)]
pub(super) struct Indexed<'a> {
    #[serde(borrow)]
    pub session_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub subject: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub client_id: std::borrow::Cow<'a, str>,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// Session ids by subject and by creator, and revoked sessions with the
/// expiry of their newest token.
///
/// Sized for millions of sessions: subjects are many with few sessions
/// each, so they share one ordered set of (subject, session id) pairs
/// rather than a set each; creators are few, so each has its set and its
/// name is stored once. A session id is one allocation shared by all
/// three.
#[derive(Default)]
pub(super) struct SessionIndex {
    by_subject: BTreeSet<(Arc<str>, Arc<str>)>,
    by_client: HashMap<Arc<str>, BTreeSet<Arc<str>>>,
    revoked: HashMap<Arc<str>, i64>,
}

impl SessionIndex {
    /// Indexes a session.
    pub fn insert(&mut self, s: &Indexed<'_>) {
        let id: Arc<str> = Arc::from(&*s.session_id);
        self.by_subject.insert((Arc::from(&*s.subject), id.clone()));
        match self.by_client.get_mut(&*s.client_id) {
            Some(set) => {
                set.insert(id.clone());
            }
            None => {
                self.by_client
                    .insert(Arc::from(&*s.client_id), BTreeSet::from([id.clone()]));
            }
        }
        if s.revoked_at.is_some() {
            self.revoked.insert(id, s.expires_at);
        }
    }

    /// Indexes a session record.
    pub fn insert_record(&mut self, r: &SessionRecord) {
        self.insert(&indexed(r));
    }

    /// Notes a revocation (or a revoked session's new expiry).
    pub fn set_revoked(&mut self, id: &str, expires_at: i64) {
        self.revoked.insert(Arc::from(id), expires_at);
    }

    /// Forgets a session.
    pub fn remove(&mut self, r: &SessionRecord) {
        self.by_subject.remove(&(
            Arc::from(r.subject.as_str()),
            Arc::from(r.session_id.as_str()),
        ));
        if let Some(set) = self.by_client.get_mut(r.client_id.as_str()) {
            set.remove(r.session_id.as_str());
            if set.is_empty() {
                self.by_client.remove(r.client_id.as_str());
            }
        }
        self.revoked.remove(r.session_id.as_str());
    }

    /// Up to `limit` session ids of `subject` (or, with `by_client`, of the
    /// creator `key`) after `after`, in order.
    pub fn ids_after(
        &self,
        by_client: bool,
        key: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<Arc<str>> {
        if by_client {
            let Some(set) = self.by_client.get(key) else {
                return Vec::new();
            };
            let start = match after {
                Some(a) => Bound::Excluded(a),
                None => Bound::Unbounded,
            };
            return set
                .range::<str, _>((start, Bound::Unbounded))
                .take(limit)
                .cloned()
                .collect();
        }
        let subject: Arc<str> = Arc::from(key);
        let start = match after {
            Some(a) => Bound::Excluded((subject.clone(), Arc::from(a))),
            None => Bound::Included((subject.clone(), Arc::from(""))),
        };
        self.by_subject
            .range((start, Bound::Unbounded))
            .take_while(|(s, _)| *s == subject)
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// Every session id of `subject` (or of the creator `key`).
    pub fn all_ids(&self, by_client: bool, key: &str) -> Vec<String> {
        self.ids_after(by_client, key, None, usize::MAX)
            .into_iter()
            .map(|id| id.to_string())
            .collect()
    }

    /// Revoked sessions and the expiry of their newest token.
    pub fn revoked(&self) -> Vec<(String, i64)> {
        self.revoked
            .iter()
            .map(|(id, exp)| (id.to_string(), *exp))
            .collect()
    }
}

fn indexed(r: &SessionRecord) -> Indexed<'_> {
    Indexed {
        session_id: r.session_id.as_str().into(),
        subject: r.subject.as_str().into(),
        client_id: r.client_id.as_str().into(),
        expires_at: r.expires_at,
        revoked_at: r.revoked_at,
    }
}
