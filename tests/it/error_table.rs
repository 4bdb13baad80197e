//! The error reference (docs/reference/errors.md) and the code cannot
//! drift: its table of call errors lists exactly the reasons the code has,
//! with their codes, and a request produces each of them with the
//! documented code; its table of VerifyToken reasons lists exactly the
//! proto's `TokenReason` values.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mcp_auth::ca::{ClientCertRequest, issue_client_cert};
use mcp_auth::core::Reason;
use mcp_auth::grpc::status::{code, code_name};
use mcp_auth::pb;
use mcp_auth::pb::api_key_service_client::ApiKeyServiceClient;
use mcp_auth::pb::identity_service_client::IdentityServiceClient;
use mcp_auth::pb::token_service_client::TokenServiceClient;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

use crate::common::{ClientCert, TestServer, authed, bare_session_request, strings};

/// The error reference, relative to the repository root.
const ERRORS_DOC: &str = "docs/reference/errors.md";

/// The lines of the `## HEADING` section of the error reference, up to the
/// next `## ` heading.
fn doc_section(heading: &str) -> String {
    let path = format!("{}/{ERRORS_DOC}", env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let section = doc
        .split(&format!("\n## {heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("{ERRORS_DOC} has no ## {heading} section"));
    section.split("\n## ").next().unwrap_or(section).to_owned()
}

/// The table rows of `section`, as their trimmed cells (the first and last,
/// outside the outer pipes, dropped).
fn rows(section: &str) -> Vec<Vec<String>> {
    section
        .lines()
        .filter(|l| l.trim_start().starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            cells[1..cells.len().saturating_sub(1)]
                .iter()
                .map(|c| (*c).to_owned())
                .collect()
        })
        .collect()
}

fn unquote(s: &str) -> String {
    s.trim_matches('`').to_owned()
}

/// reason → gRPC code name, from the error reference's "## Errors of a
/// call" table.
fn error_table() -> BTreeMap<String, String> {
    rows(&doc_section("Errors of a call"))
        .into_iter()
        .filter(|c| c.len() > 2 && c[0].starts_with('`') && c[1].starts_with('`'))
        .map(|c| (unquote(&c[0]), unquote(&c[1])))
        .collect()
}

/// The reasons in the error reference's "## VerifyToken reasons" table.
fn verify_reasons_table() -> BTreeSet<String> {
    rows(&doc_section("VerifyToken reasons"))
        .into_iter()
        .filter(|c| !c.is_empty() && c[0].starts_with('`'))
        .map(|c| unquote(&c[0]))
        .collect()
}

#[test]
fn error_reference_lists_exactly_the_codes_reasons() {
    let from_code: BTreeMap<String, String> = Reason::ALL
        .iter()
        .map(|r| (r.as_str().to_owned(), code_name(code(*r)).to_owned()))
        .collect();
    assert_eq!(error_table(), from_code);
}

#[test]
fn error_reference_lists_exactly_the_verify_token_reasons() {
    let from_proto: BTreeSet<String> = (1..)
        .map_while(|i| pb::TokenReason::try_from(i).ok())
        .map(|r| r.as_str_name().to_owned())
        .collect();
    assert!(from_proto.contains("EXPIRED"), "{from_proto:?}");
    assert_eq!(verify_reasons_table(), from_proto);
}

fn reason_of(status: &Status) -> String {
    status
        .get_details_error_info()
        .map(|i| i.reason)
        .unwrap_or_else(|| panic!("no ErrorInfo: {status:?}"))
}

#[tokio::test]
async fn every_documented_reason_is_produced_with_its_code() {
    let server = TestServer::start_with(|c| c.auth_failures_per_minute = 1000).await;
    let primary = server.primary.clone();
    let channel = server.channel().await;
    let mut keys = ApiKeyServiceClient::new(channel.clone());
    let mut tokens = TokenServiceClient::new(channel.clone());
    let mut identities = IdentityServiceClient::new(channel);
    let mut seen: BTreeMap<String, Code> = BTreeMap::new();
    let mut saw = |status: Status| {
        seen.insert(reason_of(&status), status.code());
    };
    let list = |key: &str| authed(pb::ListApiKeysRequest {}, key);
    let refresh = |token: &str| {
        Request::new(pb::RefreshSessionRequest {
            refresh_token: token.to_owned(),
            scopes: vec![],
        })
    };

    saw(keys
        .list_api_keys(Request::new(pb::ListApiKeysRequest {}))
        .await
        .unwrap_err());
    saw(keys.list_api_keys(list("mcp_sk_nope")).await.unwrap_err());
    let (revoked_id, revoked) = server.key_with(&["keys:admin"]).await;
    server.revoke_key(&primary, &revoked_id).await.unwrap();
    saw(keys.list_api_keys(list(&revoked)).await.unwrap_err());
    saw(server
        .rotate_key(&primary, &revoked_id, 0)
        .await
        .unwrap_err());
    let (_, weak) = server.key_with(&["sessions:create", "tools:read"]).await;
    saw(keys.list_api_keys(list(&weak)).await.unwrap_err());
    saw(server
        .revoke_key(&primary, "key_missing")
        .await
        .unwrap_err());
    saw(server
        .revoke_session(&primary, "ses_missing")
        .await
        .unwrap_err());
    saw(identities
        .delete_identity(authed(
            pb::DeleteIdentityRequest {
                name: "nobody".to_owned(),
                cascade: None,
            },
            &primary,
        ))
        .await
        .unwrap_err());
    // OAuth clients: an unknown id, and a secret rotation of a client
    // that has none.
    let admin = server.client(&primary).await;
    saw(admin
        .get_client(pb::GetClientRequest {
            client_id: "cli_missing".to_owned(),
        })
        .await
        .unwrap_err());
    let public = admin
        .create_client(pb::CreateClientRequest {
            name: "public".to_owned(),
            redirect_uris: strings(&["http://127.0.0.1:9/cb"]),
            grant_types: strings(&["authorization_code"]),
            allowed_scopes: strings(&["tools:read"]),
            allowed_resources: vec![],
            token_endpoint_auth_method: "none".to_owned(),
            jwks: String::new(),
            skip_consent: false,
        })
        .await
        .unwrap()
        .client
        .unwrap();
    saw(admin
        .rotate_client_secret(pb::RotateClientSecretRequest {
            client_id: public.client_id,
            grace_seconds: 0,
        })
        .await
        .unwrap_err());
    // User accounts: an unknown user, a taken username, and a failed
    // sign-in (which the login page will produce; here through the core).
    saw(admin
        .get_user(pb::GetUserRequest {
            user_id: "usr_missing".to_owned(),
            username: String::new(),
        })
        .await
        .unwrap_err());
    let erin = pb::CreateUserRequest {
        username: "erin".to_owned(),
        password: "erins password".to_owned(),
    };
    admin.create_user(erin.clone()).await.unwrap();
    saw(admin.create_user(erin).await.unwrap_err());
    saw(server
        .core()
        .check_password("erin", "not erins password")
        .await
        .unwrap_err()
        .into());
    // A login challenge that is unknown (as one already answered is).
    saw(admin
        .get_login_request(pb::GetLoginRequestRequest {
            login_challenge: "mcp_lc_unknown".to_owned(),
        })
        .await
        .unwrap_err());
    saw(tokens
        .create_session(authed(
            pb::CreateSessionRequest {
                subject: String::new(),
                ..Default::default()
            },
            &primary,
        ))
        .await
        .unwrap_err());

    // Rate limits.
    let slow = keys
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
            &primary,
        ))
        .await
        .unwrap()
        .into_inner()
        .secret;
    keys.list_api_keys(list(&slow)).await.unwrap();
    saw(keys.list_api_keys(list(&slow)).await.unwrap_err());

    // Refresh tokens and sessions.
    saw(tokens
        .refresh_session(refresh("mcp_rt_unknown"))
        .await
        .unwrap_err());
    let s = server.session(&weak, &["tools:read"], "aud").await;
    saw(tokens
        .refresh_session(authed(
            pb::RefreshSessionRequest {
                refresh_token: s.refresh_token.clone(),
                scopes: vec![],
            },
            &primary,
        ))
        .await
        .unwrap_err());
    tokens
        .refresh_session(refresh(&s.refresh_token))
        .await
        .unwrap();
    saw(tokens
        .refresh_session(refresh(&s.refresh_token))
        .await
        .unwrap_err());
    saw(tokens
        .refresh_session(refresh(&s.refresh_token))
        .await
        .unwrap_err());

    // Certificates and identities.
    server
        .grant("billing", &["sessions:create", "tools:read"], false)
        .await;
    server
        .grant("frozen", &["sessions:create", "tools:read"], true)
        .await;
    let billing = server.client_cert("billing");
    let mut with_cert = TokenServiceClient::new(server.mtls_channel(&billing).await.unwrap());
    let mut both = bare_session_request(&["tools:read"]);
    both.metadata_mut().insert(
        "authorization",
        format!("Bearer {primary}").parse().unwrap(),
    );
    saw(with_cert.create_session(both).await.unwrap_err());
    let frozen = server.client_cert("frozen");
    saw(
        TokenServiceClient::new(server.mtls_channel(&frozen).await.unwrap())
            .create_session(bare_session_request(&["tools:read"]))
            .await
            .unwrap_err(),
    );
    let other_domain = tempfile::tempdir().unwrap();
    let req = ClientCertRequest::for_days("billing", "other.domain", 1);
    let issued = issue_client_cert(&server.ca_dir(), other_domain.path(), &req, false).unwrap();
    let foreign = ClientCert {
        cert: issued.cert_path,
        key: issued.key_path,
        serial: issued.serial,
        dir: other_domain,
    };
    saw(
        TokenServiceClient::new(server.mtls_channel(&foreign).await.unwrap())
            .create_session(bare_session_request(&["tools:read"]))
            .await
            .unwrap_err(),
    );
    server.revoke_cert(&billing.serial).await;
    saw(with_cert
        .create_session(bare_session_request(&["tools:read"]))
        .await
        .unwrap_err());

    // Time: an expiring key and an idle session.
    let expiring = keys
        .create_api_key(authed(
            pb::CreateApiKeyRequest {
                name: "expiring".to_owned(),
                scopes: strings(&["keys:admin"]),
                expires_at: server.clock.now() + 60,
                rate_limit: None,
            },
            &primary,
        ))
        .await
        .unwrap()
        .into_inner()
        .secret;
    let idle = server.session(&weak, &["tools:read"], "aud").await;
    server.clock.advance(Duration::from_secs(12 * 3600));
    saw(keys.list_api_keys(list(&expiring)).await.unwrap_err());
    saw(tokens
        .refresh_session(refresh(&idle.refresh_token))
        .await
        .unwrap_err());

    // The OAuth client reasons only HTTP endpoints produce: each is sent
    // there with its `reason`, and stands for the gRPC code its kind has.
    let confidential = |name: &str, grants: &[&str]| pb::CreateClientRequest {
        name: name.to_owned(),
        redirect_uris: strings(&["https://app.example/cb"]),
        grant_types: strings(grants),
        allowed_scopes: strings(&["tools:read"]),
        allowed_resources: strings(&["https://mcp.example.com"]),
        token_endpoint_auth_method: "client_secret_basic".to_owned(),
        jwks: String::new(),
        skip_consent: false,
    };
    let cc = admin
        .create_client(confidential("cc", &["client_credentials"]))
        .await
        .unwrap();
    let browser = admin
        .create_client(confidential("browser", &["authorization_code"]))
        .await
        .unwrap();
    let http = server.http_client();
    let token_url = format!("{}/token", server.http_url());
    for (id, secret, form) in [
        (
            cc.client.as_ref().unwrap().client_id.as_str(),
            "mcp_cs_wrong",
            "",
        ),
        (
            cc.client.as_ref().unwrap().client_id.as_str(),
            cc.secret.as_str(),
            "&scope=admin",
        ),
        (
            cc.client.as_ref().unwrap().client_id.as_str(),
            cc.secret.as_str(),
            "&resource=https%3A%2F%2Fother.example",
        ),
        (
            browser.client.as_ref().unwrap().client_id.as_str(),
            browser.secret.as_str(),
            "",
        ),
    ] {
        let body: serde_json::Value = http
            .post(&token_url)
            .basic_auth(id, Some(secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("grant_type=client_credentials{form}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let name = body["reason"].as_str().unwrap().to_owned();
        let reason = Reason::ALL
            .into_iter()
            .find(|r| r.as_str() == name)
            .unwrap();
        seen.insert(name, code(reason));
    }

    // The authorization code reasons, at the code exchange of a public
    // client (the code as the authorization endpoint issues it).
    let public = admin
        .create_client(pb::CreateClientRequest {
            name: "public".to_owned(),
            redirect_uris: strings(&["https://app.example/cb"]),
            grant_types: strings(&["authorization_code"]),
            allowed_scopes: strings(&["tools:read"]),
            allowed_resources: strings(&["https://mcp.example.com"]),
            token_endpoint_auth_method: "none".to_owned(),
            jwks: String::new(),
            skip_consent: false,
        })
        .await
        .unwrap()
        .client
        .unwrap()
        .client_id;
    let verifier = "v".repeat(43);
    let issued = server
        .core()
        .issue_authorization_code(mcp_auth::core::ApprovedAuthorization {
            client_id: public.clone(),
            redirect_uri: "https://app.example/cb".to_owned(),
            code_challenge: mcp_auth::core::pkce::challenge_of(&verifier),
            subject: "alice".to_owned(),
            scopes: strings(&["tools:read"]),
            resources: vec!["https://mcp.example.com".to_owned()],
        })
        .await
        .unwrap();
    let wrong = "w".repeat(43);
    for (ac, v) in [
        ("mcp_ac_unknown", verifier.as_str()),
        (issued.expose(), wrong.as_str()),
        (issued.expose(), verifier.as_str()),
    ] {
        let body: serde_json::Value = http
            .post(&token_url)
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", public.as_str()),
                ("code", ac),
                ("redirect_uri", "https://app.example/cb"),
                ("code_verifier", v),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let name = body["reason"].as_str().unwrap().to_owned();
        let reason = Reason::ALL
            .into_iter()
            .find(|r| r.as_str() == name)
            .unwrap();
        seen.insert(name, code(reason));
    }

    // The authorization endpoint's reasons: its error page names the
    // reason; a redirected refusal carries the OAuth code, which is the
    // reason's own for `unsupported_response_type`.
    let pages = reqwest::Client::builder()
        .tls_certs_only([
            reqwest::Certificate::from_pem(&std::fs::read(server.ca_path()).unwrap()).unwrap(),
        ])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let authorize = format!("{}/authorize", server.http_url());
    let page_reason = |html: &str| {
        let start = html.find("class=\"reason\">").unwrap() + "class=\"reason\">".len();
        html[start..start + html[start..].find('<').unwrap()].to_owned()
    };
    let html = pages
        .get(format!(
            "{authorize}?client_id={public}&redirect_uri=https%3A%2F%2Fevil.example%2F"
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let name = page_reason(&html);
    assert_eq!(name, "REDIRECT_URI_INVALID");
    seen.insert(name, code(Reason::RedirectUriInvalid));
    let resp = pages
        .get(format!(
            "{authorize}?client_id={public}&response_type=token"
        ))
        .send()
        .await
        .unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.contains("error=unsupported_response_type"),
        "{location}"
    );
    seen.insert(
        Reason::UnsupportedResponseType.as_str().to_owned(),
        code(Reason::UnsupportedResponseType),
    );
    let html = pages
        .post(format!("{}/login", server.http_url()))
        .form(&[("interaction", "ia_none"), ("csrf", "x")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let name = page_reason(&html);
    assert_eq!(name, "INTERACTION_INVALID");
    seen.insert(name, code(Reason::InteractionInvalid));

    let table = error_table();
    for (reason, code) in &table {
        if reason == "INTERNAL" {
            // By design nothing a client sends produces INTERNAL.
            assert!(!seen.contains_key(reason));
            continue;
        }
        if reason == "BACKUP_UNSUPPORTED" {
            // Only a server on PostgreSQL says this:
            // postgres::a_postgres_store_is_named_in_status_and_not_backed_up_through_mcp_auth
            // produces it and asserts its code.
            assert!(!seen.contains_key(reason));
            continue;
        }
        if reason == "STORE_UNAVAILABLE" {
            // Only a server on PostgreSQL cut off from it says this:
            // replica_faults produces it (for writes and for reads past the
            // staleness bound) and asserts its code.
            assert!(!seen.contains_key(reason));
            continue;
        }
        let got = seen
            .get(reason)
            .unwrap_or_else(|| panic!("no request produced {reason}; saw {seen:?}"));
        assert_eq!(code_name(*got), code, "{reason}");
    }
    assert_eq!(seen.len(), table.len() - 3, "{seen:?}");
}
