//! `mcp-auth client ...`: create, list, show, update, rotate the secret
//! of, and delete OAuth clients.

use std::path::Path;

use super::output::{plural, time};
use super::{CliError, ClientCommand, GlobalOpts, Output};
use crate::pb;

/// Runs a `client` subcommand.
pub(super) async fn run(
    cmd: ClientCommand,
    opts: &GlobalOpts,
    out: &Output,
) -> Result<u8, CliError> {
    match cmd {
        ClientCommand::Create {
            name,
            redirect_uris,
            grant_types,
            scopes,
            resources,
            auth_method,
            jwks_file,
            skip_consent,
        } => {
            let jwks = jwks_file.as_deref().map(read_jwks).transpose()?;
            let resp = opts
                .client()
                .await?
                .create_client(pb::CreateClientRequest {
                    name,
                    redirect_uris: values(redirect_uris),
                    grant_types: values(grant_types),
                    allowed_scopes: values(scopes),
                    allowed_resources: values(resources),
                    token_endpoint_auth_method: auth_method,
                    jwks: jwks.unwrap_or_default(),
                    skip_consent,
                })
                .await?;
            print_created(&resp, out)?;
        }
        ClientCommand::List => {
            let resp = opts
                .client()
                .await?
                .list_clients(pb::ListClientsRequest {})
                .await?;
            out.print_list(&resp.clients, |clients| {
                outln!(
                    "{:<26} {:<20} {:<20} {:<9} {:<36} SCOPES",
                    "CLIENT ID",
                    "NAME",
                    "AUTH METHOD",
                    "STATUS",
                    "GRANT TYPES"
                );
                for c in clients {
                    outln!(
                        "{:<26} {:<20} {:<20} {:<9} {:<36} {}",
                        c.client_id,
                        c.name,
                        c.token_endpoint_auth_method,
                        status(c),
                        c.grant_types.join(","),
                        c.allowed_scopes.join(",")
                    );
                }
            })?;
        }
        ClientCommand::Show { client_id } => {
            let c = opts
                .client()
                .await?
                .get_client(pb::GetClientRequest { client_id })
                .await?;
            out.print(&c, print_client)?;
        }
        ClientCommand::Update {
            client_id,
            name,
            redirect_uris,
            grant_types,
            scopes,
            resources,
            auth_method,
            jwks_file,
            no_jwks,
            disabled,
            enabled,
            skip_consent,
        } => {
            let jwks = match (jwks_file, no_jwks) {
                (Some(path), _) => Some(read_jwks(&path)?),
                (None, true) => Some(String::new()),
                (None, false) => None,
            };
            let list = |v: Option<Vec<String>>| v.map(|v| pb::StringList { values: values(v) });
            let resp = opts
                .client()
                .await?
                .update_client(pb::UpdateClientRequest {
                    client_id,
                    name,
                    redirect_uris: list(redirect_uris),
                    grant_types: list(grant_types),
                    allowed_scopes: list(scopes),
                    allowed_resources: list(resources),
                    token_endpoint_auth_method: auth_method,
                    jwks,
                    disabled: match (disabled, enabled) {
                        (true, _) => Some(true),
                        (_, true) => Some(false),
                        _ => None,
                    },
                    skip_consent,
                })
                .await?;
            out.print(&resp, |resp| {
                if let Some(c) = &resp.client {
                    print_client(c);
                }
                if !resp.secret.is_empty() {
                    print_secret(&resp.secret);
                }
            })?;
        }
        ClientCommand::RotateSecret {
            client_id,
            grace_seconds,
        } => {
            let resp = opts
                .client()
                .await?
                .rotate_client_secret(pb::RotateClientSecretRequest {
                    client_id,
                    grace_seconds,
                })
                .await?;
            super::output::rotated_notice(out, grace_seconds);
            print_created(&resp, out)?;
        }
        ClientCommand::Delete { client_id } => {
            let resp = opts
                .client()
                .await?
                .delete_client(pb::DeleteClientRequest {
                    client_id: client_id.clone(),
                })
                .await?;
            out.print(&resp, |resp| {
                outln!(
                    "deleted OAuth client {client_id} and revoked {}",
                    plural(resp.sessions_revoked, "of its sessions")
                );
            })?;
        }
    }
    Ok(0)
}

/// The values of a list flag, without empty ones (so that one empty value
/// stands for an empty list).
fn values(v: Vec<String>) -> Vec<String> {
    v.into_iter().filter(|s| !s.is_empty()).collect()
}

/// The JWK Set in `path`, as text (the server checks it).
fn read_jwks(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Io {
        context: format!("reading the JWK Set {}", path.display()),
        source,
    })
}

/// `enabled` or `disabled`.
fn status(c: &pb::OAuthClient) -> &'static str {
    if c.disabled { "disabled" } else { "enabled" }
}

/// A list as one line; `none` when empty.
fn joined(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(",")
    }
}

fn print_client(c: &pb::OAuthClient) {
    outln!("client id:      {}", c.client_id);
    outln!("name:           {}", c.name);
    outln!("auth method:    {}", c.token_endpoint_auth_method);
    if c.secret_prefix.is_empty() {
        outln!("secret:         none");
    } else {
        outln!("secret:         {}...", c.secret_prefix);
    }
    if c.previous_secret_valid_until != 0 {
        outln!(
            "old secret:     works until {}",
            time(c.previous_secret_valid_until)
        );
    }
    outln!("grant types:    {}", joined(&c.grant_types));
    outln!("scopes:         {}", joined(&c.allowed_scopes));
    outln!("resources:      {}", joined(&c.allowed_resources));
    outln!("redirect uris:  {}", joined(&c.redirect_uris));
    let keys = serde_json::from_str::<serde_json::Value>(&c.jwks)
        .ok()
        .and_then(|v| v.get("keys").and_then(|k| k.as_array()).map(Vec::len));
    match keys {
        Some(n) => outln!("jwks:           {}", plural_keys(n)),
        None => outln!("jwks:           none"),
    }
    outln!("status:         {}", status(c));
    outln!("origin:         {}", c.origin);
    outln!("created:        {}", time(c.created_at));
    outln!("updated:        {}", time(c.updated_at));
}

fn plural_keys(n: usize) -> String {
    if n == 1 {
        "1 key".to_owned()
    } else {
        format!("{n} keys")
    }
}

fn print_secret(secret: &str) {
    outln!();
    outln!("secret (shown only now; store it safely):");
    outln!("{secret}");
}

/// A new client or secret: the client, then its secret, shown this once.
fn print_created(resp: &pb::CreateClientResponse, out: &Output) -> Result<(), CliError> {
    out.print(resp, |resp| {
        if let Some(c) = &resp.client {
            print_client(c);
            if resp.secret.is_empty() {
                outln!();
                outln!(
                    "no secret: this client authenticates with {}",
                    c.token_endpoint_auth_method
                );
            }
        }
        if !resp.secret.is_empty() {
            print_secret(&resp.secret);
        }
    })
}
