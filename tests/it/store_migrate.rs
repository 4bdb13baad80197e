//! `mcp-auth store migrate`: a data directory filled through the real
//! RPCs and endpoints, stopped, copied by the real binary into a fresh
//! PostgreSQL database, and served from there: the same keys
//! authenticate, the same refresh tokens refresh, what was revoked stays
//! revoked, the audit chain goes on and verifies, the JWKS is the same.
//! And its refusals: a data directory with no store or held by a server,
//! a database that holds anything, a target that is not PostgreSQL; none
//! of them writes anything, and none prints the database's URL.

use std::path::Path;
use std::process::Stdio;

use mcp_auth::pb;
use mcp_auth::pb::token_service_client::TokenServiceClient;
use mcp_auth::store::Location;
use mcp_auth::store::postgres::test_db::{self, TestDatabase};
use reqwest::StatusCode;
use serde_json::Value;
use tonic::Code;

use crate::browser_flow::{
    REDIRECT, approve_remembered, authorize_url, browser, exchange_code, field, location_params,
    param, submit,
};
use crate::common::{TestServer, assert_status, bare_session_request, inactive_reason, strings};
use crate::oauth::{RESOURCE, basic, grant_basic, post, token_ok};
use crate::revocation_stream::oauth_client;

/// Runs `mcp-auth store migrate ARGS` with nothing from the environment
/// but `MCP_AUTH_STORE` when given, and the key-ring key `store.key` of
/// the `--from` directory (made if missing; a server started on a copy of
/// that directory uses it) in `MCP_AUTH_STORE_KEY_FILE`: (exit code,
/// stdout, stderr).
async fn migrate(args: &[&str], store_env: Option<&str>) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"));
    cmd.args(["store", "migrate"])
        .args(args)
        .env_clear()
        .env("MCP_AUTH_LOG", "warn")
        .stdin(Stdio::null());
    let from = args
        .iter()
        .position(|a| *a == "--from")
        .map(|i| Path::new(args[i + 1]));
    if let Some(from) = from.filter(|f| f.is_dir()) {
        let key = from.join(crate::common::STORE_KEY_FILE);
        if !key.exists() {
            mcp_auth::store::ring_key::keygen(&key, false).unwrap();
        }
        cmd.env("MCP_AUTH_STORE_KEY_FILE", key);
    }
    if let Some(url) = store_env {
        cmd.env("MCP_AUTH_STORE", url);
    }
    let out = cmd.output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// User alice signs in in a browser and approves the public client
/// `client_id` with "remember": a remembered consent and an OAuth
/// session. Returns the token response.
async fn remembered_consent(server: &TestServer, client_id: &str) -> Value {
    let b = browser(server);
    let url = authorize_url(server, client_id, REDIRECT, "");
    let html = b.get(&url).send().await.unwrap().text().await.unwrap();
    let (interaction, csrf) = (field(&html, "interaction"), field(&html, "csrf"));
    let page = submit(
        &b,
        server,
        "/login",
        &[
            ("interaction", &interaction),
            ("csrf", &csrf),
            ("username", "alice"),
            ("password", "correct horse battery"),
        ],
    )
    .await;
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("Remember this decision")
    );
    let back = approve_remembered(&b, server, &interaction, &csrf).await;
    let (_, params) = location_params(&back);
    let code = param(&params, "code").unwrap().to_owned();
    let tokens = exchange_code(&b, server, client_id, &code, REDIRECT).await;
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    tokens
}

/// What the CLI prints as JSON for `args`, as the primary key.
async fn cli_json(server: &TestServer, args: &[&str]) -> Value {
    let (code, out, err) = server.cli(Some(&server.primary), args).await;
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The kids of the server's JWK Set.
async fn kids(server: &TestServer) -> Vec<String> {
    let jwks = cli_json(server, &["jwks", "--json"]).await;
    let mut kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    kids.sort();
    kids
}

/// Copies what a server on a database still needs from a data directory
/// (its TLS material, the CA its client certificates come from, and
/// `primary.key`) into `to`.
fn copy_files(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_name() == "db" {
            continue;
        }
        let target = to.join(entry.file_name());
        if path.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_files(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// A row count of `table` in the database at `url`.
async fn rows(url: &str, table: &str) -> i64 {
    test_db::connect(url)
        .await
        .unwrap()
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_data_directory_moves_to_postgres_and_serves_from_there() {
    let mut old = TestServer::start_with(|c| c.auth_failures_per_minute = 10_000).await;
    let admin = old.client(&old.primary).await;
    let (_, backend) = old.key_with(&["sessions:create", "tools:read"]).await;
    let (_, verifier) = old.key_with(&["tokens:verify", "sessions:revoke"]).await;
    let (revoked_key, revoked_secret) = old.key_with(&["tools:read"]).await;
    old.revoke_key(&old.primary, &revoked_key).await.unwrap();

    // A session refreshed once (its first refresh token spent), then the
    // signing key rotated; and a revoked session.
    let s = old.session(&backend, &["tools:read"], "aud").await;
    let refreshed = old.refresh(&s.refresh_token).await.unwrap();
    let (code, _, err) = old
        .cli(Some(&old.primary), &["signing-key", "rotate"])
        .await;
    assert_eq!(code, 0, "{err}");
    let gone = old.session(&backend, &["tools:read"], "aud").await;
    old.revoke_session(&verifier, &gone.session_id)
        .await
        .unwrap();

    // An identity with a revoked certificate.
    old.grant("svc-a", &["sessions:create", "tools:read"], false)
        .await;
    let cert = old.client_cert("svc-a");
    old.revoke_cert(&cert.serial).await;

    // OAuth clients: one whose token is revoked (RFC 7009), one deleted
    // with a token out, and a public one a user consented to.
    let (kept_id, kept_secret) = oauth_client(&old).await;
    let revoked_token = grant_basic(&old, &kept_id, &kept_secret).await;
    let resp = post(
        &old,
        "/revoke",
        Some(&basic(&kept_id, &kept_secret)),
        &[("token", &revoked_token)],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (doomed_id, doomed_secret) = oauth_client(&old).await;
    let doomed_token = grant_basic(&old, &doomed_id, &doomed_secret).await;
    admin
        .delete_client(pb::DeleteClientRequest {
            client_id: doomed_id.clone(),
        })
        .await
        .unwrap();
    admin
        .create_user(pb::CreateUserRequest {
            username: "alice".to_owned(),
            password: "correct horse battery".to_owned(),
        })
        .await
        .unwrap();
    let public_id = admin
        .create_client(pb::CreateClientRequest {
            name: "Inspector".to_owned(),
            redirect_uris: strings(&[REDIRECT]),
            grant_types: strings(&["authorization_code", "refresh_token"]),
            allowed_scopes: strings(&["tools:read"]),
            allowed_resources: strings(&[RESOURCE]),
            token_endpoint_auth_method: "none".to_owned(),
            jwks: String::new(),
            skip_consent: false,
        })
        .await
        .unwrap()
        .client
        .unwrap()
        .client_id;
    let oauth = remembered_consent(&old, &public_id).await;

    let audit_before = cli_json(&old, &["audit", "list", "--limit", "0", "--json"]).await;
    let sessions_before = cli_json(&old, &["session", "list", "--json"]).await;
    let kids_before = kids(&old).await;
    assert_eq!(kids_before.len(), 2, "the rotation's two keys");
    drop(admin);
    old.stop().await;

    // The copy, the URL from the environment.
    let db = TestDatabase::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let from = old.data_dir().to_str().unwrap().to_owned();
    let (code, out, err) = migrate(&["--from", &from, "--json"], Some(db.url())).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains(db.name()) && !err.contains(db.name()),
        "{out}{err}"
    );
    let report: Value = serde_json::from_str(&out).unwrap();
    let copied = &report["copied"];
    let audit_len = audit_before.as_array().unwrap().len() as u64;
    for (kind, n) in [
        ("api_keys", 4),
        ("sessions", sessions_before.as_array().unwrap().len() as u64),
        ("identities", 1),
        ("revoked_certs", 1),
        ("clients", 2),
        ("deleted_clients", 1),
        ("users", 1),
        ("consents", 1),
        ("revoked_tokens", 1),
        ("signing_keys", 2),
        ("audit_records", audit_len),
        ("audit_anchor_seq", 0),
        ("audit_last_seq", audit_len),
    ] {
        assert_eq!(copied[kind], n, "{kind}: {report}");
    }
    assert!(
        copied["revoked_sessions"].as_u64().unwrap() >= 1,
        "{report}"
    );
    assert!(
        copied["refresh_tokens"].as_u64().unwrap() >= 3,
        "the spent one too: {report}"
    );
    assert_eq!(report["audit_chain"]["intact"], true, "{report}");
    assert_eq!(report["audit_chain"]["records"], audit_len, "{report}");

    // Again: the database now holds the copy, so it is refused.
    let (code, out, err) = migrate(&["--from", &from, "--to", db.url()], None).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("error: the target database is not empty (api keys: 4,"),
        "{err}"
    );
    assert!(!err.contains(db.name()), "{err}");

    // A server on the database, with the old one's TLS material and CA.
    let dir = tempfile::tempdir().unwrap();
    copy_files(old.data_dir(), dir.path());
    let location = Location::Postgres(db.url().to_owned());
    let mut new = TestServer::start_in(dir, |c| c.store = location).await;
    assert!(!new.created_primary, "the primary key came along");
    new.clock.set(old.clock.now());

    // The old API keys authenticate; the revoked one stays revoked.
    let v = new.verify(&verifier, &refreshed.access_token).await;
    assert!(v.active, "{v:?}");
    let err = new
        .client(&revoked_secret)
        .await
        .who_am_i()
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "API_KEY_REVOKED");
    // The live refresh token refreshes; the spent one is known as spent.
    let again = new.refresh(&refreshed.refresh_token).await.unwrap();
    assert_eq!(again.session_id, s.session_id);
    assert!(new.verify(&verifier, &again.access_token).await.active);
    // Revoked stays revoked: the session, the certificate, the token, the
    // deleted client's token.
    for token in [&gone.access_token, &revoked_token, &doomed_token] {
        let v = new.verify(&verifier, token).await;
        assert_eq!(inactive_reason(&v), pb::TokenReason::Revoked);
    }
    let mut mtls = TokenServiceClient::new(new.mtls_channel(&cert).await.unwrap());
    let err = mtls
        .create_session(bare_session_request(&["tools:read"]))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "CERTIFICATE_REVOKED");
    // The OAuth session refreshes at the token endpoint; the consent is
    // remembered; the kept client still gets tokens.
    let resp = post(
        &new,
        "/token",
        None,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &public_id),
            ("refresh_token", oauth["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    token_ok(resp).await;
    let consents = new
        .client(&new.primary)
        .await
        .list_consents(pb::ListConsentsRequest {
            username: "alice".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .consents;
    assert_eq!(consents.len(), 1);
    assert_eq!(consents[0].client_id, public_id);
    let fresh = grant_basic(&new, &kept_id, &kept_secret).await;
    assert!(new.verify(&verifier, &fresh).await.active);

    // The same keys; the chain goes on from the copy and verifies.
    assert_eq!(kids(&new).await, kids_before);
    let (code, out, err) = new.cli(Some(&new.primary), &["audit", "verify"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("audit chain intact:"), "{out}");
    let audit_after = cli_json(&new, &["audit", "list", "--limit", "0", "--json"]).await;
    let after = audit_after.as_array().unwrap();
    assert!(after.len() > audit_before.as_array().unwrap().len());
    assert_eq!(
        &after[..audit_before.as_array().unwrap().len()],
        audit_before.as_array().unwrap().as_slice(),
        "the copied trail, then what the new server wrote"
    );
    new.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_migrate_refuses_what_it_cannot_copy_and_writes_nothing() {
    let db = TestDatabase::create()
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // A data directory with no store: refused before the database is
    // touched.
    let empty = tempfile::tempdir().unwrap();
    let empty_dir = empty.path().to_str().unwrap();
    let (code, out, err) = migrate(&["--from", empty_dir, "--to", db.url()], None).await;
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    assert_eq!(
        err.trim(),
        format!(
            "error: {empty_dir}: no mcp-auth database here (a data directory holds one in db/ once a server has run on it)"
        )
    );
    let tables = test_db::connect(db.url())
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(tables, 0, "the database was not touched");

    // A data directory a running server holds.
    let mut running = TestServer::start().await;
    let held = running.data_dir().to_str().unwrap().to_owned();
    let (code, _, err) = migrate(&["--from", &held, "--to", db.url()], None).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "another mcp-auth process is using the data directory {held}"
        )),
        "{err}"
    );
    running.stop().await;

    // Not PostgreSQL; and a URL with a password, which no message repeats.
    let (code, _, err) = migrate(&["--from", &held, "--to", "sled"], None).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("--to (MCP_AUTH_STORE) must name the PostgreSQL database"),
        "{err}"
    );
    let (code, _, err) = migrate(
        &[
            "--from",
            &held,
            "--to",
            "postgres://mcp:hunter2@127.0.0.1:1/nowhere?connect_timeout=2",
        ],
        None,
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: the database is unavailable: postgres"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
    let (code, _, err) = migrate(&["--from", &held, "--json"], None).await;
    assert_eq!(code, 2, "--to is required");
    assert!(err.contains("--to <URL>"), "{err}");

    // A database a server has written to: refused, and left as it was.
    let location = Location::Postgres(db.url().to_owned());
    let mut on_db = TestServer::start_with(|c| c.store = location).await;
    on_db.key_with(&["tools:read"]).await;
    on_db.stop().await;
    let (keys, audit) = (
        rows(db.url(), "api_keys").await,
        rows(db.url(), "audit").await,
    );
    let (code, out, err) = migrate(&["--from", &held, "--to", db.url(), "--json"], None).await;
    assert_eq!((code, out.as_str()), (1, ""), "{err}");
    let refusal: Value = serde_json::from_str(&err).unwrap();
    let message = refusal["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "the target database is not empty (api keys: {keys}, signing keys: 1, audit records: {audit})"
        )),
        "{message}"
    );
    assert!(
        message.ends_with("create a new one and name it in --to"),
        "{message}"
    );
    assert_eq!(rows(db.url(), "api_keys").await, keys);
    assert_eq!(rows(db.url(), "audit").await, audit);
    assert_eq!(rows(db.url(), "signing_keys").await, 1);
}
