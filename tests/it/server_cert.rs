//! Certificates without openssl (issue 16): `mcp-auth cert issue-server`
//! makes a server certificate from the bundled CA that the real server
//! serves over real TLS, to clients that trust only that CA and use one of
//! its names; every certificate the CLI issues stays within its CA's
//! lifetime and under the cap; and the production walk-through of
//! docs/operations/tls.md works when pasted.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use mcp_auth::config::TlsMode;
use mcp_auth::pb;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncBufReadExt, BufReader};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use crate::common::{TestServer, mcp_auth};
use crate::readme::{Part, mask, walkthrough};

/// `cert init-ca --out ca --days DAYS` in `dir`; the CA's expiry, RFC 3339.
async fn init_ca(dir: &Path, days: &str) -> String {
    init_ca_named(dir, "mcp-auth CA", days).await
}

/// [`init_ca`] with the CA's common name.
async fn init_ca_named(dir: &Path, name: &str, days: &str) -> String {
    let (code, out, err) = mcp_auth(
        dir,
        &[
            "cert", "init-ca", "--out", "ca", "--name", name, "--days", days, "--json",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    OffsetDateTime::from_unix_timestamp(created["expires_at"].as_i64().unwrap())
        .unwrap()
        .format(&Rfc3339)
        .unwrap()
}

/// A TLS configuration trusting only the CA certificate `ca`.
fn trusting(ca: &[u8]) -> ClientTlsConfig {
    ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issued_server_certificate_serves_tls_to_its_names_and_no_other() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    init_ca(dir, "30").await;
    let issue = [
        "cert",
        "issue-server",
        "--ca-dir",
        "ca",
        "--out",
        "tls",
        "--dns",
        "localhost",
        "--dns",
        "Auth.Test",
        "--ip",
        "127.0.0.1",
        "--days",
        "7",
    ];
    let (code, out, err) = mcp_auth(dir, &issue, &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("names:       DNS:localhost, DNS:auth.test, IP:127.0.0.1\n"),
        "{out}"
    );
    assert!(
        out.contains("private key: tls/server.key (mode 0600; serve --tls-key)\n"),
        "{out}"
    );
    assert!(!out.contains("PRIVATE KEY"), "{out}");
    let key_mode = std::fs::metadata(dir.join("tls/server.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    let dir_mode = std::fs::metadata(dir.join("tls"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);

    // Never over existing files without --force; never without a name.
    let (code, _, err) = mcp_auth(dir, &issue, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: tls/server.pem exists; pass --force to overwrite it\n"
    );
    let (code, _, err) = mcp_auth(
        dir,
        &["cert", "issue-server", "--ca-dir", "ca", "--out", "other"],
        &[],
    )
    .await;
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "error: name the server: --dns NAME or --ip ADDRESS (each repeatable)\n"
    );
    assert!(!dir.join("other").exists());

    // The real server, on the issued certificate and key.
    let (cert, key) = (dir.join("tls/server.pem"), dir.join("tls/server.key"));
    let mut server = TestServer::start_with(|c| {
        c.tls = TlsMode::Files { cert, key };
        c.client_ca = None;
    })
    .await;
    let ca = std::fs::read(dir.join("ca/ca.pem")).unwrap();

    // gRPC by each DNS name, and by the IP address of the URL.
    for name in [Some("localhost"), Some("auth.test"), None] {
        let mut tls = trusting(&ca);
        if let Some(name) = name {
            tls = tls.domain_name(name);
        }
        let channel = Endpoint::from_shared(server.url())
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{name:?}: {e:?}"));
        pb::token_service_client::TokenServiceClient::new(channel)
            .get_jwks(pb::GetJwksRequest {})
            .await
            .unwrap();
    }
    // A name the certificate does not list fails the handshake.
    let err = Endpoint::from_shared(server.url())
        .unwrap()
        .tls_config(trusting(&ca).domain_name("other.test"))
        .unwrap()
        .connect()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("NotValidForName"), "{err:?}");
    // So does a client that trusts another CA.
    let foreign = tempfile::tempdir().unwrap();
    init_ca_named(foreign.path(), "someone else's CA", "30").await;
    let err = Endpoint::from_shared(server.url())
        .unwrap()
        .tls_config(trusting(
            &std::fs::read(foreign.path().join("ca/ca.pem")).unwrap(),
        ))
        .unwrap()
        .connect()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("UnknownIssuer"), "{err:?}");

    // The HTTP listener serves the same certificate: reqwest (rustls)
    // trusting only the CA, reaching the listener by a listed name.
    let port = server.http_addr.port();
    let http = |name: &str| {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
            .resolve(name, server.http_addr)
            .build()
            .unwrap()
    };
    let resp = http("auth.test")
        .get(format!(
            "https://auth.test:{port}/.well-known/oauth-authorization-server"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let err = http("wrong.test")
        .get(format!(
            "https://wrong.test:{port}/.well-known/oauth-authorization-server"
        ))
        .send()
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("NotValidForName"), "{err:?}");

    // The CLI, given the CA, by name.
    let url = format!("https://localhost:{}", server.addr.port());
    let ca_path = dir.join("ca/ca.pem");
    let (code, out, err) = mcp_auth(
        dir,
        &[
            "whoami",
            "--server",
            &url,
            "--ca",
            ca_path.to_str().unwrap(),
        ],
        &[("MCP_AUTH_API_KEY", &server.primary)],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("name:       primary"), "{out}");
    server.stop().await;
}

#[tokio::test]
async fn no_certificate_outlives_its_ca() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let ca_expiry = init_ca(dir, "1").await;
    let client = ["cert", "issue", "billing", "--ca-dir", "ca", "--out", "out"];
    let server = [
        "cert",
        "issue-server",
        "--ca-dir",
        "ca",
        "--out",
        "out",
        "--dns",
        "localhost",
    ];
    for args in [&client[..], &server[..]] {
        for days in ["365", "2"] {
            let args = [args, &["--days", days]].concat();
            let (code, out, err) = mcp_auth(dir, &args, &[]).await;
            assert_eq!(code, 1, "{args:?}: {out}");
            assert!(
                err.starts_with("error: cannot issue: the certificate would be valid until "),
                "{err}"
            );
            assert!(
                err.contains(&format!(
                    "beyond the expiry of the CA certificate at {ca_expiry}, and no certificate may outlive its CA; the CA expires in less than a day: renew it (cert init-ca) and issue from the new one\n"
                )),
                "{err}"
            );
            assert!(!dir.join("out").exists(), "nothing written");
        }
    }
    // With --json, one JSON object naming the same cause.
    let (code, _, err) = mcp_auth(dir, &[&client[..], &["--json"]].concat(), &[]).await;
    assert_eq!(code, 1);
    let body: serde_json::Value = serde_json::from_str(&err).unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(&ca_expiry), "{message}");

    // From a CA with 30 days left: the days that fit are named.
    let roomy = tempfile::tempdir().unwrap();
    let ca_expiry = init_ca(roomy.path(), "30").await;
    let (code, _, err) = mcp_auth(
        roomy.path(),
        &[&server[..], &["--days", "31"]].concat(),
        &[],
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("CA certificate at {ca_expiry}")) && err.contains("days (--days)"),
        "{err}"
    );
    let (code, _, err) = mcp_auth(
        roomy.path(),
        &[&server[..], &["--days", "29"]].concat(),
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
}

#[tokio::test]
async fn lifetimes_above_the_cap_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    init_ca(dir, "3650").await;
    let client = [
        "cert", "issue", "billing", "--ca-dir", "ca", "--out", "client",
    ];
    let server = [
        "cert",
        "issue-server",
        "--ca-dir",
        "ca",
        "--out",
        "server",
        "--ip",
        "10.0.0.7",
    ];
    let cap_error = |days: u32, cap: u32| {
        format!(
            "error: cannot issue: {days} days is above the cap of {cap} days; ask for fewer --days, or raise the cap with --max-days (MCP_AUTH_CERT_MAX_DAYS)\n"
        )
    };
    for args in [&client[..], &server[..]] {
        let (code, _, err) = mcp_auth(dir, &[args, &["--days", "399"]].concat(), &[]).await;
        assert_eq!((code, err), (1, cap_error(399, 398)));
        let (code, _, err) = mcp_auth(
            dir,
            &[args, &["--days", "60", "--max-days", "45"]].concat(),
            &[],
        )
        .await;
        assert_eq!((code, err), (1, cap_error(60, 45)));
        assert!(!dir.join(args[6]).exists(), "nothing written");
        // The cap is the operator's: raised in the environment, or met.
        let (code, _, err) = mcp_auth(
            dir,
            &[args, &["--days", "399", "--force"]].concat(),
            &[("MCP_AUTH_CERT_MAX_DAYS", "400")],
        )
        .await;
        assert_eq!(code, 0, "{err}");
        let (code, _, err) =
            mcp_auth(dir, &[args, &["--days", "398", "--force"]].concat(), &[]).await;
        assert_eq!(code, 0, "{err}");
    }
}

/// The section "Production TLS with mcp-auth alone" of
/// docs/operations/tls.md, pasted into an empty directory with `mcp-auth`
/// on the PATH: the block that starts the server runs in the background
/// (as in a terminal of its own) on free ports, which the later blocks
/// reach through `MCP_AUTH_SERVER` and `MCP_AUTH_HTTP`, as the reader's
/// reach the defaults. Every output the page shows is printed, and
/// nothing is written to standard error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_production_tls_walkthrough_works_when_pasted() {
    let page = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations/tls.md"),
    )
    .unwrap();
    let w = walkthrough(&page, &Part::Section("Production TLS with mcp-auth alone"));
    let blocks: Vec<&String> = w.runs.iter().flatten().collect();
    assert!(blocks.len() >= 4, "the page has its steps");
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join(".pasted-state");
    let bin = Path::new(env!("CARGO_BIN_EXE_mcp-auth")).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let bash = |script: String| {
        let mut cmd = tokio::process::Command::new("bash");
        cmd.arg("-c")
            .arg(script)
            .current_dir(root.path())
            .env_clear()
            .env("PATH", &path)
            .env("HOME", root.path())
            .env("MCP_AUTH_LISTEN", "127.0.0.1:0")
            .env("MCP_AUTH_HTTP_LISTEN", "127.0.0.1:0")
            .env("MCP_AUTH_METRICS_LISTEN", "127.0.0.1:0")
            .env("MCP_AUTH_LOG", "warn")
            .stdin(Stdio::null());
        cmd
    };
    let mut server = None;
    let mut urls: Vec<(&str, String)> = Vec::new();
    let (mut stdout, mut stderr) = (String::new(), String::new());
    for block in blocks {
        if block.trim_start().starts_with("mcp-auth serve") {
            let mut child = bash(format!("source {state:?} 2>/dev/null\nexec {block}"))
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            while urls.len() < 2 {
                let line = lines
                    .next_line()
                    .await
                    .unwrap()
                    .expect("the server exited early");
                let port = |url: &str| url.rsplit(':').next().unwrap().to_owned();
                if let Some(url) = line.strip_prefix("mcp-auth listening on ") {
                    urls.push((
                        "MCP_AUTH_SERVER",
                        format!("https://localhost:{}", port(url)),
                    ));
                }
                if let Some(url) = line.strip_prefix("mcp-auth HTTP listening on ") {
                    urls.push(("MCP_AUTH_HTTP", format!("https://localhost:{}", port(url))));
                }
            }
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            server = Some(child);
            continue;
        }
        let script = format!(
            "source {state:?} 2>/dev/null\nset -u\n{block}\ndeclare -p > {state:?} 2>/dev/null\n"
        );
        let out = bash(script)
            .envs(urls.iter().map(|(k, v)| (*k, v.as_str())))
            .output()
            .await
            .unwrap();
        stdout.push_str(&String::from_utf8(out.stdout).unwrap());
        stderr.push_str(&String::from_utf8(out.stderr).unwrap());
        assert!(
            out.status.success(),
            "{block}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
        );
    }
    assert!(server.is_some(), "the page starts the server");
    assert_eq!(stderr, "", "nothing on standard error");
    let printed: std::collections::BTreeSet<String> = stdout.lines().map(mask).collect();
    for block in &w.outputs {
        for line in block.lines().filter(|l| !l.trim().is_empty()) {
            assert!(
                printed.contains(&mask(line)),
                "the page shows {line:?}, the commands print no such line\n--- stdout\n{stdout}"
            );
        }
    }
    assert!(root.path().join("data/primary.key").exists());
}
