//! Mutual-TLS service identities: certificates made with the project's own
//! issuing code, over real TLS.

use mcp_auth::pb;
use mcp_auth::pb::identity_service_client::IdentityServiceClient;
use mcp_auth::pb::token_service_client::TokenServiceClient;
use pb::TokenReason;
use tonic::{Code, Request};

use crate::common::{
    ClientCert, TestServer, ValidFor, assert_status, authed, bare_session_request, inactive_reason,
    strings,
};

/// GetJwks needs no credential, so its failure shows the handshake itself
/// refused the certificate.
async fn handshake_refused(server: &TestServer, cert: &ClientCert) -> bool {
    let Ok(channel) = server.mtls_channel(cert).await else {
        return true;
    };
    TokenServiceClient::new(channel)
        .get_jwks(Request::new(pb::GetJwksRequest {}))
        .await
        .is_err()
}

#[tokio::test]
async fn granted_identity_creates_and_verifies_sessions() {
    let server = TestServer::start().await;
    let granted = server
        .grant(
            "billing",
            &["sessions:create", "tokens:verify", "tools:read"],
            false,
        )
        .await;
    assert_eq!(granted.spiffe_id, "spiffe://mcp-auth.local/billing");
    let cert = server.client_cert("billing");
    let mut tokens = TokenServiceClient::new(server.mtls_channel(&cert).await.unwrap());

    let s = tokens
        .create_session(bare_session_request(&["tools:read"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        s.client_id, "billing",
        "the token's client_id is the identity name"
    );
    let verdict = tokens
        .verify_token(Request::new(pb::VerifyTokenRequest {
            token: s.access_token.clone(),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(verdict.active);
    assert_eq!(verdict.claims.unwrap().client_id, "billing");

    // The identity may revoke the session it created.
    tokens
        .revoke_session(Request::new(pb::RevokeSessionRequest {
            session_id: s.session_id.clone(),
        }))
        .await
        .unwrap();
    let r = server.verify(&server.primary, &s.access_token).await;
    assert_eq!(inactive_reason(&r), TokenReason::Revoked);
}

#[tokio::test]
async fn ungranted_identity_is_permission_denied() {
    let server = TestServer::start().await;
    let cert = server.client_cert("stranger");
    let mut tokens = TokenServiceClient::new(server.mtls_channel(&cert).await.unwrap());
    let err = tokens
        .create_session(bare_session_request(&["tools:read"]))
        .await
        .unwrap_err();
    let meta = assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");
    assert_eq!(meta["scope"], "sessions:create");
    // The handshake itself succeeded: unauthenticated calls work.
    tokens
        .get_jwks(Request::new(pb::GetJwksRequest {}))
        .await
        .unwrap();
}

#[tokio::test]
async fn foreign_ca_and_expired_certificates_fail_the_handshake() {
    let server = TestServer::start().await;
    server.grant("billing", &["sessions:create"], false).await;

    let foreign = tempfile::tempdir().unwrap();
    mcp_auth::ca::init_ca(foreign.path(), "someone else's CA", 30, false).unwrap();
    let cert = ClientCert::issue(foreign.path(), "billing", ValidFor::Now);
    assert!(
        handshake_refused(&server, &cert).await,
        "foreign CA accepted"
    );

    let expired = ClientCert::issue(&server.ca_dir(), "billing", ValidFor::Expired);
    assert!(
        handshake_refused(&server, &expired).await,
        "expired certificate accepted"
    );

    let good = server.client_cert("billing");
    assert!(!handshake_refused(&server, &good).await);
}

#[tokio::test]
async fn revoked_certificate_is_refused_on_open_connections_and_after_restart() {
    let mut server = TestServer::start().await;
    server
        .grant("billing", &["sessions:create", "tools:read"], false)
        .await;
    let cert = server.client_cert("billing");
    let other = server.client_cert("billing");
    let mut open = TokenServiceClient::new(server.mtls_channel(&cert).await.unwrap());
    open.create_session(bare_session_request(&["tools:read"]))
        .await
        .unwrap();

    let upper = cert.serial.to_uppercase();
    let revoked = server.revoke_cert(&upper).await;
    assert_eq!(revoked.serial, cert.serial, "serial is normalised");

    let err = open
        .create_session(bare_session_request(&["tools:read"]))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "CERTIFICATE_REVOKED");
    // Another certificate of the same identity still works.
    let mut fine = TokenServiceClient::new(server.mtls_channel(&other).await.unwrap());
    fine.create_session(bare_session_request(&["tools:read"]))
        .await
        .unwrap();

    server.restart().await;
    let mut again = TokenServiceClient::new(server.mtls_channel(&cert).await.unwrap());
    let err = again
        .create_session(bare_session_request(&["tools:read"]))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "CERTIFICATE_REVOKED");
    server.stop().await;
}

#[tokio::test]
async fn disabled_and_deleted_identities_are_refused() {
    let server = TestServer::start().await;
    server
        .grant("billing", &["sessions:create", "tools:read"], true)
        .await;
    let cert = server.client_cert("billing");
    let mut tokens = TokenServiceClient::new(server.mtls_channel(&cert).await.unwrap());
    let err = tokens
        .create_session(bare_session_request(&["tools:read"]))
        .await
        .unwrap_err();
    assert_status(&err, Code::PermissionDenied, "IDENTITY_DISABLED");

    server
        .grant("billing", &["sessions:create", "tools:read"], false)
        .await;
    tokens
        .create_session(bare_session_request(&["tools:read"]))
        .await
        .unwrap();

    let mut identities = IdentityServiceClient::new(server.channel().await);
    identities
        .delete_identity(authed(
            pb::DeleteIdentityRequest {
                name: "billing".to_owned(),
                cascade: None,
            },
            &server.primary,
        ))
        .await
        .unwrap();
    let err = tokens
        .create_session(bare_session_request(&["tools:read"]))
        .await
        .unwrap_err();
    assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");
    let err = identities
        .delete_identity(authed(
            pb::DeleteIdentityRequest {
                name: "billing".to_owned(),
                cascade: None,
            },
            &server.primary,
        ))
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "IDENTITY_NOT_FOUND");
}

#[tokio::test]
async fn both_credentials_at_once_are_refused() {
    let server = TestServer::start().await;
    server
        .grant("billing", &["sessions:create", "tools:read"], false)
        .await;
    let cert = server.client_cert("billing");
    let mut tokens = TokenServiceClient::new(server.mtls_channel(&cert).await.unwrap());
    let mut req = bare_session_request(&["tools:read"]);
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", server.primary).parse().unwrap(),
    );
    let err = tokens.create_session(req).await.unwrap_err();
    assert_status(&err, Code::InvalidArgument, "CREDENTIALS_CONFLICT");
    assert!(err.message().contains("one credential"));
}

#[tokio::test]
async fn identity_service_rules() {
    let server = TestServer::start().await;
    let (_, keys_admin) = server.key_with(&["keys:admin"]).await;
    let (_, id_admin) = server.key_with(&["identities:admin", "tools:read"]).await;
    let mut identities = IdentityServiceClient::new(server.channel().await);
    let set = |name: &str, scopes: &[&str], key: &str| {
        authed(
            pb::SetIdentityRequest {
                name: name.to_owned(),
                scopes: strings(scopes),
                disabled: false,
                rate_limit: None,
            },
            key,
        )
    };
    let err = identities
        .set_identity(set("billing", &["tools:read"], &keys_admin))
        .await
        .unwrap_err();
    let meta = assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");
    assert_eq!(meta["scope"], "identities:admin");

    // A caller grants only what it holds.
    let err = identities
        .set_identity(set("billing", &["sessions:create"], &id_admin))
        .await
        .unwrap_err();
    let meta = assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");
    assert_eq!(meta["scope"], "sessions:create");
    identities
        .set_identity(set("billing", &["tools:read"], &id_admin))
        .await
        .unwrap();

    for bad in ["Billing", "key_1", "", "-x"] {
        let err = identities
            .set_identity(set(bad, &["tools:read"], &id_admin))
            .await
            .unwrap_err();
        let meta = assert_status(&err, Code::InvalidArgument, "INVALID_FIELD");
        assert_eq!(meta["field"], "name");
    }
    let err = identities
        .revoke_certificate(authed(
            pb::RevokeCertificateRequest {
                serial: "not hex".to_owned(),
            },
            &id_admin,
        ))
        .await
        .unwrap_err();
    assert_status(&err, Code::InvalidArgument, "INVALID_FIELD");

    // Nor can it change or delete a stronger identity's grant.
    server.grant("payments", &["sessions:create"], false).await;
    let err = identities
        .set_identity(set("payments", &[], &id_admin))
        .await
        .unwrap_err();
    let meta = assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");
    assert_eq!(meta["scope"], "sessions:create");
    let err = identities
        .delete_identity(authed(
            pb::DeleteIdentityRequest {
                name: "payments".to_owned(),
                cascade: None,
            },
            &id_admin,
        ))
        .await
        .unwrap_err();
    assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");

    let listed = identities
        .list_identities(authed(pb::ListIdentitiesRequest {}, &server.primary))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.identities.len(), 2);
    assert_eq!(listed.identities[0].name, "billing");
    assert_eq!(listed.identities[0].scopes, ["tools:read"]);
}

#[tokio::test]
async fn the_bundled_script_issues_a_working_certificate() {
    let server = TestServer::start().await;
    server
        .grant("billing", &["sessions:create", "tools:read"], false)
        .await;
    let out = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/issue-client-cert.sh");
    let run = tokio::process::Command::new("bash")
        .arg(script)
        .arg("billing")
        .arg("--ca-dir")
        .arg(server.ca_dir())
        .arg("--out")
        .arg(out.path())
        .args(["--days", "1"])
        .env("MCP_AUTH_BIN", env!("CARGO_BIN_EXE_mcp-auth"))
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8(run.stdout).unwrap();
    assert!(
        run.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("spiffe://mcp-auth.local/billing"),
        "{stdout}"
    );
    assert!(!stdout.contains("PRIVATE KEY"));
    let serial = stdout
        .lines()
        .find_map(|l| l.strip_prefix("serial:"))
        .unwrap()
        .trim()
        .to_owned();

    let cert = ClientCert {
        cert: out.path().join("billing.pem"),
        key: out.path().join("billing.key"),
        serial,
        dir: out,
    };
    let mut tokens = TokenServiceClient::new(server.mtls_channel(&cert).await.unwrap());
    let s = tokens
        .create_session(bare_session_request(&["tools:read"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.client_id, "billing");
    server.revoke_cert(&cert.serial).await;
    let err = tokens
        .create_session(bare_session_request(&["tools:read"]))
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "CERTIFICATE_REVOKED");
}
