//! The resource-server SDK's `Verifier` against the real server: offline
//! verification from the JWK Set (gRPC and `jwks_uri`), key rotation,
//! online verification, API keys, failing closed when mcp-auth is
//! unreachable or refuses the MCP server's own key, and the revocation
//! stream (how fast it refuses, resuming after a disconnect and a restart,
//! what a stale stream does). The SDK runs on its own manual clock,
//! started at the server's time; a TCP forwarder (`Proxy`) cuts the
//! verifier off from the server while the test still reaches it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_auth::pb;
use mcp_auth::pb::key_service_client::KeyServiceClient;
use mcp_auth_sdk::{
    Clock, Mode, Rejection, TokenKind, Verified, Verifier, VerifierBuilder, VerifyError,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

use crate::common::{TestServer, authed};

/// The MCP server these tests protect: the `aud` of its tokens.
const RESOURCE: &str = "https://mcp.example.com/mcp";

/// A verifier builder for `RESOURCE` against `server`, trusting its CA,
/// on `clock`.
fn builder(server: &TestServer, clock: &Clock) -> VerifierBuilder {
    Verifier::builder(RESOURCE)
        .issuer(server.config.issuer.clone())
        .grpc(server.url())
        .ca_pem(std::fs::read(server.ca_path()).unwrap())
        .clock(clock.clone())
}

/// The SDK's clock at the server's time.
fn clock_of(server: &TestServer) -> Clock {
    Clock::manual(server.clock.now())
}

#[track_caller]
fn rejected(r: Result<Verified, VerifyError>) -> Rejection {
    match r {
        Err(VerifyError::Rejected(reason)) => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[track_caller]
fn unavailable(r: Result<Verified, VerifyError>) -> String {
    match r {
        Err(VerifyError::Unavailable(m)) => m,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// `token` with one byte of its signature changed.
fn tampered(token: &str) -> String {
    let (input, sig) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig[10] ^= 0x01;
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}

async fn rotate(server: &TestServer) -> pb::RotateSigningKeyResponse {
    KeyServiceClient::new(server.channel().await)
        .rotate_signing_key(authed(pb::RotateSigningKeyRequest {}, &server.primary))
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn offline_checks_audience_signature_expiry_and_issuer() {
    let server = TestServer::start().await;
    let clock = clock_of(&server);
    let v = builder(&server, &clock)
        .mode(Mode::Offline)
        .build()
        .await
        .unwrap();
    let s = server
        .session(&server.primary, &["tools:read", "tools:call"], RESOURCE)
        .await;

    let ok = v.verify(&s.access_token, None).await.unwrap();
    assert_eq!(ok.kind, TokenKind::AccessToken);
    assert_eq!(ok.subject, "alice");
    assert_eq!(ok.session_id, s.session_id);
    assert_eq!(ok.client_id, s.client_id);
    assert_eq!(ok.audience, RESOURCE);
    assert_eq!(ok.issuer, server.config.issuer);
    assert_eq!(ok.expires_at, s.expires_at);
    assert!(!ok.token_id.is_empty());
    assert_eq!(ok.scopes, ["tools:read", "tools:call"]);

    // Another resource's token, even one differing by a trailing slash.
    for aud in [
        "https://other.example.com/mcp",
        "https://mcp.example.com/mcp/",
    ] {
        let other = server.session(&server.primary, &["tools:read"], aud).await;
        assert_eq!(
            rejected(v.verify(&other.access_token, None).await),
            Rejection::WrongAudience,
            "{aud}"
        );
    }
    assert_eq!(
        rejected(v.verify(&tampered(&s.access_token), None).await),
        Rejection::BadSignature
    );
    assert_eq!(
        rejected(v.verify("mcp_rt_not.a.token", None).await),
        Rejection::Malformed
    );

    // Expiry on the SDK's clock, with its 5 s of leeway.
    clock.set(s.expires_at + 4);
    assert!(
        v.verify(&s.access_token, None).await.is_ok(),
        "within leeway"
    );
    clock.set(s.expires_at + 5);
    assert_eq!(
        rejected(v.verify(&s.access_token, None).await),
        Rejection::Expired
    );
    clock.set(s.issued_at - 6);
    assert_eq!(
        rejected(v.verify(&s.access_token, None).await),
        Rejection::NotYetValid
    );

    // A verifier for another issuer refuses mcp-auth's tokens.
    clock.set(s.issued_at);
    let foreign = builder(&server, &clock)
        .issuer("https://someone-else.example")
        .mode(Mode::Offline)
        .build()
        .await
        .unwrap();
    assert_eq!(
        rejected(foreign.verify(&s.access_token, None).await),
        Rejection::WrongIssuer
    );
}

#[tokio::test]
async fn an_unknown_kid_fetches_the_keys_again_at_most_every_interval() {
    let server = TestServer::start().await;
    let clock = clock_of(&server);
    let v = builder(&server, &clock)
        .mode(Mode::Offline)
        .jwks_refetch_interval(Duration::from_secs(10))
        .build()
        .await
        .unwrap();
    let before = server
        .session(&server.primary, &["tools:read"], RESOURCE)
        .await;
    assert!(v.verify(&before.access_token, None).await.is_ok());

    // After a rotation, the first token under the new key makes the
    // verifier fetch the keys again; the old key still verifies.
    rotate(&server).await;
    let after = server
        .session(&server.primary, &["tools:read"], RESOURCE)
        .await;
    assert!(v.verify(&after.access_token, None).await.is_ok());
    assert!(v.verify(&before.access_token, None).await.is_ok());

    // Another rotation within 10 s: no fetch, the new key is unknown...
    clock.advance(9);
    rotate(&server).await;
    let third = server
        .session(&server.primary, &["tools:read"], RESOURCE)
        .await;
    assert_eq!(
        rejected(v.verify(&third.access_token, None).await),
        Rejection::UnknownKey
    );
    // ...until the interval has passed.
    clock.advance(1);
    assert!(v.verify(&third.access_token, None).await.is_ok());
}

#[tokio::test]
async fn the_keys_are_refreshed_in_the_background_every_interval() {
    let server = TestServer::start().await;
    let clock = clock_of(&server);
    // Unknown kids may not trigger a fetch for an hour after the first.
    let v = builder(&server, &clock)
        .mode(Mode::Offline)
        .jwks_refetch_interval(Duration::from_secs(3600))
        .jwks_refresh_interval(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    rotate(&server).await;
    let second = server
        .session(&server.primary, &["tools:read"], RESOURCE)
        .await;
    assert!(
        v.verify(&second.access_token, None).await.is_ok(),
        "the first unknown kid"
    );
    rotate(&server).await;
    let third = server
        .session(&server.primary, &["tools:read"], RESOURCE)
        .await;
    assert_eq!(
        rejected(v.verify(&third.access_token, None).await),
        Rejection::UnknownKey
    );
    // A minute on, a verification starts the periodic refresh, which
    // brings the third key without waiting for the hour.
    clock.advance(60);
    let started = std::time::Instant::now();
    loop {
        match v.verify(&third.access_token, None).await {
            Ok(_) => break,
            Err(VerifyError::Rejected(Rejection::UnknownKey)) => {}
            other => panic!("{other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no background refresh"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn keys_from_jwks_uri_over_https() {
    let server = TestServer::start().await;
    let clock = clock_of(&server);
    let v = Verifier::builder(RESOURCE)
        .issuer(server.config.issuer.clone())
        .jwks_uri(format!("{}/jwks", server.http_url()))
        .ca_pem(std::fs::read(server.ca_path()).unwrap())
        .clock(clock.clone())
        .mode(Mode::Offline)
        .build()
        .await
        .unwrap();
    let s = server
        .session(&server.primary, &["tools:read"], RESOURCE)
        .await;
    assert_eq!(
        v.verify(&s.access_token, None).await.unwrap().subject,
        "alice"
    );
    // A rotation is learnt from jwks_uri too.
    rotate(&server).await;
    let after = server
        .session(&server.primary, &["tools:read"], RESOURCE)
        .await;
    assert!(v.verify(&after.access_token, None).await.is_ok());
    assert_eq!(
        rejected(v.verify(&tampered(&after.access_token), None).await),
        Rejection::BadSignature
    );

    // Without the CA the server's certificate is not trusted: no keys, no
    // verifier.
    let err = Verifier::builder(RESOURCE)
        .issuer(server.config.issuer.clone())
        .jwks_uri(format!("{}/jwks", server.http_url()))
        .mode(Mode::Offline)
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(err, mcp_auth_sdk::BuildError::Unreachable(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn online_mode_asks_verify_token_and_caches_only_acceptances() {
    let server = TestServer::start().await;
    let clock = clock_of(&server);
    let (_, mcp_key) = server.key_with(&["tokens:verify"]).await;
    let v = builder(&server, &clock)
        .api_key(mcp_key)
        .mode(Mode::Online)
        .build()
        .await
        .unwrap();
    let s = server
        .session(&server.primary, &["tools:read"], RESOURCE)
        .await;
    let ok = v.verify(&s.access_token, None).await.unwrap();
    assert_eq!(ok.kind, TokenKind::AccessToken);
    assert_eq!(ok.session_id, s.session_id);
    assert_eq!(ok.scopes, ["tools:read"]);
    assert_eq!(ok.audience, RESOURCE);
    assert!(!ok.token_id.is_empty(), "the jti of the vouched-for token");

    let other = server
        .session(
            &server.primary,
            &["tools:read"],
            "https://other.example.com/mcp",
        )
        .await;
    assert_eq!(
        rejected(v.verify(&other.access_token, None).await),
        Rejection::WrongAudience
    );
    assert_eq!(
        rejected(v.verify(&tampered(&s.access_token), None).await),
        Rejection::BadSignature
    );

    // A revoked session: refused at once if never verified before...
    let fresh = server
        .session(&server.primary, &["tools:read"], RESOURCE)
        .await;
    server
        .revoke_session(&server.primary, &fresh.session_id)
        .await
        .unwrap();
    assert_eq!(
        rejected(v.verify(&fresh.access_token, None).await),
        Rejection::Revoked
    );
    // ...and within the cache's 10 s if it was.
    server
        .revoke_session(&server.primary, &s.session_id)
        .await
        .unwrap();
    clock.advance(9);
    assert!(v.verify(&s.access_token, None).await.is_ok(), "cached");
    clock.advance(1);
    assert_eq!(
        rejected(v.verify(&s.access_token, None).await),
        Rejection::Revoked
    );
}

#[tokio::test]
async fn a_refused_own_key_or_a_stopped_server_fails_closed() {
    let mut server = TestServer::start().await;
    let clock = clock_of(&server);
    // A key without tokens:verify.
    let (_, weak) = server.key_with(&["tools:read"]).await;
    let v = builder(&server, &clock)
        .api_key(weak)
        .mode(Mode::Online)
        .build()
        .await
        .unwrap();
    let s = server
        .session(&server.primary, &["tools:read"], RESOURCE)
        .await;
    let m = unavailable(v.verify(&s.access_token, None).await);
    assert!(m.contains("own credential"), "{m}");
    assert!(m.contains("PermissionDenied"), "{m}");

    let (_, mcp_key) = server.key_with(&["tokens:verify"]).await;
    let online = builder(&server, &clock)
        .api_key(mcp_key)
        .mode(Mode::Online)
        .call_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap();
    let offline = builder(&server, &clock)
        .mode(Mode::Offline)
        .build()
        .await
        .unwrap();
    let other = server
        .session(&server.primary, &["tools:read"], RESOURCE)
        .await;
    server.stop().await;
    let m = unavailable(online.verify(&s.access_token, None).await);
    assert!(m.contains("did not answer"), "{m}");
    let m = unavailable(online.verify("mcp_sk_whatever", None).await);
    assert!(m.contains("did not answer"), "{m}");
    // Offline, the keys already held keep verifying.
    assert!(offline.verify(&other.access_token, None).await.is_ok());
    // And no verifier can be built that needs keys it cannot fetch.
    let err = Verifier::builder(RESOURCE)
        .issuer(server.config.issuer.clone())
        .grpc(server.url())
        .ca_pem(std::fs::read(server.ca_path()).unwrap())
        .mode(Mode::Offline)
        .call_timeout(Duration::from_secs(1))
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(err, mcp_auth_sdk::BuildError::Unreachable(_)),
        "{err:?}"
    );
}

/// A TCP forwarder between a verifier and the server, to cut the
/// verifier off (and follow the server to its new port after a restart)
/// while the test itself still reaches the server.
struct Proxy {
    addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start(to: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let target = Arc::new(Mutex::new(Some(to)));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (t, c) = (target.clone(), conns.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let Some(to) = *t.lock().unwrap() else {
                    drop(inbound);
                    continue;
                };
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                c.lock().unwrap().push(conn.abort_handle());
            }
        });
        Proxy {
            addr,
            target,
            conns,
            task,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    /// Closes every forwarded connection and refuses new ones.
    fn cut(&self) {
        *self.target.lock().unwrap() = None;
        for c in self.conns.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// Forwards new connections to `to`.
    fn point(&self, to: SocketAddr) {
        *self.target.lock().unwrap() = Some(to);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.cut();
    }
}

#[tokio::test]
async fn the_proxy_cuts_and_restores_a_verifier() {
    let server = TestServer::start().await;
    let clock = clock_of(&server);
    let proxy = Proxy::start(server.addr).await;
    let (_, mcp_key) = server.key_with(&["tokens:verify"]).await;
    let v = builder(&server, &clock)
        .grpc(proxy.url())
        .api_key(mcp_key)
        .mode(Mode::Online)
        .token_cache_ttl(Duration::ZERO)
        .build()
        .await
        .unwrap();
    let s = server
        .session(&server.primary, &["tools:read"], RESOURCE)
        .await;
    assert!(v.verify(&s.access_token, None).await.is_ok());
    proxy.cut();
    unavailable(v.verify(&s.access_token, None).await);
    proxy.point(server.addr);
    assert!(v.verify(&s.access_token, None).await.is_ok());
}

#[tokio::test]
async fn api_keys_are_verified_online_whatever_the_mode() {
    let server = TestServer::start_with(|c| c.auth_failures_per_minute = 3).await;
    let clock = clock_of(&server);
    let (_, mcp_key) = server.key_with(&["tokens:verify"]).await;
    // Offline mode, for tokens; API keys still go to VerifyToken.
    let v = builder(&server, &clock)
        .api_key(mcp_key)
        .mode(Mode::Offline)
        .build()
        .await
        .unwrap();
    let (key_id, key) = server.key_with(&["tools:read", "sessions:create"]).await;
    let ok = v.verify(&key, None).await.unwrap();
    assert_eq!(ok.kind, TokenKind::ApiKey);
    assert_eq!(ok.subject, key_id);
    assert_eq!(ok.client_id, key_id);
    assert_eq!(ok.scopes, ["tools:read"], "service scopes left out");
    assert_eq!((ok.audience.as_str(), ok.session_id.as_str()), ("", ""));
    assert_eq!(ok.expires_at, 0);

    // Revoked: the cached verdict lasts its 10 s, no more.
    server.revoke_key(&server.primary, &key_id).await.unwrap();
    clock.advance(9);
    assert!(v.verify(&key, None).await.is_ok(), "cached");
    clock.advance(1);
    assert_eq!(rejected(v.verify(&key, None).await), Rejection::Revoked);

    // A rotated secret: good within its grace (and cached), then rotated
    // out once both the grace and the cache's 10 s have passed.
    let (rotated_id, old) = server.key_with(&["tools:read"]).await;
    let new = server
        .rotate_key(&server.primary, &rotated_id, 30)
        .await
        .unwrap();
    assert_eq!(v.verify(&old, None).await.unwrap().client_id, rotated_id);
    server.clock.advance(Duration::from_secs(30));
    clock.advance(10);
    assert_eq!(rejected(v.verify(&old, None).await), Rejection::RotatedOut);
    assert_eq!(
        v.verify(&new.secret, None).await.unwrap().client_id,
        rotated_id
    );
    let guess = |i: usize| format!("mcp_sk_{i:0>43}");
    assert_eq!(
        rejected(v.verify(&guess(0), None).await),
        Rejection::UnknownApiKey
    );

    // Refusals are never cached, so mcp-auth counts each against the
    // caller's address; past the allowance (3 a minute) it throttles.
    let guesser = Some("203.0.113.7".parse().unwrap());
    for i in 1..=4 {
        assert_eq!(
            rejected(v.verify(&guess(i), guesser).await),
            Rejection::UnknownApiKey,
            "guess {i}"
        );
    }
    match v.verify(&guess(5), guesser).await {
        Err(VerifyError::RateLimited { retry_after }) => {
            assert!(retry_after >= Duration::from_secs(1), "{retry_after:?}");
            assert!(retry_after <= Duration::from_secs(60), "{retry_after:?}");
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    // The same guess from elsewhere is just refused; a good key from the
    // throttled address is served.
    assert_eq!(
        rejected(
            v.verify(&guess(5), Some("203.0.113.8".parse().unwrap()))
                .await
        ),
        Rejection::UnknownApiKey
    );
    assert!(v.verify(&new.secret, guesser).await.is_ok());
}

/// The revocation stream's mode, `staleness` 30 s.
fn streamed(on_stale: mcp_auth_sdk::OnStale) -> Mode {
    Mode::OfflineWithRevocations {
        staleness: Duration::from_secs(30),
        on_stale,
    }
}

/// Verifies `credential` every 5 ms until the verdict is `want`, for at
/// most `within`; how long it took.
async fn refused_within(
    v: &Verifier,
    credential: &str,
    want: Rejection,
    within: Duration,
) -> Duration {
    let started = std::time::Instant::now();
    loop {
        match v.verify(credential, None).await {
            Err(VerifyError::Rejected(r)) if r == want => return started.elapsed(),
            Ok(_) => {}
            other => panic!("expected {want:?} or acceptance, got {other:?}"),
        }
        assert!(
            started.elapsed() < within,
            "still not {want:?} after {within:?}: {:?}",
            v.revocation_status()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits (polling every 5 ms, at most 10 s) until the stream is fresh.
async fn fresh_again(v: &Verifier) {
    let started = std::time::Instant::now();
    while v.revocation_status().unwrap().stale {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            v.revocation_status()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn the_stream_makes_offline_verification_refuse_revocations_within_a_second() {
    let server = TestServer::start().await;
    let clock = clock_of(&server);
    let (_, mcp_key) = server.key_with(&["tokens:verify"]).await;
    let v = builder(&server, &clock)
        .api_key(mcp_key)
        .mode(streamed(mcp_auth_sdk::OnStale::FailClosed))
        .build()
        .await
        .unwrap();
    // build() waited for the snapshot.
    let status = v.revocation_status().unwrap();
    assert!(!status.stale, "{status:?}");
    assert_eq!(status.snapshots, 1);
    assert!(!status.epoch.is_empty());

    let s = server
        .session(&server.primary, &["tools:read"], RESOURCE)
        .await;
    assert!(v.verify(&s.access_token, None).await.is_ok());
    server
        .revoke_session(&server.primary, &s.session_id)
        .await
        .unwrap();
    let took = refused_within(
        &v,
        &s.access_token,
        Rejection::Revoked,
        Duration::from_secs(1),
    )
    .await;
    eprintln!("a revoked session was refused offline {took:?} after RevokeSession returned");

    // A revoked API key's cached verdict goes with the stream's word, well
    // before the cache's 10 s.
    let (key_id, key) = server.key_with(&["tools:read"]).await;
    assert!(v.verify(&key, None).await.is_ok());
    server.revoke_key(&server.primary, &key_id).await.unwrap();
    let took = refused_within(&v, &key, Rejection::Revoked, Duration::from_secs(1)).await;
    eprintln!("a revoked API key was refused {took:?} after RevokeApiKey returned");

    // A key rotation retires the old key without refusing its tokens.
    let other = server
        .session(&server.primary, &["tools:read"], RESOURCE)
        .await;
    rotate(&server).await;
    let after = server
        .session(&server.primary, &["tools:read"], RESOURCE)
        .await;
    assert!(v.verify(&after.access_token, None).await.is_ok());
    assert!(v.verify(&other.access_token, None).await.is_ok());
}

#[tokio::test]
async fn the_stream_resumes_after_a_disconnect_and_a_restart() {
    let mut server = TestServer::start().await;
    let clock = clock_of(&server);
    let proxy = Proxy::start(server.addr).await;
    let (_, mcp_key) = server.key_with(&["tokens:verify"]).await;
    let v = builder(&server, &clock)
        .grpc(proxy.url())
        .api_key(mcp_key)
        .mode(streamed(mcp_auth_sdk::OnStale::FailClosed))
        .build()
        .await
        .unwrap();
    let first = v.revocation_status().unwrap();
    assert_eq!(first.snapshots, 1);
    let s1 = server
        .session(&server.primary, &["tools:read"], RESOURCE)
        .await;
    let s2 = server
        .session(&server.primary, &["tools:read"], RESOURCE)
        .await;
    assert!(v.verify(&s1.access_token, None).await.is_ok());

    // Cut off: what is revoked meanwhile arrives when the stream resumes
    // from where it was, without a new snapshot.
    proxy.cut();
    server
        .revoke_session(&server.primary, &s1.session_id)
        .await
        .unwrap();
    assert!(
        v.verify(&s1.access_token, None).await.is_ok(),
        "not heard yet"
    );
    proxy.point(server.addr);
    refused_within(
        &v,
        &s1.access_token,
        Rejection::Revoked,
        Duration::from_secs(10),
    )
    .await;
    let resumed = v.revocation_status().unwrap();
    assert_eq!(resumed.epoch, first.epoch);
    assert_eq!(
        resumed.snapshots, 1,
        "resumed, not started over: {resumed:?}"
    );

    // The server restarts (a new run, a new port); a session is revoked
    // before the verifier reaches it again: the new run's snapshot has it.
    proxy.cut();
    server.restart().await;
    server
        .revoke_session(&server.primary, &s2.session_id)
        .await
        .unwrap();
    proxy.point(server.addr);
    refused_within(
        &v,
        &s2.access_token,
        Rejection::Revoked,
        Duration::from_secs(10),
    )
    .await;
    let restarted = v.revocation_status().unwrap();
    assert_ne!(restarted.epoch, first.epoch);
    assert_eq!(restarted.snapshots, 2, "{restarted:?}");
    assert_eq!(
        rejected(v.verify(&s1.access_token, None).await),
        Rejection::Revoked,
        "still revoked after the restart"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_stale_stream_fails_closed_or_asks_verify_token() {
    use mcp_auth_sdk::OnStale;
    let server = TestServer::start().await;
    let clock = clock_of(&server);
    let (_, mcp_key) = server.key_with(&["tokens:verify"]).await;
    let s = server
        .session(&server.primary, &["tools:read"], RESOURCE)
        .await;

    // FailClosed: the stream cut for longer than its staleness (by the
    // SDK's clock) means 503, until it is back.
    let proxy = Proxy::start(server.addr).await;
    let closed = builder(&server, &clock)
        .grpc(proxy.url())
        .api_key(mcp_key.clone())
        .mode(streamed(OnStale::FailClosed))
        .build()
        .await
        .unwrap();
    assert!(closed.verify(&s.access_token, None).await.is_ok());
    proxy.cut();
    clock.advance(30);
    assert!(
        closed.verify(&s.access_token, None).await.is_ok(),
        "30 s is not stale"
    );
    clock.advance(1);
    let m = unavailable(closed.verify(&s.access_token, None).await);
    assert!(m.contains("stale"), "{m}");
    proxy.point(server.addr);
    fresh_again(&closed).await;
    assert!(closed.verify(&s.access_token, None).await.is_ok());

    // Online: a stale stream sends each token to VerifyToken. To tell its
    // answer from the offline one, the server's clock is past the token's
    // expiry (the SDK's is not): VerifyToken says EXPIRED.
    let online = builder(&server, &clock)
        .grpc(proxy.url())
        .api_key(mcp_key)
        .mode(streamed(OnStale::Online))
        .build()
        .await
        .unwrap();
    assert!(online.verify(&s.access_token, None).await.is_ok());
    proxy.cut();
    clock.advance(31);
    // mcp-auth unreachable too: fail closed.
    let m = unavailable(online.verify(&s.access_token, None).await);
    assert!(m.contains("did not answer"), "{m}");
    server.clock.advance(Duration::from_secs(3600));
    proxy.point(server.addr);
    // The stream may reconnect (and be fresh again) while the call is
    // under way; then the offline answer tells nothing, and the stream is
    // cut and made stale once more.
    let mut tries = 0;
    loop {
        let before = online.revocation_status().unwrap();
        let answer = online.verify(&s.access_token, None).await;
        if before.stale && online.revocation_status().unwrap().snapshots == before.snapshots {
            assert_eq!(
                rejected(answer),
                Rejection::Expired,
                "answered by VerifyToken"
            );
            break;
        }
        tries += 1;
        assert!(tries < 5, "the stream kept winning the race");
        proxy.cut();
        clock.advance(31);
        proxy.point(server.addr);
    }
    // Back to offline once the stream is.
    fresh_again(&online).await;
    assert!(online.verify(&s.access_token, None).await.is_ok());
}
