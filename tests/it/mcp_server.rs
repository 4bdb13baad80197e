//! The example MCP server (`examples/mcp_server/`), protected by the SDK's
//! layer, end to end: mcp-auth and the example both run here on
//! 127.0.0.1, and callers reach the example the three ways the seed
//! names (an API key, a session token from `CreateSession`, an OAuth
//! token from the browser flow, found by rmcp's discovery from the
//! example's own 401), with rmcp's streamable HTTP client. Each refusal
//! is checked for its exact status and `WWW-Authenticate`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mcp_auth_sdk::{Clock, Mode, OnStale, Verifier};
use reqwest::StatusCode;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::auth::{AuthorizationManager, AuthorizationRequest, AuthorizationSession};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::common::TestServer;

#[path = "../../examples/mcp_server/notes.rs"]
mod notes;

/// A verifier of tokens for `resource` at `server`, with a
/// `tokens:verify` key of its own.
async fn verifier_for(server: &TestServer, resource: &str, mode: Mode, clock: Clock) -> Verifier {
    let (_, key) = server.key_with(&["tokens:verify"]).await;
    Verifier::builder(resource)
        .issuer(&server.config.issuer)
        .grpc(server.url())
        .ca_pem(std::fs::read(server.ca_path()).unwrap())
        .api_key(key)
        .mode(mode)
        .clock(clock)
        .build()
        .await
        .unwrap()
}

/// The example, serving on its own listener.
struct Example {
    addr: SocketAddr,
    resource: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Example {
    /// The example with a verifier in `mode` on `clock`, bound before it
    /// is built (its resource URL names its port).
    async fn start(server: &TestServer, mode: Mode, clock: Clock) -> Example {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let resource = format!("http://{addr}/mcp");
        let verifier = verifier_for(server, &resource, mode, clock).await;
        let app = notes::app(
            notes::protection(verifier).unwrap(),
            vec!["127.0.0.1".to_owned()],
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Example {
            addr,
            resource,
            stop: Some(stop),
            task,
        }
    }

    fn metadata_url(&self) -> String {
        format!(
            "http://{}/.well-known/oauth-protected-resource/mcp",
            self.addr
        )
    }

    /// An rmcp client calling with `credential`.
    async fn client(
        &self,
        credential: &str,
    ) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
        let config = StreamableHttpClientTransportConfig::with_uri(self.resource.clone())
            .auth_header(credential.to_owned());
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await
            .unwrap()
    }

    /// One raw JSON-RPC POST to the MCP endpoint.
    async fn post(
        &self,
        credential: Option<&str>,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = reqwest::Client::new()
            .post(&self.resource)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(c) = credential {
            req = req.bearer_auth(c);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send().await.unwrap()
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = self.task.await;
    }
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}})
}

fn call(tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments}})
}

fn challenge(resp: &reqwest::Response) -> String {
    resp.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn text_of(result: &rmcp::model::CallToolResult) -> String {
    let v = serde_json::to_value(result).unwrap();
    v["content"][0]["text"].as_str().unwrap().to_owned()
}

/// What `whoami` says of the caller.
async fn whoami(client: &rmcp::service::RunningService<rmcp::RoleClient, ()>) -> Value {
    let result = client
        .call_tool(CallToolRequestParams::new("whoami"))
        .await
        .unwrap();
    serde_json::from_str(&text_of(&result)).unwrap()
}

async fn tool_names(client: &rmcp::service::RunningService<rmcp::RoleClient, ()>) -> Vec<String> {
    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    names
}

const ALL: &str = "tools:call tools:read";

#[tokio::test]
async fn the_metadata_names_the_resource_mcp_auth_and_the_scopes_and_no_token_is_401() {
    let server = TestServer::start().await;
    let ex = Example::start(&server, Mode::Offline, Clock::system()).await;
    let expected = json!({
        "resource": ex.resource,
        "authorization_servers": [server.config.issuer],
        "scopes_supported": ["tools:call", "tools:read"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Notes (mcp-auth example)",
    });
    for url in [
        ex.metadata_url(),
        format!("http://{}/.well-known/oauth-protected-resource", ex.addr),
    ] {
        let resp = reqwest::get(&url).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{url}");
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        assert_eq!(resp.json::<Value>().await.unwrap(), expected, "{url}");
    }

    let resp = ex.post(None, &initialize(), &[]).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&resp),
        format!(
            r#"Bearer resource_metadata="{}", scope="{ALL}""#,
            ex.metadata_url()
        )
    );
    // The 401 is the layer's: the same server without it serves.
    let bare = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare_url = format!("http://{}/mcp", bare.local_addr().unwrap());
    let app = notes::unprotected_app("/mcp", vec!["127.0.0.1".to_owned()]);
    let bare_task = tokio::spawn(async move { axum::serve(bare, app).await.unwrap() });
    let resp = reqwest::Client::new()
        .post(&bare_url)
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .body(initialize().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    bare_task.abort();
    // Another scheme is no bearer token: the same challenge.
    let resp = reqwest::Client::new()
        .post(&ex.resource)
        .header("authorization", "Basic dXNlcjpwYXNz")
        .body(initialize().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(!challenge(&resp).contains("error="), "{}", challenge(&resp));
    // Two Authorization headers are a malformed request.
    let resp = reqwest::Client::new()
        .post(&ex.resource)
        .header("authorization", "Bearer a")
        .header("authorization", "Bearer b")
        .body(initialize().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(challenge(&resp).starts_with(r#"Bearer error="invalid_request""#));
    ex.stop().await;
}

#[tokio::test]
async fn an_api_key_calls_the_tools_its_scopes_allow_and_sees_only_those() {
    let server = TestServer::start().await;
    let ex = Example::start(&server, Mode::default(), Clock::system()).await;
    let (key_id, writer) = server.key_with(&["tools:read", "tools:call"]).await;
    let client = ex.client(&writer).await;
    assert_eq!(
        tool_names(&client).await,
        ["add_note", "list_notes", "whoami"]
    );
    let who = whoami(&client).await;
    assert_eq!(who["kind"], "ApiKey");
    assert_eq!(who["subject"], key_id);
    assert_eq!(who["scopes"], json!(["tools:read", "tools:call"]));
    let added = client
        .call_tool(
            CallToolRequestParams::new("add_note")
                .with_arguments(json!({"text": "hello"}).as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert_eq!(text_of(&added), "1 notes");
    client.cancel().await.unwrap();

    // A reader sees and calls only the reading tools; the writing one is
    // 403 naming the scope it needs.
    let (_, reader) = server.key_with(&["tools:read"]).await;
    let client = ex.client(&reader).await;
    assert_eq!(tool_names(&client).await, ["list_notes", "whoami"]);
    let notes = client
        .call_tool(CallToolRequestParams::new("list_notes"))
        .await
        .unwrap();
    assert_eq!(text_of(&notes), format!(r#"["{key_id}: hello"]"#));
    client.cancel().await.unwrap();
    let resp = ex
        .post(Some(&reader), &call("add_note", json!({"text": "x"})), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        challenge(&resp),
        format!(
            r#"Bearer error="insufficient_scope", error_description="the credential lacks a scope this call needs", resource_metadata="{}", scope="tools:call""#,
            ex.metadata_url()
        )
    );

    // A service scope is no application scope: an admin key calls nothing.
    let resp = ex
        .post(Some(&server.primary), &call("list_notes", json!({})), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{}", challenge(&resp));

    // A revoked key is refused.
    server.revoke_key(&server.primary, &key_id).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(11);
    loop {
        let resp = ex.post(Some(&writer), &initialize(), &[]).await;
        if resp.status() == StatusCode::UNAUTHORIZED {
            assert_eq!(
                challenge(&resp),
                format!(
                    r#"Bearer error="invalid_token", error_description="the credential was revoked", resource_metadata="{}", scope="{ALL}""#,
                    ex.metadata_url()
                )
            );
            break;
        }
        assert!(Instant::now() < deadline, "a revoked key still served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ex.stop().await;
}

#[tokio::test]
async fn a_session_token_calls_tools_and_the_header_must_match_the_body() {
    let server = TestServer::start().await;
    let ex = Example::start(&server, Mode::default(), Clock::system()).await;
    let (_, backend) = server.key_with(&["sessions:create", "tools:read"]).await;
    let session = server
        .session(&backend, &["tools:read"], &ex.resource)
        .await;
    let client = ex.client(&session.access_token).await;
    let who = whoami(&client).await;
    assert_eq!(who["kind"], "AccessToken");
    assert_eq!(who["subject"], "alice");
    client.cancel().await.unwrap();

    // The headers say a harmless tool, the body calls another: refused
    // before any scope is looked at.
    let resp = ex
        .post(
            Some(&session.access_token),
            &call("add_note", json!({"text": "x"})),
            &[("mcp-method", "tools/call"), ("mcp-name", "list_notes")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], -32020, "{body}");
    // Agreeing headers: the scope check of the tool they name.
    let resp = ex
        .post(
            Some(&session.access_token),
            &call("add_note", json!({"text": "x"})),
            &[("mcp-method", "tools/call"), ("mcp-name", "add_note")],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert!(challenge(&resp).ends_with(r#"scope="tools:call""#));

    // A token for another resource is refused, as is a tampered one.
    let other = server
        .session(&backend, &["tools:read"], "https://other.example.com/mcp")
        .await;
    // One character of the signature changed (still valid base64url).
    let mut tampered = session.access_token.clone().into_bytes();
    let i = tampered.len() - 10;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for (token, why) in [
        (
            other.access_token.as_str(),
            "the token is meant for another resource",
        ),
        (tampered.as_str(), "the token's signature does not verify"),
    ] {
        let resp = ex.post(Some(token), &initialize(), &[]).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{why}");
        assert_eq!(
            challenge(&resp),
            format!(
                r#"Bearer error="invalid_token", error_description="{why}", resource_metadata="{}", scope="{ALL}""#,
                ex.metadata_url()
            )
        );
    }
    ex.stop().await;
}

#[tokio::test]
async fn an_expired_token_is_refused_on_the_verifier_clock() {
    let server = TestServer::start().await;
    let now = Clock::system().now();
    let clock = Clock::manual(now);
    let ex = Example::start(&server, Mode::Offline, clock.clone()).await;
    let (_, backend) = server.key_with(&["sessions:create", "tools:read"]).await;
    let session = server
        .session(&backend, &["tools:read"], &ex.resource)
        .await;
    assert_eq!(
        ex.post(Some(&session.access_token), &initialize(), &[])
            .await
            .status(),
        StatusCode::OK
    );
    // Past its expiry and the verifier's leeway (5 s).
    clock.set(session.expires_at + 6);
    let resp = ex
        .post(Some(&session.access_token), &initialize(), &[])
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(
        challenge(&resp).starts_with(
            r#"Bearer error="invalid_token", error_description="the token has expired""#
        ),
        "{}",
        challenge(&resp)
    );
    ex.stop().await;
}

#[tokio::test]
async fn a_revoked_session_is_refused_within_a_second_by_the_offline_verifier() {
    let server = TestServer::start().await;
    let ex = Example::start(&server, Mode::default(), Clock::system()).await;
    let (_, backend) = server
        .key_with(&["sessions:create", "sessions:revoke", "tools:read"])
        .await;
    let session = server
        .session(&backend, &["tools:read"], &ex.resource)
        .await;
    assert_eq!(
        ex.post(Some(&session.access_token), &initialize(), &[])
            .await
            .status(),
        StatusCode::OK
    );
    server
        .revoke_session(&backend, &session.session_id)
        .await
        .unwrap();
    let revoked = Instant::now();
    loop {
        let resp = ex
            .post(Some(&session.access_token), &initialize(), &[])
            .await;
        if resp.status() == StatusCode::UNAUTHORIZED {
            assert!(challenge(&resp).contains(r#"error_description="the credential was revoked""#));
            break;
        }
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            revoked.elapsed() < Duration::from_secs(1),
            "still served {:?} after the revocation",
            revoked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("revocation enforced after {:?}", revoked.elapsed());
    ex.stop().await;
}

#[tokio::test]
async fn refused_api_keys_are_throttled_per_caller_address_and_an_unreachable_mcp_auth_is_503() {
    let mut server = TestServer::start_with(|c| c.auth_failures_per_minute = 3).await;
    let ex = Example::start(
        &server,
        Mode::OfflineWithRevocations {
            staleness: Duration::from_secs(30),
            on_stale: OnStale::FailClosed,
        },
        Clock::system(),
    )
    .await;
    let (_, good) = server.key_with(&["tools:read"]).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let resp = ex
            .post(
                Some("mcp_sk_not_a_key_of_this_server_0000000000"),
                &initialize(),
                &[],
            )
            .await;
        statuses.push(resp.status());
        if resp.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = resp.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry >= 1, "{retry}");
            assert!(challenge(&resp).is_empty());
            break;
        }
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert!(challenge(&resp).contains(r#"error_description="unknown API key""#));
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // A good key is still served from the same address, and the MCP
    // server's own calls were never throttled.
    assert_eq!(
        ex.post(Some(&good), &initialize(), &[]).await.status(),
        StatusCode::OK
    );

    // mcp-auth gone: a credential not seen before cannot be verified.
    server.stop().await;
    let unseen = "mcp_sk_never_seen_before_000000000000000";
    let resp = ex.post(Some(unseen), &initialize(), &[]).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert!(challenge(&resp).is_empty());
    ex.stop().await;
}

/// The whole OAuth way, as an MCP client finds it: the example's 401
/// names its metadata, which names mcp-auth; rmcp registers (DCR, no
/// `dcr_allowed_resources`: this is a development run with a loopback
/// resource), the user signs in and approves, rmcp exchanges the code
/// with PKCE, and the token calls the tools.
#[tokio::test]
async fn an_oauth_token_found_from_the_401_calls_the_tools() {
    let server = TestServer::start_reachable_with(|c| c.auth_failures_per_minute = 10_000).await;
    let ex = Example::start(&server, Mode::default(), Clock::system()).await;
    crate::rmcp_client::create_user(&server).await;

    let mut manager = AuthorizationManager::new(ex.resource.as_str())
        .await
        .unwrap();
    manager
        .with_client(crate::common::http_client_trusting(&server.ca_path()))
        .unwrap();
    let resolution = manager.resolve_metadata().await.unwrap();
    assert_eq!(
        resolution.source,
        rmcp::transport::auth::AuthorizationMetadataSource::ProtectedResourceMetadata,
        "found from the example's 401 and its metadata"
    );
    assert_eq!(
        resolution.metadata.issuer.as_deref(),
        Some(server.config.issuer.as_str())
    );
    manager.set_metadata(resolution.metadata);
    let redirect = "http://127.0.0.1:53125/callback";
    let session = AuthorizationSession::new(manager, AuthorizationRequest::new(redirect))
        .await
        .map_err(|(_, e)| e)
        .unwrap();
    let url = session.get_authorization_url().to_owned();
    assert_eq!(
        crate::rmcp_client::query(&url, "resource").as_deref(),
        Some(ex.resource.as_str())
    );
    assert_eq!(
        crate::rmcp_client::query(&url, "scope").as_deref(),
        Some(ALL)
    );
    let location = crate::rmcp_client::sign_in_and_approve(&server, &url).await;
    session.handle_callback_url(&location).await.unwrap();
    let access = session.auth_manager.get_access_token().await.unwrap();

    let client = ex.client(&access).await;
    assert_eq!(
        tool_names(&client).await,
        ["add_note", "list_notes", "whoami"]
    );
    let who = whoami(&client).await;
    assert_eq!(who["kind"], "AccessToken");
    assert!(
        who["subject"].as_str().unwrap().starts_with("usr_"),
        "{who}"
    );
    client.cancel().await.unwrap();
    ex.stop().await;
}

/// A gRPC MCP server behind the SDK's tonic layer (here tonic's health
/// service stands in for the server's own): no token is UNAUTHENTICATED
/// with the challenge in `www-authenticate`, a token without the
/// service's scope PERMISSION_DENIED naming it, a good one served.
#[tokio::test]
async fn a_grpc_server_behind_the_layer_answers_with_grpc_statuses() {
    use mcp_auth_sdk::{GrpcProtection, GrpcScopes};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let server = TestServer::start().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let resource = format!("https://{addr}/grpc");
    let verifier = verifier_for(&server, &resource, Mode::default(), Clock::system()).await;
    let protection = GrpcProtection::new(
        verifier,
        GrpcScopes::new().service("grpc.health.v1.Health", ["tools:read"]),
    )
    .unwrap();
    let (_, health) = tonic_health::server::health_reporter();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(
        tonic::transport::Server::builder()
            .layer(protection.layer())
            .add_service(health)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = stopped.await;
                },
            ),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let check = |credential: Option<String>| {
        let mut client = HealthClient::new(channel.clone());
        async move {
            let mut req = tonic::Request::new(HealthCheckRequest {
                service: String::new(),
            });
            if let Some(c) = credential {
                req.metadata_mut()
                    .insert("authorization", format!("Bearer {c}").parse().unwrap());
            }
            client.check(req).await
        }
    };
    let metadata_url = format!("https://{addr}/.well-known/oauth-protected-resource/grpc");

    let err = check(None).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        err.metadata().get("www-authenticate").unwrap(),
        &format!(r#"Bearer resource_metadata="{metadata_url}", scope="tools:read""#)
    );
    let (_, writer) = server.key_with(&["tools:call"]).await;
    let err = check(Some(writer)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied);
    assert_eq!(err.message(), "this method needs scopes tools:read");
    let err = check(Some("mcp_sk_unknown_0000000000000000000000000".to_owned()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    assert_eq!(err.message(), "unknown API key");
    let (_, reader) = server.key_with(&["tools:read"]).await;
    check(Some(reader)).await.unwrap();
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
