//! Three replicas on one PostgreSQL database, each a real `mcp-auth serve`
//! process with a data directory of its own: what one replica writes, the
//! others enforce within a second (the tests measure it), races between
//! replicas have one winner, a key rotation on one is what the JWKS of
//! another serves, and the browser flow goes on whichever replica each of
//! its requests reaches.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mcp_auth::grpc::client::{Client, RetryPolicy};
use mcp_auth::pb;
use mcp_auth::store::postgres::test_db::TestDatabase;
use reqwest::StatusCode;
use serde_json::Value;
use tonic::transport::Channel;

use crate::browser_flow::{
    REDIRECT, VERIFIER, authorize_url, browser, exchange_code, field, location_params, param,
    set_up_with, signed_in_consent, submit,
};
use crate::code_grant::{refresh, refused};
use crate::common::{
    HttpTarget, STORE_KEY_FILE, Spawned, assert_status, authed, connect, spawn_binary_with, strings,
};
use crate::delegated_login::page_reason;
use crate::oauth::post;

/// How soon a change made on one replica must be enforced by the others.
pub const PROPAGATION_BOUND: Duration = Duration::from_secs(1);

/// One replica: the process, its data directory and a channel to it.
pub struct Replica {
    pub process: Spawned,
    pub dir: tempfile::TempDir,
    pub channel: Channel,
}

impl Replica {
    /// Starts a replica on the database `url` with `extra` arguments. The
    /// first replica of a database (`from` none) creates the primary key
    /// and the key-ring key (`store.key`); the others copy the key and the
    /// TLS material from the first's directory `from`, so one CA serves
    /// all.
    pub async fn start(url: &str, from: Option<&Path>, extra: &[&str]) -> Replica {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join(STORE_KEY_FILE);
        match from {
            // The others: the first's TLS material and key-ring key.
            Some(from) => {
                let to = dir.path().join("tls");
                std::fs::create_dir_all(&to).unwrap();
                for entry in std::fs::read_dir(from.join("tls")).unwrap() {
                    let entry = entry.unwrap();
                    std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
                }
                std::fs::copy(from.join(STORE_KEY_FILE), &key).unwrap();
            }
            None => {
                mcp_auth::store::ring_key::keygen(&key, false).unwrap();
            }
        }
        Replica::start_in(url, dir, extra).await
    }

    /// Starts a replica on the database `url` in data directory `dir`
    /// (which holds its `store.key`).
    pub async fn start_in(url: &str, dir: tempfile::TempDir, extra: &[&str]) -> Replica {
        let key = dir.path().join(STORE_KEY_FILE);
        let key = key.to_str().unwrap().to_owned();
        let mut args = vec!["--store", url, "--store-key-file", &key];
        args.extend_from_slice(extra);
        let process = spawn_binary_with(dir.path(), &args).await;
        let channel = connect(&process.url, &dir.path().join("tls/ca.pem")).await;
        Replica {
            process,
            dir,
            channel,
        }
    }

    pub fn tokens(&self) -> pb::token_service_client::TokenServiceClient<Channel> {
        pb::token_service_client::TokenServiceClient::new(self.channel.clone())
    }

    pub fn keys(&self) -> pb::api_key_service_client::ApiKeyServiceClient<Channel> {
        pb::api_key_service_client::ApiKeyServiceClient::new(self.channel.clone())
    }

    /// CreateApiKey with `scopes`: (key id, secret).
    pub async fn create_key(&self, admin: &str, scopes: &[&str]) -> (String, String) {
        let created = self
            .keys()
            .create_api_key(authed(
                pb::CreateApiKeyRequest {
                    name: "replica-test".to_owned(),
                    scopes: strings(scopes),
                    expires_at: 0,
                    rate_limit: None,
                },
                admin,
            ))
            .await
            .unwrap()
            .into_inner();
        (created.api_key.unwrap().key_id, created.secret)
    }

    /// CreateSession for `subject` as `backend`.
    pub async fn session(
        &self,
        backend: &str,
        subject: &str,
    ) -> Result<pb::Session, tonic::Status> {
        self.tokens()
            .create_session(authed(
                pb::CreateSessionRequest {
                    subject: subject.to_owned(),
                    scopes: strings(&["tools:read"]),
                    audience: "aud".to_owned(),
                    ttl_seconds: 0,
                    session_lifetime_seconds: 0,
                },
                backend,
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    /// VerifyToken of `token` as `verifier`.
    pub async fn verify(
        &self,
        verifier: &str,
        token: &str,
    ) -> Result<pb::VerifyTokenResponse, tonic::Status> {
        self.tokens()
            .verify_token(authed(
                pb::VerifyTokenRequest {
                    token: token.to_owned(),
                    audience: String::new(),
                    required_scopes: vec![],
                    client_address: String::new(),
                },
                verifier,
            ))
            .await
            .map(tonic::Response::into_inner)
    }

    /// GetJwks.
    pub async fn jwks(&self) -> String {
        self.tokens()
            .get_jwks(tonic::Request::new(pb::GetJwksRequest {}))
            .await
            .unwrap()
            .into_inner()
            .jwks_json
    }
}

impl HttpTarget for Replica {
    fn http_url(&self) -> String {
        self.process.http_url.clone()
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.path().join("tls/ca.pem")
    }
}

/// A database of the test's own, dropped with it.
pub async fn database() -> TestDatabase {
    TestDatabase::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Three replicas on a fresh database; the primary key (made by the
/// first).
async fn three_replicas(db: &TestDatabase) -> ([Replica; 3], String) {
    let a = Replica::start(db.url(), None, &[]).await;
    let primary = a
        .process
        .primary
        .clone()
        .expect("the first replica makes the primary key");
    let b = Replica::start(db.url(), Some(a.dir.path()), &[]).await;
    let c = Replica::start(db.url(), Some(a.dir.path()), &[]).await;
    assert!(b.process.primary.is_none() && c.process.primary.is_none());
    ([a, b, c], primary)
}

/// Waits until `check` holds, up to five times `PROPAGATION_BOUND`;
/// returns how long it took (the caller asserts the bound, so a slow
/// propagation fails with its figure rather than a timeout).
pub async fn time_until<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < PROPAGATION_BOUND * 5,
            "{what}: still not seen after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn what_one_replica_writes_the_others_enforce_within_a_second() {
    let db = database().await;
    let ([a, b, c], primary) = three_replicas(&db).await;

    // A key created on A authenticates on B and C.
    let (_, backend) = a
        .create_key(&primary, &["sessions:create", "tools:read"])
        .await;
    let (verifier_id, verifier) = a
        .create_key(&primary, &["tokens:verify", "sessions:revoke"])
        .await;
    for r in [&b, &c] {
        let took = time_until("a new API key on another replica", || async {
            r.session(&backend, "probe").await.is_ok()
        })
        .await;
        assert!(took < PROPAGATION_BOUND, "a new API key took {took:?}");
    }

    // A session created on A verifies on B and C.
    let s = a.session(&backend, "alice").await.unwrap();
    for r in [&b, &c] {
        let v = r.verify(&verifier, &s.access_token).await.unwrap();
        assert!(v.active, "{v:?}");
    }

    // Revoked on B: refused on A and C within the bound.
    b.tokens()
        .revoke_session(authed(
            pb::RevokeSessionRequest {
                session_id: s.session_id.clone(),
            },
            &verifier,
        ))
        .await
        .unwrap();
    for (name, r) in [("A", &a), ("C", &c)] {
        let took = time_until("a revoked session", || async {
            let v = r.verify(&verifier, &s.access_token).await.unwrap();
            v.reason() == pb::TokenReason::Revoked
        })
        .await;
        assert!(took < PROPAGATION_BOUND, "replica {name} took {took:?}");
        eprintln!("session revoked on B, refused on {name} after {took:?}");
    }

    // An API key revoked on C: refused on A and B within the bound.
    c.keys()
        .revoke_api_key(authed(
            pb::RevokeApiKeyRequest {
                key_id: verifier_id,
                cascade: None,
            },
            &primary,
        ))
        .await
        .unwrap();
    for (name, r) in [("A", &a), ("B", &b)] {
        let took = time_until("a revoked API key", || async {
            match r.verify(&verifier, &s.access_token).await {
                Err(status) => {
                    assert_status(&status, tonic::Code::Unauthenticated, "API_KEY_REVOKED");
                    true
                }
                Ok(_) => false,
            }
        })
        .await;
        assert!(took < PROPAGATION_BOUND, "replica {name} took {took:?}");
        eprintln!("API key revoked on C, refused on {name} after {took:?}");
    }
}

/// Sends one refresh token to A and B at once; returns (winner, loser).
async fn race(a: &Replica, b: &Replica, token: &str) -> (pb::Session, tonic::Status) {
    let refresh = |r: &Replica| {
        let mut client = r.tokens();
        let token = token.to_owned();
        async move {
            client
                .refresh_session(pb::RefreshSessionRequest {
                    refresh_token: token,
                    scopes: vec![],
                })
                .await
                .map(tonic::Response::into_inner)
        }
    };
    match tokio::join!(refresh(a), refresh(b)) {
        (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
        other => panic!("not exactly one winner: {other:?}"),
    }
}

/// With the default (no grace for a repeated refresh), the loser of the
/// race is reuse: the session is revoked, on every replica.
#[tokio::test]
async fn one_refresh_token_sent_to_two_replicas_at_once_has_one_winner() {
    let db = database().await;
    let ([a, b, c], primary) = three_replicas(&db).await;
    for round in 0..5 {
        let s = a
            .session(&primary, &format!("racer-{round}"))
            .await
            .unwrap();
        let (winner, loser) = race(&a, &b, &s.refresh_token).await;
        assert_status(&loser, tonic::Code::Unauthenticated, "REFRESH_TOKEN_REUSED");
        for r in [&a, &b, &c] {
            let took = time_until("the reused session revoked", || async {
                let v = r.verify(&primary, &winner.access_token).await.unwrap();
                v.reason() == pb::TokenReason::Revoked
            })
            .await;
            assert!(took < PROPAGATION_BOUND, "took {took:?}");
        }
    }
}

/// With a grace window, the loser is refused without harm and the
/// winner's line goes on, on any replica.
#[tokio::test]
async fn within_the_grace_window_the_loser_of_a_race_is_refused_without_harm() {
    let db = database().await;
    let grace = ["--refresh-reuse-grace-seconds", "5"];
    let a = Replica::start(db.url(), None, &grace).await;
    let primary = a.process.primary.clone().unwrap();
    let b = Replica::start(db.url(), Some(a.dir.path()), &grace).await;
    for round in 0..5 {
        let s = a
            .session(&primary, &format!("racer-{round}"))
            .await
            .unwrap();
        let (winner, loser) = race(&a, &b, &s.refresh_token).await;
        assert_status(
            &loser,
            tonic::Code::Unauthenticated,
            "REFRESH_TOKEN_INVALID",
        );
        let v = b.verify(&primary, &winner.access_token).await.unwrap();
        assert!(v.active, "{v:?}");
        b.tokens()
            .refresh_session(pb::RefreshSessionRequest {
                refresh_token: winner.refresh_token.clone(),
                scopes: vec![],
            })
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_key_rotation_on_one_replica_is_in_the_jwks_of_another() {
    let db = database().await;
    let ([a, b, c], primary) = three_replicas(&db).await;
    let rotated = pb::key_service_client::KeyServiceClient::new(c.channel.clone())
        .rotate_signing_key(authed(pb::RotateSigningKeyRequest {}, &primary))
        .await
        .unwrap()
        .into_inner();
    let took = time_until("the rotated key in A's JWKS", || async {
        a.jwks().await.contains(&rotated.kid)
    })
    .await;
    assert!(took < PROPAGATION_BOUND, "A's JWKS took {took:?}");

    // A token from C, signed with the new key, verifies offline with the
    // JWKS from A; so does one A issues now (A signs with it too).
    let from_c = c.session(&primary, "alice").await.unwrap();
    let iss = mcp_auth_token::vouched_claims(&from_c.access_token)
        .unwrap()
        .iss;
    let jwks = mcp_auth_token::JwkSet::from_json(&a.jwks().await, &[iss.as_str()]).unwrap();
    assert!(jwks.contains(&rotated.kid) && jwks.contains(&rotated.previous_kid));
    let claims = jwks.verify(&from_c.access_token).unwrap();
    assert_eq!(claims.sub, "alice");
    let from_a = a.session(&primary, "bob").await.unwrap();
    assert_eq!(
        kid_of(&from_a.access_token),
        rotated.kid,
        "A signs with the new key"
    );
    jwks.verify(&from_a.access_token).unwrap();
    let from_b = b.session(&primary, "carol").await.unwrap();
    assert_eq!(kid_of(&from_b.access_token), rotated.kid, "so does B");
}

/// The `kid` in a JWT's header.
fn kid_of(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    v["kid"].as_str().unwrap().to_owned()
}

/// Replicas started at the same moment on an empty database make one
/// signing key and one primary key between them.
#[tokio::test]
async fn replicas_starting_together_make_one_primary_key_and_one_signing_key() {
    let db = database().await;
    // One key-ring key for all three, as an operator would deploy it.
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    mcp_auth::store::ring_key::keygen(&dirs[0].path().join(STORE_KEY_FILE), false).unwrap();
    for d in &dirs[1..] {
        std::fs::copy(
            dirs[0].path().join(STORE_KEY_FILE),
            d.path().join(STORE_KEY_FILE),
        )
        .unwrap();
    }
    let mut dirs = dirs.into_iter();
    let (a, b, c) = tokio::join!(
        Replica::start_in(db.url(), dirs.next().unwrap(), &[]),
        Replica::start_in(db.url(), dirs.next().unwrap(), &[]),
        Replica::start_in(db.url(), dirs.next().unwrap(), &[]),
    );
    let primaries: Vec<&String> = [&a, &b, &c]
        .into_iter()
        .filter_map(|r| r.process.primary.as_ref())
        .collect();
    assert_eq!(primaries.len(), 1, "one replica made the primary key");
    let jwks: serde_json::Value = serde_json::from_str(&a.jwks().await).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{jwks}");
    assert_eq!(a.jwks().await, b.jwks().await);
    assert_eq!(a.jwks().await, c.jwks().await);
}

/// The README's three replicas, pasted: its `sh` blocks run in bash in an
/// empty directory, on a database of the test's own (instead of the
/// `createdb` it shows) and on free ports (instead of 50061-50063 and
/// 8461-8463), with the built `mcp-auth` on the `PATH`.
#[tokio::test]
async fn the_readme_replicas_section_works_when_pasted() {
    let db = database().await;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = readme
        .split("\n## Several replicas on PostgreSQL")
        .nth(1)
        .expect("the README has the section")
        .split("\n## ")
        .next()
        .unwrap();
    let mut script = String::new();
    let mut blocks = section.split("```sh\n").skip(1);
    for block in &mut blocks {
        script.push_str(block.split("\n```").next().unwrap());
        script.push('\n');
    }
    let shown = section
        .split("```text\n")
        .nth(1)
        .and_then(|b| b.split("\n```").next())
        .expect("the section shows what the last command prints");
    assert!(script.contains("createdb -h 127.0.0.1 -U postgres mcp_auth_demo\n"));
    let mut script = script
        .replace("createdb -h 127.0.0.1 -U postgres mcp_auth_demo\n", "")
        .replace("postgres://postgres@127.0.0.1:5432/mcp_auth_demo", db.url());
    let listeners: Vec<std::net::TcpListener> = (0..6)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    for (shown_port, l) in ["50061", "50062", "50063", "8461", "8462", "8463"]
        .iter()
        .zip(&listeners)
    {
        let free = l.local_addr().unwrap().port().to_string();
        assert!(script.contains(shown_port), "{shown_port}");
        script = script.replace(&format!(":{shown_port}"), &format!(":{free}"));
    }
    drop(listeners);
    // The reader stops the servers; the test does it for them, whatever
    // happens (they hold its standard error open).
    let script = format!("trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n{script}");
    let bin = Path::new(env!("CARGO_BIN_EXE_mcp-auth")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dir = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new("bash")
        .args(["-e", "-c", &script])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", path)
        .env("MCP_AUTH_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the walk-through finished within two minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.trim_end().ends_with(shown.trim_end()),
        "the last command printed otherwise:\n{stdout}\n{stderr}"
    );
}

/// The `mcp-auth` CLI against `replica` as `key`: (exit code, stdout).
async fn cli(replica: &Replica, key: &str, args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
        .args(args)
        .env_clear()
        .env("MCP_AUTH_SERVER", &replica.process.url)
        .env("MCP_AUTH_CA", replica.dir.path().join("tls/ca.pem"))
        .env("MCP_AUTH_API_KEY", key)
        .output()
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A `client_credentials` request at `replica`'s token endpoint: (HTTP
/// status, JSON body).
async fn client_token(
    replica: &Replica,
    id: &str,
    secret: &str,
    scope: &str,
) -> (u16, serde_json::Value) {
    let http = crate::common::http_client_trusting(&replica.dir.path().join("tls/ca.pem"));
    let resp = http
        .post(format!("{}/token", replica.process.http_url))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("resource", "https://mcp.example.com"),
            ("scope", scope),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// An OAuth client registered, narrowed and disabled on one replica each:
/// the others follow within the bound.
#[tokio::test]
async fn a_client_changed_on_one_replica_is_enforced_by_the_others_within_a_second() {
    let db = database().await;
    let ([a, b, c], primary) = three_replicas(&db).await;
    let (code, out) = cli(
        &a,
        &primary,
        &[
            "client",
            "create",
            "--name",
            "nightly-job",
            "--scopes",
            "tools:read,tools:call",
            "--resources",
            "https://mcp.example.com",
            "--field",
            "client.client_id,secret",
        ],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let mut lines = out.lines();
    let (id, secret) = (
        lines.next().unwrap().to_owned(),
        lines.next().unwrap().to_owned(),
    );

    let took = time_until("a new client on C", || async {
        client_token(&c, &id, &secret, "tools:call").await.0 == 200
    })
    .await;
    assert!(took < PROPAGATION_BOUND, "a new client took {took:?}");
    let (_, token) = client_token(&c, &id, &secret, "tools:read").await;
    let token = token["access_token"].as_str().unwrap().to_owned();

    // Narrowed on A: C refuses the scope it no longer has.
    let (code, out) = cli(
        &a,
        &primary,
        &["client", "update", &id, "--scopes", "tools:read"],
    )
    .await;
    assert_eq!(code, 0, "{out}");
    let took = time_until("narrowed scopes on C", || async {
        let (status, body) = client_token(&c, &id, &secret, "tools:call").await;
        status == 400 && body["error"] == "invalid_scope"
    })
    .await;
    assert!(took < PROPAGATION_BOUND, "narrowing took {took:?}");

    // Disabled on B: its token is revoked on A and C, and C refuses it.
    let (code, out) = cli(&b, &primary, &["client", "update", &id, "--disabled"]).await;
    assert_eq!(code, 0, "{out}");
    for (name, r) in [("A", &a), ("C", &c)] {
        let took = time_until("a disabled client's token", || async {
            r.verify(&primary, &token).await.unwrap().reason() == pb::TokenReason::Revoked
        })
        .await;
        assert!(took < PROPAGATION_BOUND, "replica {name} took {took:?}");
    }
    let (status, body) = client_token(&c, &id, &secret, "tools:read").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
}

/// The consent form of `interaction`, approving.
fn approve<'a>(interaction: &'a str, csrf: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("interaction", interaction),
        ("csrf", csrf),
        ("decision", "approve"),
    ]
}

/// The browser flow behind a round-robin load balancer, each request on
/// another replica: /authorize on A, the sign-in and the consent on B, the
/// code exchanged at C. Then, signed in (by the login session B started),
/// authorizations on C whose consent goes to A and B at once (one decides,
/// the other finds the interaction over) and whose code goes to A's and
/// B's token endpoints at once: one exchange wins, the other is
/// `invalid_grant` (`AUTHORIZATION_CODE_REUSED`), and the replay revokes
/// the winner's session on every replica, as on one server.
#[tokio::test]
async fn the_browser_flow_goes_across_replicas_and_a_code_sent_to_two_at_once_has_one_winner() {
    let db = database().await;
    let ([a, b, c], primary) = three_replicas(&db).await;
    let admin = Client::from_channel(a.channel.clone(), Some(primary.clone()))
        .unwrap()
        .with_retry(RetryPolicy::never());
    let client_id = set_up_with(&admin).await;
    // C authenticates the public client once its change feed brought it.
    let took = time_until("the new client at C's token endpoint", || async {
        let resp = post(
            &c,
            "/token",
            None,
            &[
                ("grant_type", "authorization_code"),
                ("client_id", &client_id),
                ("code", "mcp_ac_unknown"),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
        let body: Value = resp.json().await.unwrap();
        body["error"] == "invalid_grant"
    })
    .await;
    assert!(took < PROPAGATION_BOUND, "a new client took {took:?}");

    let user = browser(&a);
    let (interaction, csrf) =
        signed_in_consent(&user, &b, &authorize_url(&a, &client_id, REDIRECT, "")).await;
    let back = submit(&user, &b, "/consent", &approve(&interaction, &csrf)).await;
    let (to, params) = location_params(&back);
    assert_eq!(to, REDIRECT);
    assert_eq!(param(&params, "state"), Some("st-123"));
    let code = param(&params, "code").unwrap().to_owned();
    let tokens = exchange_code(&user, &c, &client_id, &code, REDIRECT).await;
    assert_eq!(tokens["scope"], "tools:read", "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let verdict = a.verify(&primary, access).await.unwrap();
    assert!(verdict.active, "{verdict:?}");
    assert_eq!(verdict.claims.unwrap().client_id, client_id);

    for round in 0..5 {
        let page = user
            .get(authorize_url(&c, &client_id, REDIRECT, ""))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK);
        let html = page.text().await.unwrap();
        assert!(
            html.contains("Allow access?") && html.contains("alice"),
            "round {round}: signed in at C by the login session B started: {html}"
        );
        let (interaction, csrf) = (field(&html, "interaction"), field(&html, "csrf"));

        // One consent, sent to A and B at once: one decision.
        let form = approve(&interaction, &csrf);
        let (x, y) = tokio::join!(
            submit(&user, &a, "/consent", &form),
            submit(&user, &b, "/consent", &form),
        );
        let (decided, over) = match (x.status(), y.status()) {
            (StatusCode::SEE_OTHER, StatusCode::BAD_REQUEST) => (x, y),
            (StatusCode::BAD_REQUEST, StatusCode::SEE_OTHER) => (y, x),
            other => panic!("round {round}: not one decision: {other:?}"),
        };
        assert_eq!(page_reason(over).await, "INTERACTION_INVALID");
        let (_, params) = location_params(&decided);
        let code = param(&params, "code").unwrap().to_owned();

        // Its code, sent to A's and B's token endpoints at once.
        let (x, y) = tokio::join!(
            exchange_code(&user, &a, &client_id, &code, REDIRECT),
            exchange_code(&user, &b, &client_id, &code, REDIRECT),
        );
        let (won, lost) = match (x.get("access_token"), y.get("access_token")) {
            (Some(_), None) => (x, y),
            (None, Some(_)) => (y, x),
            _ => panic!("round {round}: not exactly one winner: {x} {y}"),
        };
        assert_eq!(lost["error"], "invalid_grant", "{lost}");
        assert_eq!(lost["reason"], "AUTHORIZATION_CODE_REUSED", "{lost}");
        let access = won["access_token"].as_str().unwrap();
        for r in [&a, &b, &c] {
            let took = time_until("the replayed code's session revoked", || async {
                let v = r.verify(&primary, access).await.unwrap();
                v.reason() == pb::TokenReason::Revoked
            })
            .await;
            assert!(took < PROPAGATION_BOUND, "round {round}: took {took:?}");
        }
        refused(
            refresh(&c, &client_id, won["refresh_token"].as_str().unwrap(), None).await,
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "SESSION_REVOKED",
        )
        .await;
    }
}
