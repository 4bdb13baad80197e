//! The store contract as tests: every backend runs each of these against a
//! fresh instance of itself (see the backend's own `tests` module), so the
//! core can rely on the same behaviour from each.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use super::model::*;
use super::{Store, Swap};
use crate::secret::SecretHash;

/// An audit entry for `action`.
pub(crate) fn entry(action: &str) -> AuditEntry {
    AuditEntry {
        time: 1_000,
        actor: "key_admin".to_owned(),
        action: action.to_owned(),
        target: "t".to_owned(),
        outcome: "ok".to_owned(),
        request_id: "r".to_owned(),
    }
}

fn key(id: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        key_id: id.to_owned(),
        name: "n".to_owned(),
        scopes: vec!["admin".to_owned()],
        prefix: "mcp_sk_abcd".to_owned(),
        created_at: 1,
        expires_at: 0,
        revoked_at: None,
        rotated_at: None,
        secret_hash: SecretHash::of(id.as_bytes()),
        previous: None,
        rate_limit: None,
    }
}

/// A live session of `subject` created by `client`.
pub(crate) fn session(id: &str, subject: &str, client: &str) -> SessionRecord {
    SessionRecord {
        session_id: id.to_owned(),
        subject: subject.to_owned(),
        client_id: client.to_owned(),
        scopes: vec!["tools:read".to_owned()],
        audience: "https://mcp.example".to_owned(),
        created_at: 1,
        expires_at: 100,
        revoked_at: None,
        session_expires_at: 1_000,
        last_refreshed_at: 1,
        token_ttl: 0,
        oauth: false,
        resources: Vec::new(),
        refresh_tokens: vec![RefreshToken {
            hash: SecretHash::of(id.as_bytes()),
            issued_at: 1,
            spent_at: None,
        }],
    }
}

async fn actions(store: &dyn Store) -> Vec<String> {
    store
        .audit_page(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.action)
        .collect()
}

/// Keys: insert, read, conditional replace (one conflict), each audited.
pub(crate) async fn api_keys(store: &dyn Store) {
    store
        .insert_api_key(&key("key_b"), entry("api_key.created"))
        .await
        .unwrap();
    store
        .insert_api_key(&key("key_a"), entry("api_key.created"))
        .await
        .unwrap();
    let ids: Vec<_> = store
        .api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.key_id)
        .collect();
    assert_eq!(ids, ["key_a", "key_b"], "in key-id order");
    let read = store.api_key("key_a").await.unwrap().unwrap();
    let mut revoked = read.record.clone();
    revoked.revoked_at = Some(5);
    assert_eq!(
        store
            .replace_api_key(&read, &revoked, entry("api_key.revoked"))
            .await
            .unwrap(),
        Swap::Done
    );
    let mut other = read.record.clone();
    other.name = "stale".to_owned();
    assert_eq!(
        store
            .replace_api_key(&read, &other, entry("api_key.updated"))
            .await
            .unwrap(),
        Swap::Conflict,
        "a write against a stale read is refused"
    );
    let now = store.api_key("key_a").await.unwrap().unwrap().record;
    assert_eq!(now.revoked_at, Some(5));
    assert_eq!(now.name, "n");
    assert!(store.api_key("key_none").await.unwrap().is_none());
    assert_eq!(
        actions(store).await,
        ["api_key.created", "api_key.created", "api_key.revoked"],
        "a refused write leaves no record"
    );
}

/// An OAuth client with a secret.
pub(crate) fn oauth_client(id: &str) -> OAuthClientRecord {
    OAuthClientRecord {
        client_id: id.to_owned(),
        name: "n".to_owned(),
        secret_hash: Some(SecretHash::of(id.as_bytes())),
        secret_prefix: Some("mcp_cs_abcd".to_owned()),
        previous_secret: None,
        secret_rotated_at: None,
        redirect_uris: vec!["https://app.example/cb".to_owned()],
        grant_types: vec![GrantType::ClientCredentials, GrantType::AuthorizationCode],
        allowed_scopes: vec!["tools:read".to_owned()],
        allowed_resources: vec!["https://mcp.example".to_owned()],
        token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
        jwks: None,
        created_at: 1,
        updated_at: 1,
        disabled: false,
        tokens_valid_after: None,
        origin: ClientOrigin::Registered,
        last_grant_at: None,
        skip_consent: false,
    }
}

/// OAuth clients: insert, read, conditional replace and delete (each with
/// one conflict), deleted ids remembered until forgotten, each change
/// audited.
pub(crate) async fn clients(store: &dyn Store) {
    for id in ["cli_b", "cli_a"] {
        store
            .insert_client(&oauth_client(id), entry("client.created"))
            .await
            .unwrap();
    }
    let ids: Vec<_> = store
        .clients()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    assert_eq!(ids, ["cli_a", "cli_b"], "in client-id order");
    let read = store.client("cli_a").await.unwrap().unwrap();
    assert_eq!(read.record.grant_types, oauth_client("cli_a").grant_types);
    assert!(read.record.secret_hash == Some(SecretHash::of(b"cli_a")));
    let mut disabled = read.record.clone();
    disabled.disabled = true;
    disabled.updated_at = 5;
    assert_eq!(
        store
            .replace_client(&read, &disabled, entry("client.updated"))
            .await
            .unwrap(),
        Swap::Done
    );
    let mut stale = read.record.clone();
    stale.name = "stale".to_owned();
    assert_eq!(
        store
            .replace_client(&read, &stale, entry("client.updated"))
            .await
            .unwrap(),
        Swap::Conflict,
        "a write against a stale read is refused"
    );
    assert_eq!(
        store
            .delete_client(&read, 6, entry("client.deleted"))
            .await
            .unwrap(),
        Swap::Conflict,
        "a delete against a stale read is refused"
    );
    let now = store.client("cli_a").await.unwrap().unwrap();
    assert!(now.record.disabled);
    assert_eq!(now.record.name, "n");
    assert!(store.deleted_clients().await.unwrap().is_empty());

    assert_eq!(
        store
            .delete_client(&now, 7, entry("client.deleted"))
            .await
            .unwrap(),
        Swap::Done
    );
    assert!(store.client("cli_a").await.unwrap().is_none());
    assert_eq!(
        store
            .delete_client(&now, 8, entry("client.deleted"))
            .await
            .unwrap(),
        Swap::Conflict,
        "deleting what is gone"
    );
    assert_eq!(
        store.deleted_clients().await.unwrap(),
        [("cli_a".to_owned(), 7)]
    );
    assert_eq!(store.clients().await.unwrap().len(), 1);
    assert_eq!(
        store
            .forget_deleted_clients(&["cli_a".to_owned(), "cli_none".to_owned()])
            .await
            .unwrap(),
        1
    );
    assert!(store.deleted_clients().await.unwrap().is_empty());
    assert!(store.client("cli_none").await.unwrap().is_none());
    assert_eq!(
        actions(store).await,
        [
            "client.created",
            "client.created",
            "client.updated",
            "client.deleted"
        ],
        "refused writes leave no record"
    );
}

/// A user account with a (fake) password hash.
pub(crate) fn user(id: &str, username: &str) -> UserRecord {
    UserRecord {
        user_id: id.to_owned(),
        username: username.to_owned(),
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$hash-of-{id}"),
        disabled: false,
        created_at: 1,
        updated_at: 1,
        password_changed_at: 1,
    }
}

/// User accounts: insert (a taken username or id refused, writing
/// nothing), read by id and by username, list in username order,
/// conditional replace (renaming moves the username) and delete (freeing
/// the username), each with one conflict, each change audited.
/// Consents: stored, read back one and by subject (not another
/// subject's, even one whose name is a prefix), replaced, deleted once.
pub(crate) async fn consents(store: &dyn Store) {
    let consent = |subject: &str, client: &str, scopes: &[&str]| ConsentRecord {
        subject: subject.to_owned(),
        client_id: client.to_owned(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        resources: vec!["https://mcp.example.com".to_owned()],
        granted_at: 10,
        updated_at: 10,
    };
    let audit = || entry("consent.granted");
    assert_eq!(store.consent("usr_a", "cli_x").await.unwrap(), None);
    store
        .put_consent(&consent("usr_a", "cli_x", &["a"]), audit())
        .await
        .unwrap();
    store
        .put_consent(&consent("usr_a", "cli_y", &["b"]), audit())
        .await
        .unwrap();
    store
        .put_consent(&consent("usr_ab", "cli_x", &["c"]), audit())
        .await
        .unwrap();
    let mine = store.consents_of("usr_a").await.unwrap();
    assert_eq!(
        mine.iter()
            .map(|c| c.client_id.as_str())
            .collect::<Vec<_>>(),
        ["cli_x", "cli_y"]
    );
    let wider = consent("usr_a", "cli_x", &["a", "d"]);
    store.put_consent(&wider, audit()).await.unwrap();
    assert_eq!(
        store.consent("usr_a", "cli_x").await.unwrap(),
        Some(wider.clone())
    );
    assert!(wider.covers(&["d".to_owned()], "https://mcp.example.com"));
    assert!(!wider.covers(&["e".to_owned()], "https://mcp.example.com"));
    assert!(!wider.covers(&["a".to_owned()], "https://other.example"));
    assert!(
        store
            .delete_consent("usr_a", "cli_x", audit())
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_consent("usr_a", "cli_x", audit())
            .await
            .unwrap()
    );
    assert_eq!(store.consent("usr_a", "cli_x").await.unwrap(), None);
    assert_eq!(store.consents_of("usr_ab").await.unwrap().len(), 1);
}

pub(crate) async fn users(store: &dyn Store) {
    assert!(store.users().await.unwrap().is_empty());
    for (id, name) in [("usr_b", "bob"), ("usr_a", "carol"), ("usr_c", "alice")] {
        assert_eq!(
            store
                .insert_user(&user(id, name), entry("user.created"))
                .await
                .unwrap(),
            Swap::Done
        );
    }
    assert_eq!(
        store
            .insert_user(&user("usr_d", "bob"), entry("user.created"))
            .await
            .unwrap(),
        Swap::Conflict,
        "a taken username is refused"
    );
    assert_eq!(
        store
            .insert_user(&user("usr_b", "dave"), entry("user.created"))
            .await
            .unwrap(),
        Swap::Conflict,
        "a taken id is refused"
    );
    assert!(store.user("usr_d").await.unwrap().is_none());
    assert!(store.user_by_name("dave").await.unwrap().is_none());
    let names: Vec<_> = store
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(names, ["alice", "bob", "carol"], "in username order");

    let by_id = store.user("usr_b").await.unwrap().unwrap();
    let by_name = store.user_by_name("bob").await.unwrap().unwrap();
    assert_eq!(by_id.record.user_id, "usr_b");
    assert_eq!(by_name.record.user_id, "usr_b");
    assert_eq!(by_id.version, by_name.version);
    assert_eq!(
        by_id.record.password_hash,
        user("usr_b", "bob").password_hash
    );
    assert!(store.user("usr_none").await.unwrap().is_none());
    assert!(store.user_by_name("nobody").await.unwrap().is_none());

    let mut disabled = by_id.record.clone();
    disabled.disabled = true;
    disabled.updated_at = 5;
    assert_eq!(
        store
            .replace_user(&by_id, &disabled, entry("user.disabled"))
            .await
            .unwrap(),
        Swap::Done
    );
    let mut stale = by_id.record.clone();
    stale.password_hash = "stale".to_owned();
    assert_eq!(
        store
            .replace_user(&by_id, &stale, entry("user.password_changed"))
            .await
            .unwrap(),
        Swap::Conflict,
        "a write against a stale read is refused"
    );
    assert_eq!(
        store
            .delete_user(&by_id, entry("user.deleted"))
            .await
            .unwrap(),
        Swap::Conflict,
        "a delete against a stale read is refused"
    );
    let now = store.user_by_name("bob").await.unwrap().unwrap();
    assert!(now.record.disabled);
    assert_eq!(now.record.password_hash, user("usr_b", "bob").password_hash);

    // Renaming onto a taken username is refused; onto a free one moves
    // the index.
    let mut onto_taken = now.record.clone();
    onto_taken.username = "alice".to_owned();
    assert_eq!(
        store
            .replace_user(&now, &onto_taken, entry("user.renamed"))
            .await
            .unwrap(),
        Swap::Conflict
    );
    let mut renamed = now.record.clone();
    renamed.username = "robert".to_owned();
    assert_eq!(
        store
            .replace_user(&now, &renamed, entry("user.renamed"))
            .await
            .unwrap(),
        Swap::Done
    );
    assert!(store.user_by_name("bob").await.unwrap().is_none());
    let now = store.user_by_name("robert").await.unwrap().unwrap();
    assert_eq!(now.record.user_id, "usr_b");

    assert_eq!(
        store
            .delete_user(&now, entry("user.deleted"))
            .await
            .unwrap(),
        Swap::Done
    );
    assert!(store.user("usr_b").await.unwrap().is_none());
    assert!(store.user_by_name("robert").await.unwrap().is_none());
    assert_eq!(
        store
            .delete_user(&now, entry("user.deleted"))
            .await
            .unwrap(),
        Swap::Conflict,
        "deleting what is gone"
    );
    assert_eq!(
        store
            .insert_user(&user("usr_e", "robert"), entry("user.created"))
            .await
            .unwrap(),
        Swap::Done,
        "a deleted user's username is free again"
    );
    assert_eq!(store.users().await.unwrap().len(), 3);
    assert_eq!(
        actions(store).await,
        [
            "user.created",
            "user.created",
            "user.created",
            "user.disabled",
            "user.renamed",
            "user.deleted",
            "user.created"
        ],
        "refused writes leave no record"
    );
}

/// Many writers inserting users of one username at once: exactly one
/// wins, and only its record is written.
/// How many of racing conditional writes won.
pub(crate) async fn wins(tasks: Vec<tokio::task::JoinHandle<Swap>>) -> usize {
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap() == Swap::Done {
            wins += 1;
        }
    }
    wins
}

pub(crate) async fn one_username_one_user(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .insert_user(&user(&format!("usr_{i}"), "erin"), entry("user.created"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    assert_eq!(wins(tasks).await, 1);
    assert_eq!(store.users().await.unwrap().len(), 1);
    assert_eq!(actions(&*store).await, ["user.created"]);
}

/// Revoked access tokens: noted once (a second revocation keeps the first
/// expiry and writes no audit record), listed, forgotten.
pub(crate) async fn revoked_tokens(store: &dyn Store) {
    assert!(store.revoked_tokens().await.unwrap().is_empty());
    store
        .revoke_token("at_b", 20, entry("token.revoked"))
        .await
        .unwrap();
    store
        .revoke_token("at_a", 10, entry("token.revoked"))
        .await
        .unwrap();
    store
        .revoke_token("at_a", 99, entry("token.revoked"))
        .await
        .unwrap();
    let mut all = store.revoked_tokens().await.unwrap();
    all.sort();
    assert_eq!(all, [("at_a".to_owned(), 10), ("at_b".to_owned(), 20)]);
    assert_eq!(
        store
            .forget_revoked_tokens(&["at_a".to_owned(), "at_none".to_owned()])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.revoked_tokens().await.unwrap(),
        [("at_b".to_owned(), 20)]
    );
    assert_eq!(actions(store).await, ["token.revoked", "token.revoked"]);
}

/// Sessions: insert, replace, revoke (idempotent), indexes, delete.
pub(crate) async fn sessions(store: &dyn Store) {
    for (id, subject, client) in [
        ("ses_1", "alice", "key_a"),
        ("ses_2", "alice", "key_b"),
        ("ses_3", "bob", "key_a"),
    ] {
        store
            .insert_session(&session(id, subject, client), entry("session.created"))
            .await
            .unwrap();
    }
    let by = |subject: Option<&str>, client: Option<&str>| SessionFilter {
        subject: subject.map(str::to_owned),
        client_id: client.map(str::to_owned),
    };
    let mut ids = store.session_ids(&by(Some("alice"), None)).await.unwrap();
    ids.sort();
    assert_eq!(ids, ["ses_1", "ses_2"]);
    let mut ids = store.session_ids(&by(None, Some("key_a"))).await.unwrap();
    ids.sort();
    assert_eq!(ids, ["ses_1", "ses_3"]);
    assert_eq!(
        store
            .session_ids(&by(Some("alice"), Some("key_a")))
            .await
            .unwrap(),
        ["ses_1"]
    );

    // A refresh: one conditional write of the whole record.
    let read = store.session("ses_1").await.unwrap().unwrap();
    let mut next = read.record.clone();
    next.refresh_tokens[0].spent_at = Some(2);
    next.refresh_tokens.push(RefreshToken {
        hash: SecretHash::of(b"child"),
        issued_at: 2,
        spent_at: None,
    });
    assert_eq!(
        store
            .replace_session(&read, &next, entry("session.refreshed"))
            .await
            .unwrap(),
        Swap::Done
    );
    assert_eq!(
        store
            .replace_session(&read, &next, entry("session.refreshed"))
            .await
            .unwrap(),
        Swap::Conflict
    );
    let stored = store.session("ses_1").await.unwrap().unwrap().record;
    assert_eq!(stored.refresh_tokens.len(), 2);
    assert_eq!(stored.refresh_tokens[0].spent_at, Some(2));

    // Revocation keeps the first time and reports only what it changed.
    assert!(store.revoked_sessions().await.unwrap().is_empty());
    let ids = ["ses_1".to_owned(), "ses_nope".to_owned()];
    let first = store
        .revoke_sessions(&ids, 5, entry("session.revoked"))
        .await
        .unwrap();
    assert_eq!(first, [("ses_1".to_owned(), 100)]);
    let again = store
        .revoke_sessions(&ids, 9, entry("session.revoked"))
        .await
        .unwrap();
    assert!(again.is_empty());
    let s1 = store.session("ses_1").await.unwrap().unwrap().record;
    assert_eq!(s1.revoked_at, Some(5));
    assert_eq!(
        store.revoked_sessions().await.unwrap(),
        [("ses_1".to_owned(), 100)]
    );

    // Revoking through a conditional replace is indexed too.
    let read = store.session("ses_2").await.unwrap().unwrap();
    let mut revoked = read.record.clone();
    revoked.revoked_at = Some(6);
    assert_eq!(
        store
            .replace_session(&read, &revoked, entry("refresh_token.reused"))
            .await
            .unwrap(),
        Swap::Done
    );
    let mut all = store.revoked_sessions().await.unwrap();
    all.sort();
    assert_eq!(all.len(), 2);

    // Deleting removes the record and its index entries.
    assert_eq!(
        store
            .delete_sessions(&["ses_1".to_owned(), "ses_nope".to_owned()])
            .await
            .unwrap(),
        1
    );
    assert!(store.session("ses_1").await.unwrap().is_none());
    assert_eq!(
        store.session_ids(&by(Some("alice"), None)).await.unwrap(),
        ["ses_2"]
    );
    assert_eq!(
        store.revoked_sessions().await.unwrap(),
        [("ses_2".to_owned(), 100)]
    );
}

/// Listing: every page full but the last, each session once, filters.
pub(crate) async fn session_pages(store: &dyn Store) {
    for i in 0..25 {
        let client = if i % 2 == 0 { "key_even" } else { "key_odd" };
        let subject = if i % 3 == 0 { "carol" } else { "dave" };
        store
            .insert_session(
                &session(&format!("ses_{i:02}"), subject, client),
                entry("session.created"),
            )
            .await
            .unwrap();
    }
    let walk = |filter: SessionFilter| async move {
        let mut seen = Vec::new();
        let mut cursor: Option<Cursor> = None;
        loop {
            let page = store
                .sessions_page(&filter, cursor.as_ref(), 4)
                .await
                .unwrap();
            assert!(page.items.len() <= 4);
            seen.extend(page.items.into_iter().map(|s| s.session_id));
            match page.next {
                Some(c) => cursor = Some(Cursor::from_client(c.as_str().to_owned())),
                None => break,
            }
        }
        seen
    };
    let everything = walk(SessionFilter::default()).await;
    assert_eq!(everything.len(), 25);
    let mut sorted = everything.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 25, "no session twice");
    let even = walk(SessionFilter {
        client_id: Some("key_even".to_owned()),
        subject: None,
    })
    .await;
    assert_eq!(even.len(), 13);
    let carol_even = walk(SessionFilter {
        client_id: Some("key_even".to_owned()),
        subject: Some("carol".to_owned()),
    })
    .await;
    assert_eq!(
        carol_even,
        ["ses_00", "ses_06", "ses_12", "ses_18", "ses_24"]
    );
    let carol = walk(SessionFilter {
        client_id: None,
        subject: Some("carol".to_owned()),
    })
    .await;
    assert_eq!(carol.len(), 9);
    let nobody = walk(SessionFilter {
        client_id: Some("key_none".to_owned()),
        subject: None,
    })
    .await;
    assert!(nobody.is_empty());
}

/// Identity grants keep their creation time; deletes and certificate
/// revocations report what they did.
pub(crate) async fn identities(store: &dyn Store) {
    let grant = |created: i64, scopes: &[&str]| IdentityRecord {
        name: "billing".to_owned(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        disabled: false,
        created_at: created,
        updated_at: created,
        rate_limit: None,
    };
    let first = store
        .put_identity(&grant(10, &["a"]), entry("identity.set"))
        .await
        .unwrap();
    assert_eq!(first.created_at, 10);
    let second = store
        .put_identity(&grant(20, &["a", "b"]), entry("identity.set"))
        .await
        .unwrap();
    assert_eq!(second.created_at, 10, "creation time kept");
    assert_eq!(second.updated_at, 20);
    assert_eq!(store.identities().await.unwrap()[0].scopes, ["a", "b"]);
    assert!(
        store
            .delete_identity("billing", entry("identity.deleted"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_identity("billing", entry("identity.deleted"))
            .await
            .unwrap()
    );
    assert!(store.identities().await.unwrap().is_empty());

    let r1 = store
        .revoke_cert("0a1b", 5, entry("certificate.revoked"))
        .await
        .unwrap();
    let r2 = store
        .revoke_cert("0a1b", 9, entry("certificate.revoked"))
        .await
        .unwrap();
    assert_eq!((r1.revoked_at, r2.revoked_at), (5, 5));
    assert_eq!(store.revoked_certs().await.unwrap().len(), 1);
    assert_eq!(
        actions(store).await,
        [
            "identity.set",
            "identity.set",
            "identity.deleted",
            "certificate.revoked",
            "certificate.revoked"
        ],
        "a delete of nothing leaves no record"
    );
}

/// Signing keys are written together and deleted by kid.
pub(crate) async fn signing_keys(store: &dyn Store) {
    let k = |kid: &str| SigningKeyRecord {
        kid: kid.to_owned(),
        alg: SigningAlg::EdDSA,
        private_pkcs8: vec![1, 2, 3],
        created_at: 1,
        retired_at: None,
    };
    store
        .put_signing_keys(&[k("a"), k("b")], Some(entry("signing_key.rotated")))
        .await
        .unwrap();
    store.put_signing_keys(&[k("c")], None).await.unwrap();
    assert_eq!(store.signing_keys().await.unwrap().len(), 3);
    store.delete_signing_keys(&["a".to_owned()]).await.unwrap();
    let mut kids: Vec<_> = store
        .signing_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.kid)
        .collect();
    kids.sort();
    assert_eq!(kids, ["b", "c"]);
    assert_eq!(actions(store).await, ["signing_key.rotated"]);
}

/// The chain: consecutive seqs, each record linked to the one before;
/// pruning moves the anchor.
pub(crate) async fn audit_chain(store: &dyn Store) {
    for i in 0..5 {
        let mut e = entry("auth.failed");
        e.time = 100 + i;
        store.append_audit(e, i % 2 == 0).await.unwrap();
    }
    store
        .insert_api_key(&key("key_x"), {
            let mut e = entry("api_key.created");
            e.time = 200;
            e
        })
        .await
        .unwrap();
    let all = store.audit_page(0, 100).await.unwrap();
    assert_eq!(all.len(), 6);
    let mut prev = String::new();
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.seq, i as u64 + 1);
        assert_eq!(r.prev_hash, prev);
        assert_eq!(r.hash, r.compute_hash());
        prev = r.hash.clone();
    }
    assert_eq!(store.audit_page(4, 100).await.unwrap().len(), 2);
    assert_eq!(store.audit_anchor().await.unwrap(), AuditAnchor::default());
    assert_eq!(store.prune_audit(103, 100).await.unwrap(), 3);
    let anchor = store.audit_anchor().await.unwrap();
    assert_eq!(anchor.seq, 3);
    assert_eq!(anchor.hash, all[2].hash);
    let kept = store.audit_page(0, 100).await.unwrap();
    assert_eq!(kept[0].seq, 4);
    assert_eq!(kept[0].prev_hash, anchor.hash);
    assert_eq!(store.prune_audit(103, 100).await.unwrap(), 0);
}

/// Many writers replacing one record from the same read: exactly one wins.
pub(crate) async fn one_winner(store: Arc<dyn Store>) {
    store
        .insert_session(&session("ses_race", "u", "k"), entry("session.created"))
        .await
        .unwrap();
    let read = store.session("ses_race").await.unwrap().unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            let read = read.clone();
            tokio::spawn(async move {
                let mut next = read.record.clone();
                next.last_refreshed_at = i;
                store
                    .replace_session(&read, &next, entry("session.refreshed"))
                    .await
                    .unwrap()
            })
        })
        .collect();
    assert_eq!(wins(tasks).await, 1);
    let refreshed = actions(&*store)
        .await
        .into_iter()
        .filter(|a| a == "session.refreshed")
        .count();
    assert_eq!(refreshed, 1, "only the winner's record is written");
}

/// What [`write_some`] wrote.
pub(crate) struct Written {
    audit_records: usize,
}

/// Writes one of each kind of record.
pub(crate) async fn write_some(store: &dyn Store) -> Written {
    store
        .insert_api_key(&key("key_k"), entry("api_key.created"))
        .await
        .unwrap();
    store
        .insert_session(&session("ses_s", "u", "key_k"), entry("session.created"))
        .await
        .unwrap();
    store
        .revoke_sessions(&["ses_s".to_owned()], 7, entry("session.revoked"))
        .await
        .unwrap();
    for id in ["cli_kept", "cli_gone"] {
        store
            .insert_client(&oauth_client(id), entry("client.created"))
            .await
            .unwrap();
    }
    let gone = store.client("cli_gone").await.unwrap().unwrap();
    assert_eq!(
        store
            .delete_client(&gone, 9, entry("client.deleted"))
            .await
            .unwrap(),
        Swap::Done
    );
    for (id, name) in [("usr_kept", "kept"), ("usr_gone", "gone")] {
        assert_eq!(
            store
                .insert_user(&user(id, name), entry("user.created"))
                .await
                .unwrap(),
            Swap::Done
        );
    }
    let gone = store.user("usr_gone").await.unwrap().unwrap();
    assert_eq!(
        store
            .delete_user(&gone, entry("user.deleted"))
            .await
            .unwrap(),
        Swap::Done
    );
    Written { audit_records: 9 }
}

/// Checks that a reopened store has what [`write_some`] wrote, and goes on
/// with the same chain.
pub(crate) async fn check_written(store: &dyn Store, written: &Written) {
    assert!(store.api_key("key_k").await.unwrap().is_some());
    let kept = store.client("cli_kept").await.unwrap().unwrap().record;
    assert_eq!(
        kept.token_endpoint_auth_method,
        AuthMethod::ClientSecretBasic
    );
    assert!(store.client("cli_gone").await.unwrap().is_none());
    let kept = store.user_by_name("kept").await.unwrap().unwrap().record;
    assert_eq!(kept.user_id, "usr_kept");
    assert_eq!(kept.password_hash, user("usr_kept", "kept").password_hash);
    assert!(store.user("usr_gone").await.unwrap().is_none());
    assert!(
        store.user_by_name("gone").await.unwrap().is_none(),
        "a deleted user's username is free across a reopen"
    );
    assert_eq!(
        store.deleted_clients().await.unwrap(),
        [("cli_gone".to_owned(), 9)],
        "a deleted client is remembered across a reopen"
    );
    let s = store.session("ses_s").await.unwrap().unwrap().record;
    assert_eq!(s.revoked_at, Some(7));
    assert_eq!(
        store.revoked_sessions().await.unwrap(),
        [("ses_s".to_owned(), 100)]
    );
    assert_eq!(
        store
            .session_ids(&SessionFilter {
                subject: Some("u".to_owned()),
                client_id: None
            })
            .await
            .unwrap(),
        ["ses_s"],
        "indexes are rebuilt at open"
    );
    store
        .append_audit(entry("after.reopen"), true)
        .await
        .unwrap();
    let all = store.audit_page(0, 100).await.unwrap();
    assert_eq!(all.len(), written.audit_records + 1);
    assert_eq!(
        all[written.audit_records].prev_hash,
        all[written.audit_records - 1].hash
    );
}

/// Transient entries: put if absent (an ended entry counts as absent), a
/// read ignores ended entries, a swap and a removal only from the value
/// they expect, kinds apart, counting up to a limit, listing the live,
/// eviction of the ended only.
pub(crate) async fn transients(store: &dyn Store) {
    use TransientKind::{Code, Interaction, LoginSession};
    assert_eq!(
        store
            .put_transient(Code, b"k1", b"pending", 200, 100)
            .await
            .unwrap(),
        Swap::Done
    );
    assert_eq!(
        store
            .put_transient(Code, b"k1", b"other", 300, 100)
            .await
            .unwrap(),
        Swap::Conflict,
        "a live entry is not overwritten"
    );
    assert_eq!(
        store.transient(Code, b"k1", 199).await.unwrap().as_deref(),
        Some(&b"pending"[..])
    );
    assert_eq!(
        store.transient(Code, b"k1", 200).await.unwrap(),
        None,
        "an entry has ended at its end"
    );
    assert_eq!(store.transient(Code, b"none", 100).await.unwrap(), None);
    assert_eq!(
        store.transient(Interaction, b"k1", 100).await.unwrap(),
        None,
        "each kind is its own namespace"
    );
    assert_eq!(
        store
            .put_transient(Interaction, b"k1", b"ia", 200, 100)
            .await
            .unwrap(),
        Swap::Done
    );

    // Compare-and-swap: from the expected value only.
    assert_eq!(
        store
            .swap_transient(Code, b"k1", b"stale", b"spent", 260)
            .await
            .unwrap(),
        Swap::Conflict
    );
    assert_eq!(
        store
            .swap_transient(Code, b"k1", b"pending", b"spent", 260)
            .await
            .unwrap(),
        Swap::Done
    );
    assert_eq!(
        store
            .swap_transient(Code, b"k1", b"pending", b"spent again", 260)
            .await
            .unwrap(),
        Swap::Conflict,
        "the second swap from one value loses"
    );
    assert_eq!(
        store.transient(Code, b"k1", 250).await.unwrap().as_deref(),
        Some(&b"spent"[..]),
        "the swap moved its end too"
    );
    assert_eq!(
        store
            .swap_transient(Code, b"none", b"pending", b"spent", 260)
            .await
            .unwrap(),
        Swap::Conflict
    );

    // An ended entry is replaced by a put.
    assert_eq!(
        store
            .put_transient(LoginSession, b"ls", b"old", 150, 100)
            .await
            .unwrap(),
        Swap::Done
    );
    assert_eq!(
        store
            .put_transient(LoginSession, b"ls", b"new", 400, 150)
            .await
            .unwrap(),
        Swap::Done
    );
    assert_eq!(
        store
            .transient(LoginSession, b"ls", 300)
            .await
            .unwrap()
            .as_deref(),
        Some(&b"new"[..])
    );

    // Counting and listing the live ones of a kind.
    for i in 0..5u8 {
        assert_eq!(
            store
                .put_transient(LoginSession, &[b'm', i], &[i], 120 + i64::from(i), 100)
                .await
                .unwrap(),
            Swap::Done
        );
    }
    assert_eq!(
        store
            .count_transients(LoginSession, 100, 100)
            .await
            .unwrap(),
        6
    );
    assert_eq!(
        store.count_transients(LoginSession, 100, 4).await.unwrap(),
        4,
        "counted no further than the limit"
    );
    assert_eq!(
        store
            .count_transients(LoginSession, 122, 100)
            .await
            .unwrap(),
        3,
        "the ended are not counted"
    );
    let mut live = store.transients(LoginSession, 122).await.unwrap();
    live.sort();
    assert_eq!(
        live,
        [
            (b"ls".to_vec(), b"new".to_vec()),
            (vec![b'm', 3], vec![3]),
            (vec![b'm', 4], vec![4]),
        ]
    );

    // Compare-and-remove.
    assert_eq!(
        store
            .remove_transient(LoginSession, b"ls", b"old")
            .await
            .unwrap(),
        Swap::Conflict
    );
    assert_eq!(
        store
            .remove_transient(LoginSession, b"ls", b"new")
            .await
            .unwrap(),
        Swap::Done
    );
    assert_eq!(
        store.transient(LoginSession, b"ls", 100).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .remove_transient(LoginSession, b"ls", b"new")
            .await
            .unwrap(),
        Swap::Conflict
    );

    // Eviction: the ended only, of every kind. Left: Code k1 (end 260),
    // Interaction k1 (200), LoginSession m0..m4 (120..124).
    assert_eq!(store.evict_transients(122).await.unwrap(), 3);
    assert_eq!(store.evict_transients(122).await.unwrap(), 0);
    assert_eq!(
        store.count_transients(LoginSession, 0, 100).await.unwrap(),
        2,
        "the live ones stay"
    );
    assert!(
        store
            .transient(Interaction, b"k1", 150)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.evict_transients(260).await.unwrap(), 4);
    assert!(store.transients(Code, 0).await.unwrap().is_empty());
    assert!(
        actions(store).await.is_empty(),
        "transient entries are not audited"
    );
}

/// Many writers swapping one transient entry from the same value (a code
/// exchanged at once by many): exactly one wins, and its value is stored.
pub(crate) async fn one_transient_winner(store: Arc<dyn Store>) {
    assert_eq!(
        store
            .put_transient(TransientKind::Code, b"race", b"pending", 1_000, 0)
            .await
            .unwrap(),
        Swap::Done
    );
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let spent = format!("spent by {i}");
                let swap = store
                    .swap_transient(
                        TransientKind::Code,
                        b"race",
                        b"pending",
                        spent.as_bytes(),
                        1_000,
                    )
                    .await
                    .unwrap();
                (swap, spent)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (swap, spent) = t.await.unwrap();
        if swap == Swap::Done {
            winners.push(spent);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        store
            .transient(TransientKind::Code, b"race", 0)
            .await
            .unwrap(),
        Some(winners[0].clone().into_bytes())
    );
}
