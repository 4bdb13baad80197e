//! Metrics and health (issue 16): the Prometheus exposition on the
//! metrics listener, counting real calls over gRPC and HTTP without a
//! secret, a subject or an id in any label; `/healthz` and `/readyz` on
//! it and on the HTTP listener; readiness (and the gRPC health service)
//! turning at the start of graceful shutdown; and no listener when it is
//! off.
//!
//! The counters and histograms belong to the process, which the other
//! tests' servers share: a test compares what it made the server do
//! with increases (at least), never totals. The gauges are the server's
//! own.

use std::collections::BTreeMap;
use std::time::Duration;

use mcp_auth::pb;
use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, BufReader};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::common::{TestServer, strings};
use crate::oauth::{RESOURCE, basic, grant_basic, post};

/// One scrape: every sample by its name and labels as exposed
/// (`name{k="v",...}`), and the label values it carries.
struct Scrape {
    text: String,
    samples: BTreeMap<String, f64>,
}

impl Scrape {
    /// The sample `name` with exactly `labels` (in any order), 0 when
    /// absent.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(series, _)| {
                let (n, rest) = series.split_once('{').unwrap_or((series.as_str(), "}"));
                let have = label_pairs(rest);
                n == name
                    && have.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| have.iter().any(|(hk, hv)| hk == k && hv == v))
            })
            .map(|(_, v)| *v)
            .sum()
    }

    /// Every label value of every sample.
    fn label_values(&self) -> Vec<String> {
        self.samples
            .keys()
            .filter_map(|series| series.split_once('{'))
            .flat_map(|(_, rest)| label_pairs(rest))
            .map(|(_, v)| v)
            .collect()
    }
}

/// The pairs of `k="v",k2="v2"}`.
fn label_pairs(rest: &str) -> Vec<(String, String)> {
    let inner = rest.strip_suffix('}').unwrap_or(rest);
    inner
        .split("\",")
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.split_once("=\""))
        .map(|(k, v)| (k.to_owned(), v.trim_end_matches('"').to_owned()))
        .collect()
}

fn metrics_url(server: &TestServer, path: &str) -> String {
    let addr = server.metrics_addr.expect("the metrics listener is on");
    format!("http://{addr}{path}")
}

async fn scrape(server: &TestServer) -> Scrape {
    let resp = reqwest::get(metrics_url(server, "/metrics")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[reqwest::header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(series, v)| (series.to_owned(), v.parse().unwrap()))
        .collect();
    Scrape { text, samples }
}

const VERIFY: &str = "mcp_auth.v1.TokenService/VerifyToken";
const CREATE_SESSION: &str = "mcp_auth.v1.TokenService/CreateSession";

/// A session created, a token verified active, then revoked; an
/// authentication refused; a token from the HTTP token endpoint: each
/// shows in the counters with its labels and in the latency histograms,
/// the gauges say what this server holds, and no label carries the
/// subject, a key, a token or a client id.
#[tokio::test]
async fn real_calls_show_in_the_metrics_with_fixed_labels_only() {
    let server = TestServer::start().await;
    let before = scrape(&server).await;

    let (key_id, key) = server
        .key_with(&["sessions:create", "tools:read", "tokens:verify"])
        .await;
    let subject = "metrics-subject-7f3a";
    let session = server
        .client(&key)
        .await
        .create_session(pb::CreateSessionRequest {
            subject: subject.to_owned(),
            scopes: strings(&["tools:read"]),
            audience: "aud".to_owned(),
            ttl_seconds: 0,
            session_lifetime_seconds: 0,
        })
        .await
        .unwrap();
    let token = session.access_token.clone();
    assert!(server.verify(&key, &token).await.active);
    server
        .client(&key)
        .await
        .revoke_session(pb::RevokeSessionRequest {
            session_id: session.session_id.clone(),
        })
        .await
        .unwrap();
    assert!(!server.verify(&key, &token).await.active);
    let refused = server
        .client("mcp_sk_notakeyofthisserver0000000000000000000")
        .await
        .create_session(pb::CreateSessionRequest {
            subject: subject.to_owned(),
            scopes: vec![],
            audience: "aud".to_owned(),
            ttl_seconds: 0,
            session_lifetime_seconds: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let created = server
        .client(&server.primary)
        .await
        .create_client(pb::CreateClientRequest {
            name: "metrics-job".to_owned(),
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
    let client_id = created.client.unwrap().client_id;
    let oauth_token = grant_basic(&server, &client_id, &created.secret).await;
    let introspected = post(
        &server,
        "/introspect",
        Some(&basic(&client_id, &created.secret)),
        &[("token", &oauth_token)],
    )
    .await;
    assert_eq!(introspected.status(), StatusCode::OK);

    let after = scrape(&server).await;
    let grew = |name: &str, labels: &[(&str, &str)], by: f64| {
        let (was, is) = (before.value(name, labels), after.value(name, labels));
        assert!(
            is >= was + by,
            "{name}{labels:?}: {was} -> {is}, expected +{by}\n{}",
            after.text
        );
    };
    let requests = "mcp_auth_requests_total";
    grew(
        requests,
        &[
            ("transport", "grpc"),
            ("method", CREATE_SESSION),
            ("code", "OK"),
        ],
        1.0,
    );
    grew(
        requests,
        &[("transport", "grpc"), ("method", VERIFY), ("code", "OK")],
        2.0,
    );
    grew(
        requests,
        &[
            ("transport", "grpc"),
            ("method", CREATE_SESSION),
            ("code", "UNAUTHENTICATED"),
        ],
        1.0,
    );
    grew(
        requests,
        &[
            ("transport", "http"),
            ("method", "POST /token"),
            ("code", "200"),
        ],
        1.0,
    );
    grew(
        requests,
        &[
            ("transport", "http"),
            ("method", "POST /introspect"),
            ("code", "200"),
        ],
        1.0,
    );
    let latency = "mcp_auth_request_duration_seconds";
    grew(
        &format!("{latency}_count"),
        &[("transport", "grpc"), ("method", VERIFY)],
        2.0,
    );
    grew(
        &format!("{latency}_bucket"),
        &[("transport", "grpc"), ("method", VERIFY), ("le", "+Inf")],
        2.0,
    );
    assert!(
        after.text.contains(&format!(
            "{latency}_bucket{{transport=\"grpc\",method=\"{VERIFY}\",le=\"0.00005\"}}"
        )),
        "sub-millisecond buckets\n{}",
        after.text
    );
    grew(
        &format!("{latency}_count"),
        &[("transport", "http"), ("method", "POST /token")],
        1.0,
    );
    let verdicts = "mcp_auth_token_verdicts_total";
    for reason in ["ACTIVE", "REVOKED"] {
        grew(
            verdicts,
            &[
                ("endpoint", "verify_token"),
                ("kind", "access_token"),
                ("reason", reason),
            ],
            1.0,
        );
    }
    grew(
        verdicts,
        &[
            ("endpoint", "introspect"),
            ("kind", "access_token"),
            ("reason", "ACTIVE"),
        ],
        1.0,
    );
    grew(
        "mcp_auth_authentication_failures_total",
        &[("reason", "API_KEY_INVALID")],
        1.0,
    );
    // The first check of each token is a miss, its second a hit.
    grew("mcp_auth_verify_cache_total", &[("result", "miss")], 2.0);
    grew("mcp_auth_verify_cache_total", &[("result", "hit")], 1.0);
    grew(
        "mcp_auth_store_commit_duration_seconds_count",
        &[("backend", "sled")],
        1.0,
    );
    grew(
        "mcp_auth_store_commit_batch_size_count",
        &[("backend", "sled")],
        1.0,
    );

    // The gauges are this server's: the primary key and one more, one
    // client, no stream, a young key, a chain that grew.
    assert_eq!(after.value("mcp_auth_api_keys", &[]), 2.0, "{}", after.text);
    assert_eq!(after.value("mcp_auth_oauth_clients", &[]), 1.0);
    assert_eq!(after.value("mcp_auth_revocation_subscribers", &[]), 0.0);
    assert_eq!(after.value("mcp_auth_ready", &[]), 1.0);
    assert!(after.text.contains("\nmcp_auth_signing_key_age_seconds "));
    assert!(
        after.value("mcp_auth_audit_chain_length", &[])
            > before.value("mcp_auth_audit_chain_length", &[])
    );
    assert!(
        !after.text.contains("\nmcp_auth_sessions "),
        "no sweep counted the sessions yet"
    );
    server.maintain().await;
    let swept = scrape(&server).await;
    assert_eq!(
        swept.value("mcp_auth_sessions", &[]),
        0.0,
        "the one session is revoked\n{}",
        swept.text
    );

    // What a caller sent or was given never becomes a label.
    let secrets = [
        subject,
        key.as_str(),
        key_id.as_str(),
        server.primary.as_str(),
        token.as_str(),
        session.refresh_token.as_str(),
        session.session_id.as_str(),
        client_id.as_str(),
        created.secret.as_str(),
        oauth_token.as_str(),
    ];
    for value in swept.label_values() {
        for secret in secrets {
            assert!(
                !value.contains(secret),
                "a label carries {secret:?}: {value:?}"
            );
        }
    }
    for secret in secrets {
        assert!(!swept.text.contains(secret), "the scrape shows {secret:?}");
    }
}

/// A path no service or route serves is counted as `unknown` or
/// `unmatched`, never as sent.
#[tokio::test]
async fn made_up_paths_are_not_labels() {
    let server = TestServer::start().await;
    let made_up = "/made-up-path-91c2/mcp_sk_x";
    let resp = server
        .http_client()
        .get(format!("{}{made_up}", server.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let after = scrape(&server).await;
    assert!(
        after.value(
            "mcp_auth_requests_total",
            &[
                ("transport", "http"),
                ("method", "unmatched"),
                ("code", "404")
            ]
        ) >= 1.0
    );
    assert!(!after.text.contains("made-up-path-91c2"), "{}", after.text);
}

/// `/healthz` and `/readyz` on the metrics listener and the HTTP
/// listener; at the start of graceful shutdown, while a call is still in
/// flight, readiness turns 503 and the gRPC health service NOT_SERVING,
/// and the metrics listener still answers.
#[tokio::test]
async fn readiness_ends_when_graceful_shutdown_begins() {
    let mut server = TestServer::start().await;
    let healthz = reqwest::get(metrics_url(&server, "/healthz"))
        .await
        .unwrap();
    assert_eq!(healthz.status(), StatusCode::OK);
    assert_eq!(healthz.text().await.unwrap(), "ok\n");
    let readyz = reqwest::get(metrics_url(&server, "/readyz")).await.unwrap();
    assert_eq!(readyz.status(), StatusCode::OK);
    assert_eq!(readyz.text().await.unwrap(), "ready\n");
    let http = server.http_client();
    let main = http
        .get(format!("{}/readyz", server.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(main.status(), StatusCode::OK);
    let body: serde_json::Value = main.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ready"}));

    // A health watch is a call in flight: it holds the drain open.
    let mut health = HealthClient::new(server.channel().await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: "mcp_auth.v1.TokenService".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);

    server.begin_stop();
    let turned = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("the health status did not change")
        .unwrap()
        .unwrap();
    assert_eq!(turned.status(), ServingStatus::NotServing);
    // The draining flag is set before the health status turns.
    let readyz = reqwest::get(metrics_url(&server, "/readyz")).await.unwrap();
    assert_eq!(readyz.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(readyz.text().await.unwrap(), "not ready: shutting_down\n");
    assert!(!server.has_stopped(), "the drain waits for the watch");
    let during = scrape(&server).await;
    assert_eq!(during.value("mcp_auth_ready", &[]), 0.0);

    drop(watch);
    tokio::time::timeout(Duration::from_secs(5), server.stop())
        .await
        .expect("the server did not stop");
    let addr = server.metrics_addr.unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the metrics listener outlived the server"
    );
}

/// `metrics_listen = off` (here, the config's `None`) binds no metrics
/// listener; the binary with `--metrics-listen off` prints no metrics
/// line, and with an address prints the URL it serves.
#[tokio::test]
async fn the_metrics_listener_can_be_turned_off() {
    let server = TestServer::start_with(|c| c.metrics_listen = None).await;
    assert_eq!(server.metrics_addr, None);
    // Served alike without it.
    let (_, key) = server.key_with(&["tokens:verify"]).await;
    assert!(!server.verify(&key, "x.y.z").await.active);

    for (flag, shown) in [("off", false), ("127.0.0.1:0", true)] {
        let dir = tempfile::tempdir().unwrap();
        let (child, lines) = serve_lines(dir.path(), flag).await;
        let metrics: Vec<&String> = lines
            .iter()
            .filter(|l| l.starts_with("mcp-auth metrics listening on "))
            .collect();
        assert_eq!(metrics.len(), usize::from(shown), "{flag}: {lines:?}");
        if let Some(line) = metrics.first() {
            let url = line.trim_start_matches("mcp-auth metrics listening on ");
            assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/metrics"));
            let text = reqwest::get(url).await.unwrap().text().await.unwrap();
            assert!(text.contains("\nmcp_auth_ready 1"), "{text}");
        }
        drop(child);
    }
}

/// `mcp-auth serve --metrics-listen FLAG` (killed when dropped), and what
/// it prints up to the line about mutual TLS (the last of its start).
async fn serve_lines(dir: &std::path::Path, flag: &str) -> (tokio::process::Child, Vec<String>) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(["--metrics-listen", flag])
        .env_clear()
        .env("MCP_AUTH_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut lines = Vec::new();
    while let Some(line) = out.next_line().await.unwrap() {
        let last = line.starts_with("mutual TLS:");
        lines.push(line);
        if last {
            break;
        }
    }
    // Keep reading what it prints, so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
    (child, lines)
}

/// A second server on one host collides on the default metrics port: the
/// start fails (no silent server without metrics), naming the setting and
/// the way out.
#[tokio::test]
async fn a_metrics_port_in_use_names_the_setting_that_chose_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(["--metrics-listen", &addr])
        .env_clear()
        .env("MCP_AUTH_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!(
            "binding {addr} for --metrics-listen (another process holds it: give --metrics-listen another address or off)"
        )),
        "{err}"
    );
}
