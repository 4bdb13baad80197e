//! What hostile clients found (issue 11): the `rpc finished` latency, echoed
//! values, connections that never finish (or never start) TLS, JOSE
//! strictness for tokens signed with our own key, and caller text in the
//! log.

use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_auth::config::TlsMode;
use mcp_auth::grpc::client::{Client, RetryPolicy};
use mcp_auth::pb;
use mcp_auth::pb::identity_service_client::IdentityServiceClient;
use mcp_auth::SigningAlg;
use mcp_auth::store::SigningKeyRecord;
use pb::TokenReason;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tonic::Code;

use crate::common::{TestServer, assert_status, authed, connect, inactive_reason, strings};

// ---- the real binary, its log captured

/// `mcp-auth serve` on a fresh data directory with its log (text format,
/// level info) read line by line.
struct LoggedServer {
    _dir: tempfile::TempDir,
    _child: tokio::process::Child,
    url: String,
    ca: std::path::PathBuf,
    primary: String,
    lines: mpsc::UnboundedReceiver<String>,
}

impl LoggedServer {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
            .arg("serve")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--listen", "127.0.0.1:0"])
            .env_clear()
            .env("MCP_AUTH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = loop {
            let line = stdout
                .next_line()
                .await
                .unwrap()
                .expect("server exited early");
            if let Some(url) = line.strip_prefix("mcp-auth listening on ") {
                break url.to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on it.
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        let primary = std::fs::read_to_string(dir.path().join("primary.key"))
            .unwrap()
            .trim()
            .to_owned();
        let ca = dir.path().join("tls").join("ca.pem");
        LoggedServer {
            _dir: dir,
            _child: child,
            url,
            ca,
            primary,
            lines,
        }
    }

    async fn client(&self) -> Client {
        Client::from_channel(connect(&self.url, &self.ca).await, Some(self.primary.clone()))
            .unwrap()
            .with_retry(RetryPolicy::never())
    }

    /// The first log line (from now on) that contains every one of `parts`.
    async fn line_with(&mut self, parts: &[&str]) -> String {
        let wait = async {
            loop {
                let line = self.lines.recv().await.expect("the server's log ended");
                if parts.iter().all(|p| line.contains(p)) {
                    return line;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .unwrap_or_else(|_| panic!("no log line with {parts:?}"))
    }
}

fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let start = line
        .find(&format!(" {name}="))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        + name.len()
        + 2;
    line[start..].split(' ').next().unwrap()
}

// ---- 1. latency_us

/// The logged latency is the server's time from the request's arrival to
/// the end of its response. To make that measurable without a slow
/// handler, the request's message is held back 300 ms after its headers:
/// the server cannot answer before it has the message, so any honest
/// figure is at least 300 ms, while the time to stream the response after
/// it was ready (what used to be logged) is microseconds. It can be no
/// more than the round trip the client saw.
#[tokio::test]
async fn latency_us_covers_the_whole_call_of_a_durable_create_session() {
    let mut server = LoggedServer::start().await;
    let channel = connect(&server.url, &server.ca).await;
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let (tx, rx) = mpsc::channel(1);
    let held = Duration::from_millis(300);
    tokio::spawn(async move {
        tokio::time::sleep(held).await;
        let _ = tx
            .send(pb::CreateSessionRequest {
                subject: "alice".to_owned(),
                scopes: strings(&["tools:read"]),
                audience: "aud".to_owned(),
                ttl_seconds: 0,
                session_lifetime_seconds: 0,
            })
            .await;
    });
    let mut req = authed(tokio_stream::wrappers::ReceiverStream::new(rx), &server.primary);
    req.metadata_mut()
        .insert("x-request-id", "latency-probe-1".parse().unwrap());
    let started = Instant::now();
    let resp: tonic::Response<pb::Session> = grpc
        .client_streaming(
            req,
            tonic::codegen::http::uri::PathAndQuery::from_static(
                "/mcp_auth.v1.TokenService/CreateSession",
            ),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .unwrap();
    let round_trip = started.elapsed();
    assert!(resp.into_inner().session_id.starts_with("ses_"));

    let line = server
        .line_with(&["rpc finished", "request_id=latency-probe-1"])
        .await;
    assert!(line.contains("CreateSession"), "{line}");
    assert_eq!(field(&line, "outcome"), "Ok", "{line}");
    let latency_us: u128 = field(&line, "latency_us").parse().unwrap();
    assert!(
        latency_us >= held.as_micros() * 9 / 10,
        "latency_us={latency_us} is less than the {held:?} the request took to arrive: {line}"
    );
    assert!(
        latency_us <= round_trip.as_micros(),
        "latency_us={latency_us} is more than the client's round trip {round_trip:?}"
    );
}

/// A refusal (a trailers-only response) is timed the same way.
#[tokio::test]
async fn latency_us_of_a_refusal_is_logged_once() {
    let mut server = LoggedServer::start().await;
    let mut req = tonic::Request::new(pb::ListApiKeysRequest::default());
    req.metadata_mut()
        .insert("x-request-id", "latency-probe-2".parse().unwrap());
    let err = pb::api_key_service_client::ApiKeyServiceClient::new(
        connect(&server.url, &server.ca).await,
    )
    .list_api_keys(req)
    .await
    .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "CREDENTIALS_MISSING");
    let line = server
        .line_with(&["rpc finished", "request_id=latency-probe-2"])
        .await;
    assert_eq!(field(&line, "outcome"), "Unauthenticated", "{line}");
    field(&line, "latency_us").parse::<u64>().unwrap();
}
