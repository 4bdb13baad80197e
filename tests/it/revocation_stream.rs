//! `TokenService.WatchRevocations` over real TLS: the snapshot on connect,
//! revocations of each kind as they happen (within a second), resuming
//! within a run and after a restart, heartbeats, the scope it needs, and a
//! graceful shutdown that does not wait for open streams.

use std::time::{Duration, Instant};

use tokio::io::AsyncBufReadExt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mcp_auth::pb;
use pb::revocation::Target;
use tonic::Code;
use tonic::Streaming;

use crate::common::{TestServer, assert_status, authed, strings};
use crate::oauth::{RESOURCE, post, token_ok};

/// Longest wait for a batch that must come.
const PATIENCE: Duration = Duration::from_secs(5);

/// The longest token lifetime of the test configuration.
const MAX_TTL: i64 = 3600;

async fn watch_from(
    server: &TestServer,
    key: &str,
    epoch: &str,
    position: u64,
) -> Result<Streaming<pb::RevocationBatch>, tonic::Status> {
    let req = pb::WatchRevocationsRequest {
        epoch: epoch.to_owned(),
        position,
    };
    Ok(server
        .tokens()
        .await
        .watch_revocations(authed(req, key))
        .await?
        .into_inner())
}

async fn watch(server: &TestServer, key: &str) -> Streaming<pb::RevocationBatch> {
    watch_from(server, key, "", 0).await.unwrap()
}

async fn next(stream: &mut Streaming<pb::RevocationBatch>) -> pb::RevocationBatch {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("a batch within 5 s")
        .unwrap()
        .expect("the stream goes on")
}

/// The next batch that carries revocations (heartbeats skipped).
async fn next_news(stream: &mut Streaming<pb::RevocationBatch>) -> pb::RevocationBatch {
    loop {
        let b = next(stream).await;
        if !b.revocations.is_empty() {
            return b;
        }
    }
}

/// A whole snapshot: its first batch and the ones it continues in.
async fn snapshot(
    stream: &mut Streaming<pb::RevocationBatch>,
) -> (pb::RevocationBatch, Vec<Target>) {
    let first = next(stream).await;
    assert!(first.snapshot, "{first:?}");
    let mut all = first.revocations.clone();
    let mut last = first.clone();
    while last.snapshot_continues {
        last = next(stream).await;
        assert!(!last.snapshot);
        assert_eq!(last.position, first.position);
        all.extend(last.revocations.clone());
    }
    (first, all.into_iter().filter_map(|r| r.target).collect())
}

fn find<'a>(batch: &'a pb::RevocationBatch, target: &Target) -> &'a pb::Revocation {
    batch
        .revocations
        .iter()
        .find(|r| r.target.as_ref() == Some(target))
        .unwrap_or_else(|| panic!("no {target:?} in {batch:?}"))
}

fn session(id: &str) -> Target {
    Target::SessionId(id.to_owned())
}

async fn revoke(server: &TestServer, session_id: &str) {
    server
        .revoke_session(&server.primary, session_id)
        .await
        .unwrap();
}

/// Creates a `client_credentials` client; returns (client id, secret).
pub(crate) async fn oauth_client(server: &TestServer) -> (String, String) {
    let resp = server
        .client(&server.primary)
        .await
        .create_client(pb::CreateClientRequest {
            name: "nightly".to_owned(),
            redirect_uris: vec![],
            grant_types: strings(&["client_credentials"]),
            allowed_scopes: strings(&["tools:read"]),
            allowed_resources: strings(&[RESOURCE]),
            token_endpoint_auth_method: "client_secret_basic".to_owned(),
            jwks: String::new(),
            skip_consent: false,
        })
        .await
        .unwrap();
    (resp.client.unwrap().client_id, resp.secret)
}

async fn set_disabled(server: &TestServer, client_id: &str, disabled: bool) {
    server
        .client(&server.primary)
        .await
        .update_client(pb::UpdateClientRequest {
            client_id: client_id.to_owned(),
            disabled: Some(disabled),
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn the_snapshot_holds_earlier_revocations_and_new_ones_arrive_within_a_second() {
    let server = TestServer::start().await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let before = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;
    revoke(&server, &before.session_id).await;

    let mut stream = watch(&server, &verifier).await;
    let (first, held) = snapshot(&mut stream).await;
    assert_eq!(first.epoch.len(), 32, "128 random bits in hex: {first:?}");
    assert!(first.epoch.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(first.position, 1, "one revocation so far in this run");
    assert_eq!(held, [session(&before.session_id)]);
    let r = find(&first, &session(&before.session_id));
    assert_eq!(
        r.expires_at, before.expires_at,
        "when its newest token expires"
    );

    let after = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;
    let started = Instant::now();
    revoke(&server, &after.session_id).await;
    let news = next_news(&mut stream).await;
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(1), "took {waited:?}");
    assert!(!news.snapshot);
    assert_eq!(news.epoch, first.epoch);
    assert_eq!(news.position, 2);
    assert_eq!(news.revocations.len(), 1);
    assert_eq!(
        find(&news, &session(&after.session_id)).expires_at,
        after.expires_at
    );

    // Revoking it again is no news; a cascade is one revocation per
    // session, in one batch.
    revoke(&server, &after.session_id).await;
    let (key_id, key) = server.key_with(&["sessions:create", "tools:read"]).await;
    let a = server.session(&key, &["tools:read"], "aud").await;
    let b = server.session(&key, &["tools:read"], "aud").await;
    server.revoke_key(&server.primary, &key_id).await.unwrap();
    let mut got = Vec::new();
    while got.len() < 3 {
        let batch = next_news(&mut stream).await;
        got.extend(batch.revocations.iter().filter_map(|r| r.target.clone()));
        assert_eq!(batch.position, 2 + u64::try_from(got.len()).unwrap());
    }
    for t in [
        session(&a.session_id),
        session(&b.session_id),
        Target::ApiKeyId(key_id),
    ] {
        assert!(got.contains(&t), "{t:?} in {got:?}");
    }
}

#[tokio::test]
async fn clients_api_keys_and_single_tokens_appear() {
    let server = TestServer::start_with(|c| c.auth_failures_per_minute = 10_000).await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let mut stream = watch(&server, &verifier).await;
    let (first, held) = snapshot(&mut stream).await;
    assert_eq!((first.position, held.len()), (0, 0));

    // A client disabled: all its tokens, until further notice.
    let (client_id, secret) = oauth_client(&server).await;
    set_disabled(&server, &client_id, true).await;
    let news = next_news(&mut stream).await;
    let r = find(&news, &Target::ClientId(client_id.clone()));
    assert_eq!((r.issued_through, r.expires_at), (i64::MAX, 0));

    // Enabled again: only what it had until then, which ends with the
    // longest token lifetime.
    let enabled_at = server.clock.now();
    set_disabled(&server, &client_id, false).await;
    let news = next_news(&mut stream).await;
    let r = find(&news, &Target::ClientId(client_id.clone()));
    assert_eq!(r.issued_through, enabled_at);
    assert_eq!(r.expires_at, enabled_at + MAX_TTL);

    // One access token revoked by its client (RFC 7009).
    server.clock.advance(Duration::from_secs(1));
    let basic = format!("Basic {}", STANDARD.encode(format!("{client_id}:{secret}")));
    let token = token_ok(
        post(
            &server,
            "/token",
            Some(&basic),
            &[("grant_type", "client_credentials")],
        )
        .await,
    )
    .await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let claims = server.verify(&verifier, &token).await.claims.unwrap();
    let resp = post(&server, "/revoke", Some(&basic), &[("token", &token)]).await;
    assert!(resp.status().is_success());
    let news = next_news(&mut stream).await;
    assert_eq!(news.revocations.len(), 1, "{news:?}");
    let r = &news.revocations[0];
    assert!(
        matches!(&r.target, Some(Target::TokenId(jti)) if jti.starts_with("at_")),
        "{r:?}"
    );
    assert_eq!(r.expires_at, claims.expires_at);

    // Deleted: every token, until the longest token lifetime has passed.
    let deleted_at = server.clock.now();
    server
        .client(&server.primary)
        .await
        .delete_client(pb::DeleteClientRequest {
            client_id: client_id.clone(),
        })
        .await
        .unwrap();
    let news = next_news(&mut stream).await;
    let r = find(&news, &Target::ClientId(client_id.clone()));
    assert_eq!(
        (r.issued_through, r.expires_at),
        (i64::MAX, deleted_at + MAX_TTL)
    );

    // An API key revoked; rotating one is no revocation.
    let (rotated_id, _) = server.key_with(&["tools:read"]).await;
    server
        .rotate_key(&server.primary, &rotated_id, 0)
        .await
        .unwrap();
    let (key_id, _) = server.key_with(&["tools:read"]).await;
    server.revoke_key(&server.primary, &key_id).await.unwrap();
    let news = next_news(&mut stream).await;
    assert_eq!(news.revocations.len(), 1, "{news:?}");
    let r = find(&news, &Target::ApiKeyId(key_id.clone()));
    assert_eq!(r.expires_at, 0, "the key never expires");

    // A fresh stream's snapshot has what still matters of all of it.
    let mut again = watch(&server, &verifier).await;
    let (first, held) = snapshot(&mut again).await;
    assert_eq!(first.position, news.position);
    assert_eq!(held.len(), 3, "{held:?}");
    assert!(held.contains(&Target::ClientId(client_id)));
    assert!(held.contains(&Target::ApiKeyId(key_id)));
    assert!(held.iter().any(|t| matches!(t, Target::TokenId(_))));
}

#[tokio::test]
async fn a_resume_in_the_same_run_gets_only_what_came_after() {
    let server = TestServer::start().await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let mut s = Vec::new();
    for _ in 0..4 {
        s.push(
            server
                .session(&server.primary, &["tools:read"], "aud")
                .await,
        );
    }
    revoke(&server, &s[0].session_id).await;
    let mut stream = watch(&server, &verifier).await;
    let (first, _) = snapshot(&mut stream).await;
    let (epoch, position) = (first.epoch.clone(), first.position);
    drop(stream);

    revoke(&server, &s[1].session_id).await;
    revoke(&server, &s[2].session_id).await;
    let mut resumed = watch_from(&server, &verifier, &epoch, position)
        .await
        .unwrap();
    let b = next(&mut resumed).await;
    assert!(!b.snapshot, "{b:?}");
    assert_eq!(b.epoch, epoch);
    assert_eq!(b.position, position + 2);
    let got: Vec<Target> = b
        .revocations
        .iter()
        .filter_map(|r| r.target.clone())
        .collect();
    assert_eq!(got, [session(&s[1].session_id), session(&s[2].session_id)]);
    // And on from there, live.
    revoke(&server, &s[3].session_id).await;
    let live = next_news(&mut resumed).await;
    assert_eq!(live.position, position + 3);
    assert_eq!(live.revocations.len(), 1);

    // Up to date: an empty batch at once, saying so.
    let mut current = watch_from(&server, &verifier, &epoch, position + 3)
        .await
        .unwrap();
    let b = next(&mut current).await;
    assert_eq!(
        (b.snapshot, b.position, b.revocations.len()),
        (false, position + 3, 0)
    );

    // A position this run never reached, or another epoch: a snapshot.
    for (e, p) in [
        (epoch.as_str(), position + 100),
        ("0123", position),
        ("", 7),
    ] {
        let mut fresh = watch_from(&server, &verifier, e, p).await.unwrap();
        let (first, held) = snapshot(&mut fresh).await;
        assert_eq!(first.position, position + 3, "{e} {p}");
        assert_eq!(held.len(), 4);
    }
}

#[tokio::test]
async fn after_a_restart_a_resume_gets_a_new_epoch_and_a_snapshot_of_everything() {
    let mut server = TestServer::start().await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let s = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;
    revoke(&server, &s.session_id).await;
    let (key_id, _) = server.key_with(&["tools:read"]).await;
    server.revoke_key(&server.primary, &key_id).await.unwrap();
    let (client_id, _) = oauth_client(&server).await;
    set_disabled(&server, &client_id, true).await;
    let mut stream = watch(&server, &verifier).await;
    let (before, _) = snapshot(&mut stream).await;
    assert_eq!(before.position, 3);
    drop(stream);

    server.restart().await;
    let mut stream = watch_from(&server, &verifier, &before.epoch, before.position)
        .await
        .unwrap();
    let (after, held) = snapshot(&mut stream).await;
    assert_ne!(after.epoch, before.epoch, "a new run");
    assert_eq!(after.position, 0, "nothing revoked yet in this run");
    assert_eq!(held.len(), 3, "{held:?}");
    for t in [
        session(&s.session_id),
        Target::ApiKeyId(key_id),
        Target::ClientId(client_id.clone()),
    ] {
        assert!(held.contains(&t), "{t:?} in {held:?}");
    }
    let r = find(&after, &Target::ClientId(client_id));
    assert_eq!((r.issued_through, r.expires_at), (i64::MAX, 0));
    assert_eq!(
        find(&after, &session(&s.session_id)).expires_at,
        s.expires_at
    );

    // What no longer matters is left out: the session's token expired.
    server.clock.advance(Duration::from_secs(901));
    let mut stream = watch(&server, &verifier).await;
    let (_, held) = snapshot(&mut stream).await;
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(!held.contains(&session(&s.session_id)));
}

#[tokio::test]
async fn a_quiet_stream_carries_heartbeats() {
    let server = TestServer::start_with(|c| c.revocation_heartbeat = Duration::from_secs(1)).await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let s = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;
    revoke(&server, &s.session_id).await;
    let mut stream = watch(&server, &verifier).await;
    let (first, _) = snapshot(&mut stream).await;
    for _ in 0..2 {
        let started = Instant::now();
        let beat = next(&mut stream).await;
        let waited = started.elapsed();
        assert!(
            Duration::from_millis(500) < waited && waited < Duration::from_millis(2500),
            "{waited:?}"
        );
        assert!(beat.revocations.is_empty(), "{beat:?}");
        assert!(!beat.snapshot);
        assert_eq!(
            (beat.epoch.as_str(), beat.position),
            (first.epoch.as_str(), 1)
        );
    }
}

#[tokio::test]
async fn watching_needs_tokens_verify() {
    let server = TestServer::start().await;
    let (_, backend) = server.key_with(&["sessions:create", "tools:read"]).await;
    let err = watch_from(&server, &backend, "", 0).await.unwrap_err();
    let meta = assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");
    assert_eq!(meta["scope"], "tokens:verify");
    let err = server
        .tokens()
        .await
        .watch_revocations(tonic::Request::new(pb::WatchRevocationsRequest::default()))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "CREDENTIALS_MISSING");
    let err = watch_from(&server, "mcp_sk_nope", "", 0).await.unwrap_err();
    assert_status(&err, Code::Unauthenticated, "API_KEY_INVALID");
}

#[tokio::test]
async fn the_server_stops_promptly_with_streams_open() {
    let mut server = TestServer::start().await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let mut stream = watch(&server, &verifier).await;
    snapshot(&mut stream).await;

    // The test config's grace is 5 s: a stream that held the drain open
    // would show.
    let started = Instant::now();
    server.restart().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "restart took {took:?}");
    let end = tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("the stream ends");
    assert!(matches!(end, Ok(None)), "ended cleanly: {end:?}");

    let mut stream = watch(&server, &verifier).await;
    snapshot(&mut stream).await;
    let started = Instant::now();
    server.stop().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
}

#[tokio::test]
async fn heartbeats_keep_the_connection_of_a_stream_from_closing_as_idle() {
    let server = TestServer::start_with(|c| {
        c.revocation_heartbeat = Duration::from_secs(1);
        c.connection_idle_timeout = Duration::from_secs(2);
    })
    .await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let mut stream = watch(&server, &verifier).await;
    snapshot(&mut stream).await;
    // The client sends nothing after its request; the heartbeats the
    // server sends keep the connection past twice the idle timeout.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        let beat = next(&mut stream).await;
        assert!(beat.revocations.is_empty());
    }
}

/// `mcp-auth token watch` prints the snapshot's revocations, then a live
/// one, a line each, and stops after `--count`.
#[tokio::test]
async fn the_cli_follows_the_stream() {
    let server = TestServer::start().await;
    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let before = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;
    server
        .revoke_session(&server.primary, &before.session_id)
        .await
        .unwrap();
    let after = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;
    let mut child = server
        .cli_command(Some(&verifier), &["token", "watch", "--count", "2"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = |l: Option<String>| l.expect("token watch printed a line");
    // The snapshot's line comes once the stream is open; then a live one.
    let first = line(out.next_line().await.unwrap());
    server
        .revoke_session(&server.primary, &after.session_id)
        .await
        .unwrap();
    let second = line(out.next_line().await.unwrap());
    assert!(child.wait().await.unwrap().success(), "stops after --count");
    let lines = [first.as_str(), second.as_str()];
    assert!(
        lines[0].starts_with(&format!(
            "snapshot session     {} until ",
            before.session_id
        )),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with(&format!("live     session     {} until ", after.session_id)),
        "{lines:?}"
    );
}
