//! The built-in user accounts: the people who sign in with a username and
//! a password at the authorization server's login page (the browser
//! flow). An admin creates, lists, reads, re-passwords, disables, enables
//! and deletes them; the login page asks [`Core::check_password`].
//!
//! Every admin operation needs `users:admin` (implied by `admin`) and is
//! audited (`user.created`, `user.password_changed`, `user.disabled`,
//! `user.enabled`, `user.deleted`) with the user id and username as
//! target, never a password or its hash. Passwords are hashed as
//! [`passwords`](super::passwords) says.

use crate::core::error::{Error, Reason};
use crate::core::fields::{check_id, new_id};
use crate::core::passwords::{self, MAX_PASSWORD_BYTES};
use crate::core::principal::{Principal, USERS_ADMIN};
use crate::core::{Core, Credentials, policy};
use crate::secret::Secret;
use crate::store::{Swap, UserRecord, Versioned};
use crate::untrusted::Echo;

/// Longest username, in bytes.
pub(crate) const MAX_USERNAME_LEN: usize = 64;

/// The prefix of user ids.
const USER_ID_PREFIX: &str = "usr_";

/// Whether `s` has the shape of a user id: `usr_` and 22 base62
/// characters.
pub(crate) fn looks_like_user_id(s: &str) -> bool {
    s.len() == USER_ID_PREFIX.len() + 22
        && s.starts_with(USER_ID_PREFIX)
        && s[USER_ID_PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric())
}

/// A username as it is stored: lowercased, then 1 to 64 characters of
/// `a-z 0-9 . _ - @`, and not shaped like a user id (so that "an id or a
/// username" is never ambiguous).
///
/// # Errors
/// INVALID_ARGUMENT naming `field`.
pub(crate) fn normalize_username(field: &'static str, raw: &str) -> Result<String, Error> {
    let name = raw.to_ascii_lowercase();
    let allowed = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-@".contains(&b);
    if name.is_empty() || name.len() > MAX_USERNAME_LEN || !name.bytes().all(allowed) {
        return Err(Error::invalid(
            field,
            format!(
                "username {} must be 1 to {MAX_USERNAME_LEN} characters of a-z 0-9 . _ - @ (upper case is lowered)",
                Echo(raw)
            ),
        ));
    }
    if looks_like_user_id(&name) {
        return Err(Error::invalid(
            field,
            format!(
                "username {} has the shape of a user id ({USER_ID_PREFIX} and 22 characters); choose another",
                Echo(raw)
            ),
        ));
    }
    Ok(name)
}

fn user_not_found(what: &str) -> Error {
    Error::refused(Reason::UserNotFound, format!("no user {}", Echo(what)))
}

fn username_taken(username: &str) -> Error {
    Error::refused(
        Reason::UsernameTaken,
        format!("another user already has the username {}", Echo(username)),
    )
}

/// The one refusal of a failed sign-in, whatever failed.
fn login_failed() -> Error {
    Error::refused(Reason::LoginFailed, "wrong username or password")
}

/// What an audit record names a user by.
fn target(r: &UserRecord) -> String {
    format!("{} ({})", r.user_id, r.username)
}

impl Core {
    async fn user_admin(&self, creds: &Credentials<'_>) -> Result<Principal, Error> {
        let caller = self.authenticate(creds).await?;
        policy::require(&caller, USERS_ADMIN)?;
        Ok(caller)
    }

    /// The user `user_id` names, with its version.
    async fn load_user(&self, user_id: &str) -> Result<Versioned<UserRecord>, Error> {
        check_id("user_id", user_id)?;
        self.store
            .user(user_id)
            .await?
            .ok_or_else(|| user_not_found(user_id))
    }

    /// `CreateUser`: a new enabled user with `username` (lowercased) and
    /// `password`, stored only as its Argon2id hash.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT (the username's
    /// form, the password's length), ALREADY_EXISTS (`USERNAME_TAKEN`),
    /// storage, hashing.
    pub async fn create_user(
        &self,
        creds: &Credentials<'_>,
        username: &str,
        password: Secret,
    ) -> Result<UserRecord, Error> {
        let caller = self.user_admin(creds).await?;
        let username = normalize_username("username", username)?;
        passwords::check_length("password", password.expose())?;
        // Before the costly hash; the insert checks again, atomically.
        if self.store.user_by_name(&username).await?.is_some() {
            return Err(username_taken(&username));
        }
        let password_hash = self.passwords.hash(password).await?;
        let now = self.clock.now();
        // A fresh id is ~131 random bits, so a second try is for form's
        // sake; a taken username is what a conflict means.
        for _ in 0..3 {
            let record = UserRecord {
                user_id: new_id(USER_ID_PREFIX)?,
                username: username.clone(),
                password_hash: password_hash.clone(),
                disabled: false,
                created_at: now,
                updated_at: now,
                password_changed_at: now,
            };
            let audit = self.audit.ok(
                &caller.id,
                "user.created",
                &target(&record),
                creds.request_id,
            );
            match self.store.insert_user(&record, audit).await? {
                Swap::Done => {
                    tracing::info!(user_id = %record.user_id, username = %record.username, "user created");
                    return Ok(record);
                }
                Swap::Conflict => {
                    if self.store.user_by_name(&username).await?.is_some() {
                        return Err(username_taken(&username));
                    }
                }
            }
        }
        Err(username_taken(&username))
    }

    /// `ListUsers`, in username order, never a password hash.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, storage.
    pub async fn list_users(&self, creds: &Credentials<'_>) -> Result<Vec<UserRecord>, Error> {
        self.user_admin(creds).await?;
        Ok(self.store.users().await?)
    }

    /// `GetUser`: the user with id `user_id` or username `username`
    /// (exactly one of them non-empty).
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT, NOT_FOUND
    /// (`USER_NOT_FOUND`), storage.
    pub async fn get_user(
        &self,
        creds: &Credentials<'_>,
        user_id: &str,
        username: &str,
    ) -> Result<UserRecord, Error> {
        self.user_admin(creds).await?;
        match (user_id.is_empty(), username.is_empty()) {
            (false, true) => Ok(self.load_user(user_id).await?.record),
            (true, false) => {
                let name = normalize_username("username", username)?;
                Ok(self
                    .store
                    .user_by_name(&name)
                    .await?
                    .ok_or_else(|| user_not_found(&name))?
                    .record)
            }
            (true, true) => Err(Error::invalid("user_id", "give a user_id or a username")),
            (false, false) => Err(Error::invalid(
                "user_id",
                "give a user_id or a username, not both",
            )),
        }
    }

    /// Applies `change` to user `user_id` (`None`: nothing to change, and
    /// nothing is written), audited as `action` decides: load, decide,
    /// write, again if another writer came first.
    async fn change_user(
        &self,
        creds: &Credentials<'_>,
        caller: &Principal,
        user_id: &str,
        change: impl Fn(&UserRecord) -> Option<(UserRecord, &'static str)>,
    ) -> Result<UserRecord, Error> {
        loop {
            let current = self.load_user(user_id).await?;
            let Some((new, action)) = change(&current.record) else {
                return Ok(current.record);
            };
            let audit = self
                .audit
                .ok(&caller.id, action, &target(&new), creds.request_id);
            if self.store.replace_user(&current, &new, audit).await? == Swap::Done {
                tracing::info!(user_id = %new.user_id, username = %new.username, action, "user changed");
                return Ok(new);
            }
        }
    }

    /// `SetPassword`: the user's password becomes `password` (8 to 1024
    /// bytes), audited as `user.password_changed`. Every browser signed in
    /// as the user signs in again; the user's OAuth sessions go on.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT, NOT_FOUND
    /// (`USER_NOT_FOUND`), storage, hashing.
    pub async fn set_password(
        &self,
        creds: &Credentials<'_>,
        user_id: &str,
        password: Secret,
    ) -> Result<UserRecord, Error> {
        let caller = self.user_admin(creds).await?;
        passwords::check_length("password", password.expose())?;
        // A user that does not exist is refused before the costly hash.
        self.load_user(user_id).await?;
        let password_hash = self.passwords.hash(password).await?;
        let now = self.clock.now();
        let changed = self
            .change_user(creds, &caller, user_id, |old| {
                let mut r = old.clone();
                r.password_hash.clone_from(&password_hash);
                r.password_changed_at = now;
                r.updated_at = now;
                Some((r, "user.password_changed"))
            })
            .await?;
        self.sign_out_everywhere(user_id).await?;
        Ok(changed)
    }

    /// Ends everything a user who can no longer sign in still holds: the
    /// browsers signed in as the user, and the user's sessions (tokens
    /// REVOKED at once, refresh refused).
    async fn end_user_sessions(
        &self,
        creds: &Credentials<'_>,
        actor: &str,
        user_id: &str,
    ) -> Result<(), Error> {
        self.sign_out_everywhere(user_id).await?;
        let filter = crate::store::SessionFilter {
            subject: Some(user_id.to_owned()),
            client_id: None,
        };
        let n = self
            .revoke_sessions_matching(actor, &filter, &format!("user {user_id}"), creds.request_id)
            .await?;
        if n > 0 {
            tracing::info!(user_id, sessions = n, "a user's sessions revoked");
        }
        Ok(())
    }

    /// `SetUserDisabled`: a disabled user cannot sign in, and what it held
    /// ends (its browsers' sign-ins and its sessions); enabling it again
    /// lets it sign in. Audited as `user.disabled` or `user.enabled`; a
    /// user already so is returned as it is, and nothing is written.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT, NOT_FOUND
    /// (`USER_NOT_FOUND`), storage.
    pub async fn set_user_disabled(
        &self,
        creds: &Credentials<'_>,
        user_id: &str,
        disabled: bool,
    ) -> Result<UserRecord, Error> {
        let caller = self.user_admin(creds).await?;
        let now = self.clock.now();
        let user = self
            .change_user(creds, &caller, user_id, |old| {
                if old.disabled == disabled {
                    return None;
                }
                let mut r = old.clone();
                r.disabled = disabled;
                r.updated_at = now;
                let action = if disabled {
                    "user.disabled"
                } else {
                    "user.enabled"
                };
                Some((r, action))
            })
            .await?;
        if disabled {
            self.end_user_sessions(creds, &caller.id, user_id).await?;
        }
        Ok(user)
    }

    /// `DeleteUser`: the user is gone and its username free; its
    /// browsers' sign-ins and its sessions end. Returns the deleted user.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT, NOT_FOUND
    /// (`USER_NOT_FOUND`), storage.
    pub async fn delete_user(
        &self,
        creds: &Credentials<'_>,
        user_id: &str,
    ) -> Result<UserRecord, Error> {
        let caller = self.user_admin(creds).await?;
        loop {
            let current = self.load_user(user_id).await?;
            let audit = self.audit.ok(
                &caller.id,
                "user.deleted",
                &target(&current.record),
                creds.request_id,
            );
            if self.store.delete_user(&current, audit).await? == Swap::Done {
                tracing::info!(user_id, username = %current.record.username, "user deleted");
                self.end_user_sessions(creds, &caller.id, user_id).await?;
                return Ok(current.record);
            }
        }
    }

    /// Signs a user in by username and password, for the login page:
    /// the user, if the password is theirs and they are enabled.
    ///
    /// An unknown username, a wrong password and a disabled user get the
    /// same refusal, and take the same time: an unknown user's password
    /// is checked against a dummy hash of the same cost, and a disabled
    /// user is refused only after their password checked out. The true
    /// cause is logged at info (never the password, and not the username
    /// that matched no user, which may be a password typed in the wrong
    /// field).
    ///
    /// # Errors
    /// UNAUTHENTICATED (`LOGIN_FAILED`); storage or hashing failures.
    pub async fn check_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<UserRecord, Error> {
        if password.len() > MAX_PASSWORD_BYTES {
            // No stored password is this long; nothing about any user
            // shows in answering at once.
            tracing::info!(cause = "password too long", "sign-in refused");
            return Err(login_failed());
        }
        let found = match normalize_username("username", username) {
            Ok(name) => self.store.user_by_name(&name).await?.map(|v| v.record),
            Err(_) => None,
        };
        let matched = self
            .passwords
            .verify(
                Secret::new(password),
                found.as_ref().map(|u| u.password_hash.clone()),
            )
            .await?;
        let Some(user) = found else {
            tracing::info!(cause = "unknown username", "sign-in refused");
            return Err(login_failed());
        };
        if !matched {
            tracing::info!(user_id = %user.user_id, username = %user.username, cause = "wrong password", "sign-in refused");
            return Err(login_failed());
        }
        if user.disabled {
            tracing::info!(user_id = %user.user_id, username = %user.username, cause = "user disabled", "sign-in refused");
            return Err(login_failed());
        }
        tracing::info!(user_id = %user.user_id, username = %user.username, "signed in");
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::clock::Clock;
    use crate::config::Config;
    use crate::store::Durability;

    const NOW: i64 = 1_800_000_000;

    async fn open(dir: &std::path::Path, clock: &Clock) -> (Core, String) {
        let config = Config::for_test(dir).unwrap();
        let store = crate::store::open(dir, Durability::Durable).unwrap();
        let (core, primary) = Core::open(store, clock.clone(), &config).await.unwrap();
        (core, format!("Bearer {}", primary.unwrap().expose()))
    }

    fn creds(authorization: &str) -> Credentials<'_> {
        Credentials {
            authorization: Some(authorization),
            authorization_count: 1,
            ..Credentials::default()
        }
    }

    #[test]
    fn usernames_are_lowercased_and_checked() {
        assert_eq!(
            normalize_username("username", "Alice.Smith@Example.COM").unwrap(),
            "alice.smith@example.com"
        );
        assert_eq!(normalize_username("username", "a_b-c9").unwrap(), "a_b-c9");
        assert_eq!(
            normalize_username("username", &"x".repeat(64))
                .unwrap()
                .len(),
            64
        );
        for bad in ["", "a b", "alice\n", "ålice", "a/b", "a+b", &"x".repeat(65)] {
            let err = normalize_username("username", bad).unwrap_err();
            assert_eq!(err.reason(), Reason::InvalidField, "{bad:?}");
        }
        let id = new_id(USER_ID_PREFIX).unwrap();
        assert!(looks_like_user_id(&id));
        assert!(
            normalize_username("username", "usr_abcdefghijklmnopqrstuv").is_err(),
            "shaped like an id"
        );
        assert!(normalize_username("username", "usr_alice").is_ok());
    }

    #[tokio::test]
    async fn check_password_gives_one_answer_for_every_failure() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(NOW);
        let (core, admin) = open(dir.path(), &clock).await;
        let alice = core
            .create_user(
                &creds(&admin),
                "Alice",
                Secret::new("correct horse battery"),
            )
            .await
            .unwrap();
        assert_eq!(alice.username, "alice");
        assert!(alice.password_hash.starts_with("$argon2id$"));

        let ok = core
            .check_password("ALICE", "correct horse battery")
            .await
            .unwrap();
        assert_eq!(ok.user_id, alice.user_id);

        let refusals = [
            core.check_password("alice", "wrong horse battery").await,
            core.check_password("nobody", "correct horse battery").await,
            core.check_password("not a username!", "correct horse battery")
                .await,
            core.check_password("alice", &"x".repeat(MAX_PASSWORD_BYTES + 1))
                .await,
        ];
        for r in refusals {
            let err = r.unwrap_err();
            assert_eq!(err.reason(), Reason::LoginFailed);
            assert_eq!(err.to_string(), "wrong username or password");
        }

        core.set_user_disabled(&creds(&admin), &alice.user_id, true)
            .await
            .unwrap();
        let err = core
            .check_password("alice", "correct horse battery")
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::LoginFailed, "disabled");
        assert_eq!(err.to_string(), "wrong username or password");
        core.set_user_disabled(&creds(&admin), &alice.user_id, false)
            .await
            .unwrap();
        core.check_password("alice", "correct horse battery")
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_unknown_user_costs_what_a_wrong_password_does() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(NOW);
        let (core, admin) = open(dir.path(), &clock).await;
        core.create_user(&creds(&admin), "bob", Secret::new("a long password"))
            .await
            .unwrap();
        let time = |username: &'static str| {
            let core = &core;
            async move {
                let mut best = Duration::MAX;
                for _ in 0..3 {
                    let started = Instant::now();
                    let _ = core.check_password(username, "not the password").await;
                    best = best.min(started.elapsed());
                }
                best
            }
        };
        let wrong = time("bob").await;
        let unknown = time("nobody").await;
        // Both run one Argon2id check at the same parameters; a shortcut
        // for unknown users would take a small fraction of the time.
        let (short, long) = (wrong.min(unknown), wrong.max(unknown));
        assert!(
            long < short * 4,
            "wrong password {wrong:?}, unknown user {unknown:?}"
        );
    }

    #[tokio::test]
    async fn passwords_are_replaced_and_usernames_freed() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(NOW);
        let (core, admin) = open(dir.path(), &clock).await;
        let carol = core
            .create_user(&creds(&admin), "carol", Secret::new("first password"))
            .await
            .unwrap();
        let err = core
            .create_user(&creds(&admin), "CAROL", Secret::new("other password"))
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::UsernameTaken);
        let err = core
            .create_user(&creds(&admin), "dave", Secret::new("short"))
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::InvalidField);
        assert!(!err.to_string().contains("short"), "{err}");

        clock.advance(Duration::from_secs(10));
        let changed = core
            .set_password(
                &creds(&admin),
                &carol.user_id,
                Secret::new("second password"),
            )
            .await
            .unwrap();
        assert_eq!(changed.password_changed_at, NOW + 10);
        assert_ne!(changed.password_hash, carol.password_hash);
        assert!(
            core.check_password("carol", "first password")
                .await
                .is_err()
        );
        core.check_password("carol", "second password")
            .await
            .unwrap();

        let unchanged = core
            .set_user_disabled(&creds(&admin), &carol.user_id, false)
            .await
            .unwrap();
        assert_eq!(unchanged.updated_at, NOW + 10, "nothing to change");

        let gone = core
            .delete_user(&creds(&admin), &carol.user_id)
            .await
            .unwrap();
        assert_eq!(gone.user_id, carol.user_id);
        let err = core
            .get_user(&creds(&admin), &carol.user_id, "")
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::UserNotFound);
        core.create_user(&creds(&admin), "carol", Secret::new("third password"))
            .await
            .unwrap();

        let actions: Vec<String> = core
            .store
            .audit_page(0, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.action)
            .filter(|a| a.starts_with("user."))
            .collect();
        assert_eq!(
            actions,
            [
                "user.created",
                "user.password_changed",
                "user.deleted",
                "user.created"
            ]
        );
    }
}
