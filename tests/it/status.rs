//! `mcp-auth status` and `AdminService.GetStatus`: what a running server
//! says of itself, through the CLI and the gRPC client alike.

use std::time::Duration;

use mcp_auth::pb;
use serde_json::Value;
use tonic::Code;

use crate::common::{TestServer, assert_status, strings};

async fn status(server: &TestServer, key: &str) -> pb::ServerStatus {
    server.client(key).await.get_status().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_version_store_keys_counts_and_listeners() {
    let server = TestServer::start().await;
    let s = status(&server, &server.primary).await;
    assert_eq!(s.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(s.commit, mcp_auth::version::COMMIT);
    assert_eq!(s.store_backend, "sled");
    assert_eq!(s.not_ready, "");
    assert_eq!(s.now, server.clock.now());
    assert_eq!(s.started_at, server.clock.now());
    assert_eq!(s.uptime_seconds, 0);

    // The key ring: one active key, the one the JWK Set publishes.
    let jwks = server
        .client(&server.primary)
        .await
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap()
        .jwks_json;
    let jwks: Value = serde_json::from_str(&jwks).unwrap();
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(s.signing_keys.len(), 1, "{s:?}");
    let active = &s.signing_keys[0];
    assert_eq!(active.state, "active");
    assert_eq!(active.alg, "EdDSA");
    assert!(published.contains(&active.kid.as_str()), "{published:?}");
    assert_eq!(active.retired_at, 0);
    // Rotation every 30 days by default: due 30 days after the key's birth.
    assert_eq!(s.next_rotation_at, active.created_at + 30 * 86_400);

    // Listeners: the addresses the server was given, bound.
    let l = s.listeners.clone().unwrap();
    assert_eq!(l.grpc, server.addr.to_string());
    assert_eq!(l.http, server.http_addr.to_string());
    assert_eq!(l.metrics, server.metrics_addr.unwrap().to_string());

    // Counts move: a key, and a session once maintenance counted it.
    let before = s.counts.unwrap();
    assert_eq!(before.api_keys, 1, "the primary key");
    assert_eq!(before.live_sessions, None, "no sweep yet");
    let (_, creator) = server.key_with(&["sessions:create", "tools:read"]).await;
    server.session(&creator, &["tools:read"], "aud").await;
    server.maintain().await;
    server.clock.advance(Duration::from_secs(90));
    let s = status(&server, &server.primary).await;
    let after = s.counts.unwrap();
    assert_eq!(after.api_keys, 2);
    assert_eq!(after.live_sessions, Some(1));
    assert!(
        after.audit_chain_length.unwrap() > before.audit_chain_length.unwrap(),
        "{after:?}"
    );
    assert_eq!(
        (after.oauth_clients, after.identities, after.users),
        (0, 0, 0)
    );
    assert_eq!(s.uptime_seconds, 90);

    // After a rotation: the new key first, the old one retired, verifying
    // until its tokens have all expired.
    server.cli_as_admin(&["signing-key", "rotate"]).await;
    let s = status(&server, &server.primary).await;
    assert_eq!(s.signing_keys.len(), 2);
    assert_eq!(s.signing_keys[0].state, "active");
    assert_eq!(s.signing_keys[1].state, "retired");
    assert_eq!(s.signing_keys[1].kid, active.kid);
    assert_eq!(
        s.signing_keys[1].removed_after,
        s.signing_keys[1].retired_at + i64::from(server.config.max_token_ttl)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_status_as_text_and_json() {
    let server = TestServer::start().await;
    let (code, out, err) = server.cli(Some(&server.primary), &["status"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("version:       {}", mcp_auth::version::LONG)),
        "{out}"
    );
    assert!(out.contains("store:         sled"), "{out}");
    assert!(
        out.contains(&format!("grpc:          {}", server.addr)),
        "{out}"
    );
    assert!(out.contains("active"), "{out}");

    let (code, out, err) = server
        .cli(Some(&server.primary), &["status", "--json"])
        .await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["store_backend"], "sled");
    assert_eq!(v["listeners"]["http"], server.http_addr.to_string());
    assert_eq!(v["counts"]["api_keys"], 1);
    assert_eq!(v["signing_keys"][0]["state"], "active");

    let (code, out, _) = server
        .cli(
            Some(&server.primary),
            &["status", "--field", "store_backend"],
        )
        .await;
    assert_eq!((code, out.as_str()), (0, "sled\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_needs_status_read() {
    let server = TestServer::start().await;
    let (_, weak) = server.key_with(&["sessions:create", "tools:read"]).await;
    let err = server.client(&weak).await.get_status().await.unwrap_err();
    let info = assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");
    assert_eq!(
        info.get("scope").map(String::as_str),
        Some("status:read"),
        "{info:?}"
    );
    assert!(err.message().contains("status:read"), "{err:?}");

    let (code, _, stderr) = server.cli(Some(&weak), &["status"]).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("status:read"), "{stderr}");

    // The scope alone is enough; it cannot travel in a token.
    let (_, reader) = server.key_with(&["status:read"]).await;
    assert_eq!(status(&server, &reader).await.store_backend, "sled");
    let refused = server
        .client(&server.primary)
        .await
        .create_session(pb::CreateSessionRequest {
            subject: "alice".into(),
            scopes: strings(&["status:read"]),
            audience: "aud".into(),
            ttl_seconds: 0,
            session_lifetime_seconds: 0,
        })
        .await
        .unwrap_err();
    assert_status(&refused, Code::InvalidArgument, "INVALID_FIELD");
}
