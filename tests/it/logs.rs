//! Logs sized for production (issue 16): at the default level the real
//! `mcp-auth serve` writes nothing per successful request, nor for an
//! ordinary client error, however many there are; a refused
//! authentication is written, with its reason and without the secret.

use std::time::Duration;

use mcp_auth::grpc::client::{Client, RetryPolicy};
use mcp_auth::pb;
use tokio::sync::mpsc;

use crate::common::{connect, http_client_trusting, spawn_binary_logging, strings};

/// A well-formed API key that the server never issued.
const WRONG_KEY: &str = "mcp_sk_WrongWrongWrongWrongWrongWrongWrongWro";

/// `mcp-auth serve` on a fresh data directory, its log level left at the
/// default (no `MCP_AUTH_LOG`), every line it writes to standard error
/// kept.
struct DefaultLevelServer {
    dir: tempfile::TempDir,
    _child: tokio::process::Child,
    url: String,
    http_url: String,
    primary: String,
    rx: mpsc::UnboundedReceiver<String>,
    /// Every log line read so far.
    lines: Vec<String>,
}

impl DefaultLevelServer {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let s = spawn_binary_logging(dir.path(), &[], None, Some(tx)).await;
        DefaultLevelServer {
            dir,
            _child: s.child,
            url: s.url,
            http_url: s.http_url,
            primary: s.primary.unwrap(),
            rx,
            lines: Vec::new(),
        }
    }

    async fn client(&self, key: &str) -> Client {
        let ca = self.dir.path().join("tls/ca.pem");
        Client::from_channel(connect(&self.url, &ca).await, Some(key.to_owned()))
            .unwrap()
            .with_retry(RetryPolicy::never())
    }

    fn http(&self) -> reqwest::Client {
        http_client_trusting(&self.dir.path().join("tls/ca.pem"))
    }

    /// Reads the log until a line holding every one of `parts`; returns
    /// its index in [`Self::lines`]. The log is written in order by one
    /// thread, so every line logged before that one has been read too.
    async fn until(&mut self, parts: &[&str]) -> usize {
        let wait = async {
            loop {
                let line = self.rx.recv().await.expect("the server's log ended");
                let found = parts.iter().all(|p| line.contains(p));
                self.lines.push(line);
                if found {
                    return self.lines.len() - 1;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .unwrap_or_else(|_| panic!("no log line with {parts:?} in {:#?}", self.lines))
    }

    /// A call with an API key the server never issued, marked with
    /// `request_id`; returns the index of the line that logs its refusal.
    async fn refused_marker(&mut self, request_id: &str) -> usize {
        let mut req = tonic::Request::new(pb::WhoAmIRequest {});
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {WRONG_KEY}").parse().unwrap(),
        );
        req.metadata_mut()
            .insert("x-request-id", request_id.parse().unwrap());
        let ca = self.dir.path().join("tls/ca.pem");
        let status =
            pb::token_service_client::TokenServiceClient::new(connect(&self.url, &ca).await)
                .who_am_i(req)
                .await
                .unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        self.until(&["request refused", &format!("request_id={request_id}")])
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_level_writes_no_line_per_request_but_one_per_failed_authentication() {
    const N: usize = 600;
    let mut server = DefaultLevelServer::start().await;
    // Startup: lifecycle lines, ending with `serving`.
    server.until(&["serving"]).await;
    let admin = server.client(&server.primary.clone()).await;
    let created = admin
        .create_api_key(pb::CreateApiKeyRequest {
            name: "backend".to_owned(),
            scopes: strings(&["sessions:create", "tokens:verify", "tools:read"]),
            expires_at: 0,
            rate_limit: None,
        })
        .await
        .unwrap();
    let backend = server.client(&created.secret).await;
    let oauth = admin
        .create_client(pb::CreateClientRequest {
            name: "machine".to_owned(),
            redirect_uris: vec![],
            grant_types: strings(&["client_credentials"]),
            allowed_scopes: strings(&["tools:read"]),
            allowed_resources: strings(&["https://mcp.example.com"]),
            token_endpoint_auth_method: "client_secret_basic".to_owned(),
            jwks: String::new(),
            skip_consent: false,
        })
        .await
        .unwrap();
    let client_id = oauth.client.unwrap().client_id;

    let first = server.refused_marker("marker-before").await;

    // N successful calls of every sort, and ordinary client errors among
    // them (an invalid field, a session that does not exist).
    let session = |subject: &str| pb::CreateSessionRequest {
        subject: subject.to_owned(),
        scopes: strings(&["tools:read"]),
        audience: "https://mcp.example.com".to_owned(),
        ttl_seconds: 0,
        session_lifetime_seconds: 0,
    };
    let mut s = backend.create_session(session("alice")).await.unwrap();
    let http = server.http();
    let (mut ok, mut client_errors, mut spent) = (1, 0, Vec::new());
    for i in 1..N {
        match i % 20 {
            0 => {
                spent.push(s.refresh_token.clone());
                s = backend
                    .refresh_session(pb::RefreshSessionRequest {
                        refresh_token: s.refresh_token.clone(),
                        scopes: vec![],
                    })
                    .await
                    .unwrap();
            }
            5 => {
                backend.create_session(session("bob")).await.unwrap();
            }
            10 => {
                let path = if i % 40 == 10 {
                    "/.well-known/oauth-authorization-server"
                } else {
                    "/jwks"
                };
                let resp = http
                    .get(format!("{}{path}", server.http_url))
                    .send()
                    .await
                    .unwrap();
                assert!(resp.status().is_success(), "{path}: {}", resp.status());
            }
            15 => {
                let err = backend.create_session(session("")).await.unwrap_err();
                assert_eq!(err.code(), tonic::Code::InvalidArgument);
                let err = admin
                    .get_session(pb::GetSessionRequest {
                        session_id: "ses_doesnotexist0000000000".to_owned(),
                    })
                    .await
                    .unwrap_err();
                assert_eq!(err.code(), tonic::Code::NotFound);
                client_errors += 2;
                continue;
            }
            _ => {
                let v = backend
                    .verify_token(pb::VerifyTokenRequest {
                        token: s.access_token.clone(),
                        audience: "https://mcp.example.com".to_owned(),
                        required_scopes: vec![],
                        client_address: String::new(),
                    })
                    .await
                    .unwrap();
                assert!(v.active);
            }
        }
        ok += 1;
    }
    assert!(ok >= N * 9 / 10, "{ok} successful calls");

    let second = server.refused_marker("marker-after").await;
    let between = &server.lines[first + 1..second];
    assert!(
        between.is_empty(),
        "{ok} successful calls and {client_errors} client errors wrote {} lines at the default level: {between:#?}",
        between.len()
    );

    // The refusal is written with its code and reason, and no secret.
    let refused = server.lines[second].clone();
    assert!(refused.contains(" INFO "), "{refused}");
    assert!(refused.contains("code=Unauthenticated"), "{refused}");
    assert!(refused.contains("reason=\"API_KEY_INVALID\""), "{refused}");

    // A spent refresh token presented again: a security event, written.
    let reused = spent[0].clone();
    let err = backend
        .refresh_session(pb::RefreshSessionRequest {
            refresh_token: reused.clone(),
            scopes: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let line = server.until(&["REFRESH_TOKEN_REUSED"]).await;
    assert!(server.lines[line].contains("request refused"));
    assert!(
        server.lines[..line]
            .iter()
            .any(|l| l.contains(" WARN ") && l.contains("refresh token reused")),
        "{:#?}",
        server.lines
    );

    // An OAuth client with the wrong secret at the token endpoint.
    let wrong_secret = "mcp_cs_NotTheSecretNotTheSecretNotTheSecret";
    let resp = http
        .post(format!("{}/token", server.http_url))
        .basic_auth(&client_id, Some(wrong_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::UNAUTHORIZED);
    let line = server
        .until(&["request refused", "CLIENT_AUTH_FAILED"])
        .await;
    assert!(
        server.lines[line].contains("status=401"),
        "{}",
        server.lines[line]
    );

    // No line the server wrote holds a secret or a token.
    let secrets = [
        WRONG_KEY,
        wrong_secret,
        &server.primary,
        &created.secret,
        &oauth.secret,
        &s.access_token,
        &s.refresh_token,
        &reused,
    ];
    for line in &server.lines {
        for secret in secrets {
            assert!(!line.contains(secret), "a secret in the log: {line}");
        }
    }
}
