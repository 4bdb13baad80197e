//! ApiKeyService: create, list, revoke, rotate with a grace period.

use std::time::Duration;

use mcp_auth::pb;
use tonic::Code;

use crate::common::{TestServer, assert_status, authed, strings};

fn list_req() -> pb::ListApiKeysRequest {
    pb::ListApiKeysRequest {}
}

#[tokio::test]
async fn created_key_works_and_list_never_shows_secrets() {
    let server = TestServer::start().await;
    let mut keys = server.keys().await;
    let resp = keys
        .create_api_key(authed(
            pb::CreateApiKeyRequest {
                name: "billing".to_owned(),
                scopes: strings(&["sessions:create", "tools:read", "tools:read"]),
                expires_at: 0,
                rate_limit: None,
            },
            &server.primary,
        ))
        .await
        .unwrap()
        .into_inner();
    let secret = resp.secret;
    let body = secret.strip_prefix("mcp_sk_").expect("mcp_sk_ prefix");
    assert!(body.len() >= 32 && body.bytes().all(|b| b.is_ascii_alphanumeric()));
    let key = resp.api_key.unwrap();
    assert_eq!(
        key.scopes,
        ["sessions:create", "tools:read"],
        "duplicates removed"
    );
    assert!(secret.starts_with(&key.prefix));
    assert!(key.prefix.len() < 16);

    let listed = keys
        .list_api_keys(authed(list_req(), &server.primary))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.api_keys.len(), 2, "primary and billing");
    let debug = format!("{listed:?}");
    assert!(!debug.contains(body));
    assert!(!debug.contains(&server.primary["mcp_sk_".len()..]));

    server.session(&secret, &["tools:read"], "aud").await;
}

#[tokio::test]
async fn revoked_key_stops_at_once() {
    let server = TestServer::start().await;
    let (id, secret) = server.key_with(&["keys:admin"]).await;
    let mut keys = server.keys().await;
    keys.list_api_keys(authed(list_req(), &secret))
        .await
        .unwrap();
    let revoked = server.revoke_key(&server.primary, &id).await.unwrap();
    assert!(revoked.revoked);
    let err = keys
        .list_api_keys(authed(list_req(), &secret))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "API_KEY_REVOKED");
}

#[tokio::test]
async fn rotated_secret_works_during_grace_and_never_after() {
    let server = TestServer::start().await;
    let (id, old) = server.key_with(&["keys:admin"]).await;
    let mut keys = server.keys().await;
    let rotated = server.rotate_key(&server.primary, &id, 60).await.unwrap();
    let new = rotated.secret;
    assert_ne!(new, old);
    let key = rotated.api_key.unwrap();
    assert_eq!(key.key_id, id, "same key, new secret");
    assert_eq!(key.scopes, ["keys:admin"]);
    assert_eq!(key.rotated_at, server.clock.now());

    server.clock.advance(Duration::from_secs(59));
    keys.list_api_keys(authed(list_req(), &old)).await.unwrap();
    keys.list_api_keys(authed(list_req(), &new)).await.unwrap();

    server.clock.advance(Duration::from_secs(1));
    let err = keys
        .list_api_keys(authed(list_req(), &old))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "API_KEY_INVALID");
    assert!(err.message().contains("rotated out"), "{err:?}");
    keys.list_api_keys(authed(list_req(), &new)).await.unwrap();

    // A second rotation with no grace: the previous secret stops at once,
    // and the first one is forgotten entirely.
    let again = server.rotate_key(&server.primary, &id, 0).await.unwrap();
    let err = keys
        .list_api_keys(authed(list_req(), &new))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "API_KEY_INVALID");
    let err = keys
        .list_api_keys(authed(list_req(), &old))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "API_KEY_INVALID");
    keys.list_api_keys(authed(list_req(), &again.secret))
        .await
        .unwrap();
}

#[tokio::test]
async fn grace_longer_than_thirty_days_is_refused() {
    let server = TestServer::start().await;
    let (id, _) = server.key_with(&["tools:read"]).await;
    let err = server
        .rotate_key(&server.primary, &id, 30 * 24 * 3600 + 1)
        .await
        .unwrap_err();
    let meta = assert_status(&err, Code::InvalidArgument, "INVALID_FIELD");
    assert_eq!(meta["field"], "grace_seconds");
}

#[tokio::test]
async fn primary_key_file_is_private_and_holds_the_admin_secret() {
    use std::os::unix::fs::PermissionsExt;
    let server = TestServer::start().await;
    let path = server.data_dir().join("primary.key");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap().trim(),
        server.primary
    );
    let listed = server
        .keys()
        .await
        .list_api_keys(authed(list_req(), &server.primary))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.api_keys[0].scopes, ["admin"]);
    assert_eq!(listed.api_keys[0].name, "primary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_admin_makes_a_new_admin_key_on_a_stopped_server_only() {
    let mut server = TestServer::start().await;
    let data_dir = server.data_dir().to_owned();
    let recover = || {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
            .arg("recover-admin")
            .arg("--data-dir")
            .arg(&data_dir)
            .env_clear()
            .output()
    };
    // Refused while the server holds the database.
    let out = recover().await.unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("another mcp-auth process is using the data directory"),
        "{err}"
    );

    // The lost admin key is revoked, the server stopped, a key recovered.
    let mut keys = server.keys().await;
    let primary_id = keys
        .list_api_keys(authed(list_req(), &server.primary))
        .await
        .unwrap()
        .into_inner()
        .api_keys[0]
        .key_id
        .clone();
    server
        .revoke_key(&server.primary, &primary_id)
        .await
        .unwrap();
    server.stop().await;
    let out = recover().await.unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let secret = stdout
        .split_whitespace()
        .find(|w| w.starts_with("mcp_sk_"))
        .unwrap()
        .to_owned();
    server.start_again().await;
    let listed = server
        .keys()
        .await
        .list_api_keys(authed(list_req(), &secret))
        .await
        .unwrap()
        .into_inner();
    let recovered = listed
        .api_keys
        .iter()
        .find(|k| k.name.starts_with("recovery-"))
        .unwrap();
    assert_eq!(recovered.scopes, ["admin"]);
    server.stop().await;
}
