//! The command line as a new user meets it, running the real binary
//! against a real server: one output layer (`--json` everywhere, lists as
//! arrays, `--field`), global options anywhere, statuses by the server's
//! clock, errors a person can act on (and JSON ones for scripts), and the
//! commands that show one thing (`key show`, `session show`, `whoami`).

use std::time::Duration;

use serde_json::Value;

use crate::common::TestServer;

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Runs the CLI and expects success; returns stdout.
async fn ok(server: &TestServer, key: Option<&str>, args: &[&str]) -> String {
    let (code, out, err) = server.cli(key, args).await;
    assert_eq!(code, 0, "mcp-auth {args:?}: {err}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_prints_one_value_raw_and_lists_are_arrays() {
    let server = TestServer::start().await;
    let admin = Some(server.primary.as_str());

    // --field: the secret alone, no quotes, no JSON, one line.
    let secret = ok(
        &server,
        admin,
        &[
            "key",
            "create",
            "--name",
            "backend",
            "--scopes",
            "sessions:create,tools:read",
            "--field",
            "secret",
        ],
    )
    .await;
    let secret = secret.trim_end_matches('\n');
    assert!(
        secret.starts_with("mcp_sk_") && !secret.contains(['"', '\n', ' ']),
        "{secret:?}"
    );

    // whoami with that key: the id a walk-through needs next.
    let key_id = ok(&server, Some(secret), &["whoami", "--field", "client_id"]).await;
    let key_id = key_id.trim();
    assert!(key_id.starts_with("key_"), "{key_id}");
    let me = json(&ok(&server, Some(secret), &["whoami", "--json"]).await);
    assert_eq!(me["kind"], "api_key");
    assert_eq!(me["name"], "backend");
    assert_eq!(
        me["scopes"],
        serde_json::json!(["sessions:create", "tools:read"])
    );
    let text = ok(&server, Some(secret), &["whoami"]).await;
    assert!(
        text.contains("kind:       API key") && text.contains(key_id),
        "{text}"
    );

    // A nested field, and a field of each item of a list.
    let token = ok(
        &server,
        Some(secret),
        &[
            "session",
            "create",
            "--subject",
            "alice",
            "--scopes",
            "tools:read",
            "--audience",
            "https://mcp.example.com",
            "--field",
            "access_token",
        ],
    )
    .await;
    assert_eq!(token.trim().split('.').count(), 3, "a bare JWT: {token}");
    let shown = ok(
        &server,
        admin,
        &["key", "show", key_id, "--field", "scopes"],
    )
    .await;
    assert_eq!(shown.trim(), "sessions:create,tools:read");
    let ids = ok(&server, admin, &["key", "list", "--field", "key_id"]).await;
    assert_eq!(ids.lines().count(), 2, "primary and backend: {ids}");
    assert!(ids.lines().any(|l| l == key_id), "{ids}");

    // Every list is a bare JSON array.
    for args in [
        &["key", "list", "--json"][..],
        &["session", "list", "--json"][..],
        &["identity", "list", "--json"][..],
        &["audit", "list", "--json"][..],
    ] {
        let v = json(&ok(&server, admin, args).await);
        assert!(v.is_array(), "{args:?} prints an array: {v}");
    }
    let sessions = json(&ok(&server, admin, &["session", "list", "--json"]).await);
    assert_eq!(sessions[0]["status"], "active");

    // Several fields: one per line, in the order asked; of a list, one
    // line per item.
    let both = ok(
        &server,
        admin,
        &["key", "show", key_id, "--field", "key_id,name"],
    )
    .await;
    assert_eq!(both, format!("{key_id}\nbackend\n"));
    let rows = ok(&server, admin, &["key", "list", "--field", "name,status"]).await;
    assert!(rows.lines().any(|l| l == "backend\tactive"), "{rows}");

    // A field the result does not have is an error naming the fields.
    let (code, out, err) = server.cli(admin, &["whoami", "--field", "nope"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("--field nope") && err.contains("client_id"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_options_work_before_or_after_the_subcommand() {
    let server = TestServer::start().await;
    let url = server.url();
    let ca = server.ca_path();
    let ca = ca.to_str().unwrap();
    for args in [
        vec!["--json", "--server", &url, "--ca", ca, "key", "list"],
        vec!["key", "--json", "list", "--server", &url],
        vec!["key", "list", "--ca", ca, "--json"],
    ] {
        let v = json(&ok(&server, Some(&server.primary), &args).await);
        assert!(v.is_array(), "{args:?}: {v}");
    }
    // Help lists them once, under one heading.
    let help = ok(&server, None, &["key", "list", "--help"]).await;
    assert_eq!(help.matches("--server <SERVER>").count(), 1, "{help}");
    assert!(help.contains("Global options"), "{help}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_is_listed_as_expired() {
    let server = TestServer::start().await;
    let admin = Some(server.primary.as_str());
    let created = json(
        &ok(
            &server,
            admin,
            &[
                "key",
                "create",
                "--name",
                "short",
                "--scopes",
                "tools:read",
                "--expires-in",
                "60",
                "--json",
            ],
        )
        .await,
    );
    let id = created["api_key"]["key_id"].as_str().unwrap().to_owned();
    assert_eq!(created["api_key"]["status"], "active");
    server.clock.advance(Duration::from_secs(3600));

    let listing = ok(&server, admin, &["key", "list"]).await;
    let line = listing.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(line.contains(" expired "), "{listing}");
    let v = json(&ok(&server, admin, &["key", "show", &id, "--json"]).await);
    assert_eq!(v["status"], "expired");
    let shown = ok(&server, admin, &["key", "show", &id]).await;
    assert!(shown.contains("status:     expired"), "{shown}");
    // ... and calls with it fail as the status says.
    let secret = created["secret"].as_str().unwrap();
    let (code, _, err) = server.cli(Some(secret), &["whoami"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("UNAUTHENTICATED [API_KEY_EXPIRED]"), "{err}");

    // A revoked key says revoked (revoked wins over expired).
    ok(&server, admin, &["key", "revoke", &id]).await;
    let v = json(&ok(&server, admin, &["key", "show", &id, "--json"]).await);
    assert_eq!(v["status"], "revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_show_sees_own_sessions_and_ends_expired() {
    let server = TestServer::start().await;
    let admin = Some(server.primary.as_str());
    let (_, a) = server.key_with(&["sessions:create", "tools:read"]).await;
    let (_, b) = server.key_with(&["sessions:create", "tools:read"]).await;
    let id = ok(
        &server,
        Some(&a),
        &[
            "session",
            "create",
            "--subject",
            "alice",
            "--scopes",
            "tools:read",
            "--audience",
            "https://mcp.example.com",
            "--session-lifetime-seconds",
            "600",
            "--field",
            "session_id",
        ],
    )
    .await;
    let id = id.trim();
    let shown = ok(&server, Some(&a), &["session", "show", id]).await;
    assert!(
        shown.contains("subject:        alice") && shown.contains("status:         active"),
        "{shown}"
    );
    assert!(!shown.contains("eyJ"), "never a token: {shown}");
    // Another creator's session is not found, as if it did not exist.
    let (code, _, err) = server.cli(Some(&b), &["session", "show", id]).await;
    assert_eq!(code, 1);
    assert!(err.contains("NOT_FOUND [SESSION_NOT_FOUND]"), "{err}");
    // An admin sees it; after its end it is expired.
    server.clock.advance(Duration::from_secs(601));
    let v = json(&ok(&server, admin, &["session", "show", id, "--json"]).await);
    assert_eq!(v["status"], "expired");
    assert_eq!(v["subject"], "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_names_a_client_certificate_identity() {
    let server = TestServer::start().await;
    server.grant("billing", &["sessions:create"], false).await;
    let cert = server.client_cert("billing");
    let me = json(
        &ok(
            &server,
            None,
            &[
                "whoami",
                "--json",
                "--cert",
                cert.cert.to_str().unwrap(),
                "--key",
                cert.key.to_str().unwrap(),
            ],
        )
        .await,
    );
    assert_eq!(me["kind"], "identity");
    assert_eq!(me["client_id"], "billing");
    assert_eq!(me["scopes"], serde_json::json!(["sessions:create"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_verify_refuses_to_run_without_an_audience_choice() {
    let server = TestServer::start().await;
    let (code, _, err) = server
        .cli(Some(&server.primary), &["token", "verify", "x.y.z"])
        .await;
    assert_eq!(code, 2, "a command-line mistake: {err}");
    assert!(
        err.contains("--audience") && err.contains("--any-audience"),
        "{err}"
    );

    let (_, verifier) = server.key_with(&["tokens:verify"]).await;
    let (_, backend) = server.key_with(&["sessions:create", "tools:read"]).await;
    let s = server
        .session(&backend, &["tools:read"], "https://mcp.example.com")
        .await;
    let v = json(
        &ok(
            &server,
            Some(&verifier),
            &[
                "token",
                "verify",
                "--any-audience",
                "--json",
                &s.access_token,
            ],
        )
        .await,
    );
    assert_eq!(v["active"], true);
    assert!(
        v.get("reason").is_none(),
        "an active token has no reason: {v}"
    );
    let (code, out, _) = server
        .cli(
            Some(&verifier),
            &[
                "token",
                "verify",
                "--audience",
                "https://other.example.com",
                "--json",
                &s.access_token,
            ],
        )
        .await;
    assert_eq!(code, 3);
    let v = json(&out);
    assert_eq!(v["reason"], "WRONG_AUDIENCE");
    assert!(v.get("claims").is_none(), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_prints_json_with_json() {
    let server = TestServer::start().await;
    let admin = Some(server.primary.as_str());
    let verdict = json(&ok(&server, admin, &["audit", "verify", "--json"]).await);
    assert_eq!(verdict["intact"], true, "{verdict}");
    assert!(verdict["records"].as_u64().unwrap() >= 1, "{verdict}");
    let jwks = json(&ok(&server, None, &["jwks", "--json"]).await);
    assert_eq!(jwks["keys"][0]["kty"], "OKP");
    let table = ok(&server, None, &["jwks"]).await;
    assert!(
        table.starts_with("KID") && table.contains("EdDSA"),
        "{table}"
    );

    // audit list: --limit and --since (an age, or RFC 3339).
    for i in 0..3 {
        ok(
            &server,
            admin,
            &[
                "key",
                "create",
                "--name",
                &format!("k{i}"),
                "--scopes",
                "tools:read",
                "--field",
                "secret",
            ],
        )
        .await;
    }
    let (code, out, err) = server
        .cli(admin, &["audit", "list", "--limit", "2", "--json"])
        .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out).as_array().unwrap().len(), 2);
    assert!(err.contains("--limit"), "says more matched: {err}");
    let all = json(&ok(&server, admin, &["audit", "list", "--limit", "0", "--json"]).await);
    let since = json(
        &ok(
            &server,
            admin,
            &["audit", "list", "--since", "1h", "--json"],
        )
        .await,
    );
    assert_eq!(all, since, "everything happened within the hour");
    let future = json(
        &ok(
            &server,
            admin,
            &["audit", "list", "--since", "2999-01-01T00:00:00Z", "--json"],
        )
        .await,
    );
    assert_eq!(future, serde_json::json!([]));
    let (code, _, err) = server
        .cli(admin, &["audit", "list", "--since", "yesterday"])
        .await;
    assert_eq!(code, 2);
    assert!(err.contains("RFC 3339"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_canonical_and_json_with_json() {
    let server = TestServer::start().await;
    let (_, backend) = server.key_with(&["sessions:create", "tools:read"]).await;
    let args = [
        "session",
        "create",
        "--subject",
        "alice",
        "--scopes",
        "tools:write",
        "--audience",
        "https://mcp.example.com",
    ];
    let (code, out, err) = server.cli(Some(&backend), &args).await;
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.starts_with(
            "error: PERMISSION_DENIED [INSUFFICIENT_SCOPE]: cannot grant scope \"tools:write\""
        ),
        "{err}"
    );
    let mut with_json = args.to_vec();
    with_json.push("--json");
    let (code, out, err) = server.cli(Some(&backend), &with_json).await;
    assert_eq!((code, out.as_str()), (1, ""));
    let v = json(&err);
    assert_eq!(v["error"]["code"], "PERMISSION_DENIED");
    assert_eq!(v["error"]["reason"], "INSUFFICIENT_SCOPE");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tools:write")
    );
}

/// A connection failure's message, once, with no Rust `Debug` in it.
fn assert_plain(err: &str) {
    assert!(
        !err.contains("Os {") && !err.contains("kind:"),
        "no Debug output: {err}"
    );
    let body = err.trim_start_matches("error: ");
    for part in body.split(": ") {
        assert_eq!(body.matches(part).count(), 1, "{part:?} said twice: {err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_say_what_to_change() {
    let server = TestServer::start().await;
    let key = Some(server.primary.as_str());

    // The wrong CA: name --ca and MCP_AUTH_CA.
    let other = tempfile::tempdir().unwrap();
    mcp_auth::ca::init_ca(other.path(), "other CA", 1, false).unwrap();
    let other_ca = other.path().join("ca.pem");
    let (code, _, err) = server
        .cli(key, &["key", "list", "--ca", other_ca.to_str().unwrap()])
        .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("not signed by the CA") && err.contains("--ca") && err.contains("MCP_AUTH_CA"),
        "{err}"
    );
    assert_plain(&err);

    // http:// against a TLS server.
    let http = server.url().replacen("https://", "http://", 1);
    let (code, _, err) = server.cli(key, &["key", "list", "--server", &http]).await;
    assert_eq!(code, 1);
    assert!(err.contains("https://"), "{err}");
    assert_plain(&err);

    // No scheme.
    let bare = format!("127.0.0.1:{}", server.addr.port());
    let (code, _, err) = server.cli(key, &["key", "list", "--server", &bare]).await;
    assert_eq!(code, 1);
    assert!(err.contains("--server must be a URL"), "{err}");
    assert_plain(&err);

    // An offline command on the data directory the server holds.
    let dir = server.data_dir().to_str().unwrap().to_owned();
    let (code, _, err) = server
        .cli(None, &["recover-admin", "--data-dir", &dir])
        .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("another mcp-auth process is using the data directory"),
        "{err}"
    );
    assert_plain(&err);
}

#[tokio::test]
async fn reflection_serves_the_error_detail_types() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = TestServer::start().await;
    let mut reflection = ServerReflectionClient::new(server.channel().await);
    for symbol in [
        "google.rpc.ErrorInfo",
        "google.rpc.BadRequest",
        "google.rpc.RetryInfo",
    ] {
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(symbol.to_owned())),
        };
        let mut stream = reflection
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let resp = stream.message().await.unwrap().unwrap();
        match resp.message_response {
            Some(MessageResponse::FileDescriptorResponse(files)) => {
                assert!(!files.file_descriptor_proto.is_empty(), "{symbol}");
            }
            other => panic!("{symbol}: {other:?}"),
        }
    }
}
