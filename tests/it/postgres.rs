//! The server on the PostgreSQL store (`store = "postgres://…"`): the
//! same RPCs over a database of the test's own, created on the server
//! `MCP_AUTH_TEST_POSTGRES` names (default this machine's,
//! `postgres://postgres@127.0.0.1:5432/postgres`) and dropped afterwards.
//! Without PostgreSQL these fail and say how to start it.

use mcp_auth::pb;
use mcp_auth::store::Location;

use crate::common::{TestServer, inactive_reason};

use mcp_auth::store::postgres::test_db::TestDatabase;

/// A database of the test's own, dropped with it (also when it fails).
struct TestDb(TestDatabase);

impl TestDb {
    async fn create() -> Self {
        TestDb(
            TestDatabase::create()
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        )
    }

    fn location(&self) -> Location {
        Location::Postgres(self.0.url().to_owned())
    }
}

/// A session created, verified, refreshed and revoked on a server whose
/// store is PostgreSQL; everything is still there after a restart.
#[tokio::test]
async fn a_server_on_postgres_serves_sessions_across_a_restart() {
    let db = TestDb::create().await;
    let location = db.location();
    let mut server = TestServer::start_with(|c| c.store = location).await;
    let (_, backend) = server.key_with(&["sessions:create", "tools:read"]).await;
    let (_, verifier) = server.key_with(&["tokens:verify", "sessions:revoke"]).await;
    let s = server.session(&backend, &["tools:read"], "aud").await;
    assert!(server.verify(&verifier, &s.access_token).await.active);

    server.restart().await;
    assert!(
        server.verify(&verifier, &s.access_token).await.active,
        "the signing key and the session are in the database"
    );
    let refreshed = server.refresh(&s.refresh_token).await.unwrap();
    assert_eq!(refreshed.session_id, s.session_id);
    server
        .revoke_session(&verifier, &s.session_id)
        .await
        .unwrap();
    let v = server.verify(&verifier, &refreshed.access_token).await;
    assert_eq!(inactive_reason(&v), pb::TokenReason::Revoked);

    server.restart().await;
    let v = server.verify(&verifier, &refreshed.access_token).await;
    assert_eq!(
        inactive_reason(&v),
        pb::TokenReason::Revoked,
        "the revocation is in the database"
    );
    let (code, out, _) = server
        .cli(Some(&server.primary), &["audit", "verify"])
        .await;
    assert_eq!(code, 0, "{out}");
    server.stop().await;
}

/// Two servers on one database: a session one creates verifies on the
/// other (one key ring, one set of sessions).
#[tokio::test]
async fn two_servers_on_one_database_share_keys_and_sessions() {
    let db = TestDb::create().await;
    let location = db.location();
    let mut a = TestServer::start_with({
        let location = location.clone();
        |c| c.store = location
    })
    .await;
    let (_, backend) = a.key_with(&["sessions:create", "tools:read"]).await;
    let (_, verifier) = a.key_with(&["tokens:verify"]).await;
    // The second replica: its own data directory (TLS material), the
    // same database, so the same primary key.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        a.data_dir().join("primary.key"),
        dir.path().join("primary.key"),
    )
    .unwrap();
    let mut b = TestServer::start_in(dir, |c| c.store = location).await;
    assert!(!b.created_primary, "the database already has its keys");
    // Each test server has a manual clock of its own, set when it started;
    // replicas share one time.
    b.clock.set(a.clock.now());

    let s = a.session(&backend, &["tools:read"], "aud").await;
    let v = b.verify(&verifier, &s.access_token).await;
    assert!(v.active, "{v:?}");
    let refreshed = b.refresh(&s.refresh_token).await.unwrap();
    let w = a.verify(&verifier, &refreshed.access_token).await;
    assert!(w.active, "{w:?}");
    b.stop().await;
    a.stop().await;
}
