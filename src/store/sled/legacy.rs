//! Data directories written before a session was one record: their
//! refresh tokens lived in a tree of their own (`refresh_tokens`, SHA-256
//! of the token → its session and spent time) and did not name their
//! session. At open, each such session gets its refresh tokens back inside
//! its record, and the old tokens' hashes are kept in memory so that a
//! client holding one can still refresh. Entries leave with their session.

use std::collections::HashMap;

use serde::Deserialize;
use sled::Tree;

use super::codec::{decode, encode};
use crate::secret::SecretHash;
use crate::store::model::{REFRESH_HISTORY, RefreshToken, SessionRecord};
use crate::store::{StoreError, StoreResult};

/// The tree of the old layout.
pub(super) const TREE: &str = "refresh_tokens";

/// A refresh token record of the old layout.
#[derive(Deserialize)]
struct OldRefresh {
    session_id: String,
    issued_at: i64,
    spent_at: Option<i64>,
}

/// The old session's list of refresh-token hashes, beside the new fields.
#[derive(Deserialize)]
struct OldSession {
    #[serde(default)]
    refresh_hashes: Vec<SecretHash>,
    #[serde(default)]
    refresh_tokens: Vec<RefreshToken>,
}

/// Old refresh tokens by hash → their session.
pub(super) type Legacy = HashMap<[u8; 32], String>;

/// Moves the refresh tokens of old sessions into their records (once; a
/// session already moved is left alone, so an interrupted open just runs it
/// again) and returns the old tokens still in use, by hash.
pub(super) fn migrate(db: &sled::Db, sessions: &Tree) -> StoreResult<Legacy> {
    let exists = db
        .tree_names()
        .iter()
        .any(|n| n.as_ref() == TREE.as_bytes());
    if !exists {
        return Ok(Legacy::new());
    }
    let old = db.open_tree(TREE)?;
    let mut legacy = Legacy::new();
    for item in old.iter() {
        let (hash, value) = item?;
        let Ok(hash) = <[u8; 32]>::try_from(hash.as_ref()) else {
            continue;
        };
        let record: OldRefresh = decode("refresh token", &value)?;
        legacy.insert(hash, record.session_id);
    }
    if legacy.is_empty() {
        drop(old);
        db.drop_tree(TREE)?;
        return Ok(legacy);
    }
    let mut batch = sled::Batch::default();
    let mut moved = 0usize;
    for item in sessions.iter() {
        let (key, value) = item?;
        let shape: OldSession = decode("session", &value)?;
        if !shape.refresh_tokens.is_empty() || shape.refresh_hashes.is_empty() {
            continue;
        }
        let mut record: SessionRecord = decode("session", &value)?;
        for hash in shape.refresh_hashes {
            if let Some(v) = old.get(hash.as_bytes())? {
                let r: OldRefresh = decode("refresh token", &v)?;
                record.refresh_tokens.push(RefreshToken {
                    hash,
                    issued_at: r.issued_at,
                    spent_at: r.spent_at,
                });
            }
        }
        let excess = record.refresh_tokens.len().saturating_sub(REFRESH_HISTORY);
        record.refresh_tokens.drain(..excess);
        batch.insert(key, encode(&record)?);
        moved += 1;
    }
    if moved > 0 {
        sessions.apply_batch(batch)?;
        db.flush()?;
        tracing::info!(
            sessions = moved,
            "moved the refresh tokens of sessions from before this version into their records"
        );
    }
    Ok(legacy)
}

/// Forgets the old tokens of a removed session; drops the old tree once
/// it is empty.
pub(super) fn forget(
    db: &sled::Db,
    legacy: &mut Legacy,
    session: &SessionRecord,
) -> StoreResult<()> {
    if legacy.is_empty() {
        return Ok(());
    }
    let old = db.open_tree(TREE)?;
    for t in &session.refresh_tokens {
        if legacy.remove(t.hash.as_bytes()).is_some() {
            old.remove(t.hash.as_bytes())?;
        }
    }
    if legacy.is_empty() {
        drop(old);
        db.drop_tree(TREE)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
    }
    Ok(())
}

/// Writes a data directory as an earlier version left it: one live session
/// `ses_legacy` of subject `alice` created by `key_legacy` at `now`, whose
/// first refresh token `mcp_rt_<43 x>` was spent at `now` and whose second,
/// `mcp_rt_<43 y>`, is live. Returns the two tokens.
#[cfg(test)]
pub(crate) fn write_fixture(dir: &std::path::Path, now: i64) -> (String, String) {
    #![allow(clippy::unwrap_used)]
    let spent = format!("mcp_rt_{}", "x".repeat(43));
    let live = format!("mcp_rt_{}", "y".repeat(43));
    let db = sled::Config::new().path(dir.join("db")).open().unwrap();
    let sessions = db.open_tree("sessions").unwrap();
    let old = db.open_tree(TREE).unwrap();
    let hashes = [
        SecretHash::of(spent.as_bytes()),
        SecretHash::of(live.as_bytes()),
    ];
    let session = serde_json::json!({
        "session_id": "ses_legacy",
        "subject": "alice",
        "client_id": "key_legacy",
        "scopes": ["tools:read"],
        "audience": "aud",
        "created_at": now,
        "expires_at": now + 900,
        "revoked_at": null,
        "session_expires_at": now + 86_400,
        "last_refreshed_at": now,
        "refresh_hashes": hashes,
        "token_ttl": 900,
    });
    sessions
        .insert("ses_legacy", serde_json::to_vec(&session).unwrap())
        .unwrap();
    for (hash, spent_at) in [(hashes[0], Some(now)), (hashes[1], None)] {
        let r = serde_json::json!({
            "session_id": "ses_legacy", "issued_at": now, "spent_at": spent_at,
        });
        old.insert(hash.as_bytes(), serde_json::to_vec(&r).unwrap())
            .unwrap();
    }
    db.flush().unwrap();
    (spent, live)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::sled::{Durability, SledStore};

    #[tokio::test]
    async fn old_sessions_get_their_refresh_tokens_and_old_tokens_still_resolve() {
        let dir = tempfile::tempdir().unwrap();
        let (spent, live) = write_fixture(dir.path(), 1_000);
        let store = SledStore::open(dir.path(), Durability::Durable).unwrap();
        let s = store.session("ses_legacy").await.unwrap().unwrap().record;
        assert_eq!(s.refresh_tokens.len(), 2);
        assert_eq!(s.refresh_tokens[0].spent_at, Some(1_000));
        assert_eq!(s.refresh_tokens[1].spent_at, None);
        for t in [&spent, &live] {
            assert_eq!(
                store
                    .legacy_refresh_session(&SecretHash::of(t.as_bytes()))
                    .await
                    .unwrap()
                    .as_deref(),
                Some("ses_legacy")
            );
        }
        drop(store);
        // Opening again changes nothing more.
        let store = SledStore::open(dir.path(), Durability::Durable).unwrap();
        let again = store.session("ses_legacy").await.unwrap().unwrap().record;
        assert_eq!(again.refresh_tokens, s.refresh_tokens);
        // The old entries leave with their session, and the old tree with them.
        assert_eq!(
            store
                .delete_sessions(&["ses_legacy".to_owned()])
                .await
                .unwrap(),
            1
        );
        assert!(
            store
                .legacy_refresh_session(&SecretHash::of(live.as_bytes()))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            !store
                .db
                .tree_names()
                .iter()
                .any(|n| n.as_ref() == TREE.as_bytes())
        );
    }
}
