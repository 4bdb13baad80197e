//! `store migrate`: copying the embedded store of a stopped server's data
//! directory into an empty PostgreSQL database, and checking the copy.
//!
//! [`Migration::open`] refuses before anything is written: a data
//! directory with no database, one a running process holds, a database
//! that holds anything. [`Migration::copy`] writes the signing keys
//! through the database's `put_signing_keys` (so whatever that backend
//! does to keys at rest applies), then every other record in one
//! transaction (`postgres::import`: rows as they are, audit records with
//! their seq and hash, the chain's head and anchor); should that fail, it
//! deletes the keys again, leaving the database as it was found. Both
//! steps run under an advisory lock, so two copies into one database
//! cannot interleave. Then it counts every kind of record on both sides
//! through the [`Store`] trait (so each is read back as a server reads
//! it) and compares them, with the audit chain's anchor and last record.
//!
//! Verifying the chain itself is the core's (`core::audit`, above the
//! store), which the caller runs on [`Migration::source`] before the copy
//! and on [`Migration::target`] after it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::model::{AuditAnchor, ConsentRecord, SessionFilter};
use super::postgres::PostgresStore;
use super::postgres::import::describe;
use super::ring_key::RingKey;
use super::sled::{self, Durability, SledStore};
use super::{Store, StoreError, StoreResult};

/// Records read per call while counting.
const PAGE: usize = 1000;

/// Why a migration refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The data directory holds no database.
    #[error(
        "{}: no mcp-auth database here (a data directory holds one in db/ once a server has run on it)",
        .0.display()
    )]
    NoDatabase(PathBuf),
    /// The target database already holds records.
    #[error(
        "the target database is not empty ({0}): store migrate copies only into an empty database; create a new one and name it in --to"
    )]
    NotEmpty(String),
    /// The copy read back differs from the source.
    #[error(
        "the copy does not match the data directory: {kind}: {in_data_dir} there, {in_database} in the database; drop the database's copy before trying again"
    )]
    Mismatch {
        /// Which kind of record, or which part of the audit chain.
        kind: &'static str,
        /// What the data directory holds.
        in_data_dir: String,
        /// What the database holds.
        in_database: String,
    },
    /// Reading or writing a store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many records of each kind a store holds, and where its audit chain
/// starts and ends.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// API keys.
    pub api_keys: u64,
    /// Sessions.
    pub sessions: u64,
    /// Of them, the revoked ones.
    pub revoked_sessions: u64,
    /// Refresh tokens of all sessions, spent ones included.
    pub refresh_tokens: u64,
    /// Identity grants.
    pub identities: u64,
    /// Revoked client certificates.
    pub revoked_certs: u64,
    /// OAuth clients.
    pub clients: u64,
    /// Deleted OAuth clients not yet forgotten.
    pub deleted_clients: u64,
    /// Built-in user accounts.
    pub users: u64,
    /// Remembered consents.
    pub consents: u64,
    /// Revoked access tokens.
    pub revoked_tokens: u64,
    /// Signing keys.
    pub signing_keys: u64,
    /// Audit records kept (after the anchor).
    pub audit_records: u64,
    /// Seq of the chain's anchor (the last pruned record; 0 if none).
    pub audit_anchor_seq: u64,
    /// Seq of the last record (the anchor's if none is kept).
    pub audit_last_seq: u64,
    /// The anchor's hash.
    #[serde(skip)]
    audit_anchor_hash: String,
    /// The last record's hash (the anchor's if none is kept).
    #[serde(skip)]
    audit_last_hash: String,
}

impl Counts {
    /// Each count with what it counts, in the order a summary shows them.
    pub fn kinds(&self) -> [(&'static str, u64); 15] {
        [
            ("api keys", self.api_keys),
            ("sessions", self.sessions),
            ("revoked sessions", self.revoked_sessions),
            ("refresh tokens", self.refresh_tokens),
            ("identities", self.identities),
            ("revoked certificates", self.revoked_certs),
            ("oauth clients", self.clients),
            ("deleted oauth clients", self.deleted_clients),
            ("users", self.users),
            ("consents", self.consents),
            ("revoked tokens", self.revoked_tokens),
            ("signing keys", self.signing_keys),
            ("audit records", self.audit_records),
            ("audit anchor seq", self.audit_anchor_seq),
            ("audit last seq", self.audit_last_seq),
        ]
    }

    /// The first difference from `other`, as (what, ours, theirs).
    fn difference(&self, other: &Counts) -> Option<(&'static str, String, String)> {
        let counted = self
            .kinds()
            .into_iter()
            .zip(other.kinds())
            .find(|((_, a), (_, b))| a != b)
            .map(|((what, a), (_, b))| (what, a.to_string(), b.to_string()));
        counted.or_else(|| {
            [
                (
                    "audit anchor hash",
                    &self.audit_anchor_hash,
                    &other.audit_anchor_hash,
                ),
                (
                    "audit last hash",
                    &self.audit_last_hash,
                    &other.audit_last_hash,
                ),
            ]
            .into_iter()
            .find(|(_, a, b)| a != b)
            .map(|(what, a, b)| (what, a.clone(), b.clone()))
        })
    }
}

/// What a migration copied.
#[derive(Clone, Debug, Serialize)]
pub struct MigrationReport {
    /// The records copied, per kind: the same on both sides.
    pub counts: Counts,
    /// Refresh tokens of the data-directory layout before tokens named
    /// their session, which the source still honoured; the database does
    /// not know them, so their clients must sign in again.
    pub legacy_refresh_tokens: u64,
}

/// A migration from a data directory into a PostgreSQL database, both
/// open and checked.
pub struct Migration {
    source: SledStore,
    target: PostgresStore,
    /// Every consent of the source (the trait lists them only by subject).
    consents: Vec<ConsentRecord>,
}

impl std::fmt::Debug for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Migration")
            .field("source", &self.source)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Opens the target database: the one place `store migrate` opens
/// PostgreSQL (and brings its schema up to date, as `serve` would).
async fn open_target(url: &str, key: RingKey) -> StoreResult<PostgresStore> {
    PostgresStore::open(url, key).await
}

impl Migration {
    /// Opens the store of the stopped server's data directory `from` and
    /// the database `to_url` names, which must hold nothing.
    ///
    /// # Errors
    /// [`MigrateError::NoDatabase`]; [`StoreError::InUse`] (a running
    /// server holds the data directory); the database cannot be reached;
    /// [`MigrateError::NotEmpty`].
    pub async fn open(from: &Path, to_url: &str, key: RingKey) -> Result<Self, MigrateError> {
        if !sled::exists(from) {
            return Err(MigrateError::NoDatabase(from.to_path_buf()));
        }
        let source = SledStore::open(from, Durability::Durable)?;
        let consents = source.all_consents()?;
        let target = open_target(to_url, key).await?;
        let held = target.holdings().await?;
        if !held.is_empty() {
            return Err(MigrateError::NotEmpty(describe(&held)));
        }
        Ok(Migration {
            source,
            target,
            consents,
        })
    }

    /// The data directory's store.
    pub fn source(&self) -> &dyn Store {
        &self.source
    }

    /// The database's store.
    pub fn target(&self) -> &dyn Store {
        &self.target
    }

    /// Copies every record, then checks that the database holds what the
    /// data directory does.
    ///
    /// # Errors
    /// [`MigrateError::NotEmpty`] (something wrote to the database since
    /// [`Migration::open`]); a store fails (then the database is left as
    /// it was); [`MigrateError::Mismatch`] (then it holds the copy).
    pub async fn copy(&self) -> Result<MigrationReport, MigrateError> {
        let subjects: BTreeSet<&str> = self.consents.iter().map(|c| c.subject.as_str()).collect();
        let before = count(&self.source, &subjects).await?;
        {
            let lock = self.target.import_lock().await?;
            let held = self.target.holdings().await?;
            if !held.is_empty() {
                return Err(MigrateError::NotEmpty(describe(&held)));
            }
            let keys = self.source.signing_keys().await?;
            self.target.put_signing_keys(&keys, None).await?;
            let copied = self
                .target
                .import_rows(&lock, &self.source, &self.consents, keys.len())
                .await;
            if let Err(failed) = copied {
                let kids: Vec<String> = keys.into_iter().map(|k| k.kid).collect();
                return Err(match self.target.delete_signing_keys(&kids).await {
                    Ok(()) => failed.into(),
                    Err(cleanup) => StoreError::Backend(format!(
                        "{failed}; and the signing keys copied before it could not be removed ({cleanup}): empty the database before trying again"
                    ))
                    .into(),
                });
            }
        }
        let after = count(&self.target, &subjects).await?;
        if let Some((kind, in_data_dir, in_database)) = before.difference(&after) {
            return Err(MigrateError::Mismatch {
                kind,
                in_data_dir,
                in_database,
            });
        }
        Ok(MigrationReport {
            counts: after,
            legacy_refresh_tokens: n(self.source.legacy_refresh_tokens()),
        })
    }
}

fn n(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// Counts what `store` holds, reading every record; consents of
/// `subjects` only (the trait lists them by subject).
pub(super) async fn count(store: &dyn Store, subjects: &BTreeSet<&str>) -> StoreResult<Counts> {
    let mut c = Counts {
        api_keys: n(store.api_keys().await?.len()),
        revoked_sessions: n(store.revoked_sessions().await?.len()),
        identities: n(store.identities().await?.len()),
        revoked_certs: n(store.revoked_certs().await?.len()),
        clients: n(store.clients().await?.len()),
        deleted_clients: n(store.deleted_clients().await?.len()),
        users: n(store.users().await?.len()),
        revoked_tokens: n(store.revoked_tokens().await?.len()),
        signing_keys: n(store.signing_keys().await?.len()),
        ..Counts::default()
    };
    for subject in subjects {
        c.consents += n(store.consents_of(subject).await?.len());
    }
    let all = SessionFilter::default();
    let mut after = None;
    loop {
        let page = store.sessions_page(&all, after.as_ref(), PAGE).await?;
        c.sessions += n(page.items.len());
        c.refresh_tokens += page
            .items
            .iter()
            .map(|s| n(s.refresh_tokens.len()))
            .sum::<u64>();
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let AuditAnchor { seq, hash } = store.audit_anchor().await?;
    (c.audit_anchor_seq, c.audit_last_seq) = (seq, seq);
    c.audit_last_hash.clone_from(&hash);
    c.audit_anchor_hash = hash;
    loop {
        let page = store.audit_page(c.audit_last_seq, PAGE).await?;
        c.audit_records += n(page.len());
        if let Some(last) = page.last() {
            c.audit_last_seq = last.seq;
            c.audit_last_hash.clone_from(&last.hash);
        }
        if page.len() < PAGE {
            break;
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::{self, entry, session};
    use crate::store::model::{IdentityRecord, SigningAlg, SigningKeyRecord};
    use crate::store::postgres::test_db::TestDatabase;

    async fn database() -> TestDatabase {
        TestDatabase::create()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn consent(subject: &str, client_id: &str) -> ConsentRecord {
        ConsentRecord {
            subject: subject.to_owned(),
            client_id: client_id.to_owned(),
            scopes: vec!["tools:read".to_owned()],
            resources: vec!["https://mcp.example.com".to_owned()],
            granted_at: 1,
            updated_at: 2,
        }
    }

    #[tokio::test]
    async fn every_kind_reads_back_from_the_database_and_the_chain_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let sled = SledStore::open(dir.path(), Durability::Durable).unwrap();
        let written = conformance::write_some(&sled).await;
        drop(sled);
        let db = database().await;
        let m = Migration::open(dir.path(), db.url(), RingKey::generate().unwrap())
            .await
            .unwrap();
        let report = m.copy().await.unwrap();
        assert_eq!(report.counts.api_keys, 1);
        assert_eq!(report.counts.revoked_sessions, 1);
        assert_eq!(report.counts.deleted_clients, 1);
        assert_eq!(report.legacy_refresh_tokens, 0);
        conformance::check_written(m.target(), &written).await;
    }

    #[tokio::test]
    async fn pages_consents_keys_and_a_pruned_chain_are_copied_as_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let sled = SledStore::open(dir.path(), Durability::Unsafe).unwrap();
        // More than a page of sessions and of audit records.
        for i in 0..(PAGE + 5) {
            let mut e = entry("session.created");
            e.time = i64::try_from(i).unwrap();
            let s = session(&format!("ses_{i:05}"), &format!("u{}", i % 7), "key_k");
            sled.insert_session(&s, e).await.unwrap();
        }
        assert_eq!(sled.prune_audit(3, 100).await.unwrap(), 3);
        for (subject, client) in [("u1", "cli_a"), ("u1", "cli_b"), ("u2", "cli_a")] {
            sled.put_consent(&consent(subject, client), entry("consent.granted"))
                .await
                .unwrap();
        }
        let key = |kid: &str, retired_at| SigningKeyRecord {
            kid: kid.to_owned(),
            alg: SigningAlg::ES256,
            private_pkcs8: vec![7; 8],
            created_at: 5,
            retired_at,
        };
        sled.put_signing_keys(
            &[key("old", Some(9)), key("new", None)],
            Some(entry("signing_key.rotated")),
        )
        .await
        .unwrap();
        let identity = IdentityRecord {
            name: "svc".to_owned(),
            scopes: vec!["a".to_owned()],
            disabled: true,
            created_at: 1,
            updated_at: 2,
            rate_limit: None,
        };
        sled.put_identity(&identity, entry("identity.set"))
            .await
            .unwrap();
        sled.revoke_cert("0a0b", 11, entry("cert.revoked"))
            .await
            .unwrap();
        sled.revoke_token("jti_1", 99, entry("token.revoked"))
            .await
            .unwrap();
        sled.flush().await.unwrap();
        drop(sled);

        let db = database().await;
        let m = Migration::open(dir.path(), db.url(), RingKey::generate().unwrap())
            .await
            .unwrap();
        let report = m.copy().await.unwrap();
        let (source, target) = (m.source(), m.target());
        assert_eq!(report.counts.sessions, n(PAGE + 5));
        assert_eq!(report.counts.consents, 3);
        assert_eq!(report.counts.audit_anchor_seq, 3);
        assert_eq!(report.counts.audit_records, n(PAGE + 2 + 3 + 1 + 3));
        assert_eq!(
            target.audit_anchor().await.unwrap(),
            source.audit_anchor().await.unwrap()
        );
        assert_eq!(
            target.audit_page(0, 2 * PAGE).await.unwrap(),
            source.audit_page(0, 2 * PAGE).await.unwrap()
        );
        let all = SessionFilter::default();
        assert_eq!(
            target.session_ids(&all).await.unwrap(),
            source.session_ids(&all).await.unwrap()
        );
        let of_u3 = SessionFilter {
            subject: Some("u3".to_owned()),
            client_id: None,
        };
        assert_eq!(
            target.session_ids(&of_u3).await.unwrap(),
            source.session_ids(&of_u3).await.unwrap()
        );
        assert_eq!(
            target.consents_of("u1").await.unwrap(),
            [consent("u1", "cli_a"), consent("u1", "cli_b")]
        );
        let mut keys: Vec<_> = target
            .signing_keys()
            .await
            .unwrap()
            .into_iter()
            .map(|k| (k.kid, k.alg, k.private_pkcs8, k.retired_at))
            .collect();
        keys.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            keys,
            [
                ("new".to_owned(), SigningAlg::ES256, vec![7; 8], None),
                ("old".to_owned(), SigningAlg::ES256, vec![7; 8], Some(9)),
            ]
        );
        let copied = &target.identities().await.unwrap()[0];
        assert!(copied.disabled && copied.created_at == 1);
        assert_eq!(target.revoked_certs().await.unwrap()[0].revoked_at, 11);
        assert_eq!(
            target.revoked_tokens().await.unwrap(),
            [("jti_1".to_owned(), 99)]
        );
    }

    #[tokio::test]
    async fn a_write_to_the_database_after_open_is_refused_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let sled = SledStore::open(dir.path(), Durability::Durable).unwrap();
        conformance::write_some(&sled).await;
        drop(sled);
        let db = database().await;
        let m = Migration::open(dir.path(), db.url(), RingKey::generate().unwrap())
            .await
            .unwrap();
        m.target()
            .insert_session(&session("ses_late", "u", "k"), entry("session.created"))
            .await
            .unwrap();
        let err = m.copy().await.unwrap_err();
        assert!(
            matches!(&err, MigrateError::NotEmpty(held) if held == "sessions: 1, audit records: 1"),
            "{err}"
        );
        assert_eq!(
            m.target()
                .session_ids(&SessionFilter::default())
                .await
                .unwrap(),
            ["ses_late"]
        );
        assert!(m.target().signing_keys().await.unwrap().is_empty());
    }
}
