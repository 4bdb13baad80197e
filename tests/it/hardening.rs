//! What hostile clients found (issue 11): the `rpc finished` latency, echoed
//! values, connections that never finish (or never start) TLS, JOSE
//! strictness for tokens signed with our own key, and caller text in the
//! log.

use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcp_auth::SigningAlg;
use mcp_auth::config::TlsMode;
use mcp_auth::grpc::client::{Client, RetryPolicy};
use mcp_auth::pb;
use mcp_auth::pb::identity_service_client::IdentityServiceClient;
use mcp_auth::store::SigningKeyRecord;
use pb::TokenReason;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tonic::Code;

use crate::common::closed_after;
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
            .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .args(["--metrics-listen", "127.0.0.1:0"])
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
        Client::from_channel(
            connect(&self.url, &self.ca).await,
            Some(self.primary.clone()),
        )
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
    let mut req = authed(
        tokio_stream::wrappers::ReceiverStream::new(rx),
        &server.primary,
    );
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

// ---- 4. echoed values are bounded

/// Asserts `status` is a short INVALID_ARGUMENT for `field`.
#[track_caller]
fn short_invalid(status: &tonic::Status, field: &str) {
    use tonic_types::StatusExt;
    let meta = assert_status(status, Code::InvalidArgument, "INVALID_FIELD");
    assert_eq!(meta["field"], field);
    assert!(
        status.message().len() < 300,
        "{} bytes of message: {:.200}",
        status.message().len(),
        status.message()
    );
    assert!(
        status.details().len() < 600,
        "{} bytes of details",
        status.details().len()
    );
    let violations = status.get_details_bad_request().unwrap().field_violations;
    assert!(violations[0].description.len() < 300);
}

#[tokio::test]
async fn a_huge_invalid_field_gets_a_short_invalid_argument() {
    let server = TestServer::start().await;
    let mut identities = IdentityServiceClient::new(server.channel().await);
    // Just under the server's 4 MB message limit, and the 4 KiB that used
    // to overflow clients' metadata limits.
    for len in [4 * 1024, 1024 * 1024, 3 * 1024 * 1024] {
        let name = "X".repeat(len);
        let err = identities
            .set_identity(authed(
                pb::SetIdentityRequest {
                    name: name.clone(),
                    scopes: strings(&["tools:read"]),
                    disabled: false,
                    rate_limit: None,
                },
                &server.primary,
            ))
            .await
            .unwrap_err();
        short_invalid(&err, "name");
        assert!(
            err.message().contains("XXXX"),
            "the start is echoed: {err:?}"
        );

        let err = identities
            .delete_identity(authed(
                pb::DeleteIdentityRequest {
                    name,
                    cascade: None,
                },
                &server.primary,
            ))
            .await
            .unwrap_err();
        short_invalid(&err, "name");

        let err = server
            .client(&server.primary)
            .await
            .create_api_key(pb::CreateApiKeyRequest {
                name: "k".to_owned(),
                scopes: vec!["bad scope!".repeat(len / 10)],
                expires_at: 0,
                rate_limit: None,
            })
            .await
            .unwrap_err();
        short_invalid(&err, "scopes");
    }
}

// ---- 5. connections

#[tokio::test]
async fn a_connection_that_never_starts_tls_is_closed_at_the_handshake_timeout() {
    let server = TestServer::start_with(|c| c.tls_handshake_timeout = Duration::from_secs(1)).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let took = closed_after(tcp).await;
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    // The server still serves.
    server
        .client(&server.primary)
        .await
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap();
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_idle_timeout() {
    let server = TestServer::start_with(|c| {
        c.tls = TlsMode::Plaintext;
        c.client_ca = None;
        c.connection_idle_timeout = Duration::from_secs(1);
    })
    .await;
    // h2c: no TLS, so only the idle timeout can close it.
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let took = closed_after(tcp).await;
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
}

/// With room for one connection, a second client is served only once the
/// first one's connection has been idle for the timeout (over TLS), and the
/// first client then reconnects on its next call.
#[tokio::test]
async fn an_idle_tls_connection_is_closed_and_its_client_reconnects() {
    let server = TestServer::start_with(|c| {
        c.max_connections = 1;
        c.connection_idle_timeout = Duration::from_secs(1);
    })
    .await;
    let first = server.client(&server.primary).await;
    first.get_jwks(pb::GetJwksRequest {}).await.unwrap();
    let started = Instant::now();
    let second = tokio::time::timeout(Duration::from_secs(5), async {
        let second = server.client(&server.primary).await;
        second.get_jwks(pb::GetJwksRequest {}).await.unwrap();
        second
    })
    .await
    .expect("the idle connection was not closed");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "served after {waited:?}, while the first connection was open"
    );
    drop(second);
    // The first client's connection is gone; its next call reconnects.
    tokio::time::timeout(
        Duration::from_secs(5),
        first.get_jwks(pb::GetJwksRequest {}),
    )
    .await
    .expect("the first client did not get through again")
    .unwrap();
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let server = TestServer::start_with(|c| {
        c.max_connections = 2;
        c.tls_handshake_timeout = Duration::from_secs(60);
    })
    .await;
    let first = TcpStream::connect(server.addr).await.unwrap();
    let _second = TcpStream::connect(server.addr).await.unwrap();
    let url = server.url();
    let ca = server.ca_path();
    let third = tokio::spawn(async move {
        let channel = connect(&url, &ca).await;
        Client::from_channel(channel, None)
            .unwrap()
            .get_jwks(pb::GetJwksRequest {})
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served while two were open"
    );
    drop(first);
    let jwks = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("the waiting connection was not served after one closed")
        .unwrap();
    assert!(jwks.jwks_json.contains("keys"));
}

// ---- 6. JOSE strictness for tokens signed with our own key

/// The server's active signing key, read from its stopped data directory.
async fn active_key(server: &mut TestServer) -> SigningKeyRecord {
    server.stop().await;
    let store =
        mcp_auth::store::open(server.data_dir(), mcp_auth::store::Durability::Durable).unwrap();
    let key = store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.retired_at.is_none())
        .unwrap();
    drop(store);
    server.start_again().await;
    key
}

fn sign(key: &SigningKeyRecord, header: &[u8], payload: &[u8]) -> String {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = match key.alg {
        SigningAlg::EdDSA => Ed25519KeyPair::from_pkcs8(&key.private_pkcs8)
            .unwrap()
            .sign(input.as_bytes())
            .as_ref()
            .to_vec(),
        SigningAlg::ES256 => {
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.private_pkcs8)
                .unwrap()
                .sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec()
        }
    };
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn header(key: &SigningKeyRecord, extra: serde_json::Value) -> Vec<u8> {
    let mut h = serde_json::json!({"typ": "at+jwt", "alg": key.alg.as_str(), "kid": key.kid});
    for (k, v) in extra.as_object().unwrap() {
        h[k] = v.clone();
    }
    serde_json::to_vec(&h).unwrap()
}

fn claims(server: &TestServer, lifetime: i64) -> serde_json::Value {
    let now = server.clock.now();
    serde_json::json!({
        "iss": server.config.issuer,
        "sub": "mallory",
        "aud": "aud",
        "exp": now + lifetime,
        "iat": now,
        "nbf": now,
        "jti": "at_forged",
        "sid": "ses_forged",
        "client_id": "key_forged",
        "scope": "tools:read",
    })
}

#[tokio::test]
async fn crit_headers_and_payloads_that_are_not_utf8_json_are_refused() {
    let mut server = TestServer::start().await;
    let key = active_key(&mut server).await;
    let payload = serde_json::to_vec(&claims(&server, 600)).unwrap();

    // The control: a token forged with our key in our form is active.
    let fine = sign(&key, &header(&key, serde_json::json!({})), &payload);
    assert!(server.verify(&server.primary, &fine).await.active);

    for crit in [
        serde_json::json!({"crit": ["urn:example:unknown"], "urn:example:unknown": 1}),
        serde_json::json!({"crit": ["b64"], "b64": false}),
        serde_json::json!({"crit": []}),
    ] {
        let token = sign(&key, &header(&key, crit.clone()), &payload);
        let r = server.verify(&server.primary, &token).await;
        assert_eq!(inactive_reason(&r), TokenReason::Malformed, "{crit}");
    }

    // RFC 7515 section 4.1.11 / RFC 7519 section 7.2: the payload is
    // UTF-8 JSON, and a JWT's claims are an object.
    let mut not_utf8 = payload.clone();
    let closing = not_utf8.pop().unwrap();
    not_utf8.extend_from_slice(b",\"x\":\"\xff\xfe\"");
    not_utf8.push(closing);
    let c = claims(&server, 600);
    let as_array = serde_json::to_vec(&serde_json::json!([
        c["iss"],
        c["sub"],
        c["aud"],
        c["exp"],
        c["iat"],
        c["nbf"],
        c["jti"],
        c["sid"],
        c["client_id"],
        c["scope"]
    ]))
    .unwrap();
    let mut not_utf8_header = header(&key, serde_json::json!({}));
    let closing = not_utf8_header.pop().unwrap();
    not_utf8_header.extend_from_slice(b",\"x\":\"\xff\"");
    not_utf8_header.push(closing);
    for (what, h, p) in [
        (
            "payload not UTF-8",
            header(&key, serde_json::json!({})),
            not_utf8,
        ),
        (
            "claims an array",
            header(&key, serde_json::json!({})),
            as_array,
        ),
        ("header not UTF-8", not_utf8_header, payload.clone()),
    ] {
        let token = sign(&key, &h, &p);
        let r = server.verify(&server.primary, &token).await;
        assert_eq!(inactive_reason(&r), TokenReason::Malformed, "{what}");
    }
}

#[tokio::test]
async fn a_lifetime_beyond_the_maximum_token_ttl_is_refused() {
    let mut server = TestServer::start().await;
    let key = active_key(&mut server).await;
    let max = i64::from(server.config.max_token_ttl);
    let h = header(&key, serde_json::json!({}));
    let at_max = sign(
        &key,
        &h,
        &serde_json::to_vec(&claims(&server, max)).unwrap(),
    );
    assert!(server.verify(&server.primary, &at_max).await.active);
    let beyond = sign(
        &key,
        &h,
        &serde_json::to_vec(&claims(&server, max + 1)).unwrap(),
    );
    let r = server.verify(&server.primary, &beyond).await;
    assert_eq!(inactive_reason(&r), TokenReason::Expired);
}

/// The P-256 group order.
const P256_N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `n - s`, big-endian.
fn negate(s: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(P256_N[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = u8::try_from(d).unwrap();
    }
    out
}

fn is_high(s: &[u8]) -> bool {
    let mut half = [0u8; 32];
    let mut carry = 0u8;
    for (i, b) in P256_N.iter().enumerate() {
        half[i] = (b >> 1) | (carry << 7);
        carry = b & 1;
    }
    s > &half[..]
}

#[tokio::test]
async fn es256_tokens_are_low_s_and_high_s_copies_are_refused() {
    let server = TestServer::start_with(|c| c.signing_alg = SigningAlg::ES256).await;
    for _ in 0..16 {
        let s = server
            .session(&server.primary, &["tools:read"], "aud")
            .await;
        let (input, sig) = s.access_token.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        assert_eq!(sig.len(), 64);
        assert!(!is_high(&sig[32..]), "the server signed with a high S");
        // The same signature with S negated is valid ECDSA, but not ours.
        let mut flipped = sig[..32].to_vec();
        flipped.extend(negate(&sig[32..]));
        assert!(is_high(&flipped[32..]));
        let malleated = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&flipped));
        let r = server.verify(&server.primary, &malleated).await;
        assert_eq!(inactive_reason(&r), TokenReason::BadSignature);
        assert!(server.verify(&server.primary, &s.access_token).await.active);
    }
}

// ---- 7. caller text in the log

#[tokio::test]
async fn control_and_bidi_characters_in_a_key_name_are_escaped_in_the_log() {
    let mut server = LoggedServer::start().await;
    let client = server.client().await;
    let name = "invoice\u{202e}fdp.exe\u{2028}next\u{2066}line\u{200f}";
    let created = client
        .create_api_key(pb::CreateApiKeyRequest {
            name: name.to_owned(),
            scopes: strings(&["tools:read"]),
            expires_at: 0,
            rate_limit: None,
        })
        .await
        .unwrap();
    let key_id = created.api_key.unwrap().key_id;
    let line = server.line_with(&["api key created", &key_id]).await;
    assert!(
        line.contains(r"invoice\u{202e}fdp.exe\u{2028}next\u{2066}line\u{200f}"),
        "{line}"
    );
    for raw in ['\u{202e}', '\u{2028}', '\u{2066}', '\u{200f}'] {
        assert!(!line.contains(raw), "raw {raw:?} in {line:?}");
    }

    // A newline or another control character never gets that far.
    let err = client
        .create_api_key(pb::CreateApiKeyRequest {
            name: "two\nlines".to_owned(),
            scopes: strings(&["tools:read"]),
            expires_at: 0,
            rate_limit: None,
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::InvalidArgument, "INVALID_FIELD");
}
