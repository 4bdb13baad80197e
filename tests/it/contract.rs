//! The contract fixes of the redesign, each tested from outside: a `jti`
//! per token with the session in `sid`, `iss` as the configured URL, and
//! no durable change without its audit record, even under SIGKILL.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_auth::pb;

use crate::common::{TestServer, authed, connect, spawn_binary, strings};

fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn two_refreshes_in_one_second_give_different_tokens_of_one_session() {
    let server = TestServer::start().await;
    let first = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;
    // The clock does not move: everything happens in the same second.
    let a = server.refresh(&first.refresh_token).await.unwrap();
    let b = server.refresh(&a.refresh_token).await.unwrap();
    let all = [&first.access_token, &a.access_token, &b.access_token];
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(distinct.len(), 3, "three byte-different access tokens");
    let jtis: HashSet<String> = all
        .iter()
        .map(|t| claims(t)["jti"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(jtis.len(), 3, "every token has its own jti");
    for t in all {
        let c = claims(t);
        assert_eq!(c["sid"], first.session_id.as_str());
        assert_ne!(c["jti"], first.session_id.as_str());
        assert_eq!(c["iat"], claims(&first.access_token)["iat"]);
    }
    // VerifyToken reports the session from `sid`.
    let r = server.verify(&server.primary, &b.access_token).await;
    assert!(r.active);
    assert_eq!(r.claims.unwrap().session_id, first.session_id);
}

#[tokio::test]
async fn iss_is_the_configured_issuer_url() {
    let server = TestServer::start_with(|c| c.issuer = "https://auth.example.com".to_owned()).await;
    let s = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;
    assert_eq!(claims(&s.access_token)["iss"], "https://auth.example.com");
    let r = server.verify(&server.primary, &s.access_token).await;
    assert_eq!(r.claims.unwrap().issuer, "https://auth.example.com");

    let default = TestServer::start().await;
    let s = default
        .session(&default.primary, &["tools:read"], "aud")
        .await;
    assert_eq!(claims(&s.access_token)["iss"], "https://localhost:8443");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_durable_change_lacks_its_audit_record_after_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, primary) = spawn_binary(dir.path()).await;
    let channel = connect(&url, &dir.path().join("tls/ca.pem")).await;
    let acked = Arc::new(AtomicUsize::new(0));
    let refreshing = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let enough = Arc::new(tokio::sync::Notify::new());
    // Writers of every audited kind: keys created, revoked and rotated;
    // sessions created, refreshed and revoked. Each stops at its first
    // error (the kill) or after a bounded number of rounds.
    let mut writers = Vec::new();
    for w in 0..6 {
        let channel = channel.clone();
        let primary = primary.clone();
        let acked = acked.clone();
        let enough = enough.clone();
        let refreshing = refreshing.clone();
        writers.push(tokio::spawn(async move {
            let mut keys = pb::api_key_service_client::ApiKeyServiceClient::new(channel.clone());
            let mut tokens = pb::token_service_client::TokenServiceClient::new(channel);
            for i in 0..2_000 {
                let ok = match w % 3 {
                    0 => {
                        let created = keys
                            .create_api_key(authed(
                                pb::CreateApiKeyRequest {
                                    name: format!("w{w}-{i}"),
                                    scopes: strings(&["tools:read"]),
                                    expires_at: 0,
                                    rate_limit: None,
                                },
                                &primary,
                            ))
                            .await;
                        match created {
                            Ok(c) => {
                                let id = c.into_inner().api_key.unwrap().key_id;
                                let req = if i % 2 == 0 {
                                    keys.revoke_api_key(authed(
                                        pb::RevokeApiKeyRequest {
                                            key_id: id,
                                            cascade: Some(true),
                                        },
                                        &primary,
                                    ))
                                    .await
                                    .map(|_| ())
                                } else {
                                    keys.rotate_api_key(authed(
                                        pb::RotateApiKeyRequest {
                                            key_id: id,
                                            grace_seconds: 0,
                                        },
                                        &primary,
                                    ))
                                    .await
                                    .map(|_| ())
                                };
                                req.is_ok()
                            }
                            Err(_) => false,
                        }
                    }
                    _ => {
                        let created = tokens
                            .create_session(authed(
                                pb::CreateSessionRequest {
                                    subject: format!("w{w}"),
                                    scopes: strings(&["tools:read"]),
                                    audience: "aud".to_owned(),
                                    ttl_seconds: 0,
                                    session_lifetime_seconds: 0,
                                },
                                &primary,
                            ))
                            .await;
                        match created {
                            Ok(s) => {
                                let s = s.into_inner();
                                if i % 2 == 0 {
                                    refreshing
                                        .lock()
                                        .unwrap()
                                        .push((s.session_id.clone(), s.refresh_token.clone()));
                                    tokens
                                        .refresh_session(tonic::Request::new(
                                            pb::RefreshSessionRequest {
                                                refresh_token: s.refresh_token,
                                                scopes: vec![],
                                            },
                                        ))
                                        .await
                                        .is_ok()
                                } else {
                                    tokens
                                        .revoke_session(authed(
                                            pb::RevokeSessionRequest {
                                                session_id: s.session_id,
                                            },
                                            &primary,
                                        ))
                                        .await
                                        .is_ok()
                                }
                            }
                            Err(_) => false,
                        }
                    }
                };
                if !ok {
                    return;
                }
                if acked.fetch_add(1, Ordering::SeqCst) + 1 == 300 {
                    enough.notify_one();
                }
            }
        }));
    }
    enough.notified().await;
    // SIGKILL while every writer is mid-flight.
    child.kill().await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    assert!(acked.load(Ordering::SeqCst) >= 300);

    let server = TestServer::start_in(dir, |_| {}).await;
    let mut audit = pb::audit_service_client::AuditServiceClient::new(server.channel().await);
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = audit
            .list_audit_events(authed(
                pb::ListAuditEventsRequest {
                    page_size: 1000,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                &server.primary,
            ))
            .await
            .unwrap()
            .into_inner();
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let recorded = |action: &str, target: &str| {
        events
            .iter()
            .any(|e| e.action == action && e.target.starts_with(target))
    };
    let keys = server
        .keys()
        .await
        .list_api_keys(authed(pb::ListApiKeysRequest {}, &server.primary))
        .await
        .unwrap()
        .into_inner()
        .api_keys;
    let mut checked = 0;
    for k in keys.iter().filter(|k| k.name != "primary") {
        assert!(recorded("api_key.created", &k.key_id), "{k:?}");
        if k.revoked {
            assert!(recorded("api_key.revoked", &k.key_id), "{k:?}");
        }
        if k.rotated_at != 0 {
            assert!(recorded("api_key.rotated", &k.key_id), "{k:?}");
        }
        checked += 1;
    }
    let mut tokens = server.tokens().await;
    let mut page_token = String::new();
    loop {
        let page = tokens
            .list_sessions(authed(
                pb::ListSessionsRequest {
                    page_size: 500,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                &server.primary,
            ))
            .await
            .unwrap()
            .into_inner();
        for s in &page.sessions {
            assert!(recorded("session.created", &s.session_id), "{s:?}");
            if s.revoked {
                assert!(recorded("session.revoked", &s.session_id), "{s:?}");
            }
            checked += 1;
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    // A refresh that took effect spent the session's first refresh token:
    // presenting it again is reuse. Each of those must be on record.
    let attempted = refreshing.lock().unwrap().clone();
    let mut durable_refreshes = 0;
    for (session_id, first_token) in attempted {
        let r = tokens
            .refresh_session(tonic::Request::new(pb::RefreshSessionRequest {
                refresh_token: first_token,
                scopes: vec![],
            }))
            .await;
        if let Err(e) = r {
            if e.message().contains("reused") {
                assert!(recorded("session.refreshed", &session_id), "{session_id}");
                durable_refreshes += 1;
            }
        }
    }
    assert!(durable_refreshes > 0);
    assert!(checked >= 300, "checked {checked}");
    // And the chain is intact.
    let out = server.cli_as_admin(&["audit", "verify"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test]
async fn several_authorization_values_are_refused_not_first_wins() {
    let server = TestServer::start().await;
    let mut keys = server.keys().await;
    for second in [server.primary.clone(), "mcp_sk_bad".to_owned()] {
        let mut req = tonic::Request::new(pb::ListApiKeysRequest {});
        for key in [&server.primary, &second] {
            req.metadata_mut()
                .append("authorization", format!("Bearer {key}").parse().unwrap());
        }
        let err = keys.list_api_keys(req).await.unwrap_err();
        crate::common::assert_status(&err, tonic::Code::InvalidArgument, "CREDENTIALS_CONFLICT");
    }
    // One value is served.
    keys.list_api_keys(authed(pb::ListApiKeysRequest {}, &server.primary))
        .await
        .unwrap();
}
