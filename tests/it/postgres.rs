//! The server on the PostgreSQL store (`store = "postgres://…"`): the
//! same RPCs over a database of the test's own, created on the server
//! `MCP_AUTH_TEST_POSTGRES` names (default this machine's,
//! `postgres://postgres@127.0.0.1:5432/postgres`) and dropped afterwards.
//! Without PostgreSQL these fail and say how to start it. Each server's
//! signing keys are sealed with a key-ring key (`store_key_file`), which
//! the harness makes in its data directory unless the test names one.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use mcp_auth::pb;
use mcp_auth::store::Location;
use mcp_auth::{Clock, Config, Server};

use crate::common::{STORE_KEY_FILE, TestServer, inactive_reason};

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

/// `GetStatus` names the backend; `BackupStore` refuses with a reason that
/// says to use the database's own tools.
#[tokio::test]
async fn a_postgres_store_is_named_in_status_and_not_backed_up_through_mcp_auth() {
    let db = TestDb::create().await;
    let location = db.location();
    let server = TestServer::start_with(|c| c.store = location).await;
    let client = server.client(&server.primary).await;
    assert_eq!(client.get_status().await.unwrap().store_backend, "postgres");
    let err = client.backup_store().await.unwrap_err();
    crate::common::assert_status(&err, tonic::Code::FailedPrecondition, "BACKUP_UNSUPPORTED");
    assert!(err.message().contains("pg_dump"), "{err:?}");
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
    // same database, so the same primary key, and the same key-ring key.
    let dir = tempfile::tempdir().unwrap();
    for file in ["primary.key", STORE_KEY_FILE] {
        std::fs::copy(a.data_dir().join(file), dir.path().join(file)).unwrap();
    }
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

/// What `Server::open` says on `location` with `store_key_file`, in a
/// fresh data directory; it must refuse.
async fn refused(location: Location, store_key_file: Option<&Path>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_test(dir.path()).unwrap();
    config.store = location;
    config.store_key_file = store_key_file.map(Path::to_owned);
    Server::open(config, Clock::manual(Clock::system().now()))
        .await
        .unwrap_err()
        .to_string()
}

/// A replica given another key-ring key than the one the database's
/// signing keys were sealed with refuses to start, and says which setting
/// is wrong; with the right one it starts.
#[tokio::test]
async fn a_server_with_another_store_key_file_refuses_to_start() {
    let db = TestDb::create().await;
    let location = db.location();
    let mut a = TestServer::start_with({
        let location = location.clone();
        |c| c.store = location
    })
    .await;
    let other = tempfile::tempdir().unwrap();
    let other_key = other.path().join("other.key");
    mcp_auth::store::ring_key::keygen(&other_key, false).unwrap();

    let text = refused(location.clone(), Some(&other_key)).await;
    assert!(
        text.starts_with(
            "the signing keys in the database cannot be opened with this store_key_file: signing key "
        ),
        "{text}"
    );
    assert!(
        text.contains("every replica needs the same key file"),
        "{text}"
    );
    // The first replica, on its own key, is unaffected and restarts.
    a.restart().await;
    a.stop().await;
}

/// A key file others may read is refused before the database is
/// touched, naming the fix; so is a PostgreSQL store without one.
#[tokio::test]
async fn a_store_key_file_others_may_read_or_none_is_refused() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.key");
    mcp_auth::store::ring_key::keygen(&path, false).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = refused(db.location(), Some(&path)).await;
    assert!(text.contains("has mode 644"), "{text}");
    assert!(
        text.contains(&format!("chmod 600 {}", path.display())),
        "{text}"
    );

    let text = refused(db.location(), None).await;
    assert!(
        text.starts_with("the PostgreSQL store needs store_key_file"),
        "{text}"
    );
    assert!(text.contains("mcp-auth store keygen"), "{text}");
}

/// `mcp-auth store keygen FILE` writes a 0600 key file that a server on
/// PostgreSQL starts with, and again after a restart; it does not
/// overwrite it without --force.
#[tokio::test]
async fn store_keygen_writes_a_0600_file_a_server_starts_with() {
    let db = TestDb::create().await;
    let keys = tempfile::tempdir().unwrap();
    let path = keys.path().join("ring.key");
    let keygen = |force: bool| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"));
        cmd.args(["store", "keygen"])
            .arg(&path)
            .args(force.then_some("--force"))
            .env_clear()
            .stdin(Stdio::null());
        cmd
    };
    let out = keygen(false).output().await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("(mode 0600)"), "{stdout}");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(!stdout.contains(written.trim()), "the key is never printed");

    let again = keygen(false).output().await.unwrap();
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("exists; pass --force"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), written);

    let location = db.location();
    let key_file = path.clone();
    let mut server = TestServer::start_with(|c| {
        c.store = location;
        c.store_key_file = Some(key_file);
    })
    .await;
    assert!(
        !server.data_dir().join(STORE_KEY_FILE).exists(),
        "the named key file is used"
    );
    let (_, backend) = server.key_with(&["sessions:create", "tools:read"]).await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let s = server.session(&backend, &["tools:read"], "aud").await;
    server.restart().await;
    assert!(server.verify(&verifier, &s.access_token).await.active);
    server.stop().await;

    // --force replaces it: the database's keys no longer open.
    let forced = keygen(true).output().await.unwrap();
    assert!(forced.status.success(), "{forced:?}");
    assert_ne!(std::fs::read_to_string(&path).unwrap(), written);
    let text = refused(db.location(), Some(&path)).await;
    assert!(
        text.starts_with("the signing keys in the database cannot be opened"),
        "{text}"
    );
}

/// The real binary: `serve --store postgres://…` without a key file stops
/// at the configuration, naming the setting; with a loose one given by
/// `MCP_AUTH_STORE_KEY_FILE`, at the key file.
#[tokio::test]
async fn serve_on_postgres_refuses_a_missing_or_loose_store_key_file() {
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().unwrap();
    let serve = |env_key: Option<&Path>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"));
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--store", db.0.url()])
            .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .env_clear()
            .env("MCP_AUTH_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(path) = env_key {
            cmd.env("MCP_AUTH_STORE_KEY_FILE", path);
        }
        cmd
    };
    let out = serve(None).output().await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid setting store_key_file: the PostgreSQL store needs"),
        "{stderr}"
    );

    let path = dir.path().join("store.key");
    mcp_auth::store::ring_key::keygen(&path, false).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let out = serve(Some(&path)).output().await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(
        !stderr.contains(db.0.url()),
        "the store URL is never shown: {stderr}"
    );
}
