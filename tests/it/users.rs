//! The built-in user accounts over the real server: `UserService` with
//! its codes and reasons, `mcp-auth user ...` through the real binary,
//! signing in with `Core::check_password` (as the login page will), what
//! survives a restart, and that a password reaches neither the audit
//! trail, nor the logs, nor the data directory in the clear.

use std::process::Stdio;
use std::time::Duration;

use mcp_auth::grpc::client::Client;
use mcp_auth::pb;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tonic::{Code, Status};

use crate::common::{TestServer, assert_status, connect};

/// A password no test output would hold by chance.
const PASSWORD: &str = "Tr0ub4dor&3-horse-staple";
const NEW_PASSWORD: &str = "correct-horse-battery-9";

fn create(username: &str, password: &str) -> pb::CreateUserRequest {
    pb::CreateUserRequest {
        username: username.to_owned(),
        password: password.to_owned(),
    }
}

fn by_id(user_id: &str) -> pb::GetUserRequest {
    pb::GetUserRequest {
        user_id: user_id.to_owned(),
        username: String::new(),
    }
}

fn by_name(username: &str) -> pb::GetUserRequest {
    pb::GetUserRequest {
        user_id: String::new(),
        username: username.to_owned(),
    }
}

async fn add(admin: &Client, username: &str, password: &str) -> pb::User {
    admin
        .create_user(create(username, password))
        .await
        .unwrap()
        .user
        .unwrap()
}

async fn disable(admin: &Client, user_id: &str, disabled: bool) -> pb::User {
    admin
        .set_user_disabled(pb::SetUserDisabledRequest {
            user_id: user_id.to_owned(),
            disabled,
        })
        .await
        .unwrap()
}

/// The refusal `check_password` gives, as gRPC would send it.
async fn sign_in(server: &TestServer, username: &str, password: &str) -> Result<String, Status> {
    server
        .core()
        .check_password(username, password)
        .await
        .map(|u| u.user_id)
        .map_err(Status::from)
}

#[tokio::test]
async fn users_are_created_read_changed_and_deleted_over_grpc() {
    let server = TestServer::start().await;
    let admin = server.client(&server.primary).await;

    let alice = add(&admin, "Alice@Example.com", PASSWORD).await;
    assert!(alice.user_id.starts_with("usr_"), "{alice:?}");
    assert_eq!(alice.user_id.len(), 26);
    assert_eq!(alice.username, "alice@example.com", "lowercased");
    assert!(!alice.disabled);
    assert_eq!(alice.created_at, server.clock.now());
    assert_eq!(alice.password_changed_at, alice.created_at);
    let bob = add(&admin, "bob", PASSWORD).await;

    // Listed in username order; read by id or by username in any case.
    let list = admin.list_users(pb::ListUsersRequest {}).await.unwrap();
    let names: Vec<_> = list.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["alice@example.com", "bob"]);
    assert_eq!(admin.get_user(by_id(&bob.user_id)).await.unwrap(), bob);
    assert_eq!(admin.get_user(by_name("BOB")).await.unwrap(), bob);

    // A taken username, whatever its case.
    let err = admin
        .create_user(create("ALICE@example.com", PASSWORD))
        .await;
    assert_status(&err.unwrap_err(), Code::AlreadyExists, "USERNAME_TAKEN");

    // Passwords of 8 to 1024 bytes; usernames of the documented form.
    for (username, password, field) in [
        ("carol", "short", "password"),
        ("carol", "", "password"),
        ("carol", &"x".repeat(1025) as &str, "password"),
        ("carol smith", PASSWORD, "username"),
        ("", PASSWORD, "username"),
        ("usr_abcdefghijklmnopqrstuv", PASSWORD, "username"),
    ] {
        let err = admin
            .create_user(create(username, password))
            .await
            .unwrap_err();
        let meta = assert_status(&err, Code::InvalidArgument, "INVALID_FIELD");
        assert_eq!(meta["field"], field, "{username:?}");
        if !password.is_empty() {
            assert!(!err.message().contains(password), "{err:?}");
        }
    }
    let err = admin
        .set_password(pb::SetPasswordRequest {
            user_id: bob.user_id.clone(),
            password: "1234567".to_owned(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::InvalidArgument, "INVALID_FIELD");
    let err = admin
        .get_user(pb::GetUserRequest {
            user_id: bob.user_id.clone(),
            username: "bob".to_owned(),
        })
        .await
        .unwrap_err();
    assert_status(&err, Code::InvalidArgument, "INVALID_FIELD");

    // A new password, a later time.
    server.clock.advance(Duration::from_secs(30));
    let changed = admin
        .set_password(pb::SetPasswordRequest {
            user_id: bob.user_id.clone(),
            password: NEW_PASSWORD.to_owned(),
        })
        .await
        .unwrap();
    assert_eq!(changed.password_changed_at, bob.created_at + 30);
    assert_eq!(changed.updated_at, bob.created_at + 30);

    // Disabled and enabled again.
    assert!(disable(&admin, &bob.user_id, true).await.disabled);
    assert!(admin.get_user(by_id(&bob.user_id)).await.unwrap().disabled);
    assert!(!disable(&admin, &bob.user_id, false).await.disabled);

    // Deleted: gone by id and by name, the username free again.
    let gone = admin
        .delete_user(pb::DeleteUserRequest {
            user_id: bob.user_id.clone(),
        })
        .await
        .unwrap();
    assert_eq!(gone.user.unwrap().user_id, bob.user_id);
    for err in [
        admin.get_user(by_id(&bob.user_id)).await.unwrap_err(),
        admin.get_user(by_name("bob")).await.unwrap_err(),
        admin
            .set_password(pb::SetPasswordRequest {
                user_id: bob.user_id.clone(),
                password: NEW_PASSWORD.to_owned(),
            })
            .await
            .unwrap_err(),
        admin
            .set_user_disabled(pb::SetUserDisabledRequest {
                user_id: bob.user_id.clone(),
                disabled: true,
            })
            .await
            .unwrap_err(),
        admin
            .delete_user(pb::DeleteUserRequest {
                user_id: bob.user_id.clone(),
            })
            .await
            .unwrap_err(),
    ] {
        assert_status(&err, Code::NotFound, "USER_NOT_FOUND");
    }
    let again = add(&admin, "bob", PASSWORD).await;
    assert_ne!(again.user_id, bob.user_id);

    let actions: Vec<String> = admin
        .list_audit_events(pb::ListAuditEventsRequest {
            since: 0,
            actor: String::new(),
            action: String::new(),
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .events
        .into_iter()
        .filter(|e| e.action.starts_with("user."))
        .map(|e| format!("{} {}", e.action, e.target))
        .collect();
    assert_eq!(
        actions,
        [
            format!("user.created {} (alice@example.com)", alice.user_id),
            format!("user.created {} (bob)", bob.user_id),
            format!("user.password_changed {} (bob)", bob.user_id),
            format!("user.disabled {} (bob)", bob.user_id),
            format!("user.enabled {} (bob)", bob.user_id),
            format!("user.deleted {} (bob)", bob.user_id),
            format!("user.created {} (bob)", again.user_id),
        ]
    );
}

#[tokio::test]
async fn managing_users_needs_users_admin() {
    let server = TestServer::start().await;
    let admin = server.client(&server.primary).await;
    let alice = add(&admin, "alice", PASSWORD).await;

    let (_, delegated) = server.key_with(&["users:admin"]).await;
    let delegated = server.client(&delegated).await;
    add(&delegated, "bob", PASSWORD).await;
    delegated.list_users(pb::ListUsersRequest {}).await.unwrap();

    for scopes in [&["clients:admin"][..], &["keys:admin", "sessions:create"]] {
        let (_, key) = server.key_with(scopes).await;
        let weak = server.client(&key).await;
        let refusals = [
            weak.create_user(create("carol", PASSWORD))
                .await
                .unwrap_err(),
            weak.list_users(pb::ListUsersRequest {}).await.unwrap_err(),
            weak.get_user(by_id(&alice.user_id)).await.unwrap_err(),
            weak.set_password(pb::SetPasswordRequest {
                user_id: alice.user_id.clone(),
                password: NEW_PASSWORD.to_owned(),
            })
            .await
            .unwrap_err(),
            weak.set_user_disabled(pb::SetUserDisabledRequest {
                user_id: alice.user_id.clone(),
                disabled: true,
            })
            .await
            .unwrap_err(),
            weak.delete_user(pb::DeleteUserRequest {
                user_id: alice.user_id.clone(),
            })
            .await
            .unwrap_err(),
        ];
        for err in refusals {
            let meta = assert_status(&err, Code::PermissionDenied, "INSUFFICIENT_SCOPE");
            assert_eq!(meta["scope"], "users:admin", "{scopes:?}");
        }
    }
    let no_key = server.client("mcp_sk_nope").await;
    let err = no_key
        .list_users(pb::ListUsersRequest {})
        .await
        .unwrap_err();
    assert_status(&err, Code::Unauthenticated, "API_KEY_INVALID");
    let names = admin.list_users(pb::ListUsersRequest {}).await.unwrap();
    assert_eq!(names.users.len(), 2, "nothing changed");
}

#[tokio::test]
async fn signing_in_refuses_unknown_users_wrong_passwords_and_disabled_users_alike() {
    let server = TestServer::start().await;
    let admin = server.client(&server.primary).await;
    let alice = add(&admin, "alice", PASSWORD).await;

    assert_eq!(
        sign_in(&server, "alice", PASSWORD).await.unwrap(),
        alice.user_id
    );
    assert_eq!(
        sign_in(&server, "ALICE", PASSWORD).await.unwrap(),
        alice.user_id,
        "usernames are not case-sensitive"
    );

    let wrong = sign_in(&server, "alice", NEW_PASSWORD).await.unwrap_err();
    let unknown = sign_in(&server, "mallory", PASSWORD).await.unwrap_err();
    let malformed = sign_in(&server, "not a name", PASSWORD).await.unwrap_err();
    for err in [&wrong, &unknown, &malformed] {
        assert_status(err, Code::Unauthenticated, "LOGIN_FAILED");
        assert_eq!(err.message(), wrong.message(), "one answer for every cause");
    }

    disable(&admin, &alice.user_id, true).await;
    let disabled = sign_in(&server, "alice", PASSWORD).await.unwrap_err();
    assert_status(&disabled, Code::Unauthenticated, "LOGIN_FAILED");
    assert_eq!(disabled.message(), wrong.message());
    disable(&admin, &alice.user_id, false).await;
    sign_in(&server, "alice", PASSWORD).await.unwrap();

    admin
        .set_password(pb::SetPasswordRequest {
            user_id: alice.user_id.clone(),
            password: NEW_PASSWORD.to_owned(),
        })
        .await
        .unwrap();
    let old = sign_in(&server, "alice", PASSWORD).await.unwrap_err();
    assert_status(&old, Code::Unauthenticated, "LOGIN_FAILED");
    sign_in(&server, "alice", NEW_PASSWORD).await.unwrap();

    admin
        .delete_user(pb::DeleteUserRequest {
            user_id: alice.user_id.clone(),
        })
        .await
        .unwrap();
    let deleted = sign_in(&server, "alice", NEW_PASSWORD).await.unwrap_err();
    assert_status(&deleted, Code::Unauthenticated, "LOGIN_FAILED");
}

#[tokio::test]
async fn users_and_their_passwords_survive_a_restart() {
    let mut server = TestServer::start().await;
    let admin = server.client(&server.primary).await;
    let alice = add(&admin, "alice", PASSWORD).await;
    let bob = add(&admin, "bob", PASSWORD).await;
    admin
        .set_password(pb::SetPasswordRequest {
            user_id: alice.user_id.clone(),
            password: NEW_PASSWORD.to_owned(),
        })
        .await
        .unwrap();
    let bob = disable(&admin, &bob.user_id, true).await;
    let before = admin.list_users(pb::ListUsersRequest {}).await.unwrap();

    server.restart().await;
    let admin = server.client(&server.primary).await;
    let after = admin.list_users(pb::ListUsersRequest {}).await.unwrap();
    assert_eq!(after, before);
    assert_eq!(admin.get_user(by_name("bob")).await.unwrap(), bob);
    assert_eq!(
        sign_in(&server, "alice", NEW_PASSWORD).await.unwrap(),
        alice.user_id
    );
    let err = sign_in(&server, "bob", PASSWORD).await.unwrap_err();
    assert_status(&err, Code::Unauthenticated, "LOGIN_FAILED");
    let err = admin.create_user(create("alice", PASSWORD)).await;
    assert_status(&err.unwrap_err(), Code::AlreadyExists, "USERNAME_TAKEN");
}

/// Runs `mcp-auth ARGS` as admin with `stdin` on standard input: (exit
/// code, stdout, stderr).
async fn cli_with_stdin(server: &TestServer, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = server
        .cli_command(Some(&server.primary), args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_users_with_password_stdin() {
    let server = TestServer::start().await;
    let admin = Some(server.primary.as_str());

    let line = format!("{PASSWORD}\n");
    let (code, out, err) = cli_with_stdin(
        &server,
        &["user", "add", "Alice", "--password-stdin", "--json"],
        &line,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let created = json(&out);
    let user_id = created["user"]["user_id"].as_str().unwrap().to_owned();
    assert_eq!(created["user"]["username"], "alice");
    assert!(!out.contains(PASSWORD) && !err.contains(PASSWORD));
    assert!(!out.contains("argon2"), "{out}");
    assert_eq!(
        sign_in(&server, "alice", PASSWORD).await.unwrap(),
        user_id,
        "the line ending is not part of the password"
    );

    // Text output.
    let (code, out, err) = cli_with_stdin(
        &server,
        &["user", "add", "bob", "--password-stdin"],
        &format!("{PASSWORD}\r\n"),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("username:          bob") && out.contains("status:            enabled"),
        "{out}"
    );
    sign_in(&server, "bob", PASSWORD).await.unwrap();

    let (code, out, err) = server.cli(admin, &["user", "list"]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("USER ID"), "{out}");
    assert!(
        lines[1].contains("alice") && lines[2].contains("bob"),
        "{out}"
    );
    let (_, out, _) = server.cli(admin, &["user", "list", "--json"]).await;
    assert_eq!(json(&out).as_array().unwrap().len(), 2);
    let (_, out, _) = server
        .cli(admin, &["user", "list", "--field", "username"])
        .await;
    assert_eq!(out, "alice\nbob\n");

    // Named by username or by id, alike.
    let (code, by_name, err) = server
        .cli(admin, &["user", "show", "alice", "--json"])
        .await;
    assert_eq!(code, 0, "{err}");
    let (_, by_id, _) = server
        .cli(admin, &["user", "show", &user_id, "--json"])
        .await;
    assert_eq!(json(&by_name), json(&by_id));
    assert_eq!(json(&by_id)["user_id"], user_id.as_str());

    let (code, out, err) = cli_with_stdin(
        &server,
        &["user", "passwd", "alice", "--password-stdin"],
        &format!("{NEW_PASSWORD}\n"),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("changed the password of alice"), "{out}");
    sign_in(&server, "alice", NEW_PASSWORD).await.unwrap();
    assert!(sign_in(&server, "alice", PASSWORD).await.is_err());

    let (code, out, err) = server.cli(admin, &["user", "disable", "alice"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is disabled"), "{out}");
    assert!(sign_in(&server, "alice", NEW_PASSWORD).await.is_err());
    let (code, out, err) = server
        .cli(admin, &["user", "enable", &user_id, "--field", "disabled"])
        .await;
    assert_eq!((code, out.as_str()), (0, "false\n"), "{err}");
    sign_in(&server, "alice", NEW_PASSWORD).await.unwrap();

    let (code, out, err) = server.cli(admin, &["user", "delete", "alice"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("deleted user alice ({user_id})")),
        "{out}"
    );

    // Refusals, in the canonical form.
    let (code, _, err) = server.cli(admin, &["user", "show", "alice"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("NOT_FOUND [USER_NOT_FOUND]"), "{err}");
    let (code, _, err) =
        cli_with_stdin(&server, &["user", "add", "bob", "--password-stdin"], &line).await;
    assert_eq!(code, 1);
    assert!(err.contains("ALREADY_EXISTS [USERNAME_TAKEN]"), "{err}");
    let (code, _, err) = cli_with_stdin(
        &server,
        &["user", "add", "carol", "--password-stdin"],
        "short\n",
    )
    .await;
    assert_eq!(code, 1);
    assert!(err.contains("INVALID_ARGUMENT [INVALID_FIELD]"), "{err}");
    assert!(!err.contains("short\n"), "{err}");
    let (code, _, err) =
        cli_with_stdin(&server, &["user", "add", "carol", "--password-stdin"], "").await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("standard input is empty"), "{err}");
    // Without --password-stdin and without a terminal: no prompt, a hint.
    let (code, _, err) = server.cli(admin, &["user", "add", "carol"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--password-stdin"), "{err}");
}

/// Every file under `dir`, read whole.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// The real binary, logging everything of its own at trace level: users
/// are created, re-passworded, refused and deleted through the CLI; then
/// neither its log, nor the audit trail, nor the data directory holds a
/// password in the clear (the audit trail holds no hash either).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_reach_the_audit_trail_the_logs_or_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"))
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .env_clear()
        .env("MCP_AUTH_LOG", "trace")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = loop {
        let line = stdout
            .next_line()
            .await
            .unwrap()
            .expect("server exited early");
        if let Some(url) = line.strip_prefix("mcp-auth listening on ") {
            break url.to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
    let mut stderr = child.stderr.take().unwrap();
    let log = tokio::spawn(async move {
        let mut all = Vec::new();
        let _ = stderr.read_to_end(&mut all).await;
        all
    });
    let primary = std::fs::read_to_string(dir.path().join("primary.key"))
        .unwrap()
        .trim()
        .to_owned();
    let ca = dir.path().join("tls").join("ca.pem");
    let cli = |args: &[&str], stdin: &str| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-auth"));
        cmd.args(args)
            .env_clear()
            .env("MCP_AUTH_SERVER", &url)
            .env("MCP_AUTH_CA", &ca)
            .env("MCP_AUTH_API_KEY", &primary)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let stdin = stdin.to_owned();
        async move {
            let mut child = cmd.spawn().unwrap();
            let mut input = child.stdin.take().unwrap();
            input.write_all(stdin.as_bytes()).await.unwrap();
            drop(input);
            let out = child.wait_with_output().await.unwrap();
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8(out.stdout).unwrap() + &String::from_utf8(out.stderr).unwrap(),
            )
        }
    };
    let line = format!("{PASSWORD}\n");
    let new_line = format!("{NEW_PASSWORD}\n");
    let short = "Sh0rt!x";
    for (args, stdin, want) in [
        (
            &["user", "add", "alice", "--password-stdin"][..],
            line.as_str(),
            0,
        ),
        (&["user", "add", "alice", "--password-stdin"], &line, 1),
        (
            &["user", "add", "bob", "--password-stdin"],
            &format!("{short}\n"),
            1,
        ),
        (
            &["user", "passwd", "alice", "--password-stdin"],
            &new_line,
            0,
        ),
        (&["user", "disable", "alice"], "", 0),
        (&["user", "add", "carol", "--password-stdin"], &line, 0),
        (&["user", "delete", "carol"], "", 0),
    ] {
        let (code, out) = cli(args, stdin).await;
        assert_eq!(code, want, "{args:?}: {out}");
        for secret in [PASSWORD, NEW_PASSWORD, short] {
            assert!(!out.contains(secret), "{args:?} printed a password: {out}");
        }
    }

    // The audit trail: every change recorded, no password, no hash.
    let channel = connect(&url, &ca).await;
    let admin = Client::from_channel(channel, Some(primary.clone())).unwrap();
    let events = admin
        .list_audit_events(pb::ListAuditEventsRequest {
            since: 0,
            actor: String::new(),
            action: String::new(),
            page_size: 1000,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .events;
    let user_actions: Vec<&str> = events
        .iter()
        .map(|e| e.action.as_str())
        .filter(|a| a.starts_with("user."))
        .collect();
    assert_eq!(
        user_actions,
        [
            "user.created",
            "user.password_changed",
            "user.disabled",
            "user.created",
            "user.deleted"
        ]
    );
    let trail = serde_json::to_string(&events).unwrap();
    for secret in [PASSWORD, NEW_PASSWORD, short, "$argon2"] {
        assert!(!trail.contains(secret), "the audit trail holds {secret}");
    }

    // The server's own log, at trace level.
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let log = tokio::time::timeout(Duration::from_secs(10), log)
        .await
        .expect("the log did not end")
        .unwrap();
    let log = String::from_utf8_lossy(&log);
    assert!(log.contains("user created"), "the log was captured");
    for secret in [PASSWORD, NEW_PASSWORD, short, "$argon2"] {
        assert!(!log.contains(secret), "the log holds {secret}");
    }

    // The data directory: hashes only.
    let files = files_under(dir.path());
    assert!(
        files
            .iter()
            .any(|(_, bytes)| contains(bytes, "$argon2id$v=19$m=19456,t=2,p=1$")),
        "the hashes are stored"
    );
    for (path, bytes) in &files {
        for secret in [PASSWORD, NEW_PASSWORD, short] {
            assert!(
                !contains(bytes, secret),
                "{} holds a password",
                path.display()
            );
        }
    }
}
