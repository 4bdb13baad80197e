//! `mcp-auth user ...`: add, list, show, re-password, disable, enable and
//! delete the built-in user accounts. A user is named by its id
//! (`usr_...`) or its username. Passwords are read from the terminal
//! without echo (asked twice), or with `--password-stdin` as one line of
//! standard input; never from a flag, which would land in shell history.

use std::io::{BufRead, IsTerminal};

use super::output::time;
use super::{CliError, GlobalOpts, Output, UserCommand};
use crate::core::users::looks_like_user_id;
use crate::grpc::client::Client;
use crate::pb;
use crate::secret::Secret;

/// Runs a `user` subcommand.
pub(super) async fn run(cmd: UserCommand, opts: &GlobalOpts, out: &Output) -> Result<u8, CliError> {
    match cmd {
        UserCommand::Add {
            username,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            let resp = opts
                .client()
                .await?
                .create_user(pb::CreateUserRequest {
                    username,
                    password: password.expose().to_owned(),
                })
                .await?;
            out.print(&resp, |resp| {
                if let Some(u) = &resp.user {
                    print_user(u);
                }
            })?;
        }
        UserCommand::List => {
            let resp = opts
                .client()
                .await?
                .list_users(pb::ListUsersRequest {})
                .await?;
            out.print_list(&resp.users, |users| {
                outln!(
                    "{:<26} {:<32} {:<9} PASSWORD CHANGED",
                    "USER ID",
                    "USERNAME",
                    "STATUS"
                );
                for u in users {
                    outln!(
                        "{:<26} {:<32} {:<9} {}",
                        u.user_id,
                        u.username,
                        status(u),
                        time(u.password_changed_at)
                    );
                }
            })?;
        }
        UserCommand::Show { user } => {
            let u = find(&opts.client().await?, &user).await?;
            out.print(&u, print_user)?;
        }
        UserCommand::Passwd {
            user,
            password_stdin,
        } => {
            let client = opts.client().await?;
            let user_id = user_id(&client, &user).await?;
            let password = read_password(password_stdin)?;
            let u = client
                .set_password(pb::SetPasswordRequest {
                    user_id,
                    password: password.expose().to_owned(),
                })
                .await?;
            out.print(&u, |u| {
                outln!("changed the password of {} ({})", u.username, u.user_id);
            })?;
        }
        UserCommand::Disable { user } => set_disabled(opts, out, &user, true).await?,
        UserCommand::Enable { user } => set_disabled(opts, out, &user, false).await?,
        UserCommand::Delete { user } => {
            let client = opts.client().await?;
            let user_id = user_id(&client, &user).await?;
            let resp = client
                .delete_user(pb::DeleteUserRequest { user_id })
                .await?;
            out.print(&resp, |resp| {
                if let Some(u) = &resp.user {
                    outln!("deleted user {} ({})", u.username, u.user_id);
                }
            })?;
        }
        UserCommand::Consents { user } => {
            let client = opts.client().await?;
            let user_id = user_id(&client, &user).await?;
            let resp = client
                .list_consents(pb::ListConsentsRequest {
                    user_id,
                    username: String::new(),
                })
                .await?;
            out.print_list(&resp.consents, |consents| {
                outln!("{:<40} {:<30} RESOURCES", "CLIENT", "SCOPES");
                for c in consents {
                    outln!(
                        "{:<40} {:<30} {}",
                        c.client_id,
                        c.scopes.join(","),
                        c.resources.join(",")
                    );
                }
            })?;
        }
        UserCommand::RevokeConsent { user, client_id } => {
            let client = opts.client().await?;
            let user_id = user_id(&client, &user).await?;
            let resp = client
                .revoke_consent(pb::RevokeConsentRequest {
                    user_id,
                    username: String::new(),
                    client_id,
                })
                .await?;
            out.print(&resp, |resp| {
                outln!(
                    "consent withdrawn; sessions revoked: {}",
                    resp.sessions_revoked
                );
            })?;
        }
    }
    Ok(0)
}

async fn set_disabled(
    opts: &GlobalOpts,
    out: &Output,
    user: &str,
    disabled: bool,
) -> Result<(), CliError> {
    let client = opts.client().await?;
    let user_id = user_id(&client, user).await?;
    let u = client
        .set_user_disabled(pb::SetUserDisabledRequest { user_id, disabled })
        .await?;
    out.print(&u, |u| {
        outln!("user {} ({}) is {}", u.username, u.user_id, status(u));
    })
}

/// The user `user` names: by id if it has the shape of one (no username
/// has), else by username.
async fn find(client: &Client, user: &str) -> Result<pb::User, CliError> {
    let request = if looks_like_user_id(user) {
        pb::GetUserRequest {
            user_id: user.to_owned(),
            username: String::new(),
        }
    } else {
        pb::GetUserRequest {
            user_id: String::new(),
            username: user.to_owned(),
        }
    };
    Ok(client.get_user(request).await?)
}

/// The id of the user `user` names (asking the server only for a
/// username).
async fn user_id(client: &Client, user: &str) -> Result<String, CliError> {
    if looks_like_user_id(user) {
        Ok(user.to_owned())
    } else {
        Ok(find(client, user).await?.user_id)
    }
}

/// The new password: one line of standard input with `from_stdin`, else
/// typed twice at the terminal without echo.
fn read_password(from_stdin: bool) -> Result<Secret, CliError> {
    if from_stdin {
        let mut line = String::new();
        let n = std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|source| CliError::Io {
                context: "reading the password from standard input".to_owned(),
                source,
            })?;
        if n == 0 {
            return Err(CliError::Usage(
                "--password-stdin: standard input is empty; send the password as one line"
                    .to_owned(),
            ));
        }
        return Ok(Secret::new(strip_newline(line)));
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(
            "standard input is not a terminal: pass --password-stdin to read the password from it"
                .to_owned(),
        ));
    }
    let prompt = |text: &str| {
        rpassword::prompt_password(text).map_err(|source| CliError::Io {
            context: "reading the password from the terminal".to_owned(),
            source,
        })
    };
    let first = Secret::new(prompt("New password: ")?);
    let second = Secret::new(prompt("Repeat the password: ")?);
    if first.expose() != second.expose() {
        return Err(CliError::Usage(
            "the two passwords differ; nothing was changed".to_owned(),
        ));
    }
    Ok(first)
}

/// `line` without its line ending (`\n` or `\r\n`); nothing else is
/// trimmed, spaces are part of a password.
fn strip_newline(mut line: String) -> String {
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    line
}

/// `enabled` or `disabled`.
fn status(u: &pb::User) -> &'static str {
    if u.disabled { "disabled" } else { "enabled" }
}

fn print_user(u: &pb::User) {
    outln!("user id:           {}", u.user_id);
    outln!("username:          {}", u.username);
    outln!("status:            {}", status(u));
    outln!("created:           {}", time(u.created_at));
    outln!("updated:           {}", time(u.updated_at));
    outln!("password changed:  {}", time(u.password_changed_at));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_line_ending_is_stripped() {
        assert_eq!(strip_newline("pass word\n".to_owned()), "pass word");
        assert_eq!(strip_newline("pass word\r\n".to_owned()), "pass word");
        assert_eq!(strip_newline(" pass ".to_owned()), " pass ");
        assert_eq!(strip_newline("last line".to_owned()), "last line");
    }
}
