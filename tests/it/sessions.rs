//! CreateSession under concurrency.

use std::collections::HashSet;

use mcp_auth::pb;

use crate::common::{TestServer, authed, strings};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_create_session_from_many_tasks() {
    const TASKS: usize = 16;
    const EACH: usize = 25;
    let mut server = TestServer::start().await;
    let (_, backend) = server.key_with(&["sessions:create", "tools:read"]).await;
    let (_, verifier) = server.key_with(&["tokens:verify", "sessions:revoke"]).await;
    let channel = server.channel().await;

    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let mut client = pb::token_service_client::TokenServiceClient::new(channel.clone());
        let backend = backend.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..EACH {
                let s = client
                    .create_session(authed(
                        pb::CreateSessionRequest {
                            subject: format!("user-{t}-{i}"),
                            scopes: strings(&["tools:read"]),
                            audience: "aud".to_owned(),
                            ttl_seconds: 0,
                            session_lifetime_seconds: 0,
                        },
                        &backend,
                    ))
                    .await
                    .unwrap()
                    .into_inner();
                out.push(s);
            }
            out
        }));
    }
    let mut sessions = Vec::new();
    for t in tasks {
        sessions.extend(t.await.unwrap());
    }
    let ids: HashSet<_> = sessions.iter().map(|s| s.session_id.clone()).collect();
    assert_eq!(ids.len(), TASKS * EACH, "every session id is unique");
    for s in &sessions {
        let r = server.verify(&verifier, &s.access_token).await;
        assert!(r.active);
        assert_eq!(r.claims.unwrap().subject, s.subject);
    }

    // Every acknowledged session is in storage after a restart.
    server.restart().await;
    for s in &sessions {
        server
            .revoke_session(&verifier, &s.session_id)
            .await
            .unwrap();
    }
    server.stop().await;
}
