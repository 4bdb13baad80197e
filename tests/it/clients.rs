//! OAuth clients as an admin sees them, over real TLS: `OAuthClientService`
//! with the typed client, and `mcp-auth client ...` with the real binary.
//! The secret is shown once and never listed; every bad field is
//! INVALID_ARGUMENT naming it; `clients:admin` is needed and a delegate
//! cannot exceed its own scopes; rotation keeps the old secret for its
//! grace (checked through the core's client authentication, which the
//! token endpoint will use); deleting or disabling a client revokes its
//! tokens and deleting its sessions; clients survive a restart; every
//! change is audited without the secret.

use std::time::Duration;

use mcp_auth::core::ClientAuthError;
use mcp_auth::pb;
use mcp_auth::secret::SecretHash;
use mcp_auth::store::{AuditEntry, AuthMethod, Durability, RefreshToken, SessionRecord};
use serde_json::Value;
use tonic::Code;

use crate::common::{TestServer, assert_status, inactive_reason, strings};

const RESOURCE: &str = "https://mcp.example.com";

const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"k1"}]}"#;

/// A confidential client_credentials client.
fn confidential(name: &str) -> pb::CreateClientRequest {
    pb::CreateClientRequest {
        name: name.to_owned(),
        redirect_uris: vec![],
        grant_types: strings(&["client_credentials"]),
        allowed_scopes: strings(&["tools:read"]),
        allowed_resources: strings(&[RESOURCE]),
        token_endpoint_auth_method: "client_secret_basic".to_owned(),
        jwks: String::new(),
        skip_consent: false,
    }
}

/// A public client of the browser flow on a loopback redirect.
fn public(name: &str) -> pb::CreateClientRequest {
    pb::CreateClientRequest {
        name: name.to_owned(),
        redirect_uris: strings(&["http://127.0.0.1:33418/callback"]),
        grant_types: strings(&["authorization_code", "refresh_token"]),
        allowed_scopes: strings(&["tools:read"]),
        allowed_resources: vec![],
        token_endpoint_auth_method: "none".to_owned(),
        jwks: String::new(),
        skip_consent: false,
    }
}

async fn create(server: &TestServer, req: pb::CreateClientRequest) -> pb::CreateClientResponse {
    server
        .client(&server.primary)
        .await
        .create_client(req)
        .await
        .unwrap()
}

fn update(client_id: &str) -> pb::UpdateClientRequest {
    pb::UpdateClientRequest {
        client_id: client_id.to_owned(),
        ..Default::default()
    }
}

async fn set_disabled(server: &TestServer, client_id: &str, disabled: bool) -> pb::OAuthClient {
    server
        .client(&server.primary)
        .await
        .update_client(pb::UpdateClientRequest {
            disabled: Some(disabled),
            ..update(client_id)
        })
        .await
        .unwrap()
        .client
        .unwrap()
}

/// Every audit record, oldest first.
async fn audit(server: &TestServer) -> Vec<pb::AuditEvent> {
    server
        .client(&server.primary)
        .await
        .list_audit_events(pb::ListAuditEventsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .events
}

#[tokio::test]
async fn the_secret_is_shown_once_stored_hashed_and_never_listed() {
    let server = TestServer::start().await;
    let admin = server.client(&server.primary).await;

    let created = create(&server, confidential("billing")).await;
    let c = created.client.unwrap();
    let body = created.secret.strip_prefix("mcp_cs_").unwrap();
    assert_eq!(body.len(), 43, "{}", created.secret);
    assert!(body.bytes().all(|b| b.is_ascii_alphanumeric()));
    let id = c.client_id.strip_prefix("cli_").unwrap();
    assert_eq!(id.len(), 22);
    assert_eq!(c.secret_prefix, created.secret[..11]);
    assert_eq!(c.token_endpoint_auth_method, "client_secret_basic");
    assert_eq!(c.grant_types, ["client_credentials"]);
    assert_eq!(c.allowed_resources, [RESOURCE]);
    assert_eq!(c.origin, "registered");
    assert!(!c.disabled);

    let pub_created = create(&server, public("desktop app")).await;
    assert!(
        pub_created.secret.is_empty(),
        "a public client has no secret"
    );
    let p = pub_created.client.unwrap();
    assert!(p.secret_prefix.is_empty());
    assert_eq!(p.token_endpoint_auth_method, "none");

    let listed = admin.list_clients(pb::ListClientsRequest {}).await.unwrap();
    assert_eq!(listed.clients.len(), 2);
    let shown = admin
        .get_client(pb::GetClientRequest {
            client_id: c.client_id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(shown, c);
    for text in [format!("{listed:?}"), format!("{shown:?}")] {
        assert!(!text.contains(body), "the secret is never shown again");
    }
    // The data directory holds only its hash.
    let core = server.core();
    let stored = core.oauth_client(&c.client_id).unwrap();
    assert!(stored.secret_hash == Some(SecretHash::of(created.secret.as_bytes())));
    assert!(
        core.authenticate_client_secret(
            &c.client_id,
            &created.secret,
            AuthMethod::ClientSecretBasic
        )
        .is_ok()
    );
}

#[tokio::test]
async fn every_bad_field_is_invalid_argument_naming_it() {
    let server = TestServer::start().await;
    let admin = server.client(&server.primary).await;
    type Edit = fn(&mut pb::CreateClientRequest);
    let cases: Vec<(&str, Edit, &str)> = vec![
        ("empty name", |r| r.name.clear(), "name"),
        (
            "http redirect on a public host",
            |r| r.redirect_uris = strings(&["http://app.example.com/cb"]),
            "redirect_uris",
        ),
        (
            "redirect with a fragment",
            |r| r.redirect_uris = strings(&["https://app.example.com/cb#x"]),
            "redirect_uris",
        ),
        (
            "redirect that is not a URL",
            |r| r.redirect_uris = strings(&["javascript:alert(1)"]),
            "redirect_uris",
        ),
        (
            "resource of another scheme",
            |r| r.allowed_resources = strings(&["ftp://mcp.example.com"]),
            "allowed_resources",
        ),
        (
            "resource with a fragment",
            |r| r.allowed_resources = strings(&["https://mcp.example.com/#a"]),
            "allowed_resources",
        ),
        ("no scope", |r| r.allowed_scopes.clear(), "allowed_scopes"),
        (
            "a service scope",
            |r| r.allowed_scopes = strings(&["tools:read", "admin"]),
            "allowed_scopes",
        ),
        (
            "clients:admin is a service scope",
            |r| r.allowed_scopes = strings(&["clients:admin"]),
            "allowed_scopes",
        ),
        (
            "a malformed scope",
            |r| r.allowed_scopes = strings(&["tools read"]),
            "allowed_scopes",
        ),
        ("no grant type", |r| r.grant_types.clear(), "grant_types"),
        (
            "an unknown grant type",
            |r| r.grant_types = strings(&["password"]),
            "grant_types",
        ),
        (
            "refresh_token without authorization_code",
            |r| r.grant_types = strings(&["client_credentials", "refresh_token"]),
            "grant_types",
        ),
        (
            "an unknown auth method",
            |r| r.token_endpoint_auth_method = "client_secret_jwt".to_owned(),
            "token_endpoint_auth_method",
        ),
        (
            "no auth method",
            |r| r.token_endpoint_auth_method.clear(),
            "token_endpoint_auth_method",
        ),
        (
            "a public client with client_credentials",
            |r| r.token_endpoint_auth_method = "none".to_owned(),
            "token_endpoint_auth_method",
        ),
        (
            "client_credentials without a resource",
            |r| r.allowed_resources.clear(),
            "allowed_resources",
        ),
        (
            "authorization_code without a redirect URI",
            |r| r.grant_types = strings(&["authorization_code"]),
            "redirect_uris",
        ),
        (
            "private_key_jwt without a JWK Set",
            |r| r.token_endpoint_auth_method = "private_key_jwt".to_owned(),
            "jwks",
        ),
        (
            "a JWK Set that is not JSON",
            |r| r.jwks = "{".to_owned(),
            "jwks",
        ),
        (
            "a JWK Set without keys",
            |r| r.jwks = r#"{"keys":[]}"#.to_owned(),
            "jwks",
        ),
        (
            "a private key",
            |r| r.jwks = JWKS.replace(r#""kid""#, r#""d":"c2VjcmV0","kid""#),
            "jwks",
        ),
        (
            "a symmetric key",
            |r| r.jwks = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#.to_owned(),
            "jwks",
        ),
    ];
    for (what, edit, field) in cases {
        let mut req = confidential("c");
        edit(&mut req);
        let err = admin.create_client(req).await.unwrap_err();
        let meta = assert_status(&err, Code::InvalidArgument, "INVALID_FIELD");
        assert_eq!(meta["field"], field, "{what}: {err:?}");
        assert!(err.message().contains(field), "{what}: {}", err.message());
    }
    assert!(
        admin
            .list_clients(pb::ListClientsRequest {})
            .await
            .unwrap()
            .clients
            .is_empty(),
        "nothing refused was stored"
    );

    // The same checks on update, on rotation and on ids.
    let id = create(&server, confidential("c"))
        .await
        .client
        .unwrap()
        .client_id;
    let err = admin
        .update_client(pb::UpdateClientRequest {
            redirect_uris: Some(pb::StringList {
                values: strings(&["https://ok.example/cb", "http://evil.example/cb"]),
            }),
            ..update(&id)
        })
        .await
        .unwrap_err();
    assert_eq!(
        assert_status(&err, Code::InvalidArgument, "INVALID_FIELD")["field"],
        "redirect_uris"
    );
    let err = admin
        .update_client(pb::UpdateClientRequest {
            token_endpoint_auth_method: Some("none".to_owned()),
            ..update(&id)
        })
        .await
        .unwrap_err();
    assert_eq!(
        assert_status(&err, Code::InvalidArgument, "INVALID_FIELD")["field"],
        "token_endpoint_auth_method",
        "the result of an update must fit together too"
    );
    let err = admin
        .rotate_client_secret(pb::RotateClientSecretRequest {
            client_id: id.clone(),
            grace_seconds: 30 * 86_400 + 1,
        })
        .await
        .unwrap_err();
    assert_eq!(
        assert_status(&err, Code::InvalidArgument, "INVALID_FIELD")["field"],
        "grace_seconds"
    );
    let err = admin
        .get_client(pb::GetClientRequest {
            client_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        assert_status(&err, Code::InvalidArgument, "INVALID_FIELD")["field"],
        "client_id"
    );
    for missing in [
        admin
            .get_client(pb::GetClientRequest {
                client_id: "cli_nope".to_owned(),
            })
            .await
            .unwrap_err(),
        admin.update_client(update("cli_nope")).await.unwrap_err(),
        admin
            .delete_client(pb::DeleteClientRequest {
                client_id: "cli_nope".to_owned(),
            })
            .await
            .unwrap_err(),
    ] {
        assert_status(&missing, Code::NotFound, "CLIENT_NOT_FOUND");
    }
}

#[tokio::test]
async fn clients_admin_is_needed_and_a_delegate_stays_within_its_scopes() {
    let server = TestServer::start().await;
    let strong = create(&server, {
        let mut r = confidential("strong");
        r.allowed_scopes = strings(&["tools:read", "tools:write"]);
        r
    })
    .await
    .client
    .unwrap()
    .client_id;

    let (_, keys_admin) = server.key_with(&["keys:admin", "tools:read"]).await;
    let c = server.client(&keys_admin).await;
    let denied = [
        c.create_client(confidential("x")).await.unwrap_err(),
        c.list_clients(pb::ListClientsRequest {}).await.unwrap_err(),
        c.get_client(pb::GetClientRequest {
            client_id: strong.clone(),
        })
        .await
        .unwrap_err(),
        c.update_client(update(&strong)).await.unwrap_err(),
        c.rotate_client_secret(pb::RotateClientSecretRequest {
            client_id: strong.clone(),
            grace_seconds: 0,
        })
        .await
        .unwrap_err(),
        c.delete_client(pb::DeleteClientRequest {
            client_id: strong.clone(),
        })
        .await
        .unwrap_err(),
    ];
    for err in denied {
        let meta = assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");
        assert_eq!(meta["scope"], "clients:admin");
    }

    // A delegate with clients:admin and tools:read.
    let (_, delegate) = server.key_with(&["clients:admin", "tools:read"]).await;
    let d = server.client(&delegate).await;
    let mut wider = confidential("wider");
    wider.allowed_scopes = strings(&["tools:read", "tools:write"]);
    let err = d.create_client(wider).await.unwrap_err();
    assert_eq!(
        assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE")["scope"],
        "tools:write"
    );
    let own = d
        .create_client(confidential("own"))
        .await
        .unwrap()
        .client
        .unwrap()
        .client_id;
    let err = d
        .update_client(pb::UpdateClientRequest {
            allowed_scopes: Some(pb::StringList {
                values: strings(&["tools:write"]),
            }),
            ..update(&own)
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");
    assert_eq!(
        d.list_clients(pb::ListClientsRequest {})
            .await
            .unwrap()
            .clients
            .len(),
        2
    );
    // It may see the stronger client, not change it.
    d.get_client(pb::GetClientRequest {
        client_id: strong.clone(),
    })
    .await
    .unwrap();
    for err in [
        d.update_client(pb::UpdateClientRequest {
            disabled: Some(true),
            ..update(&strong)
        })
        .await
        .unwrap_err(),
        d.rotate_client_secret(pb::RotateClientSecretRequest {
            client_id: strong.clone(),
            grace_seconds: 0,
        })
        .await
        .unwrap_err(),
        d.delete_client(pb::DeleteClientRequest {
            client_id: strong.clone(),
        })
        .await
        .unwrap_err(),
    ] {
        assert_eq!(
            assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE")["scope"],
            "tools:write"
        );
    }
    d.delete_client(pb::DeleteClientRequest { client_id: own })
        .await
        .unwrap();
}

#[tokio::test]
async fn update_changes_only_what_is_set() {
    let server = TestServer::start().await;
    let admin = server.client(&server.primary).await;
    let created = create(&server, public("desktop")).await.client.unwrap();
    let id = created.client_id.clone();
    server.clock.advance(Duration::from_secs(10));

    let renamed = admin
        .update_client(pb::UpdateClientRequest {
            name: Some("Desktop app".to_owned()),
            redirect_uris: Some(pb::StringList {
                values: strings(&["http://[::1]:8080/cb", "https://app.example.com/cb"]),
            }),
            ..update(&id)
        })
        .await
        .unwrap();
    assert!(renamed.secret.is_empty());
    let c = renamed.client.unwrap();
    assert_eq!(c.name, "Desktop app");
    assert_eq!(c.redirect_uris.len(), 2);
    assert_eq!(c.grant_types, created.grant_types, "unset fields are kept");
    assert_eq!(c.allowed_scopes, created.allowed_scopes);
    assert_eq!(c.created_at, created.created_at);
    assert_eq!(c.updated_at, created.updated_at + 10);

    // Emptying the redirect URIs of a browser-flow client does not fit.
    let err = admin
        .update_client(pb::UpdateClientRequest {
            redirect_uris: Some(pb::StringList { values: vec![] }),
            ..update(&id)
        })
        .await
        .unwrap_err();
    assert_eq!(
        assert_status(&err, Code::InvalidArgument, "INVALID_FIELD")["field"],
        "redirect_uris"
    );

    // Becoming confidential gives the client its first secret, once.
    let confidential = admin
        .update_client(pb::UpdateClientRequest {
            token_endpoint_auth_method: Some("client_secret_post".to_owned()),
            grant_types: Some(pb::StringList {
                values: strings(&["authorization_code", "client_credentials"]),
            }),
            allowed_resources: Some(pb::StringList {
                values: strings(&[RESOURCE]),
            }),
            ..update(&id)
        })
        .await
        .unwrap();
    assert!(confidential.secret.starts_with("mcp_cs_"));
    let core = server.core();
    let post = AuthMethod::ClientSecretPost;
    assert!(
        core.authenticate_client_secret(&id, &confidential.secret, post)
            .is_ok()
    );
    assert_eq!(
        core.authenticate_client_secret(&id, &confidential.secret, AuthMethod::ClientSecretBasic)
            .unwrap_err(),
        ClientAuthError::WrongMethod,
        "the registered method only"
    );

    // A JWK Set, then private_key_jwt drops the secret.
    let jwt = admin
        .update_client(pb::UpdateClientRequest {
            token_endpoint_auth_method: Some("private_key_jwt".to_owned()),
            jwks: Some(JWKS.to_owned()),
            ..update(&id)
        })
        .await
        .unwrap()
        .client
        .unwrap();
    assert_eq!(jwt.jwks, JWKS);
    assert!(jwt.secret_prefix.is_empty());
    assert_eq!(
        core.authenticate_client_secret(&id, &confidential.secret, post)
            .unwrap_err(),
        ClientAuthError::WrongMethod
    );
    let err = admin
        .update_client(pb::UpdateClientRequest {
            jwks: Some(String::new()),
            ..update(&id)
        })
        .await
        .unwrap_err();
    assert_eq!(
        assert_status(&err, Code::InvalidArgument, "INVALID_FIELD")["field"],
        "jwks",
        "private_key_jwt keeps needing its keys"
    );

    // Disabled: secret authentication refused even with the right secret.
    let c = set_disabled(&server, &id, true).await;
    assert!(c.disabled);
    let disabled = admin
        .get_client(pb::GetClientRequest {
            client_id: id.clone(),
        })
        .await
        .unwrap();
    assert!(disabled.disabled);
}

#[tokio::test]
async fn a_rotated_secret_works_for_its_grace_then_stops() {
    let server = TestServer::start().await;
    let admin = server.client(&server.primary).await;
    let created = create(&server, confidential("billing")).await;
    let id = created.client.unwrap().client_id;
    let old = created.secret;
    let basic = AuthMethod::ClientSecretBasic;
    let core = server.core();

    let rotated = admin
        .rotate_client_secret(pb::RotateClientSecretRequest {
            client_id: id.clone(),
            grace_seconds: 60,
        })
        .await
        .unwrap();
    let new = rotated.secret.clone();
    assert!(new.starts_with("mcp_cs_") && new != old);
    let c = rotated.client.unwrap();
    assert_eq!(c.secret_prefix, new[..11]);
    assert_eq!(c.previous_secret_valid_until, server.clock.now() + 60);
    assert_eq!(c.secret_rotated_at, server.clock.now());
    assert!(core.authenticate_client_secret(&id, &old, basic).is_ok());
    assert!(core.authenticate_client_secret(&id, &new, basic).is_ok());

    server.clock.advance(Duration::from_secs(59));
    assert!(core.authenticate_client_secret(&id, &old, basic).is_ok());
    server.clock.advance(Duration::from_secs(1));
    assert_eq!(
        core.authenticate_client_secret(&id, &old, basic)
            .unwrap_err(),
        ClientAuthError::SecretExpired
    );
    assert!(core.authenticate_client_secret(&id, &new, basic).is_ok());
    assert_eq!(
        core.authenticate_client_secret(&id, "mcp_cs_guess", basic)
            .unwrap_err(),
        ClientAuthError::WrongSecret
    );

    // Without grace the old secret stops at once.
    let newest = admin
        .rotate_client_secret(pb::RotateClientSecretRequest {
            client_id: id.clone(),
            grace_seconds: 0,
        })
        .await
        .unwrap();
    assert_eq!(newest.client.unwrap().previous_secret_valid_until, 0);
    assert_eq!(
        core.authenticate_client_secret(&id, &new, basic)
            .unwrap_err(),
        ClientAuthError::WrongSecret
    );
    assert!(
        core.authenticate_client_secret(&id, &newest.secret, basic)
            .is_ok()
    );

    // A public client has no secret to rotate.
    let public_id = create(&server, public("desktop"))
        .await
        .client
        .unwrap()
        .client_id;
    let err = admin
        .rotate_client_secret(pb::RotateClientSecretRequest {
            client_id: public_id,
            grace_seconds: 0,
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::FailedPrecondition, "CLIENT_HAS_NO_SECRET");
}

/// A live session whose `client_id` is `client_id`, with a refresh token
/// the test knows, written into the stopped server's data directory (no
/// RPC makes such sessions yet: the browser flow will).
async fn plant_session(server: &mut TestServer, client_id: &str, session_id: &str) -> String {
    let refresh = format!("mcp_rt_{session_id}.{}", "r".repeat(43));
    let now = server.clock.now();
    let record = SessionRecord {
        session_id: session_id.to_owned(),
        subject: "alice".to_owned(),
        client_id: client_id.to_owned(),
        scopes: strings(&["tools:read"]),
        audience: RESOURCE.to_owned(),
        created_at: now,
        expires_at: now,
        revoked_at: None,
        session_expires_at: now + 3600,
        last_refreshed_at: now,
        token_ttl: 0,
        oauth: false,
        resources: Vec::new(),
        refresh_tokens: vec![RefreshToken {
            hash: SecretHash::of(refresh.as_bytes()),
            issued_at: now,
            spent_at: None,
        }],
    };
    server.stop().await;
    let store = mcp_auth::store::open(server.data_dir(), Durability::Durable).unwrap();
    let audit = AuditEntry {
        time: now,
        actor: "test".to_owned(),
        action: "session.created".to_owned(),
        target: session_id.to_owned(),
        outcome: "ok".to_owned(),
        request_id: String::new(),
    };
    store.insert_session(&record, audit).await.unwrap();
    drop(store);
    server.start_again().await;
    refresh
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_or_disabling_a_client_makes_its_tokens_inactive_at_once() {
    let mut server = TestServer::start().await;
    let id = create(&server, confidential("billing"))
        .await
        .client
        .unwrap()
        .client_id;
    let other = create(&server, confidential("other"))
        .await
        .client
        .unwrap()
        .client_id;
    let refresh = plant_session(&mut server, &id, "ses_ofclient0000000000000").await;
    let other_refresh = plant_session(&mut server, &other, "ses_ofother00000000000000").await;
    let primary = server.primary.clone();

    // A real token of the server whose client_id is the client's.
    let s1 = server.refresh(&refresh).await.unwrap();
    assert_eq!(s1.client_id, id);
    let v = server.verify(&primary, &s1.access_token).await;
    assert!(v.active, "{v:?}");
    assert_eq!(v.claims.unwrap().client_id, id);
    let o1 = server.refresh(&other_refresh).await.unwrap();

    // Disabled: REVOKED at once; the other client's token is untouched.
    set_disabled(&server, &id, true).await;
    let v = server.verify(&primary, &s1.access_token).await;
    assert_eq!(inactive_reason(&v), pb::TokenReason::Revoked);
    assert!(server.verify(&primary, &o1.access_token).await.active);

    // Enabled again: what was issued until then stays revoked; a token
    // issued afterwards is good.
    server.clock.advance(Duration::from_secs(2));
    let enabled = set_disabled(&server, &id, false).await;
    assert_eq!(enabled.tokens_valid_after, server.clock.now());
    let v = server.verify(&primary, &s1.access_token).await;
    assert_eq!(inactive_reason(&v), pb::TokenReason::Revoked);
    server.clock.advance(Duration::from_secs(1));
    let s2 = server.refresh(&s1.refresh_token).await.unwrap();
    assert!(server.verify(&primary, &s2.access_token).await.active);

    // Deleted: the token is REVOKED, the session revoked by the cascade,
    // the other client's session untouched; across a restart too.
    let resp = server
        .client(&primary)
        .await
        .delete_client(pb::DeleteClientRequest {
            client_id: id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(resp.sessions_revoked, 1);
    let v = server.verify(&primary, &s2.access_token).await;
    assert_eq!(inactive_reason(&v), pb::TokenReason::Revoked);
    let err = server.refresh(&s2.refresh_token).await.unwrap_err();
    assert_status(&err, Code::Unauthenticated, "SESSION_REVOKED");
    let session = server
        .client(&primary)
        .await
        .get_session(pb::GetSessionRequest {
            session_id: s2.session_id.clone(),
        })
        .await
        .unwrap();
    assert!(session.revoked);
    assert!(server.verify(&primary, &o1.access_token).await.active);
    assert_eq!(
        server
            .core()
            .authenticate_client_secret(&id, "mcp_cs_any", AuthMethod::ClientSecretBasic)
            .unwrap_err(),
        ClientAuthError::UnknownClient
    );
    server.restart().await;
    let v = server.verify(&primary, &s2.access_token).await;
    assert_eq!(inactive_reason(&v), pb::TokenReason::Revoked);
    let err = server
        .client(&primary)
        .await
        .delete_client(pb::DeleteClientRequest { client_id: id })
        .await
        .unwrap_err();
    assert_status(&err, Code::NotFound, "CLIENT_NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_and_their_secrets_survive_a_restart() {
    let mut server = TestServer::start().await;
    let created = create(&server, confidential("billing")).await;
    let id = created.client.unwrap().client_id;
    let rotated = server
        .client(&server.primary)
        .await
        .rotate_client_secret(pb::RotateClientSecretRequest {
            client_id: id.clone(),
            grace_seconds: 300,
        })
        .await
        .unwrap();
    let disabled_id = create(&server, public("desktop"))
        .await
        .client
        .unwrap()
        .client_id;
    set_disabled(&server, &disabled_id, true).await;
    let before = server
        .client(&server.primary)
        .await
        .list_clients(pb::ListClientsRequest {})
        .await
        .unwrap();

    server.restart().await;
    let after = server
        .client(&server.primary)
        .await
        .list_clients(pb::ListClientsRequest {})
        .await
        .unwrap();
    assert_eq!(after, before);
    let core = server.core();
    let basic = AuthMethod::ClientSecretBasic;
    assert!(
        core.authenticate_client_secret(&id, &rotated.secret, basic)
            .is_ok()
    );
    assert!(
        core.authenticate_client_secret(&id, &created.secret, basic)
            .is_ok(),
        "the old secret's grace survives too"
    );
    assert!(core.oauth_client(&disabled_id).unwrap().disabled);
}

#[tokio::test]
async fn every_client_change_is_audited_without_the_secret() {
    let server = TestServer::start().await;
    let admin = server.client(&server.primary).await;
    let created = create(&server, confidential("billing")).await;
    let id = created.client.unwrap().client_id;
    set_disabled(&server, &id, true).await;
    let rotated = admin
        .rotate_client_secret(pb::RotateClientSecretRequest {
            client_id: id.clone(),
            grace_seconds: 60,
        })
        .await
        .unwrap();
    admin
        .delete_client(pb::DeleteClientRequest {
            client_id: id.clone(),
        })
        .await
        .unwrap();

    let primary_id = server
        .client(&server.primary)
        .await
        .who_am_i()
        .await
        .unwrap()
        .client_id;
    let events = audit(&server).await;
    let of_client: Vec<_> = events
        .iter()
        .filter(|e| e.action.starts_with("client."))
        .collect();
    let actions: Vec<_> = of_client.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "client.created",
            "client.updated",
            "client.secret_rotated",
            "client.deleted"
        ]
    );
    for e in &of_client {
        assert!(e.target.starts_with(&id), "{e:?}");
        assert_eq!(e.actor, primary_id);
        assert_eq!(e.outcome, "ok");
    }
    assert!(
        of_client[1].target.contains("disabled"),
        "{:?}",
        of_client[1]
    );
    for e in &events {
        for secret in [&created.secret, &rotated.secret] {
            let body = &secret["mcp_cs_".len()..];
            let text = format!("{e:?}");
            assert!(!text.contains(body), "a secret in {text}");
        }
    }
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// Runs the CLI as the primary key and expects success; returns stdout.
async fn ok(server: &TestServer, args: &[&str]) -> String {
    let (code, out, err) = server.cli(Some(&server.primary), args).await;
    assert_eq!(code, 0, "mcp-auth {args:?}: {err}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_clients_in_text_and_json() {
    let server = TestServer::start().await;

    // Created: the secret once, with --json and with --field.
    let created = json(
        &ok(
            &server,
            &[
                "client",
                "create",
                "--name",
                "billing",
                "--scopes",
                "tools:read,tools:call",
                "--resources",
                RESOURCE,
                "--json",
            ],
        )
        .await,
    );
    let id = created["client"]["client_id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(
        id.starts_with("cli_") && secret.starts_with("mcp_cs_"),
        "{created}"
    );
    assert_eq!(
        created["client"]["grant_types"],
        serde_json::json!(["client_credentials"])
    );
    assert_eq!(
        created["client"]["token_endpoint_auth_method"],
        "client_secret_basic"
    );

    let text = ok(
        &server,
        &[
            "client",
            "create",
            "--name",
            "desktop",
            "--auth-method",
            "none",
            "--grant-types",
            "authorization_code,refresh_token",
            "--redirect-uri",
            "http://127.0.0.1:33418/callback",
            "--redirect-uri",
            "https://app.example.com/cb",
            "--scopes",
            "tools:read",
        ],
    )
    .await;
    assert!(text.contains("client id:      cli_"), "{text}");
    assert!(
        text.contains("redirect uris:  http://127.0.0.1:33418/callback,https://app.example.com/cb"),
        "{text}"
    );
    assert!(
        text.contains("no secret: this client authenticates with none")
            && !text.contains("mcp_cs_"),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    let jwks_file = dir.path().join("jwks.json");
    std::fs::write(&jwks_file, JWKS).unwrap();
    let jwt_id = ok(
        &server,
        &[
            "client",
            "create",
            "--name",
            "signer",
            "--auth-method",
            "private_key_jwt",
            "--jwks-file",
            jwks_file.to_str().unwrap(),
            "--scopes",
            "tools:read",
            "--resources",
            RESOURCE,
            "--field",
            "client.client_id",
        ],
    )
    .await;
    let jwt_id = jwt_id.trim();
    let shown = ok(&server, &["client", "show", jwt_id]).await;
    assert!(shown.contains("jwks:           1 key"), "{shown}");
    assert!(shown.contains("secret:         none"), "{shown}");

    // Listed: a bare array, no secret anywhere.
    let list = ok(&server, &["client", "list", "--json"]).await;
    let all = json(&list);
    assert_eq!(all.as_array().unwrap().len(), 3, "{all}");
    assert!(!list.contains(&secret[7..]), "{list}");
    let ids = ok(&server, &["client", "list", "--field", "client_id"]).await;
    assert!(ids.lines().any(|l| l == id), "{ids}");
    let table = ok(&server, &["client", "list"]).await;
    assert!(table.starts_with("CLIENT ID"), "{table}");
    assert!(!table.contains(&secret[7..]));

    // Updated: disabled, then enabled; resources replaced.
    let disabled = json(&ok(&server, &["client", "update", &id, "--disabled", "--json"]).await);
    assert_eq!(disabled["client"]["disabled"], true);
    assert_eq!(disabled["secret"], "");
    let enabled = ok(
        &server,
        &[
            "client",
            "update",
            &id,
            "--enabled",
            "--resources",
            "https://a.example.com,https://b.example.com",
        ],
    )
    .await;
    assert!(enabled.contains("status:         enabled"), "{enabled}");
    assert!(
        enabled.contains("resources:      https://a.example.com,https://b.example.com"),
        "{enabled}"
    );

    // Rotated with grace: the new secret once.
    let rotated = ok(
        &server,
        &["client", "rotate-secret", &id, "--grace-seconds", "60"],
    )
    .await;
    assert!(
        rotated.starts_with("rotated; the previous secret works for 60 more seconds"),
        "{rotated}"
    );
    let new_secret = rotated.lines().last().unwrap();
    assert!(
        new_secret.starts_with("mcp_cs_") && new_secret != secret,
        "{rotated}"
    );

    // Errors: the field named, as text and as JSON.
    let (code, _, err) = server
        .cli(
            Some(&server.primary),
            &[
                "client",
                "create",
                "--name",
                "bad",
                "--scopes",
                "tools:read",
                "--resources",
                "http://mcp.example.com",
            ],
        )
        .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("error: INVALID_ARGUMENT [INVALID_FIELD]: invalid allowed_resources"),
        "{err}"
    );
    let (code, _, err) = server
        .cli(
            Some(&server.primary),
            &["client", "rotate-secret", "cli_nope", "--json"],
        )
        .await;
    assert_eq!(code, 1);
    let e = json(err.trim());
    assert_eq!(e["error"]["code"], "NOT_FOUND");
    assert_eq!(e["error"]["reason"], "CLIENT_NOT_FOUND");

    // Deleted.
    let deleted = ok(&server, &["client", "delete", &id]).await;
    assert_eq!(
        deleted.trim(),
        format!("deleted OAuth client {id} and revoked 0 of its sessions")
    );
    let (code, _, err) = server
        .cli(Some(&server.primary), &["client", "show", &id])
        .await;
    assert_eq!(code, 1);
    assert!(err.contains("NOT_FOUND [CLIENT_NOT_FOUND]"), "{err}");
}
