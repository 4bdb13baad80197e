//! Unit tests of the composed verifier: the offline path over a fixed key
//! set, the staleness decisions, cached verdicts re-checked on each hit,
//! and the builder's validation. Nothing here talks to a server (the
//! integration tests in the root package do).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;

use super::offline::tests::{AUD, ISS, TestKey, claims};
use super::revocations::{Revoked, Target};
use super::*;

const NOW: i64 = 1_000;

/// A verifier in `mode` over the keys of `key`, with `state` as its held
/// revocations and no connection (so anything that would go online is
/// `Unavailable` saying so).
async fn verifier(mode: Mode, key: &TestKey, state: Option<Arc<RevocationState>>) -> Verifier {
    let clock = Clock::manual(NOW);
    let refresh = Refresh {
        every: 300,
        unknown_kid_at_most_every: 10,
    };
    let keys = KeyStore::load(
        KeySource::Static(TestKey::jwks(&[key])),
        ISS,
        clock.clone(),
        refresh,
    )
    .await
    .unwrap();
    let staleness = match &mode {
        Mode::OfflineWithRevocations { staleness, .. } => secs(*staleness),
        _ => 0,
    };
    Verifier {
        inner: Arc::new(Inner {
            resource: AUD.to_owned(),
            issuer: ISS.to_owned(),
            clock,
            mode,
            expect: offline::Expect {
                audience: AUD.to_owned(),
                issuer: ISS.to_owned(),
                leeway: 5,
                max_lifetime: 24 * 60 * 60,
            },
            staleness,
            conn: None,
            keys: Some(Arc::new(keys)),
            tokens: Arc::new(VerdictCache::new(100, 10)),
            api_keys: Arc::new(VerdictCache::new(100, 10)),
            revocations: state,
            warned: AtomicBool::new(false),
            _stream: None,
        }),
    }
}

fn with_revocations(on_stale: OnStale) -> Mode {
    Mode::OfflineWithRevocations {
        staleness: Duration::from_secs(30),
        on_stale,
    }
}

fn rejected(r: Result<Verified, VerifyError>) -> Rejection {
    match r {
        Err(VerifyError::Rejected(reason)) => reason,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

fn unavailable(r: Result<Verified, VerifyError>) -> String {
    match r {
        Err(VerifyError::Unavailable(m)) => m,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn offline_accepts_this_resource_only_and_hides_service_scopes() {
    let key = TestKey::new("k1");
    let jwks = TestKey::jwks(&[&key]);
    let v = crate::bench_support::offline_verifier(AUD, ISS, &jwks, Clock::manual(NOW))
        .await
        .unwrap();
    let ok = v.verify(&key.sign(&claims(NOW)), None).await.unwrap();
    assert_eq!(ok.kind, TokenKind::AccessToken);
    assert_eq!(ok.scopes, ["tools:read"]);
    assert_eq!(ok.client_id, "key_1");
    let mut other = claims(NOW);
    other["aud"] = json!("https://mcp.example/other");
    assert_eq!(
        rejected(v.verify(&key.sign(&other), None).await),
        Rejection::WrongAudience
    );
    assert_eq!(rejected(v.verify("", None).await), Rejection::Malformed);
    let huge = "x".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(rejected(v.verify(&huge, None).await), Rejection::Malformed);
    // API keys need VerifyToken, and there is no connection.
    let m = unavailable(v.verify("mcp_sk_abc", None).await);
    assert!(m.contains("grpc"), "{m}");
}

#[tokio::test]
async fn expiry_with_the_leeway_on_the_verifiers_clock() {
    let key = TestKey::new("k1");
    let v = verifier(Mode::Offline, &key, None).await;
    let token = key.sign(&claims(NOW - 600));
    // exp == NOW: within the 5 s leeway until NOW + 5.
    assert!(v.verify(&token, None).await.is_ok());
    v.inner.clock.set(NOW + 4);
    assert!(v.verify(&token, None).await.is_ok());
    v.inner.clock.set(NOW + 5);
    assert_eq!(rejected(v.verify(&token, None).await), Rejection::Expired);
}

#[tokio::test]
async fn a_fresh_stream_vouches_and_its_revocations_refuse() {
    let key = TestKey::new("k1");
    let state = Arc::new(RevocationState::new());
    let v = verifier(
        with_revocations(OnStale::FailClosed),
        &key,
        Some(state.clone()),
    )
    .await;
    let token = key.sign(&claims(NOW));
    // Before the first snapshot: stale.
    let m = unavailable(v.verify(&token, None).await);
    assert!(m.contains("snapshot"), "{m}");
    state.hear(vec![], true, NOW);
    assert!(v.verify(&token, None).await.is_ok());
    assert!(!v.revocation_status().unwrap().stale);
    for target in [
        Target::Session("ses_1".into()),
        Target::Token("at_1".into()),
        Target::Client {
            id: "key_1".into(),
            issued_through: NOW,
        },
    ] {
        state.hear(
            vec![Revoked {
                target: target.clone(),
                expires_at: 0,
            }],
            true,
            NOW,
        );
        assert_eq!(
            rejected(v.verify(&token, None).await),
            Rejection::Revoked,
            "{target:?}"
        );
    }
    // The client's later tokens are fine.
    let later = key.sign(&claims(NOW + 1));
    v.inner.clock.set(NOW + 1);
    assert!(v.verify(&later, None).await.is_ok());
}

#[tokio::test]
async fn a_stale_stream_fails_closed_or_goes_online() {
    let key = TestKey::new("k1");
    let token = key.sign(&claims(NOW));
    for (on_stale, want) in [
        (OnStale::FailClosed, "last heard 31 s ago"),
        (OnStale::Online, "no gRPC address"),
    ] {
        let state = Arc::new(RevocationState::new());
        let v = verifier(with_revocations(on_stale), &key, Some(state.clone())).await;
        state.hear(vec![], true, NOW);
        v.inner.clock.set(NOW + 30);
        assert!(v.verify(&token, None).await.is_ok(), "30 s is not stale");
        v.inner.clock.set(NOW + 31);
        assert!(v.revocation_status().unwrap().stale);
        let m = unavailable(v.verify(&token, None).await);
        assert!(m.contains(want), "{on_stale:?}: {m}");
        // What the stale set holds is still refused, without asking.
        state.hear(
            vec![Revoked {
                target: Target::Session("ses_1".into()),
                expires_at: 0,
            }],
            false,
            NOW,
        );
        assert_eq!(rejected(v.verify(&token, None).await), Rejection::Revoked);
        // A heartbeat makes it fresh again.
        state.hear(vec![], true, NOW + 31);
        assert!(v.verify(&token, None).await.is_ok());
    }
}

fn online_verdict(exp: i64) -> Verified {
    Verified {
        kind: TokenKind::AccessToken,
        subject: "alice".into(),
        client_id: "key_1".into(),
        scopes: vec!["tools:read".into()],
        audience: AUD.into(),
        issuer: ISS.into(),
        session_id: "ses_1".into(),
        token_id: "at_1".into(),
        expires_at: exp,
    }
}

#[tokio::test]
async fn cached_verdicts_are_rechecked_on_each_hit() {
    let key = TestKey::new("k1");
    let state = Arc::new(RevocationState::new());
    let v = verifier(Mode::Online, &key, Some(state.clone())).await;
    let token = "header.payload.signature";
    v.seed(token, online_verdict(NOW + 5), NOW - 10);
    assert_eq!(
        v.verify(token, None).await.unwrap(),
        online_verdict(NOW + 5)
    );
    // Revoked since: refused from the cache.
    state.hear(
        vec![Revoked {
            target: Target::Client {
                id: "key_1".into(),
                issued_through: NOW - 10,
            },
            expires_at: 0,
        }],
        true,
        NOW,
    );
    assert_eq!(rejected(v.verify(token, None).await), Rejection::Revoked);
    state.hear(vec![], true, NOW);
    assert!(v.verify(token, None).await.is_ok());
    // Past the token's exp the entry is gone: a miss goes online.
    v.inner.clock.set(NOW + 5);
    unavailable(v.verify(token, None).await);

    // API keys: until the ttl (10 s), or their own expiry.
    v.inner.clock.set(NOW);
    let mut api = online_verdict(0);
    api.kind = TokenKind::ApiKey;
    v.seed("mcp_sk_forever", api.clone(), 0);
    api.expires_at = NOW + 3;
    v.seed("mcp_sk_short", api, 0);
    v.inner.clock.set(NOW + 3);
    assert!(v.verify("mcp_sk_forever", None).await.is_ok());
    unavailable(v.verify("mcp_sk_short", None).await);
    v.inner.clock.set(NOW + 10);
    unavailable(v.verify("mcp_sk_forever", None).await);
}

fn invalid_setting(r: Result<Verifier, BuildError>) -> &'static str {
    match r {
        Err(BuildError::Invalid { setting, .. }) => setting,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn the_builder_refuses_wrong_settings() {
    let online = || {
        Verifier::builder(AUD)
            .issuer(ISS)
            .mode(Mode::Online)
            .grpc("https://127.0.0.1:1")
            .api_key("mcp_sk_test")
    };
    assert_eq!(
        invalid_setting(Verifier::builder(AUD).build().await),
        "issuer"
    );
    assert_eq!(
        invalid_setting(online().leeway(Duration::from_secs(61)).build().await),
        "leeway"
    );
    assert_eq!(
        invalid_setting(
            Verifier::builder(AUD)
                .issuer(ISS)
                .mode(Mode::Online)
                .build()
                .await
        ),
        "grpc"
    );
    assert_eq!(
        invalid_setting(
            Verifier::builder(AUD)
                .issuer(ISS)
                .mode(Mode::Online)
                .grpc("https://127.0.0.1:1")
                .build()
                .await
        ),
        "api_key"
    );
    assert_eq!(
        invalid_setting(online().grpc("http://127.0.0.1:1").build().await),
        "grpc"
    );
    assert_eq!(
        invalid_setting(online().client_identity("cert", "key").build().await),
        "client_identity"
    );
    assert_eq!(
        invalid_setting(
            online()
                .mode(Mode::OfflineWithRevocations {
                    staleness: Duration::from_secs(1),
                    on_stale: OnStale::Online,
                })
                .build()
                .await
        ),
        "mode"
    );
    assert_eq!(
        invalid_setting(
            online()
                .token_cache_ttl(Duration::from_secs(61))
                .build()
                .await
        ),
        "token_cache_ttl"
    );
    assert_eq!(
        invalid_setting(
            Verifier::builder(AUD)
                .issuer(ISS)
                .mode(Mode::Offline)
                .build()
                .await
        ),
        "grpc"
    );
    assert_eq!(
        invalid_setting(
            Verifier::builder(AUD)
                .issuer(ISS)
                .mode(Mode::Offline)
                .jwks_uri("http://127.0.0.1:1/jwks")
                .build()
                .await
        ),
        "jwks_uri"
    );
    // Online builds without contacting mcp-auth (nothing listens on
    // port 1), and says so at the first verification.
    let v = online()
        .call_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap();
    assert!(v.revocation_status().is_none());
    let m = unavailable(v.verify("a.b.c", None).await);
    assert!(m.contains("did not answer"), "{m}");
    // The offline modes need the keys at once.
    let err = online()
        .mode(Mode::Offline)
        .call_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, BuildError::Unreachable(_)), "{err:?}");
}

#[tokio::test]
async fn no_secret_in_debug() {
    let b = Verifier::builder(AUD)
        .issuer(ISS)
        .api_key("mcp_sk_supersecret")
        .client_identity("CERT", "PRIVATEKEY");
    let shown = format!("{b:?}");
    assert!(!shown.contains("supersecret"), "{shown}");
    assert!(!shown.contains("PRIVATEKEY"), "{shown}");
    let v = Verifier::builder(AUD)
        .issuer(ISS)
        .mode(Mode::Online)
        .grpc("https://127.0.0.1:1")
        .api_key("mcp_sk_supersecret")
        .build()
        .await
        .unwrap();
    let shown = format!("{v:?}");
    assert!(!shown.contains("supersecret"), "{shown}");
}
