//! `mcp-auth store backup` of a running server's store and `store
//! restore` into a new data directory: one point in time while writes go
//! on, a restored server that knows everything acknowledged before the
//! backup, its audit chain intact and ending at the backup; a damaged
//! backup and a non-empty target refused; the scope checked.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mcp_auth::pb;
use serde_json::Value;
use tonic::Code;

use crate::common::{TestServer, assert_status, audit_verify, mcp_auth};

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Every audit event the server keeps, oldest first.
async fn all_events(server: &TestServer) -> Vec<pb::AuditEvent> {
    let client = server.client(&server.primary).await;
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_audit_events(pb::ListAuditEventsRequest {
                since: 0,
                actor: String::new(),
                action: String::new(),
                page_token,
                page_size: 1000,
            })
            .await
            .unwrap();
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            return events;
        }
        page_token = page.next_page_token;
    }
}

/// `store backup DIR --json` as admin against `server`; the result.
async fn backup(server: &TestServer, dir: &Path) -> Value {
    let (code, out, err) = server
        .cli(
            Some(&server.primary),
            &["store", "backup", dir.to_str().unwrap(), "--json"],
        )
        .await;
    assert_eq!(code, 0, "store backup: {err}");
    json(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_writes_restores_into_a_server_that_knows_what_was_acknowledged() {
    let mut server = TestServer::start().await;
    let (key_id, creator) = server.key_with(&["sessions:create", "tools:read"]).await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let before = server.session(&creator, &["tools:read"], "aud").await;

    // Writers going on throughout: new keys and new sessions.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for n in 0..2 {
        let admin = server.client(&server.primary).await;
        let sessions = server.client(&creator).await;
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let mut done = 0u32;
            while !stop.load(Ordering::Relaxed) {
                admin
                    .create_api_key(pb::CreateApiKeyRequest {
                        name: format!("writer {n} {done}"),
                        scopes: vec!["tools:read".into()],
                        expires_at: 0,
                        rate_limit: None,
                    })
                    .await
                    .unwrap();
                sessions
                    .create_session(pb::CreateSessionRequest {
                        subject: format!("user-{n}-{done}"),
                        scopes: vec!["tools:read".into()],
                        audience: "aud".into(),
                        ttl_seconds: 0,
                        session_lifetime_seconds: 0,
                    })
                    .await
                    .unwrap();
                done += 1;
            }
            done
        }));
    }
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().join("b1");
    let written = backup(&server, &dir).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        assert!(w.await.unwrap() > 0, "the writers wrote");
    }

    // The file: 0600, in the new directory, checked.
    let file = dir.join("store.backup");
    assert_eq!(written["path"], file.to_str().unwrap());
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(written["header"]["backend"], "sled");
    assert_eq!(written["header"]["format_version"], 1);
    assert_eq!(
        written["header"]["mcp_auth_version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(
        written["bytes"].as_u64().unwrap(),
        std::fs::metadata(&file).unwrap().len()
    );

    // A session made after the backup, which the restored store will not know.
    let after = server.session(&creator, &["tools:read"], "aud").await;
    server.stop().await;

    let restored = tempfile::tempdir().unwrap();
    let (code, out, err) = mcp_auth(
        Path::new("."),
        &[
            "store",
            "restore",
            dir.to_str().unwrap(),
            "--data-dir",
            restored.path().to_str().unwrap(),
            "--json",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "store restore: {err}");
    let r = json(&out);
    assert_eq!(r["audit_chain"]["intact"], true);
    assert!(r["restored"]["api_keys"].as_u64().unwrap() >= 3, "{r}");
    assert!(r["restored"]["sessions"].as_u64().unwrap() >= 1, "{r}");
    assert_eq!(r["restored"]["signing_keys"], 1);
    let mode = std::fs::metadata(restored.path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700, "the restored data directory is private");

    // A server on the restored data directory: the primary key's secret
    // is the operator's to keep (primary.key is not in the backup).
    std::fs::copy(
        server.data_dir().join("primary.key"),
        restored.path().join("primary.key"),
    )
    .unwrap();
    let mut again = TestServer::start_in(restored, |_| {}).await;
    assert!(!again.created_primary);
    let me = again.client(&creator).await.who_am_i().await.unwrap();
    assert_eq!(
        me.client_id, key_id,
        "the key acknowledged before the backup"
    );
    assert!(
        again.verify(&verifier, &before.access_token).await.active,
        "the session and the signing key from before the backup"
    );
    let unknown = again
        .client(&again.primary)
        .await
        .get_session(pb::GetSessionRequest {
            session_id: after.session_id.clone(),
        })
        .await
        .unwrap_err();
    assert_status(&unknown, Code::NotFound, "SESSION_NOT_FOUND");

    // The chain verifies through the restored server, and ends at the
    // backup's own record; new events follow it.
    audit_verify(&again.url(), &again.ca_path(), &again.primary).await;
    let events = all_events(&again).await;
    let last = events.last().unwrap();
    assert_eq!(last.action, "store.backed_up", "{last:?}");
    // One point in time: every key and session restored has its audit
    // record in the restored chain, and no record names one that is not.
    let created = |action: &str| events.iter().filter(|e| e.action == action).count() as u64;
    assert_eq!(
        created("api_key.created"),
        r["restored"]["api_keys"].as_u64().unwrap()
    );
    assert_eq!(
        created("session.created"),
        r["restored"]["sessions"].as_u64().unwrap()
    );
    assert_eq!(last.target, "sled");
    again.key_with(&["tools:read"]).await;
    audit_verify(&again.url(), &again.ca_path(), &again.primary).await;
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_backup_and_a_non_empty_target_are_refused() {
    let server = TestServer::start().await;
    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().join("b");
    backup(&server, &dir).await;

    // Into a directory that holds something: refused, before the server
    // is asked.
    let (code, _, err) = server
        .cli(
            Some(&server.primary),
            &["store", "backup", dir.to_str().unwrap()],
        )
        .await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not empty"), "{err}");

    let target = tempfile::tempdir().unwrap();
    let restore = |target: &Path| {
        let dir = dir.to_str().unwrap().to_owned();
        let target = target.to_str().unwrap().to_owned();
        async move {
            mcp_auth(
                Path::new("."),
                &["store", "restore", &dir, "--data-dir", &target],
                &[],
            )
            .await
        }
    };
    // A restore into a non-empty data directory: refused, nothing read.
    std::fs::write(target.path().join("something"), b"x").unwrap();
    let (code, _, err) = restore(target.path()).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not empty"), "{err}");
    std::fs::remove_file(target.path().join("something")).unwrap();

    // One byte changed: the checksum refuses it and nothing is written.
    let file = dir.join("store.backup");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&file, &bytes).unwrap();
    let (code, _, err) = restore(target.path()).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("damaged") && err.contains("SHA-256"), "{err}");
    assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0);

    // Cut short, likewise; not a backup at all, said so.
    bytes[middle] ^= 0x20;
    std::fs::write(&file, &bytes[..bytes.len() - 100]).unwrap();
    let (code, _, err) = restore(target.path()).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("damaged"), "{err}");
    std::fs::write(&file, b"{\"not\": \"a backup\"}").unwrap();
    let (_, _, err) = restore(target.path()).await;
    assert!(err.contains("not an mcp-auth store backup"), "{err}");
    std::fs::remove_file(&file).unwrap();
    let (_, _, err) = restore(target.path()).await;
    assert!(err.contains("no backup here"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_needs_store_backup() {
    let server = TestServer::start().await;
    let (_, reader) = server.key_with(&["status:read", "audit:read"]).await;
    let err = server
        .client(&reader)
        .await
        .backup_store()
        .await
        .unwrap_err();
    let info = assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");
    assert_eq!(info.get("scope").map(String::as_str), Some("store:backup"));

    let backups = tempfile::tempdir().unwrap();
    let dir = backups.path().join("b");
    let (code, _, err) = server
        .cli(Some(&reader), &["store", "backup", dir.to_str().unwrap()])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("store:backup"), "{err}");
    assert!(!dir.exists(), "nothing written");

    // The scope alone is enough.
    let (_, backer) = server.key_with(&["store:backup"]).await;
    let mut stream = server.client(&backer).await.backup_store().await.unwrap();
    let mut bytes = 0;
    while let Some(chunk) = stream.message().await.unwrap() {
        bytes += chunk.data.len();
    }
    assert!(bytes > 0);
}
