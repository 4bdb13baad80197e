//! The HTTP listener (issue 12, part 1): the real server's second port,
//! reached by a real HTTP client (reqwest on rustls trusting the
//! development CA) or by raw sockets where a client would be too polite.
//! Metadata and the issuer rule, the JWK Set, TLS and plaintext, the
//! connection bounds, hostile bodies, OAuth JSON errors everywhere (never
//! a 500), graceful shutdown of both listeners, and the binary's listening
//! line.

use std::process::Stdio;
use std::time::{Duration, Instant};

use mcp_auth::config::TlsMode;
use mcp_auth::pb;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::common::closed_after;
use crate::common::{TestServer, http_client_trusting};

const FORM: &str = "application/x-www-form-urlencoded";

fn plaintext(c: &mut mcp_auth::Config) {
    c.tls = TlsMode::Plaintext;
    c.client_ca = None;
}

/// Asserts `resp` is an RFC 6749 JSON error with `status` and `error`;
/// returns its body.
async fn oauth_error(resp: reqwest::Response, status: StatusCode, error: &str) -> Value {
    assert_eq!(resp.status(), status, "{resp:?}");
    let headers = resp.headers().clone();
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_common_headers(&headers);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    let description = body["error_description"].as_str().unwrap();
    // RFC 6749 section 5.2: printable ASCII without `"` and `\`.
    assert!(
        description
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'),
        "{description:?}"
    );
    body
}

#[track_caller]
fn assert_common_headers(headers: &HeaderMap) {
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(
        headers[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .starts_with("default-src 'none'"),
        "{headers:?}"
    );
    assert!(headers.contains_key("x-request-id"), "{headers:?}");
}

async fn post_form(server: &TestServer, path: &str, body: &str) -> reqwest::Response {
    server
        .http_client()
        .post(format!("{}{path}", server.http_url()))
        .header(header::CONTENT_TYPE, FORM)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

// ---- metadata and the issuer rule

#[tokio::test]
async fn metadata_names_the_issuer_and_its_endpoints_at_both_well_known_paths() {
    let server = TestServer::start().await;
    let client = server.http_client();
    let mut documents = Vec::new();
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let resp = client
            .get(format!("{}{path}", server.http_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "public, max-age=300");
        assert_common_headers(resp.headers());
        documents.push(resp.json::<Value>().await.unwrap());
    }
    assert_eq!(documents[0], documents[1]);
    let issuer = "https://localhost:8443";
    let methods = json!([
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt"
    ]);
    let algs = json!([
        "EdDSA", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"
    ]);
    assert_eq!(
        documents[0],
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "jwks_uri": format!("{issuer}/jwks"),
            "registration_endpoint": format!("{issuer}/register"),
            "introspection_endpoint": format!("{issuer}/introspect"),
            "introspection_endpoint_auth_methods_supported": methods,
            "introspection_endpoint_auth_signing_alg_values_supported": algs,
            "revocation_endpoint": format!("{issuer}/revoke"),
            "revocation_endpoint_auth_methods_supported": methods,
            "revocation_endpoint_auth_signing_alg_values_supported": algs,
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic", "client_secret_post", "private_key_jwt", "none"
            ],
            "token_endpoint_auth_signing_alg_values_supported": algs,
            "code_challenge_methods_supported": ["S256"],
            "client_id_metadata_document_supported": true,
            "authorization_response_iss_parameter_supported": true
        })
    );
    // No scope list is published (scopes are the operator's).
    assert!(documents[0].get("scopes_supported").is_none());
    // The authorization endpoint is a page: a request without a client is
    // an error page, never JSON and never a redirect.
    let resp = post_form(&server, "/authorize", "token=x").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get(header::LOCATION).is_none());
    assert!(
        resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
}

/// RFC 8414 section 3.1: an issuer with a path has its metadata at the
/// path-inserted well-known URL (and, for OpenID clients, the appended
/// one); the bare well-known URL would belong to another issuer, so it is
/// 404. The endpoints live under the issuer's path.
#[tokio::test]
async fn an_issuer_with_a_path_has_its_metadata_at_the_path_inserted_url() {
    let issuer = "https://auth.example.com/tenant-1";
    let server = TestServer::start_with(|c| c.issuer = issuer.to_owned()).await;
    let client = server.http_client();
    let get = |path: &str| client.get(format!("{}{path}", server.http_url())).send();
    for path in [
        "/.well-known/oauth-authorization-server/tenant-1",
        "/.well-known/openid-configuration/tenant-1",
        "/tenant-1/.well-known/openid-configuration",
    ] {
        let resp = get(path).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let doc: Value = resp.json().await.unwrap();
        assert_eq!(doc["issuer"], issuer);
        assert_eq!(doc["token_endpoint"], format!("{issuer}/token"));
        assert_eq!(doc["jwks_uri"], format!("{issuer}/jwks"));
    }
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server/other",
        "/jwks",
    ] {
        oauth_error(get(path).await.unwrap(), StatusCode::NOT_FOUND, "not_found").await;
    }
    let resp = get("/tenant-1/jwks").await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = post_form(&server, "/tenant-1/token", "grant_type=password").await;
    oauth_error(resp, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
}

// ---- JWKS

#[tokio::test]
async fn jwks_is_the_same_document_as_get_jwks() {
    let server = TestServer::start().await;
    let resp = server
        .http_client()
        .get(format!("{}/jwks", server.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "application/jwk-set+json"
    );
    assert_eq!(resp.headers()[header::CACHE_CONTROL], "public, max-age=60");
    assert_common_headers(resp.headers());
    let http: Value = resp.json().await.unwrap();
    let grpc = server
        .client(&server.primary)
        .await
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap();
    let grpc: Value = serde_json::from_str(&grpc.jwks_json).unwrap();
    assert_eq!(http, grpc);
    assert!(!http["keys"].as_array().unwrap().is_empty());
}

// ---- TLS, plaintext

#[tokio::test]
async fn the_http_listener_speaks_tls_with_the_development_certificate() {
    let server = TestServer::start().await;
    assert!(server.http_url().starts_with("https://"));
    let client = server.http_client();
    for host in ["127.0.0.1", "localhost"] {
        let resp = client
            .get(format!(
                "https://{host}:{}/healthz",
                server.http_addr.port()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{host}");
        // ALPN offers h2 first.
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        assert_eq!(resp.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    }
    // A client that does not trust the development CA is refused.
    let other_ca = tempfile::tempdir().unwrap();
    mcp_auth::tls::ensure_dev_certificates(other_ca.path()).unwrap();
    let untrusting = http_client_trusting(&other_ca.path().join("ca.pem"));
    assert!(
        untrusting
            .get(format!("{}/healthz", server.http_url()))
            .send()
            .await
            .is_err()
    );
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/healthz",
            server.http_addr.port()
        ))
        .send()
        .await;
    assert!(plain.is_err(), "{plain:?}");
}

#[tokio::test]
async fn plaintext_makes_both_listeners_plaintext() {
    let server = TestServer::start_with(plaintext).await;
    assert!(server.http_url().starts_with("http://"));
    let resp = server
        .http_client()
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            server.http_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);
    // gRPC is h2c on the same server.
    server
        .client(&server.primary)
        .await
        .get_jwks(pb::GetJwksRequest {})
        .await
        .unwrap();
}

// ---- connection bounds

#[tokio::test]
async fn a_connection_that_never_starts_tls_on_the_http_port_is_closed_at_the_handshake_timeout() {
    let server = TestServer::start_with(|c| c.tls_handshake_timeout = Duration::from_secs(1)).await;
    let tcp = TcpStream::connect(server.http_addr).await.unwrap();
    let took = closed_after(tcp).await;
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
    // The listener still serves.
    let resp = server
        .http_client()
        .get(format!("{}/healthz", server.http_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_silent_http_connection_is_closed_at_the_idle_timeout() {
    let server = TestServer::start_with(|c| {
        plaintext(c);
        c.connection_idle_timeout = Duration::from_secs(1);
    })
    .await;
    let tcp = TcpStream::connect(server.http_addr).await.unwrap();
    let took = closed_after(tcp).await;
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");
}

/// Each listener has its own `max_connections`: connections held open on
/// one (the public HTTP port, say) do not lock out the other.
#[tokio::test]
async fn each_listener_has_its_own_connection_allowance() {
    let server = TestServer::start_with(|c| {
        c.max_connections = 1;
        c.tls_handshake_timeout = Duration::from_secs(60);
    })
    .await;
    // The one HTTP slot is taken by a connection that never starts TLS;
    // gRPC is still served.
    let held_http = TcpStream::connect(server.http_addr).await.unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        server
            .client(&server.primary)
            .await
            .get_jwks(pb::GetJwksRequest {}),
    )
    .await
    .expect("gRPC waited for the HTTP listener's slot")
    .unwrap();
    // Now the gRPC slot is taken too (by a raw connection, or the client's
    // that is still closing). HTTP is full: a second connection waits...
    let _held_grpc = TcpStream::connect(server.addr).await.unwrap();
    let http = server.http_client();
    let url = format!("{}/healthz", server.http_url());
    let waiting = tokio::spawn(async move { http.get(url).send().await.unwrap().status() });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a second HTTP connection was served while the one slot was held"
    );
    // ...until the HTTP slot frees, while gRPC's stays taken.
    drop(held_http);
    let status = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the waiting HTTP connection was not served after the slot freed")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
}

// ---- hostile bodies on POST /token

#[tokio::test]
async fn an_oversize_body_is_a_json_413() {
    let server = TestServer::start().await;
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "x".repeat(64 * 1024)
    );
    let resp = post_form(&server, "/token", &big).await;
    oauth_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request").await;
    // Just under the limit is read (and then refused for its grant type).
    let fits = format!("grant_type=urn%3Ax&pad={}", "x".repeat(60 * 1024));
    let resp = post_form(&server, "/token", &fits).await;
    oauth_error(resp, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
}

/// Sends `request` on a new plain TCP connection to the HTTP port of a
/// plaintext server and returns the status line and body of the answer.
async fn raw_http(server: &TestServer, request: &[u8]) -> (String, Value) {
    let mut tcp = TcpStream::connect(server.http_addr).await.unwrap();
    tcp.write_all(request).await.unwrap();
    let mut reader = BufReader::new(tcp);
    let mut status = String::new();
    reader.read_line(&mut status).await.unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.unwrap();
    (
        status.trim_end().to_owned(),
        serde_json::from_slice(&body).unwrap(),
    )
}

/// A chunked body has no length to refuse up front: it is refused once
/// the bytes read pass the limit.
#[tokio::test]
async fn an_oversize_chunked_body_is_a_json_413() {
    let server = TestServer::start_with(plaintext).await;
    let chunk = "x".repeat(16 * 1024);
    let mut request = format!(
        "POST /token HTTP/1.1\r\nhost: localhost\r\ncontent-type: {FORM}\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    for _ in 0..5 {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    let (status, body) = raw_http(&server, request.as_bytes()).await;
    assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn a_wrong_content_type_or_a_repeated_parameter_is_invalid_request() {
    let server = TestServer::start().await;
    let client = server.http_client();
    let url = format!("{}/token", server.http_url());
    for content_type in [
        None,
        Some("application/json"),
        Some("text/plain"),
        Some("multipart/form-data; boundary=x"),
        Some("application/x-www-form-urlencoded; charset=iso-8859-1"),
    ] {
        let mut req = client.post(&url).body("grant_type=client_credentials");
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        let body = oauth_error(
            req.send().await.unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("application/x-www-form-urlencoded"),
            "{content_type:?}: {body}"
        );
    }
    for (form, says) in [
        (
            "grant_type=client_credentials&grant_type=client_credentials",
            "repeated",
        ),
        ("grant_type=client_credentials&scope=a&scope=b", "repeated"),
        ("scope=a", "grant_type"),
        ("grant_type=", "grant_type"),
        ("grant_type=%FF", "UTF-8"),
        ("=x", "no name"),
    ] {
        let body = oauth_error(
            post_form(&server, "/token", form).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        )
        .await;
        assert!(
            body["error_description"].as_str().unwrap().contains(says),
            "{form}: {body}"
        );
    }
}

#[tokio::test]
async fn an_unknown_grant_type_is_unsupported_grant_type_and_never_cached() {
    let server = TestServer::start().await;
    for grant in [
        "password",
        "Client_Credentials",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ] {
        let resp = post_form(&server, "/token", &format!("grant_type={grant}")).await;
        assert_eq!(resp.headers()[header::PRAGMA], "no-cache");
        let body = oauth_error(resp, StatusCode::BAD_REQUEST, "unsupported_grant_type").await;
        assert!(body.get("reason").is_none(), "{body}");
    }
    // The one served grant without a client credential: invalid_client.
    let resp = post_form(&server, "/token", "grant_type=client_credentials").await;
    assert_eq!(resp.headers()[header::PRAGMA], "no-cache");
    oauth_error(resp, StatusCode::UNAUTHORIZED, "invalid_client").await;
}

// ---- errors are JSON, never 500

#[tokio::test]
async fn unknown_paths_and_methods_are_json_404_and_405() {
    let server = TestServer::start().await;
    let client = server.http_client();
    let base = server.http_url();
    let resp = client.get(format!("{base}/nope")).send().await.unwrap();
    let body = oauth_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("/nope")
    );
    for (method, path, allow) in [
        (reqwest::Method::POST, "/jwks", "GET"),
        (reqwest::Method::DELETE, "/token", "POST"),
        (
            reqwest::Method::PUT,
            "/.well-known/oauth-authorization-server",
            "GET",
        ),
    ] {
        let resp = client
            .request(method.clone(), format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        let allowed = resp.headers()[header::ALLOW].to_str().unwrap().to_owned();
        assert!(allowed.contains(allow), "{method} {path}: Allow {allowed}");
        oauth_error(resp, StatusCode::METHOD_NOT_ALLOWED, "invalid_request").await;
    }
}

/// Whatever a client sends (odd paths and methods, many credentials,
/// junk bodies), the answer is a 2xx or a JSON 4xx: never a 5xx.
#[tokio::test]
async fn no_hostile_request_gets_a_500() {
    let server = TestServer::start().await;
    let client = server.http_client();
    let base = server.http_url();
    let long = "a".repeat(8 * 1024);
    let paths = [
        "/".to_owned(),
        "/%00".to_owned(),
        "/%2e%2e/%2e%2e/etc/passwd".to_owned(),
        "/token/".to_owned(),
        "/TOKEN".to_owned(),
        "/jwks?x=%ff".to_owned(),
        "/\u{202e}gnp.exe".to_owned(),
        format!("/{long}"),
        "/.well-known/oauth-authorization-server/".to_owned(),
    ];
    let methods = [
        reqwest::Method::GET,
        reqwest::Method::POST,
        reqwest::Method::PATCH,
        reqwest::Method::OPTIONS,
        reqwest::Method::from_bytes(b"BREW").unwrap(),
    ];
    for path in &paths {
        for method in &methods {
            let resp = client
                .request(method.clone(), format!("{base}{path}"))
                .header(header::AUTHORIZATION, "Basic !!!")
                .header(header::AUTHORIZATION, "Bearer x")
                .header(header::CONTENT_TYPE, FORM)
                .body("grant_type=%")
                .send()
                .await
                .unwrap();
            let status = resp.status();
            assert!(!status.is_server_error(), "{method} {path}: {status}");
            if !status.is_success() {
                assert_eq!(
                    resp.headers()[header::CONTENT_TYPE],
                    "application/json",
                    "{method} {path}"
                );
                let body: Value = resp.json().await.unwrap();
                assert!(body["error"].is_string(), "{method} {path}: {body}");
            }
        }
    }
    for body in [
        &b"\xff\xfe\x00"[..],
        b"grant_type=client_credentials&&&&=",
        b"%%%%",
        b"grant_type=a;grant_type=b",
    ] {
        let resp = client
            .post(format!("{base}/token"))
            .header(header::CONTENT_TYPE, FORM)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_client_error(),
            "{body:?}: {}",
            resp.status()
        );
    }
}

#[tokio::test]
async fn a_request_id_is_echoed_or_made() {
    let server = TestServer::start().await;
    let client = server.http_client();
    let url = format!("{}/healthz", server.http_url());
    let resp = client
        .get(&url)
        .header("x-request-id", "probe-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "probe-42");
    for sent in [None, Some("has space"), Some("")] {
        let mut req = client.get(&url);
        if let Some(id) = sent {
            req = req.header("x-request-id", id);
        }
        let resp = req.send().await.unwrap();
        let id = resp.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(id.len(), 16, "{sent:?}: {id}");
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}

/// A request whose body never arrives is answered 408 (JSON) at the
/// request timeout, not held until the connection's idle timeout.
#[tokio::test]
async fn a_request_that_does_not_arrive_in_time_is_a_json_408() {
    let server = TestServer::start_with(|c| {
        plaintext(c);
        c.http_request_timeout = Duration::from_secs(1);
    })
    .await;
    let started = Instant::now();
    let request = format!(
        "POST /token HTTP/1.1\r\nhost: localhost\r\ncontent-type: {FORM}\r\ncontent-length: 40\r\n\r\ngrant_type="
    );
    let (status, body) = raw_http(&server, request.as_bytes()).await;
    let took = started.elapsed();
    assert_eq!(status, "HTTP/1.1 408 Request Timeout");
    assert_eq!(body["error"], "invalid_request");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

// ---- graceful shutdown

/// On shutdown both listeners stop accepting, an HTTP request in flight
/// is still answered, and the server stops cleanly.
#[tokio::test]
async fn shutdown_drains_both_listeners() {
    let mut server = TestServer::start_with(plaintext).await;
    let body = "grant_type=password";
    let mut tcp = TcpStream::connect(server.http_addr).await.unwrap();
    tcp.write_all(
        format!(
            "POST /token HTTP/1.1\r\nhost: localhost\r\ncontent-type: {FORM}\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    // The request is in flight (its head read, its body not yet sent)
    // when shutdown begins.
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.begin_stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for addr in [server.addr, server.http_addr] {
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "{addr} still accepts after shutdown began"
        );
    }
    assert!(
        !server.has_stopped(),
        "the server stopped with a request in flight"
    );
    tcp.write_all(body.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut answer))
        .await
        .expect("the in-flight request was not answered")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request"), "{answer}");
    assert!(answer.contains("unsupported_grant_type"), "{answer}");
    tokio::time::timeout(Duration::from_secs(5), server.stop())
        .await
        .expect("the server did not stop");
}

// ---- the binary

/// `serve --http-listen 127.0.0.1:0` prints the port it bound, serves the
/// metadata there over TLS, and logs one `http request finished` line per
/// request with its method, path, status and latency (at debug, which the
/// filter turns on for the layer).
#[tokio::test]
async fn the_binary_prints_the_bound_http_address_and_logs_each_request() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .env_clear()
        .env("MCP_AUTH_LOG", "info,mcp_auth::http::layers=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let http_url = loop {
        let line = stdout
            .next_line()
            .await
            .unwrap()
            .expect("server exited early");
        if let Some(url) = line.strip_prefix("mcp-auth HTTP listening on ") {
            break url.to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    let port: u16 = http_url
        .strip_prefix("https://127.0.0.1:")
        .unwrap_or_else(|| panic!("{http_url}"))
        .parse()
        .unwrap();
    assert_ne!(port, 0);
    assert_ne!(port, 8443);

    let client = http_client_trusting(&dir.path().join("tls").join("ca.pem"));
    let resp = client
        .get(format!("{http_url}/.well-known/oauth-authorization-server"))
        .header("x-request-id", "http-probe-1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["issuer"], "https://localhost:8443");

    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let line = stderr.next_line().await.unwrap().expect("the log ended");
            if line.contains("http request finished") && line.contains("request_id=http-probe-1") {
                return line;
            }
        }
    })
    .await
    .expect("no http request finished line");
    assert!(line.contains("method=GET"), "{line}");
    assert!(
        line.contains("path=/.well-known/oauth-authorization-server"),
        "{line}"
    );
    assert!(line.contains("status=200"), "{line}");
    let latency = line
        .split(" latency_us=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{line}"));
    latency.parse::<u64>().unwrap();
}

// ---- the documented OAuth error table

/// reason -> (HTTP status, OAuth error), from the table of
/// docs/reference/http-api.md.
fn documented_oauth_errors() -> std::collections::BTreeMap<String, (u16, String)> {
    let path = format!("{}/docs/reference/http-api.md", env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(&path).unwrap();
    let section = doc
        .split("\n## OAuth errors of the service's reasons\n")
        .nth(1)
        .expect("no OAuth error table");
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (
                cells[1].trim_matches('`').to_owned(),
                (
                    cells[2].parse().unwrap(),
                    cells[3].trim_matches('`').to_owned(),
                ),
            )
        })
        .collect()
}

#[test]
fn the_http_api_reference_lists_every_reason_with_its_oauth_error() {
    use mcp_auth::core::Reason;
    use mcp_auth::http::error::oauth_error;
    let from_code: std::collections::BTreeMap<String, (u16, String)> = Reason::ALL
        .iter()
        .map(|r| {
            let (status, error) = oauth_error(*r);
            (r.as_str().to_owned(), (status.as_u16(), error.to_owned()))
        })
        .collect();
    assert_eq!(documented_oauth_errors(), from_code);
}

#[tokio::test]
async fn browser_clients_get_cors_answers_without_credentials() {
    let server = TestServer::start().await;
    let http = server.http_client();
    let origin = "http://localhost:6274";
    // A preflight for a POST with Authorization, as a page sends one
    // before calling the token endpoint.
    let resp = http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/token", server.http_url()),
        )
        .header(header::ORIGIN, origin)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let h = resp.headers();
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let allowed = h[header::ACCESS_CONTROL_ALLOW_HEADERS].to_str().unwrap();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert!(
        h[header::ACCESS_CONTROL_ALLOW_METHODS]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "3600");
    assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());

    // The answers themselves are readable cross-origin, the challenge
    // included.
    let resp = http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            server.http_url()
        ))
        .header(header::ORIGIN, origin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let resp = http
        .post(format!("{}/token", server.http_url()))
        .header(header::ORIGIN, origin)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let h = resp.headers();
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let exposed = h[header::ACCESS_CONTROL_EXPOSE_HEADERS].to_str().unwrap();
    assert!(exposed.contains("www-authenticate"), "{exposed}");
    assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
}
