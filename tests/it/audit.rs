//! The audit trail over real TLS: what is recorded, who may read it, and
//! that tampering with the data directory is caught and named.

use std::time::Duration;

use mcp_auth::pb;
use mcp_auth::pb::audit_service_client::AuditServiceClient;
use tonic::Code;

use crate::common::{TestServer, assert_status, authed};

async fn events(server: &TestServer, key: &str) -> Result<Vec<pb::AuditEvent>, tonic::Status> {
    let resp = AuditServiceClient::new(server.channel().await)
        .list_audit_events(authed(
            pb::ListAuditEventsRequest {
                page_size: 1000,
                ..Default::default()
            },
            key,
        ))
        .await?;
    Ok(resp.into_inner().events)
}

fn find<'a>(events: &'a [pb::AuditEvent], action: &str) -> &'a pb::AuditEvent {
    events
        .iter()
        .find(|e| e.action == action)
        .unwrap_or_else(|| panic!("no {action} in {events:#?}"))
}

#[tokio::test]
async fn security_events_are_recorded_without_secrets() {
    let server = TestServer::start().await;
    let mut keys = server.keys().await;
    let mut req = authed(
        pb::CreateApiKeyRequest {
            name: "backend".to_owned(),
            scopes: vec!["sessions:create".to_owned(), "tools:read".to_owned()],
            ..Default::default()
        },
        &server.primary,
    );
    req.metadata_mut()
        .insert("x-request-id", "req-abc-123".parse().unwrap());
    let created = keys.create_api_key(req).await.unwrap().into_inner();
    let key_id = created.api_key.unwrap().key_id;
    let s = server
        .session(&created.secret, &["tools:read"], "aud")
        .await;
    let mut tokens = server.tokens().await;
    let next = tokens
        .refresh_session(tonic::Request::new(pb::RefreshSessionRequest {
            refresh_token: s.refresh_token.clone(),
            scopes: vec![],
        }))
        .await
        .unwrap()
        .into_inner();
    // Reuse: revokes the session and is recorded.
    tokens
        .refresh_session(tonic::Request::new(pb::RefreshSessionRequest {
            refresh_token: s.refresh_token.clone(),
            scopes: vec![],
        }))
        .await
        .unwrap_err();
    server
        .rotate_key(&server.primary, &key_id, 0)
        .await
        .unwrap();
    server.revoke_key(&server.primary, &key_id).await.unwrap();
    server.grant("billing", &["tools:read"], false).await;
    server.revoke_cert("0a1b").await;
    keys.list_api_keys(authed(pb::ListApiKeysRequest {}, "mcp_sk_wrong"))
        .await
        .unwrap_err();

    let all = events(&server, &server.primary).await.unwrap();
    let bootstrap = find(&all, "api_key.created");
    assert_eq!(bootstrap.actor, "system");
    assert!(bootstrap.target.ends_with("(primary)"));
    let created_event = all
        .iter()
        .find(|e| e.action == "api_key.created" && e.target == key_id)
        .unwrap();
    let primary_id = created_event.actor.clone();
    assert!(primary_id.starts_with("key_"));
    assert_eq!(created_event.request_id, "req-abc-123");
    assert_eq!(created_event.outcome, "ok");
    assert_eq!(find(&all, "session.created").target, s.session_id);
    assert_eq!(find(&all, "session.refreshed").target, s.session_id);
    let reuse = find(&all, "refresh_token.reused");
    assert_eq!(reuse.outcome, "REFRESH_TOKEN_REUSED");
    assert!(reuse.actor.starts_with("peer:127.0.0.1"));
    assert_eq!(find(&all, "api_key.rotated").actor, primary_id);
    assert!(find(&all, "api_key.revoked").target.starts_with(&key_id));
    assert!(find(&all, "identity.set").target.starts_with("billing"));
    assert_eq!(find(&all, "certificate.revoked").target, "0a1b");
    let failed = find(&all, "auth.failed");
    assert_eq!(failed.outcome, "API_KEY_INVALID");
    assert!(!find(&all, "session.created").request_id.is_empty());

    // Chained, and never a secret or a token.
    for pair in all.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert_eq!(pair[1].seq, pair[0].seq + 1);
    }
    let dump = format!("{all:?}");
    for secret in [
        &created.secret,
        &server.primary,
        &s.access_token,
        &s.refresh_token,
        &next.refresh_token,
    ] {
        assert!(!dump.contains(secret.as_str()));
    }
}

#[tokio::test]
async fn reading_the_audit_trail_needs_audit_read() {
    let server = TestServer::start().await;
    let (_, keys_admin) = server.key_with(&["keys:admin"]).await;
    let (_, auditor) = server.key_with(&["audit:read"]).await;
    let err = events(&server, &keys_admin).await.unwrap_err();
    let meta = assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");
    assert_eq!(meta["scope"], "audit:read");
    assert!(!events(&server, &auditor).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_flood_of_failures_is_aggregated() {
    let server = TestServer::start_with(|c| c.auth_failures_per_minute = 1000).await;
    let mut keys = server.keys().await;
    for i in 0..50 {
        keys.list_api_keys(authed(pb::ListApiKeysRequest {}, &format!("mcp_sk_{i}")))
            .await
            .unwrap_err();
    }
    let all = events(&server, &server.primary).await.unwrap();
    let failures = all.iter().filter(|e| e.action == "auth.failed").count();
    assert_eq!(
        failures, 1,
        "one record per actor and action per 10 seconds"
    );
}

#[tokio::test]
async fn maintenance_writes_the_count_of_a_closed_flood_window() {
    let server = TestServer::start_with(|c| c.auth_failures_per_minute = 1000).await;
    let keys = server.keys().await;
    let fail = || {
        let mut keys = keys.clone();
        async move {
            keys.list_api_keys(authed(pb::ListApiKeysRequest {}, "mcp_sk_wrong"))
                .await
                .unwrap_err();
        }
    };
    for _ in 0..5 {
        fail().await;
    }
    // A pass while the window is still open writes nothing.
    server.maintain().await;
    let failures = |all: &[pb::AuditEvent]| -> Vec<pb::AuditEvent> {
        all.iter()
            .filter(|e| e.action == "auth.failed")
            .cloned()
            .collect()
    };
    let all = events(&server, &server.primary).await.unwrap();
    assert_eq!(failures(&all).len(), 1, "{all:#?}");

    server.clock.advance(Duration::from_secs(10));
    server.maintain().await;
    let all = events(&server, &server.primary).await.unwrap();
    let recorded = failures(&all);
    assert_eq!(recorded.len(), 2, "{all:#?}");
    let summary = &recorded[1];
    assert_eq!(summary.target, "api key (4 folded in the closed window)");
    assert_eq!(summary.outcome, "API_KEY_INVALID");
    assert_eq!(summary.actor, recorded[0].actor);
    assert_eq!(summary.request_id, "");
    assert_eq!(summary.time, server.clock.now());

    // The count is not written twice: the next failure opens a new window
    // with a plain record.
    fail().await;
    let all = events(&server, &server.primary).await.unwrap();
    let recorded = failures(&all);
    assert_eq!(recorded.len(), 3, "{all:#?}");
    assert_eq!(recorded[2].target, "api key");
}

#[tokio::test]
async fn retention_prunes_old_records_and_the_chain_still_verifies() {
    let server = TestServer::start_with(|c| c.audit_retention_days = 1).await;
    for _ in 0..5 {
        server.key_with(&["tools:read"]).await;
    }
    server.clock.advance(Duration::from_secs(2 * 86_400));
    server.key_with(&["tools:read"]).await;
    let report = server.maintain().await;
    assert_eq!(report.audit_records_removed, 6, "primary key and five keys");
    let resp = AuditServiceClient::new(server.channel().await)
        .list_audit_events(authed(
            pb::ListAuditEventsRequest::default(),
            &server.primary,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.anchor_seq, 6);
    assert_eq!(resp.events.len(), 1);
    assert_eq!(resp.events[0].prev_hash, resp.anchor_hash);

    let out = server.cli_as_admin(&["audit", "verify"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("intact: 1 record after seq 6"), "{stdout}");
}

#[tokio::test]
async fn editing_one_record_in_the_data_dir_is_caught_and_named() {
    let mut server = TestServer::start().await;
    for _ in 0..4 {
        server.key_with(&["tools:read"]).await;
    }
    server.stop().await;
    let verify = |dir: std::path::PathBuf| async move {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
            .args(["audit", "verify", "--data-dir"])
            .arg(dir)
            .env_clear()
            .output()
            .await
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = verify(server.data_dir().to_owned()).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("intact: 5 records"), "{out}");

    // Edit record 3 behind the server's back: who did it.
    mcp_auth::store::tamper_with_audit_record(server.data_dir(), 3, |r| {
        r.actor = "someone-else".to_owned();
    })
    .unwrap();
    let (code, out) = verify(server.data_dir().to_owned()).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("audit record 3 is broken"), "{out}");
}
