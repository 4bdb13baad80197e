//! The store conformance suite against PostgreSQL, each test on a fresh
//! database of its own (created on the server `MCP_AUTH_TEST_POSTGRES`
//! names, dropped afterwards, also when the test fails), so they run in
//! parallel and leave nothing behind. No server, no pass: they fail and
//! say how to start one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use super::*;
use crate::store::conformance;

use super::test_db::{TestDatabase, connect};

/// A database of its own for one test, and its key-ring key; dropped
/// with it.
struct TestDb(TestDatabase, RingKey);

impl TestDb {
    async fn create() -> Self {
        TestDb(
            TestDatabase::create()
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            RingKey::generate().unwrap(),
        )
    }

    /// The store on it, with its key-ring key (every replica's).
    async fn open(&self) -> PostgresStore {
        PostgresStore::open(self.0.url(), self.1.clone())
            .await
            .unwrap()
    }

    /// A direct connection to the test's database.
    async fn client(&self) -> tokio_postgres::Client {
        connect(self.0.url())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

macro_rules! conformance {
    ($($name:ident => $check:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let db = TestDb::create().await;
            let store = db.open().await;
            conformance::$check(&store).await;
        }
    )*};
}

conformance! {
    conformance_api_keys => api_keys,
    conformance_sessions => sessions,
    conformance_session_pages => session_pages,
    conformance_identities_and_certificates => identities,
    conformance_clients => clients,
    conformance_users => users,
    conformance_consents => consents,
    conformance_revoked_tokens => revoked_tokens,
    conformance_signing_keys => signing_keys,
    conformance_audit_chain => audit_chain,
    conformance_transients => transients,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_one_username_one_user() {
    let db = TestDb::create().await;
    conformance::one_username_one_user(Arc::new(db.open().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_one_winner() {
    let db = TestDb::create().await;
    conformance::one_winner(Arc::new(db.open().await)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_one_transient_winner() {
    let db = TestDb::create().await;
    conformance::one_transient_winner(Arc::new(db.open().await)).await;
}

/// A code spent from two stores on one database (two replicas) at once:
/// one swap wins, and the entry one store wrote the other reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_database_have_one_winner_of_a_transient_swap() {
    let db = TestDb::create().await;
    let a = Arc::new(db.open().await);
    let b = Arc::new(db.open().await);
    for round in 0..10u8 {
        let key = [round];
        assert_eq!(
            a.put_transient(TransientKind::Code, &key, b"pending", 100, 0)
                .await
                .unwrap(),
            Swap::Done
        );
        let spend = |store: Arc<PostgresStore>, by: &'static [u8]| async move {
            store
                .swap_transient(TransientKind::Code, &key, b"pending", by, 100)
                .await
                .unwrap()
        };
        let (x, y) = tokio::join!(
            tokio::spawn(spend(a.clone(), b"spent by a")),
            tokio::spawn(spend(b.clone(), b"spent by b")),
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert!(
            matches!(
                (x, y),
                (Swap::Done, Swap::Conflict) | (Swap::Conflict, Swap::Done)
            ),
            "round {round}: {x:?} {y:?}"
        );
        let winner: &[u8] = if x == Swap::Done {
            b"spent by a"
        } else {
            b"spent by b"
        };
        for store in [&a, &b] {
            assert_eq!(
                store
                    .transient(TransientKind::Code, &key, 0)
                    .await
                    .unwrap()
                    .as_deref(),
                Some(winner)
            );
        }
    }
}

#[tokio::test]
async fn conformance_everything_survives_a_reopen() {
    let db = TestDb::create().await;
    let store = db.open().await;
    let written = conformance::write_some(&store).await;
    drop(store);
    let store = db.open().await;
    conformance::check_written(&store, &written).await;
}

/// Two stores on one database (two replicas): one winner between them,
/// and one chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_database_share_the_winner_and_the_chain() {
    let db = TestDb::create().await;
    let a = Arc::new(db.open().await);
    let b = Arc::new(db.open().await);
    a.insert_session(
        &conformance::session("ses_race", "u", "k"),
        conformance::entry("session.created"),
    )
    .await
    .unwrap();
    let read = b.session("ses_race").await.unwrap().unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let read = read.clone();
            tokio::spawn(async move {
                let mut next = read.record.clone();
                next.last_refreshed_at = i;
                store
                    .replace_session(&read, &next, conformance::entry("session.refreshed"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    assert_eq!(conformance::wins(tasks).await, 1);
    let writers: Vec<_> = (0..20)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                store
                    .append_audit(conformance::entry("auth.failed"), i % 3 == 0)
                    .await
                    .unwrap()
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let all = a.audit_page(0, 100).await.unwrap();
    assert_eq!(all.len(), 22);
    let mut prev = String::new();
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
        assert_eq!(r.prev_hash, prev);
        assert_eq!(r.hash, r.compute_hash());
        prev = r.hash.clone();
    }
}

#[tokio::test]
async fn a_schema_newer_than_the_binary_is_refused() {
    let db = TestDb::create().await;
    drop(db.open().await);
    db.client()
        .await
        .batch_execute("UPDATE schema_version SET version = 999")
        .await
        .unwrap();
    let err = PostgresStore::open(db.0.url(), db.1.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 999, known } if known == schema::known()),
        "{err}"
    );
    assert!(err.to_string().contains("newer"), "{err}");
}

#[tokio::test]
async fn opening_again_migrates_nothing() {
    let db = TestDb::create().await;
    drop(db.open().await);
    drop(db.open().await);
    let rows = db
        .client()
        .await
        .query("SELECT version FROM schema_version", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i64>(0), schema::known());
}

#[tokio::test]
async fn an_unreachable_database_is_an_error_not_a_hang() {
    // A port nothing listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = PostgresStore::open(
        &format!("postgres://postgres@127.0.0.1:{port}/x"),
        RingKey::generate().unwrap(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
}

#[tokio::test]
async fn a_url_that_does_not_parse_is_refused_without_repeating_it() {
    let err = PostgresStore::open(
        "postgres://u:s3cret@h/db?sslmode=sometimes",
        RingKey::generate().unwrap(),
    )
    .await
    .unwrap_err();
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

/// `sslmode=require` speaks TLS and checks the server: this machine's
/// PostgreSQL serves a self-signed certificate for another name, so the
/// connection is refused, never made in plaintext.
#[tokio::test]
async fn sslmode_require_checks_the_servers_certificate() {
    let db = TestDb::create().await;
    let url = format!("{}?sslmode=require", db.0.url());
    let err = PostgresStore::open(&url, db.1.clone()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("TLS handshake") && text.contains("certificate"),
        "{text}"
    );
}

/// A signing key with a private part that is easy to look for: 64 bytes
/// of a pattern no encoding of the rest of the row contains.
fn signing_key(kid: &str) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.to_owned(),
        alg: SigningAlg::EdDSA,
        private_pkcs8: (0..64u8).map(|i| i.wrapping_mul(37) ^ 0xa5).collect(),
        created_at: 1_700_000_000,
        retired_at: None,
    }
}

/// The row of `signing_keys` holds the key sealed: no `private_pkcs8`, and
/// the private key's bytes nowhere in it, as bytes, hex or base64.
#[tokio::test]
async fn signing_keys_are_sealed_in_their_rows() {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};

    let db = TestDb::create().await;
    let store = db.open().await;
    let key = signing_key("kid-sealed");
    store
        .put_signing_keys(
            std::slice::from_ref(&key),
            Some(conformance::entry("signing_key.rotated")),
        )
        .await
        .unwrap();
    let rows = db
        .client()
        .await
        .query("SELECT kid, record, record::TEXT FROM signing_keys", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "kid-sealed");
    let record: serde_json::Value = rows[0].get(1);
    let text: String = rows[0].get(2);
    assert!(record.get("private_pkcs8").is_none(), "{text}");
    assert_eq!(record["seal"], "aes-256-gcm/v1", "{text}");
    assert_eq!(record["kid"], "kid-sealed");
    assert!(record["sealed_pkcs8"].is_string(), "{text}");
    let der = &key.private_pkcs8;
    assert!(
        !text
            .as_bytes()
            .windows(der.len())
            .any(|w| w == der.as_slice())
    );
    for encoded in [
        STANDARD.encode(der),
        STANDARD_NO_PAD.encode(der),
        URL_SAFE_NO_PAD.encode(der),
        crate::secret::hex(der),
        // serde's own form of a Vec<u8>: a JSON array of numbers.
        serde_json::to_string(der).unwrap(),
    ] {
        assert!(!text.contains(&encoded), "{text} holds {encoded}");
    }
    let sealed = STANDARD
        .decode(record["sealed_pkcs8"].as_str().unwrap())
        .unwrap();
    assert!(!sealed.windows(der.len()).any(|w| w == der.as_slice()));

    let read = store.signing_keys().await.unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].private_pkcs8, key.private_pkcs8, "opens again");
}

/// Another key-ring key reads none of the keys: the error says which
/// setting, not a corrupt record.
#[tokio::test]
async fn another_ring_key_cannot_open_the_signing_keys() {
    let db = TestDb::create().await;
    db.open()
        .await
        .put_signing_keys(&[signing_key("kid-a")], None)
        .await
        .unwrap();
    let other = PostgresStore::open(db.0.url(), RingKey::generate().unwrap())
        .await
        .unwrap();
    let err = other.signing_keys().await.unwrap_err();
    assert!(matches!(err, StoreError::Unsealable(_)), "{err}");
    assert!(
        err.to_string().starts_with(
            "the signing keys in the database cannot be opened with this store_key_file: "
        ),
        "{err}"
    );
    // The other replica's key still opens them.
    assert_eq!(db.open().await.signing_keys().await.unwrap().len(), 1);
}

/// Whoever can write the table cannot plant a key: a row in clear, or a
/// sealed key moved to another kid's row, is refused.
#[tokio::test]
async fn planted_or_moved_rows_are_refused() {
    let db = TestDb::create().await;
    let store = db.open().await;
    store
        .put_signing_keys(&[signing_key("kid-a"), signing_key("kid-b")], None)
        .await
        .unwrap();
    let client = db.client().await;
    client
        .batch_execute(
            "UPDATE signing_keys SET record = (SELECT record FROM signing_keys WHERE kid = 'kid-a') || '{\"kid\": \"kid-b\"}'::JSONB WHERE kid = 'kid-b'",
        )
        .await
        .unwrap();
    let err = store.signing_keys().await.unwrap_err();
    assert!(matches!(err, StoreError::Unsealable(_)), "{err}");
    assert!(err.to_string().contains("kid-b"), "{err}");

    let clear = serde_json::to_value(signing_key("kid-b")).unwrap();
    client
        .execute(
            "UPDATE signing_keys SET record = $1 WHERE kid = 'kid-b'",
            &[&clear],
        )
        .await
        .unwrap();
    let err = store.signing_keys().await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("in clear"), "{err}");
}

/// Writes made at once are committed together (group commit) and still
/// form one chain: every one durable, each record once, in one order.
#[tokio::test]
async fn concurrent_writes_committed_together_form_one_chain() {
    let db = TestDb::create().await;
    let store = Arc::new(db.open().await);
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..200 {
        let store = store.clone();
        writers.spawn(async move {
            let s = conformance::session(&format!("ses_{i}"), "alice", "key_a");
            store
                .insert_session(&s, conformance::entry("session.created"))
                .await
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap().unwrap();
    }
    // A fresh store (nothing cached) reads all of them back.
    let again = db.open().await;
    let ids = again.session_ids(&SessionFilter::default()).await.unwrap();
    assert_eq!(ids.len(), 200);
    let records = again.audit_page(0, 1000).await.unwrap();
    assert_eq!(records.len(), 200);
    assert_one_chain(&records);
}

/// Two stores on one database (two replicas) writing at once, with
/// writes outside the group commit (revoked tokens) between theirs: each
/// committer finds the head moved under it, goes through the lock, and
/// every write still lands once, in one chain.
#[tokio::test]
async fn writers_on_two_stores_and_other_writes_between_form_one_chain() {
    let db = TestDb::create().await;
    let stores = [Arc::new(db.open().await), Arc::new(db.open().await)];
    let mut writers = tokio::task::JoinSet::new();
    // 20 writers, 10 on each store, 15 writes each in turn: every 5th a
    // revoked token.
    for w in 0..20 {
        let store = stores[w % 2].clone();
        writers.spawn(async move {
            for n in 0..15 {
                let id = format!("{w}_{n}");
                if n % 5 == 4 {
                    let entry = conformance::entry("token.revoked");
                    store.revoke_token(&id, 4_000_000_000, entry).await?;
                } else {
                    let s = conformance::session(&format!("ses_{id}"), "alice", "key_a");
                    let entry = conformance::entry("session.created");
                    store.insert_session(&s, entry).await?;
                }
            }
            Ok::<_, crate::store::StoreError>(())
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap().unwrap();
    }
    let again = db.open().await;
    let ids = again.session_ids(&SessionFilter::default()).await.unwrap();
    assert_eq!(ids.len(), 240);
    assert_eq!(again.revoked_tokens().await.unwrap().len(), 60);
    let records = again.audit_page(0, 1000).await.unwrap();
    assert_eq!(records.len(), 300);
    assert_one_chain(&records);
}

/// Asserts that `records` are one chain from seq 1: each links to the one
/// before and is sealed.
fn assert_one_chain(records: &[crate::store::AuditRecord]) {
    let mut prev = String::new();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
        assert_eq!(
            r.prev_hash, prev,
            "record {} links to the one before",
            r.seq
        );
        assert_eq!(r.hash, r.compute_hash(), "record {} is sealed", r.seq);
        prev.clone_from(&r.hash);
    }
}
