//! Rate limits per credential and the throttle on failed authentication.

use std::net::IpAddr;
use std::time::Duration;

use mcp_auth::pb;
use mcp_auth::pb::api_key_service_client::ApiKeyServiceClient;
use mcp_auth::store::RateLimit;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic_types::StatusExt;

use crate::common::{TestServer, assert_status, authed, strings};

fn limit(rps: u32, burst: u32) -> RateLimit {
    RateLimit {
        requests_per_second: rps,
        burst,
    }
}

async fn list(keys: &mut ApiKeyServiceClient<Channel>, key: &str) -> Result<(), tonic::Status> {
    keys.list_api_keys(authed(pb::ListApiKeysRequest {}, key))
        .await
        .map(|_| ())
}

/// A channel whose connections come from `from` (another loopback address).
async fn channel_from(server: &TestServer, from: &str) -> Channel {
    let ca = std::fs::read(server.ca_path()).unwrap();
    Endpoint::from_shared(server.url())
        .unwrap()
        .local_address(Some(from.parse::<IpAddr>().unwrap()))
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_caller_over_its_rate_gets_resource_exhausted_with_retry_info() {
    let server = TestServer::start_with(|c| c.default_rate_limit = Some(limit(2, 3))).await;
    let mut keys = server.keys().await;
    for _ in 0..3 {
        list(&mut keys, &server.primary).await.unwrap();
    }
    let err = list(&mut keys, &server.primary).await.unwrap_err();
    let meta = assert_status(&err, Code::ResourceExhausted, "RATE_LIMITED");
    assert_eq!(meta["retry_after_seconds"], "1");
    assert_eq!(err.metadata().get("retry-after").unwrap(), "1");
    let retry = err.get_details_retry_info().expect("RetryInfo detail");
    assert_eq!(retry.retry_delay, Some(Duration::from_millis(500)));

    server.clock.advance(Duration::from_millis(500));
    list(&mut keys, &server.primary).await.unwrap();
}

#[tokio::test]
async fn per_credential_overrides_and_updates() {
    let server = TestServer::start_with(|c| c.default_rate_limit = None).await;
    let mut keys = server.keys().await;
    let created = keys
        .create_api_key(authed(
            pb::CreateApiKeyRequest {
                name: "slow".to_owned(),
                scopes: strings(&["keys:admin"]),
                expires_at: 0,
                rate_limit: Some(pb::RateLimit {
                    requests_per_second: 1,
                    burst: 1,
                }),
            },
            &server.primary,
        ))
        .await
        .unwrap()
        .into_inner();
    let key = created.api_key.unwrap();
    assert_eq!(key.rate_limit.unwrap().burst, 1);
    list(&mut keys, &created.secret).await.unwrap();
    let err = list(&mut keys, &created.secret).await.unwrap_err();
    assert_status(&err, Code::ResourceExhausted, "RATE_LIMITED");
    // The default (unlimited here) still applies to everyone else.
    for _ in 0..20 {
        list(&mut keys, &server.primary).await.unwrap();
    }

    let updated = keys
        .update_api_key(authed(
            pb::UpdateApiKeyRequest {
                key_id: key.key_id.clone(),
                rate_limit: Some(pb::RateLimit {
                    requests_per_second: 100,
                    burst: 100,
                }),
            },
            &server.primary,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.rate_limit.unwrap().requests_per_second, 100);
    for _ in 0..50 {
        list(&mut keys, &created.secret).await.unwrap();
    }

    let err = keys
        .update_api_key(authed(
            pb::UpdateApiKeyRequest {
                key_id: key.key_id,
                rate_limit: Some(pb::RateLimit {
                    requests_per_second: 0,
                    burst: 1,
                }),
            },
            &server.primary,
        ))
        .await
        .unwrap_err();
    let meta = assert_status(&err, Code::InvalidArgument, "INVALID_FIELD");
    assert_eq!(meta["field"], "rate_limit");
}

#[tokio::test]
async fn failed_authentications_are_throttled_per_address() {
    let server = TestServer::start_with(|c| c.auth_failures_per_minute = 5).await;
    let mut keys = server.keys().await;
    // Many distinct wrong keys: the first ones are plain failures...
    let mut throttled = 0;
    for i in 0..200 {
        let guess = format!("mcp_sk_{i:0>43}");
        let err = list(&mut keys, &guess).await.unwrap_err();
        match err.code() {
            Code::Unauthenticated => assert!(i < 6, "failure {i} was not throttled"),
            Code::ResourceExhausted => {
                assert_status(&err, Code::ResourceExhausted, "RATE_LIMITED");
                throttled += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(throttled >= 194);
    // ...and from then on this address gets nothing for a wrong key, so
    // guessing is as slow as the allowance; but a valid key from the same
    // address is served (the throttle limits failures, never a valid
    // credential: one bad client behind a NAT locks out no one else).
    let err = list(&mut keys, "mcp_sk_still-guessing").await.unwrap_err();
    let meta = assert_status(&err, Code::ResourceExhausted, "RATE_LIMITED");
    assert!(err.get_details_retry_info().is_some(), "{meta:?}");
    list(&mut keys, &server.primary).await.unwrap();

    // Another address is not locked out.
    let mut elsewhere = ApiKeyServiceClient::new(channel_from(&server, "127.0.0.2").await);
    list(&mut elsewhere, &server.primary).await.unwrap();

    // 200 distinct keys left one bucket behind, not 200.
    let report = server.maintain().await;
    assert!(report.limiter.peers <= 1, "{:?}", report.limiter);
    assert_eq!(report.limiter.blocked, 1);

    // The allowance refills with time.
    server.clock.advance(Duration::from_secs(60));
    list(&mut keys, &server.primary).await.unwrap();
    server.clock.advance(Duration::from_secs(3600));
    let report = server.maintain().await;
    assert_eq!(report.limiter.blocked, 0);
    assert_eq!(report.limiter.peers, 0, "idle state is evicted");
}

#[tokio::test]
async fn refresh_token_guessing_is_throttled_too() {
    let server = TestServer::start_with(|c| c.auth_failures_per_minute = 3).await;
    let mut tokens = server.tokens().await;
    let mut codes = Vec::new();
    for i in 0..6 {
        let err = tokens
            .refresh_session(tonic::Request::new(pb::RefreshSessionRequest {
                refresh_token: format!("mcp_rt_{i:0>43}"),
                scopes: vec![],
            }))
            .await
            .unwrap_err();
        codes.push(err.code());
    }
    assert_eq!(codes[0], Code::Unauthenticated);
    assert_eq!(codes[5], Code::ResourceExhausted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_waits_out_retry_after_and_retries() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let server = TestServer::start_with(|c| c.default_rate_limit = Some(limit(1, 1))).await;
    let mut keys = server.keys().await;
    list(&mut keys, &server.primary).await.unwrap(); // the bucket is now empty

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
        .args(["key", "list"])
        .env_clear()
        .env("MCP_AUTH_SERVER", server.url())
        .env("MCP_AUTH_CA", server.ca_path())
        .env("MCP_AUTH_API_KEY", &server.primary)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = stderr.next_line().await.unwrap().unwrap();
    assert_eq!(line, "rate limited; retrying in 1 s");
    // While the CLI waits, the server's clock moves on and the bucket refills.
    server.clock.advance(Duration::from_secs(1));
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("primary"));
}
