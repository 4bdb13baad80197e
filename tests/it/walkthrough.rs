//! The README walk-through, end to end, with the `mcp-auth` CLI against a
//! real server.

use mcp_auth::config::TlsMode;
use serde_json::Value;

use crate::common::TestServer;

struct Cli<'a> {
    server: &'a TestServer,
}

impl Cli<'_> {
    /// Runs `mcp-auth ARGS` with `key` in MCP_AUTH_API_KEY and, if given,
    /// `stdin` on standard input; returns (exit code, stdout, stderr).
    async fn run(
        &self,
        key: Option<&str>,
        args: &[&str],
        stdin: Option<&str>,
    ) -> (i32, String, String) {
        use tokio::io::AsyncWriteExt;
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"));
        cmd.args(args)
            .env_clear()
            .env("MCP_AUTH_SERVER", self.server.url())
            .env("MCP_AUTH_CA", self.server.ca_path())
            .env("MCP_AUTH_HTTP", self.server.http_url())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(key) = key {
            cmd.env("MCP_AUTH_API_KEY", key);
        }
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).await.unwrap();
        }
        drop(input);
        let out = child.wait_with_output().await.unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    }

    async fn json(&self, key: Option<&str>, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let (code, out, err) = self.run(key, &all, None).await;
        assert_eq!(code, 0, "mcp-auth {args:?} failed: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_walkthrough_with_the_cli() {
    let server = TestServer::start().await;
    let cli = Cli { server: &server };
    let admin = Some(server.primary.as_str());

    // An admin creates a key for the backend and one for the MCP server.
    let backend = cli
        .json(
            admin,
            &[
                "key",
                "create",
                "--name",
                "billing-backend",
                "--scopes",
                "sessions:create,tools:read",
            ],
        )
        .await;
    let backend_key = backend["secret"].as_str().unwrap().to_owned();
    let backend_id = backend["api_key"]["key_id"].as_str().unwrap().to_owned();
    let verifier = cli
        .json(
            admin,
            &[
                "key",
                "create",
                "--name",
                "mcp-server",
                "--scopes",
                "tokens:verify",
            ],
        )
        .await;
    let verify_key = verifier["secret"].as_str().unwrap().to_owned();

    let (code, listing, _) = cli.run(admin, &["key", "list"], None).await;
    assert_eq!(code, 0);
    assert!(listing.contains("billing-backend") && listing.contains("mcp-server"));
    assert!(!listing.contains(&backend_key), "list never prints secrets");

    // The backend creates a session for alice.
    let session = cli
        .json(
            Some(&backend_key),
            &[
                "session",
                "create",
                "--subject",
                "alice",
                "--scopes",
                "tools:read",
                "--audience",
                "https://mcp.example.com",
            ],
        )
        .await;
    let token = session["access_token"].as_str().unwrap().to_owned();
    let session_id = session["session_id"].as_str().unwrap().to_owned();
    assert_eq!(session["token_type"], "Bearer");

    // The MCP server verifies it (token on stdin).
    let (code, out, _) = cli
        .run(
            Some(&verify_key),
            &["token", "verify", "--audience", "https://mcp.example.com"],
            Some(&token),
        )
        .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("active:     true") && out.contains("alice"),
        "{out}"
    );
    assert!(out.contains(&backend_id));

    let (code, out, _) = cli
        .run(
            Some(&verify_key),
            &[
                "token",
                "verify",
                "--audience",
                "https://mcp.example.com",
                "--required-scopes",
                "tools:call",
                &token,
            ],
            None,
        )
        .await;
    assert_eq!(code, 3, "inactive exits 3");
    assert!(out.contains("INSUFFICIENT_SCOPE"), "{out}");

    // Errors are readable and carry the reason.
    let (code, _, err) = cli
        .run(
            Some(&verify_key),
            &[
                "session",
                "create",
                "--subject",
                "alice",
                "--scopes",
                "tools:read",
                "--audience",
                "x",
            ],
            None,
        )
        .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("INSUFFICIENT_SCOPE") && err.contains("sessions:create"),
        "{err}"
    );
    let (code, _, err) = cli.run(None, &["key", "list"], None).await;
    assert_eq!(code, 1);
    assert!(err.contains("MCP_AUTH_API_KEY"), "{err}");

    // Revoke the session: the token stops verifying.
    let (code, _, err) = cli
        .run(
            Some(&backend_key),
            &["session", "revoke", &session_id],
            None,
        )
        .await;
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = cli
        .run(
            Some(&verify_key),
            &["token", "verify", "--any-audience", "--json", &token],
            None,
        )
        .await;
    assert_eq!(code, 3, "inactive exits 3");
    let verdict: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(verdict["active"], false);
    assert_eq!(verdict["reason"], "REVOKED");

    // The JWKS needs no key.
    let jwks = cli.json(None, &["jwks"]).await;
    assert_eq!(jwks["keys"][0]["alg"], "EdDSA");

    // Rotate the backend key with a grace period, then revoke it.
    let rotated = cli
        .json(
            admin,
            &["key", "rotate", &backend_id, "--grace-seconds", "300"],
        )
        .await;
    let new_backend_key = rotated["secret"].as_str().unwrap();
    assert_ne!(new_backend_key, backend_key);
    let (code, _, _) = cli.run(admin, &["key", "revoke", &backend_id], None).await;
    assert_eq!(code, 0);
    let (code, _, err) = cli
        .run(
            Some(new_backend_key),
            &[
                "session",
                "create",
                "--subject",
                "a",
                "--scopes",
                "tools:read",
                "--audience",
                "x",
            ],
            None,
        )
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("API_KEY_REVOKED"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_lifecycle_with_the_cli() {
    let server = TestServer::start().await;
    let cli = Cli { server: &server };
    let admin = Some(server.primary.as_str());
    let session = cli
        .json(
            admin,
            &[
                "session",
                "create",
                "--subject",
                "carol",
                "--scopes",
                "tools:read,tools:call",
                "--audience",
                "aud",
            ],
        )
        .await;
    let refresh = session["refresh_token"].as_str().unwrap().to_owned();
    assert!(refresh.starts_with("mcp_rt_"));

    // Refresh needs no API key: the refresh token comes on stdin.
    let (code, out, err) = cli
        .run(
            None,
            &["session", "refresh", "--scopes", "tools:read", "--json"],
            Some(&refresh),
        )
        .await;
    assert_eq!(code, 0, "{err}");
    let next: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(next["session_id"], session["session_id"]);
    assert_eq!(next["scopes"], serde_json::json!(["tools:read"]));
    let (code, _, err) = cli.run(None, &["session", "refresh", &refresh], None).await;
    assert_eq!(code, 1);
    assert!(err.contains("REFRESH_TOKEN_REUSED"), "{err}");

    let (code, out, _) = cli
        .run(admin, &["session", "list", "--subject", "carol"], None)
        .await;
    assert_eq!(code, 0);
    assert!(out.contains("carol") && out.contains("revoked"), "{out}");

    let fresh = cli
        .json(
            admin,
            &[
                "session",
                "create",
                "--subject",
                "carol",
                "--scopes",
                "tools:read",
                "--audience",
                "aud",
            ],
        )
        .await;
    let (code, out, _) = cli
        .run(
            admin,
            &["session", "revoke-all", "--subject", "carol"],
            None,
        )
        .await;
    assert_eq!(code, 0);
    assert!(out.contains("revoked 1 session of carol"), "{out}");
    let r = server
        .verify(&server.primary, fresh["access_token"].as_str().unwrap())
        .await;
    assert!(!r.active);

    let (code, out, err) = cli.run(admin, &["signing-key", "rotate"], None).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("active signing key"), "{out}");
    let jwks = cli.json(None, &["jwks"]).await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = TestServer::start().await;
    let channel = server.channel().await;
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "mcp_auth.v1.TokenService", "mcp_auth.v1.ApiKeyService"] {
        let resp = health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.status(), ServingStatus::Serving, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection answer {resp:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&"mcp_auth.v1.TokenService"), "{names:?}");
    assert!(names.contains(&"mcp_auth.v1.ApiKeyService"), "{names:?}");
}

#[tokio::test]
async fn plaintext_mode_serves_h2c() {
    let server = TestServer::start_with(|c| c.tls = TlsMode::Plaintext).await;
    assert!(server.url().starts_with("http://"));
    assert!(!server.ca_path().exists(), "no TLS material is generated");
    let s = server
        .session(&server.primary, &["tools:read"], "aud")
        .await;
    assert!(server.verify(&server.primary, &s.access_token).await.active);
}

#[tokio::test]
async fn a_configured_certificate_is_served() {
    // Make a CA and certificate with the project's own generator, in a
    // directory the second server does not own.
    let certs = tempfile::tempdir().unwrap();
    mcp_auth::tls::ensure_dev_certificates(certs.path()).unwrap();
    let server = TestServer::start_with(|c| {
        c.tls = TlsMode::Files {
            cert: certs.path().join("server.pem"),
            key: certs.path().join("server.key"),
        };
        c.client_ca = None;
    })
    .await;
    assert!(
        !server.ca_path().exists(),
        "no development CA when a certificate is configured"
    );
    let channel = crate::common::connect(&server.url(), &certs.path().join("ca.pem")).await;
    let mut tokens = mcp_auth::pb::token_service_client::TokenServiceClient::new(channel);
    tokens
        .get_jwks(tonic::Request::new(mcp_auth::pb::GetJwksRequest {}))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_smoke_run_of_every_scenario_completes_without_errors() {
    // The test clock stands still, so a rate-limit bucket never refills:
    // a fast run would spend the OAuth client's burst and see 429s.
    let server = TestServer::start_with(|c| c.default_rate_limit = None).await;
    let cli = Cli { server: &server };
    let scenarios = [
        "health",
        "verify",
        "verify-uncached",
        "signature",
        "create-session",
        "refresh",
        "mixed",
        "oauth-client-credentials",
        "oauth-introspect",
        "oauth-code-flow",
        "oauth-refresh",
    ];
    let (code, out, err) = cli
        .run(
            Some(&server.primary),
            &[
                "bench",
                "--scenario",
                &scenarios.join(","),
                "--duration",
                "1",
                "--warmup",
                "0",
                "--tokens",
                "50",
                "--concurrency",
                "8",
                "--connections",
                "2",
                "--json",
            ],
            None,
        )
        .await;
    assert_eq!(code, 0, "{out}{err}");
    // One JSON object per scenario, in the order asked.
    let reports: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reports.len(), scenarios.len(), "{out}");
    for (report, scenario) in reports.iter().zip(scenarios) {
        assert_eq!(report["scenario"], scenario);
        assert_eq!(report["errors"], serde_json::json!({}), "{report}");
        assert!(report["ok"].as_u64().unwrap() > 0, "{report}");
        assert!(report["rpc_per_sec"].as_f64().unwrap() > 0.0);
        assert!(report["p99_ms"].as_f64().unwrap() >= report["p50_ms"].as_f64().unwrap());
        assert!(report["max_ms"].as_f64().unwrap() >= report["p99_ms"].as_f64().unwrap());
    }
    // The browser flow reports its two steps.
    let flow = reports
        .iter()
        .find(|r| r["scenario"] == "oauth-code-flow")
        .unwrap();
    for step in ["authorize", "token"] {
        assert!(
            flow["steps"][step]["p50_ms"].as_f64().unwrap() > 0.0,
            "{flow}"
        );
    }
    // verify-uncached used each of its 50 tokens once, then stopped.
    assert_eq!(reports[2]["ok"], 50, "{}", reports[2]);
    assert!(err.contains("ran out"), "{err}");

    // The bench leaves the store as it found it, or close: its key is
    // revoked (and would have expired within the hour), its sessions end
    // minutes after the run, so maintenance sweeps them.
    let admin = server.client(&server.primary).await;
    let keys = admin
        .list_api_keys(mcp_auth::pb::ListApiKeysRequest {})
        .await
        .unwrap()
        .api_keys;
    let bench = keys.iter().find(|k| k.name == "mcp-auth bench").unwrap();
    assert!(bench.revoked, "{bench:?}");
    let now = server.clock.now();
    assert!(
        bench.expires_at > now && bench.expires_at <= now + 3600,
        "{bench:?}"
    );
    let sessions = admin
        .list_sessions(mcp_auth::pb::ListSessionsRequest {
            page_size: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .sessions;
    assert!(!sessions.is_empty());
    // The browser flow's sessions live the server's session lifetime (a
    // client cannot ask for less), but deleting the bench's client at the
    // end revoked them.
    for s in &sessions {
        assert!(
            s.expires_at <= now + 3600 || s.revoked,
            "short-lived or revoked: {s:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_plaintext_flag_talks_h2c_to_a_plaintext_server() {
    let server = TestServer::start_with(|c| c.tls = TlsMode::Plaintext).await;
    let cli = Cli { server: &server };
    let https = server.url().replacen("http://", "https://", 1);
    let args = [
        "bench",
        "--scenario",
        "health",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--server",
        &https,
    ];
    let (code, out, err) = cli.run(Some(&server.primary), &args, None).await;
    assert_ne!(code, 0, "TLS to a plaintext server must fail: {out}");
    assert!(!err.is_empty());
    let mut plain = args.to_vec();
    plain.extend(["--plaintext", "--json"]);
    let (code, out, err) = cli.run(Some(&server.primary), &plain, None).await;
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["errors"], serde_json::json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_seed_sessions_fills_a_stopped_servers_store() {
    use crate::common::authed;
    let mut server = TestServer::start().await;
    server.stop().await;
    let dir = server.data_dir().to_str().unwrap().to_owned();
    let args = ["bench", "--seed-sessions", "300", "--data-dir", &dir];
    let (code, out, err) = Cli { server: &server }.run(None, &args, None).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("added 300 sessions (3 revoked)"), "{out}");

    server.start_again().await;
    let mut tokens = server.tokens().await;
    let (mut live, mut revoked, mut page_token) = (0, 0, String::new());
    loop {
        let page = tokens
            .list_sessions(authed(
                mcp_auth::pb::ListSessionsRequest {
                    subject: String::new(),
                    client_id: "key_benchseed".to_owned(),
                    page_token,
                    page_size: 500,
                },
                &server.primary,
            ))
            .await
            .unwrap()
            .into_inner();
        for s in &page.sessions {
            if s.revoked {
                revoked += 1;
            } else {
                live += 1;
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!((live, revoked), (297, 3));

    // While the server runs, the store is locked: seeding refuses.
    let (code, _, err) = Cli { server: &server }.run(None, &args, None).await;
    assert_ne!(code, 0);
    assert!(!err.is_empty());
}
