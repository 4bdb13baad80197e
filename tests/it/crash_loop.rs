//! The crash loop: the real server as a child process on one data
//! directory, under concurrent writers (sessions created, refreshed and
//! revoked, API keys created, OAuth authorization codes exchanged),
//! SIGKILLed at random moments and started again, again and again. A
//! ledger keeps what the server acknowledged; a call the kill cut short
//! has no known outcome, and what it touched is left out of the checks.
//! At the end, on a server started once more: every acknowledged session
//! still verifies, every acknowledged revocation holds, every acknowledged
//! key authenticates, no spent refresh token and no exchanged code works
//! again, and the audit chain verifies.
//!
//! 50 kills by default; `MCP_AUTH_TORTURE_KILLS=500` for a longer run,
//! `MCP_AUTH_TORTURE_SEED` to repeat one (the seed is printed).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_auth::grpc::client::{Client, RetryPolicy};
use mcp_auth::pb;
use reqwest::StatusCode;
use tokio::sync::watch;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic_types::StatusExt;

use crate::browser_flow::{
    REDIRECT, approve_remembered, authorize_url, browser, exchange_code, location_params, param,
    set_up_with, signed_in_consent,
};
use crate::common::{HttpTarget, Spawned, spawn_binary_with, strings};

/// The server running now: where it listens.
#[derive(Clone)]
struct Target {
    url: String,
    http_url: String,
    ca: PathBuf,
}

impl HttpTarget for Target {
    fn http_url(&self) -> String {
        self.http_url.clone()
    }

    fn ca_path(&self) -> PathBuf {
        self.ca.clone()
    }
}

/// A session the server acknowledged, with its latest tokens.
struct Live {
    session: pb::Session,
}

/// What the server acknowledged.
#[derive(Default)]
struct Ledger {
    /// Sessions acknowledged and, as far as acknowledged calls go, live.
    live: Vec<Live>,
    /// Sessions whose revocation was acknowledged.
    revoked: Vec<pb::Session>,
    /// Refresh tokens a refresh acknowledged as spent.
    spent: Vec<String>,
    /// Secrets of API keys acknowledged.
    keys: Vec<String>,
    /// Authorization codes whose exchange was acknowledged.
    codes: Vec<String>,
    /// Acknowledged writes, in all.
    acknowledged: usize,
    /// Calls a kill cut short (no known outcome).
    unknown: usize,
    /// Answers that contradict an acknowledged write.
    contradictions: Vec<String>,
}

type Shared = Arc<Mutex<Ledger>>;

/// A small deterministic generator (xorshift), so a failing run can be
/// repeated from its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A client of `target` sending `key`, or `None` while it cannot connect.
async fn client(target: &Target, key: &str) -> Option<Client> {
    let ca = std::fs::read(&target.ca).ok()?;
    let channel = Endpoint::from_shared(target.url.clone())
        .ok()?
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
        .ok()?
        .connect()
        .await
        .ok()?;
    Client::from_channel(channel, Some(key.to_owned()))
        .ok()
        .map(|c| c.with_retry(RetryPolicy::never()))
}

/// Whether the server answered (its refusal carries our reason), rather
/// than the call being cut short by the kill.
fn answered(status: &tonic::Status) -> bool {
    status.get_details_error_info().is_some()
}

/// The current target, once there is one.
async fn current(rx: &mut watch::Receiver<Option<Target>>) -> Target {
    loop {
        if let Some(t) = rx.borrow_and_update().clone() {
            return t;
        }
        if rx.changed().await.is_err() {
            panic!("the crash loop ended while a writer waited");
        }
    }
}

/// One writer: `kind` of call, over and over, until `stop`.
async fn writer(
    kind: &'static str,
    key: String,
    client_id: String,
    b: reqwest::Client,
    mut rx: watch::Receiver<Option<Target>>,
    ledger: Shared,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let target = current(&mut rx).await;
        let Some(c) = client(&target, &key).await else {
            // Not up, or just killed: wait for the next one.
            let _ = tokio::time::timeout(Duration::from_millis(50), rx.changed()).await;
            continue;
        };
        // Calls on this server until one fails.
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let ok = match kind {
                "create" => create(&c, &ledger, n).await,
                "refresh" => refresh(&c, &ledger).await,
                "revoke" => revoke(&c, &ledger).await,
                "key" => create_key(&c, &ledger).await,
                _ => exchange(&b, &target, &client_id, &ledger).await,
            };
            if !ok {
                break;
            }
        }
    }
}

async fn create(c: &Client, ledger: &Shared, n: u64) -> bool {
    let req = pb::CreateSessionRequest {
        subject: format!("user-{n}"),
        scopes: strings(&["tools:read"]),
        audience: "aud".to_owned(),
        ttl_seconds: 0,
        session_lifetime_seconds: 0,
    };
    match c.create_session(req).await {
        Ok(session) => {
            let mut l = ledger.lock().unwrap();
            l.live.push(Live { session });
            l.acknowledged += 1;
            true
        }
        Err(e) => unknown_or_contradiction(ledger, "CreateSession", &e),
    }
}

async fn refresh(c: &Client, ledger: &Shared) -> bool {
    let Some(live) = take_live(ledger) else {
        tokio::time::sleep(Duration::from_millis(5)).await;
        return true;
    };
    let old = live.session.refresh_token.clone();
    let req = pb::RefreshSessionRequest {
        refresh_token: old.clone(),
        scopes: vec![],
    };
    match c.refresh_session(req).await {
        Ok(session) => {
            let mut l = ledger.lock().unwrap();
            l.spent.push(old);
            l.live.push(Live { session });
            l.acknowledged += 1;
            true
        }
        // Cut short: the refresh may have happened; the session is left
        // out of the checks (`unknown_or_contradiction` counts it).
        Err(e) => unknown_or_contradiction(
            ledger,
            &format!("RefreshSession of {}", live.session.session_id),
            &e,
        ),
    }
}

async fn revoke(c: &Client, ledger: &Shared) -> bool {
    // Revoke one session in four, so most stay live for the refreshers.
    let Some(live) = take_live(ledger) else {
        tokio::time::sleep(Duration::from_millis(5)).await;
        return true;
    };
    tokio::time::sleep(Duration::from_millis(15)).await;
    match c
        .revoke_session(pb::RevokeSessionRequest {
            session_id: live.session.session_id.clone(),
        })
        .await
    {
        Ok(_) => {
            let mut l = ledger.lock().unwrap();
            l.revoked.push(live.session);
            l.acknowledged += 1;
            true
        }
        Err(e) => unknown_or_contradiction(
            ledger,
            &format!("RevokeSession of {}", live.session.session_id),
            &e,
        ),
    }
}

async fn create_key(c: &Client, ledger: &Shared) -> bool {
    tokio::time::sleep(Duration::from_millis(10)).await;
    let req = pb::CreateApiKeyRequest {
        name: "crash-loop".to_owned(),
        scopes: strings(&["tokens:verify"]),
        expires_at: 0,
        rate_limit: None,
    };
    match c.create_api_key(req).await {
        Ok(created) => {
            let mut l = ledger.lock().unwrap();
            l.keys.push(created.secret);
            l.acknowledged += 1;
            true
        }
        Err(e) => unknown_or_contradiction(ledger, "CreateApiKey", &e),
    }
}

/// A signed-in browser whose consent is remembered: `/authorize` sends it
/// straight back with a code, which it exchanges.
async fn exchange(b: &reqwest::Client, target: &Target, client_id: &str, ledger: &Shared) -> bool {
    let Ok(back) = b
        .get(authorize_url(target, client_id, REDIRECT, ""))
        .send()
        .await
    else {
        ledger.lock().unwrap().unknown += 1;
        return false;
    };
    if back.status() != StatusCode::SEE_OTHER {
        let status = back.status();
        let body = back.text().await.unwrap_or_default();
        ledger
            .lock()
            .unwrap()
            .contradictions
            .push(format!("/authorize answered {status}: {body}"));
        return false;
    }
    let (_, params) = location_params(&back);
    let code = param(&params, "code").unwrap().to_owned();
    let Ok(resp) = b
        .post(format!("{}/token", target.http_url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", crate::browser_flow::VERIFIER),
        ])
        .send()
        .await
    else {
        ledger.lock().unwrap().unknown += 1;
        return false;
    };
    let status = resp.status();
    match resp.json::<serde_json::Value>().await {
        Ok(tokens) if status == StatusCode::OK && tokens.get("access_token").is_some() => {
            let mut l = ledger.lock().unwrap();
            l.codes.push(code);
            l.acknowledged += 1;
            true
        }
        Ok(other) => {
            ledger.lock().unwrap().contradictions.push(format!(
                "a fresh code's exchange answered {status}: {other}"
            ));
            false
        }
        Err(_) => {
            ledger.lock().unwrap().unknown += 1;
            false
        }
    }
}

fn take_live(ledger: &Shared) -> Option<Live> {
    let mut l = ledger.lock().unwrap();
    if l.live.is_empty() {
        return None;
    }
    let i = l.live.len() / 2;
    Some(l.live.swap_remove(i))
}

/// Notes a failed call: cut short by a kill (unknown), or an answer of the
/// server's, which here always contradicts the ledger. `false`: this
/// server is gone, or the writer should look again.
fn unknown_or_contradiction(ledger: &Shared, what: &str, e: &tonic::Status) -> bool {
    let mut l = ledger.lock().unwrap();
    if answered(e) {
        l.contradictions
            .push(format!("{what}: {:?} {}", e.code(), e.message()));
    } else {
        l.unknown += 1;
    }
    false
}

async fn start(dir: &Path) -> (Spawned, Target) {
    let s = spawn_binary_with(dir, &[]).await;
    let target = Target {
        url: s.url.clone(),
        http_url: s.http_url.clone(),
        ca: dir.join("tls/ca.pem"),
    };
    (s, target)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_fifty_times_under_writers_the_server_loses_nothing_it_acknowledged() {
    let kills: u32 = std::env::var("MCP_AUTH_TORTURE_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let seed: u64 = std::env::var("MCP_AUTH_TORTURE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).unwrap();
            u64::from_le_bytes(bytes) | 1
        });
    let mut rng = Rng(seed);
    let began = Instant::now();

    let dir = tempfile::tempdir().unwrap();
    let (mut server, target) = start(dir.path()).await;
    let primary = server.primary.clone().unwrap();
    let admin = client(&target, &primary).await.unwrap();
    let backend = primary.clone();
    // A browser signed in as alice, its consent remembered.
    let client_id = set_up_with(&admin).await;
    let b = browser(&target);
    let (interaction, csrf) = signed_in_consent(
        &b,
        &target,
        &authorize_url(&target, &client_id, REDIRECT, ""),
    )
    .await;
    let back = approve_remembered(&b, &target, &interaction, &csrf).await;
    assert_eq!(back.status(), StatusCode::SEE_OTHER);

    let (tx, rx) = watch::channel(Some(target));
    let ledger: Shared = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = tokio::task::JoinSet::new();
    for kind in [
        "create", "create", "refresh", "refresh", "revoke", "key", "code",
    ] {
        writers.spawn(writer(
            kind,
            backend.clone(),
            client_id.clone(),
            b.clone(),
            rx.clone(),
            ledger.clone(),
            stop.clone(),
        ));
    }

    let mut acknowledged_before_kill = Vec::new();
    for _ in 0..kills {
        // A random moment after it started serving.
        let before = ledger.lock().unwrap().acknowledged;
        tokio::time::sleep(Duration::from_millis(100 + rng.below(400))).await;
        server.child.start_kill().unwrap(); // SIGKILL
        server.child.wait().await.unwrap();
        tx.send_replace(None);
        acknowledged_before_kill.push(ledger.lock().unwrap().acknowledged - before);
        let (next, target) = start(dir.path()).await;
        server = next;
        tx.send_replace(Some(target));
    }
    stop.store(true, Ordering::SeqCst);
    // Writers stop after their call in flight.
    tokio::time::timeout(Duration::from_secs(30), async {
        while writers.join_next().await.is_some() {}
    })
    .await
    .expect("writers stopped");
    let target = tx.borrow().clone().unwrap();
    let l = std::mem::take(&mut *ledger.lock().unwrap());
    assert!(
        l.contradictions.is_empty(),
        "answers that contradict acknowledged writes (seed {seed}): {:#?}",
        l.contradictions
    );
    let quiet_kills = acknowledged_before_kill.iter().filter(|&&n| n == 0).count();
    assert!(
        quiet_kills < acknowledged_before_kill.len() / 2,
        "most kills came before any write was acknowledged: {acknowledged_before_kill:?}"
    );

    // The checks, on the server that runs now (never killed).
    let verifier = client(&target, &primary).await.unwrap();
    let verify = |token: String| {
        let verifier = verifier.clone();
        async move {
            verifier
                .verify_token(pb::VerifyTokenRequest {
                    token,
                    audience: String::new(),
                    required_scopes: vec![],
                    client_address: String::new(),
                })
                .await
                .unwrap()
        }
    };
    for live in &l.live {
        let v = verify(live.session.access_token.clone()).await;
        assert!(
            v.active,
            "acknowledged session {} lost (seed {seed}): {v:?}",
            live.session.session_id
        );
    }
    for s in &l.revoked {
        let v = verify(s.access_token.clone()).await;
        assert!(
            !v.active,
            "acknowledged revocation of {} lost (seed {seed}): {v:?}",
            s.session_id
        );
    }
    for secret in &l.keys {
        let c = client(&target, secret).await.unwrap();
        c.who_am_i()
            .await
            .unwrap_or_else(|e| panic!("an acknowledged API key was lost (seed {seed}): {e:?}"));
    }
    let anyone = client(&target, &backend).await.unwrap();
    for token in &l.spent {
        let again = anyone
            .refresh_session(pb::RefreshSessionRequest {
                refresh_token: token.clone(),
                scopes: vec![],
            })
            .await;
        let e = again.expect_err("a spent refresh token worked again");
        assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    }
    for code in &l.codes {
        let again = exchange_code(&b, &target, &client_id, code, REDIRECT).await;
        assert_eq!(
            again["error"], "invalid_grant",
            "an exchanged code worked again (seed {seed}): {again}"
        );
    }
    crate::common::audit_verify(&target.url, &target.ca, &primary).await;
    let figures = format!(
        "crash loop (seed {seed}): {kills} SIGKILLs survived in {:.1} s; {} writes acknowledged \
         and checked ({} sessions live, {} revocations, {} spent refresh tokens, {} API keys, \
         {} codes exchanged); {} calls cut short by a kill",
        began.elapsed().as_secs_f64(),
        l.acknowledged,
        l.live.len(),
        l.revoked.len(),
        l.spent.len(),
        l.keys.len(),
        l.codes.len(),
        l.unknown
    );
    crate::common::report_figures("crash_loop", &figures);
}
