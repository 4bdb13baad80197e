//! OAuth clients as an admin manages them: creating (the secret returned
//! once), listing, reading, updating (disabling and enabling included),
//! rotating the secret with a grace period, and deleting with its
//! sessions; and what the token endpoint will ask of them (a client by
//! id, a client authenticated by its secret).
//!
//! Every operation needs `clients:admin`; a caller may give a client only
//! scopes it holds itself, and may change only clients whose scopes it
//! holds. Field checks live in `client_rules`.
//!
//! Deleting or disabling a client revokes its tokens at once: the
//! revocation index notes the client, so every token whose `client_id` is
//! the client's verifies as REVOKED, with or without a session. Enabling
//! it again does not bring its old tokens back: those issued at or before
//! the second it was enabled stay REVOKED (`tokens_valid_after`), and its
//! sessions that a delete revoked stay revoked.

use std::sync::Arc;

use crate::core::api_keys::MAX_ROTATION_GRACE;
use crate::core::client_index::ClientAuthError;
use crate::core::client_rules::{self, ClientShape};
use crate::core::error::{Error, Reason};
use crate::core::fields::{check_id, new_id};
use crate::core::principal::{CLIENTS_ADMIN, Principal};
use crate::core::revocations::ALL_TOKENS;
use crate::core::{Core, Credentials, policy};
use crate::secret::Secret;
use crate::store::{AuthMethod, ClientOrigin, GrantType, OAuthClientRecord, PreviousSecret, Swap};
use crate::untrusted::Echo;

/// What CreateClient asks for (and, later, a dynamic registration): the
/// OAuth names as strings, checked by the core.
#[derive(Clone, Debug, Default)]
pub struct NewClient {
    /// A name for people.
    pub name: String,
    /// Where the browser may be sent back to.
    pub redirect_uris: Vec<String>,
    /// `client_credentials`, `authorization_code`, `refresh_token`.
    pub grant_types: Vec<String>,
    /// Application scopes its tokens may carry.
    pub allowed_scopes: Vec<String>,
    /// Resources its tokens may be for.
    pub allowed_resources: Vec<String>,
    /// `client_secret_basic`, `client_secret_post`, `private_key_jwt` or
    /// `none`.
    pub token_endpoint_auth_method: String,
    /// Its public keys as a JWK Set (JSON text), for `private_key_jwt`;
    /// `None` or empty for none.
    pub jwks: Option<String>,
    /// A first-party client, whose authorizations skip the consent page
    /// (only an admin can make one; registrations never are).
    pub skip_consent: bool,
}

/// What UpdateClient changes: each field that is `Some` replaces the
/// client's; the result must fit together as a new client must.
#[derive(Clone, Debug, Default)]
pub struct ClientUpdate {
    /// A new name.
    pub name: Option<String>,
    /// New redirect URIs (an empty list removes them all).
    pub redirect_uris: Option<Vec<String>>,
    /// New grant types.
    pub grant_types: Option<Vec<String>>,
    /// New allowed scopes.
    pub allowed_scopes: Option<Vec<String>>,
    /// New allowed resources (an empty list removes them all).
    pub allowed_resources: Option<Vec<String>>,
    /// A new authentication method. Moving to a secret method from one
    /// without a secret gives the client a secret (returned once); moving
    /// away from the secret methods removes its secrets.
    pub token_endpoint_auth_method: Option<String>,
    /// A new JWK Set; an empty string removes it.
    pub jwks: Option<String>,
    /// Disable (`true`) or enable (`false`) the client.
    pub disabled: Option<bool>,
    /// Make it first-party (its authorizations skip consent) or not.
    pub skip_consent: Option<bool>,
}

/// A client, with the secret this call made for it, shown once.
#[derive(Debug)]
pub struct CreatedClient {
    /// The stored client.
    pub record: OAuthClientRecord,
    /// Its new secret, never stored; `None` if this call made none.
    pub secret: Option<Secret>,
}

/// An update with every field given checked on its own.
pub(crate) struct CheckedUpdate {
    name: Option<String>,
    redirect_uris: Option<Vec<String>>,
    grant_types: Option<Vec<GrantType>>,
    allowed_scopes: Option<Vec<String>>,
    allowed_resources: Option<Vec<String>>,
    method: Option<AuthMethod>,
    jwks: Option<Option<String>>,
    disabled: Option<bool>,
    skip_consent: Option<bool>,
}

fn client_not_found(client_id: &str) -> Error {
    Error::refused(
        Reason::ClientNotFound,
        format!("no OAuth client {client_id}"),
    )
}

/// Which of a client's tokens verify as revoked, by `iat`: all of them
/// while it is disabled; after it was enabled again, those issued up to
/// that second; else none.
pub(crate) fn revoked_through(record: &OAuthClientRecord) -> Option<i64> {
    if record.disabled {
        Some(ALL_TOKENS)
    } else {
        record.tokens_valid_after
    }
}

/// The resources a dynamic registration gets when it names `asked` and
/// the operator's `dcr_allowed_resources` is `allowed`: without that
/// list, what it named (nothing stays nothing); with it, the whole list
/// when it named none, else what it named if each one is on the list.
/// MCP clients register without `resource` (RFC 7591 defines no such
/// member) and name it only at `/authorize`; the list is how an operator
/// lets them in.
///
/// # Errors
/// INVALID_ARGUMENT naming `allowed_resources` for one not on the list.
fn dynamic_resources(asked: Vec<String>, allowed: &[String]) -> Result<Vec<String>, Error> {
    if allowed.is_empty() {
        return Ok(asked);
    }
    if asked.is_empty() {
        return Ok(allowed.to_vec());
    }
    match asked.iter().find(|r| !allowed.contains(r)) {
        Some(other) => Err(Error::invalid(
            "allowed_resources",
            format!(
                "{} is not a resource this server lets registered clients ask for (dcr_allowed_resources)",
                Echo(other)
            ),
        )),
        None => Ok(asked),
    }
}

/// Checks every field of a new client, then how they fit together.
pub(crate) fn check_new(req: &NewClient) -> Result<ClientShape, Error> {
    let shape = ClientShape {
        name: client_rules::name(&req.name)?,
        redirect_uris: client_rules::redirect_uris(&req.redirect_uris)?,
        grant_types: client_rules::grant_types(&req.grant_types)?,
        allowed_scopes: client_rules::scopes(&req.allowed_scopes)?,
        allowed_resources: client_rules::resources(&req.allowed_resources)?,
        method: client_rules::auth_method(&req.token_endpoint_auth_method)?,
        jwks: req
            .jwks
            .as_deref()
            .filter(|j| !j.is_empty())
            .map(client_rules::jwks)
            .transpose()?,
    };
    client_rules::check_combination(&shape)?;
    Ok(shape)
}

pub(crate) fn check_update(u: &ClientUpdate) -> Result<CheckedUpdate, Error> {
    Ok(CheckedUpdate {
        name: u.name.as_deref().map(client_rules::name).transpose()?,
        redirect_uris: u
            .redirect_uris
            .as_deref()
            .map(client_rules::redirect_uris)
            .transpose()?,
        grant_types: u
            .grant_types
            .as_deref()
            .map(client_rules::grant_types)
            .transpose()?,
        allowed_scopes: u
            .allowed_scopes
            .as_deref()
            .map(client_rules::scopes)
            .transpose()?,
        allowed_resources: u
            .allowed_resources
            .as_deref()
            .map(client_rules::resources)
            .transpose()?,
        method: u
            .token_endpoint_auth_method
            .as_deref()
            .map(client_rules::auth_method)
            .transpose()?,
        jwks: u
            .jwks
            .as_deref()
            .map(|j| (!j.is_empty()).then(|| client_rules::jwks(j)).transpose())
            .transpose()?,
        disabled: u.disabled,
        skip_consent: u.skip_consent,
    })
}

fn shape_of(r: &OAuthClientRecord) -> ClientShape {
    ClientShape {
        name: r.name.clone(),
        redirect_uris: r.redirect_uris.clone(),
        grant_types: r.grant_types.clone(),
        allowed_scopes: r.allowed_scopes.clone(),
        allowed_resources: r.allowed_resources.clone(),
        method: r.token_endpoint_auth_method,
        jwks: r.jwks.clone(),
    }
}

/// `current`'s settings with the update's fields in place.
fn merged(current: &OAuthClientRecord, u: &CheckedUpdate) -> ClientShape {
    let mut s = shape_of(current);
    if let Some(v) = &u.name {
        s.name.clone_from(v);
    }
    if let Some(v) = &u.redirect_uris {
        s.redirect_uris.clone_from(v);
    }
    if let Some(v) = &u.grant_types {
        s.grant_types.clone_from(v);
    }
    if let Some(v) = &u.allowed_scopes {
        s.allowed_scopes.clone_from(v);
    }
    if let Some(v) = &u.allowed_resources {
        s.allowed_resources.clone_from(v);
    }
    if let Some(v) = u.method {
        s.method = v;
    }
    if let Some(v) = &u.jwks {
        s.jwks.clone_from(v);
    }
    s
}

fn set_shape(r: &mut OAuthClientRecord, s: ClientShape) {
    r.name = s.name;
    r.redirect_uris = s.redirect_uris;
    r.grant_types = s.grant_types;
    r.allowed_scopes = s.allowed_scopes;
    r.allowed_resources = s.allowed_resources;
    r.token_endpoint_auth_method = s.method;
    r.jwks = s.jwks;
}

/// What an update changed, for its audit record (never a value that could
/// be secret: names of fields only).
fn changes(old: &OAuthClientRecord, new: &OAuthClientRecord) -> String {
    let mut changed = Vec::new();
    let mut note = |differs: bool, name: &'static str| {
        if differs {
            changed.push(name);
        }
    };
    note(old.name != new.name, "name");
    note(old.redirect_uris != new.redirect_uris, "redirect_uris");
    note(old.grant_types != new.grant_types, "grant_types");
    note(old.allowed_scopes != new.allowed_scopes, "allowed_scopes");
    note(
        old.allowed_resources != new.allowed_resources,
        "allowed_resources",
    );
    note(
        old.token_endpoint_auth_method != new.token_endpoint_auth_method,
        "token_endpoint_auth_method",
    );
    note(old.jwks != new.jwks, "jwks");
    note(
        old.secret_hash.is_some() != new.secret_hash.is_some(),
        "secret",
    );
    note(old.skip_consent != new.skip_consent, "skip_consent");
    note(!old.disabled && new.disabled, "disabled");
    note(old.disabled && !new.disabled, "enabled");
    if changed.is_empty() {
        format!("{} (no change)", new.client_id)
    } else {
        format!("{} (changed: {})", new.client_id, changed.join(", "))
    }
}

impl Core {
    async fn client_admin(&self, creds: &Credentials<'_>) -> Result<Principal, Error> {
        let caller = self.authenticate(creds).await?;
        policy::require(&caller, CLIENTS_ADMIN)?;
        Ok(caller)
    }

    /// `CreateClient`: a registered client; a client whose method uses a
    /// secret gets one, returned here once and stored only hashed.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT, storage.
    pub async fn create_client(
        &self,
        creds: &Credentials<'_>,
        req: NewClient,
    ) -> Result<CreatedClient, Error> {
        let caller = self.client_admin(creds).await?;
        let shape = check_new(&req)?;
        policy::may_grant(&caller, &shape.allowed_scopes)?;
        self.insert_client(
            &caller.id,
            creds.request_id,
            shape,
            ClientOrigin::Registered,
            req.skip_consent,
        )
        .await
    }

    /// Registers a client on behalf of `actor` (for instance `peer:<ip>`)
    /// without a caller's scopes: for Dynamic Client Registration, which
    /// decides itself who may register. The same checks as
    /// [`Core::create_client`] apply to the request.
    ///
    /// # Errors
    /// INVALID_ARGUMENT, storage.
    pub(crate) async fn register_client(
        &self,
        actor: &str,
        request_id: &str,
        req: NewClient,
        origin: ClientOrigin,
    ) -> Result<CreatedClient, Error> {
        let shape = check_new(&req)?;
        self.insert_client(actor, request_id, shape, origin, false)
            .await
    }

    /// Dynamic Client Registration (RFC 7591) from `peer`: takes one
    /// registration from the peer's hourly allowance, then registers the
    /// client (origin Dynamic) audited as `client.registered` with the
    /// peer as actor. Who may register at all is the adapter's decision.
    ///
    /// # Errors
    /// RATE_LIMITED, INVALID_ARGUMENT, storage.
    pub async fn register_dynamic_client(
        &self,
        peer: Option<std::net::IpAddr>,
        request_id: &str,
        req: NewClient,
    ) -> Result<CreatedClient, Error> {
        if let Some(ip) = peer {
            self.limits.check_registration(ip)?;
        }
        let actor = peer.map_or_else(|| "peer:unknown".to_owned(), |ip| format!("peer:{ip}"));
        let mut req = req;
        req.allowed_resources = dynamic_resources(
            std::mem::take(&mut req.allowed_resources),
            &self.settings.dcr_allowed_resources,
        )?;
        self.register_client(&actor, request_id, req, ClientOrigin::Dynamic)
            .await
    }

    /// Notes the client's first completed grant (`last_grant_at`): one
    /// write per client ever, so a dynamic registration that was used is
    /// kept by maintenance. Later grants write nothing.
    ///
    /// # Errors
    /// Storage.
    pub(crate) async fn note_first_grant(&self, client: &OAuthClientRecord) -> Result<(), Error> {
        if client.last_grant_at.is_some() || client.origin == ClientOrigin::MetadataDocument {
            return Ok(());
        }
        let _one = self.client_writes.lock().await;
        loop {
            let Some(current) = self.store.client(&client.client_id).await? else {
                return Ok(());
            };
            if current.record.last_grant_at.is_some() {
                return Ok(());
            }
            let mut new = current.record.clone();
            new.last_grant_at = Some(self.clock.now());
            let audit = self.audit.ok(
                &client.client_id,
                "client.first_grant",
                &client.client_id,
                "",
            );
            if self.store.replace_client(&current, &new, audit).await? == Swap::Done {
                self.clients.set(new);
                return Ok(());
            }
        }
    }

    /// Maintenance: deletes the dynamically registered clients that never
    /// completed a grant and were registered at least `ttl` seconds ago
    /// (audited `client.pruned`). Returns how many went.
    ///
    /// # Errors
    /// Storage.
    pub(crate) async fn prune_unused_dynamic_clients(&self, ttl: u32) -> Result<usize, Error> {
        let now = self.clock.now();
        let stale: Vec<String> = self
            .store
            .clients()
            .await?
            .into_iter()
            .filter(|c| {
                c.origin == ClientOrigin::Dynamic
                    && c.last_grant_at.is_none()
                    && now >= c.created_at.saturating_add(i64::from(ttl))
            })
            .map(|c| c.client_id)
            .collect();
        let mut pruned = 0;
        for client_id in stale {
            let _one = self.client_writes.lock().await;
            let Some(current) = self.store.client(&client_id).await? else {
                continue;
            };
            if current.record.last_grant_at.is_some() {
                continue;
            }
            let audit = self.audit.ok("system", "client.pruned", &client_id, "");
            if self.store.delete_client(&current, now, audit).await? == Swap::Done {
                self.clients.remove(&client_id);
                self.revocations
                    .revoke_client_tokens(&client_id, ALL_TOKENS);
                pruned += 1;
            }
        }
        if pruned > 0 {
            tracing::info!(pruned, "unused dynamic clients pruned");
        }
        Ok(pruned)
    }

    async fn insert_client(
        &self,
        actor: &str,
        request_id: &str,
        shape: ClientShape,
        origin: ClientOrigin,
        skip_consent: bool,
    ) -> Result<CreatedClient, Error> {
        let secret = if shape.method.uses_secret() {
            Some(Secret::generate_client_secret()?)
        } else {
            None
        };
        let now = self.clock.now();
        let action = match origin {
            ClientOrigin::Dynamic => "client.registered",
            ClientOrigin::Registered | ClientOrigin::MetadataDocument => "client.created",
        };
        let mut record = OAuthClientRecord {
            client_id: new_id("cli_")?,
            name: String::new(),
            secret_hash: secret.as_ref().map(Secret::hash),
            secret_prefix: secret.as_ref().map(Secret::display_prefix),
            previous_secret: None,
            secret_rotated_at: None,
            redirect_uris: Vec::new(),
            grant_types: Vec::new(),
            allowed_scopes: Vec::new(),
            allowed_resources: Vec::new(),
            token_endpoint_auth_method: shape.method,
            jwks: None,
            created_at: now,
            updated_at: now,
            disabled: false,
            tokens_valid_after: None,
            origin,
            last_grant_at: None,
            skip_consent,
        };
        set_shape(&mut record, shape);
        let target = format!(
            "{} ({}, {})",
            record.client_id,
            record.token_endpoint_auth_method.as_str(),
            origin.as_str()
        );
        let _one = self.client_writes.lock().await;
        self.store
            .insert_client(&record, self.audit.ok(actor, action, &target, request_id))
            .await?;
        self.clients.set(record.clone());
        tracing::info!(client_id = %record.client_id, name = %record.name, "oauth client created");
        Ok(CreatedClient { record, secret })
    }

    /// `ListClients`, in client-id order, never their secrets.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, storage.
    pub async fn list_clients(
        &self,
        creds: &Credentials<'_>,
    ) -> Result<Vec<OAuthClientRecord>, Error> {
        self.client_admin(creds).await?;
        Ok(self.store.clients().await?)
    }

    /// `GetClient`.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT, NOT_FOUND,
    /// storage.
    pub async fn get_client(
        &self,
        creds: &Credentials<'_>,
        client_id: &str,
    ) -> Result<OAuthClientRecord, Error> {
        self.client_admin(creds).await?;
        check_id("client_id", client_id)?;
        Ok(self
            .store
            .client(client_id)
            .await?
            .ok_or_else(|| client_not_found(client_id))?
            .record)
    }

    /// Applies `change` to client `client_id` as `caller` may, writing it
    /// with an audit record of `action` (its target from `target`): load,
    /// decide, write; then the index and the revocations follow.
    async fn change_client<T>(
        &self,
        creds: &Credentials<'_>,
        caller: &Principal,
        client_id: &str,
        action: &str,
        change: impl Fn(&OAuthClientRecord) -> Result<(OAuthClientRecord, T), Error>,
        target: impl Fn(&OAuthClientRecord, &OAuthClientRecord) -> String,
    ) -> Result<(OAuthClientRecord, T), Error> {
        check_id("client_id", client_id)?;
        // One writer at a time, so the index sees changes in order; a
        // conflict can then only come from another process.
        let _one = self.client_writes.lock().await;
        loop {
            let current = self
                .store
                .client(client_id)
                .await?
                .ok_or_else(|| client_not_found(client_id))?;
            policy::may_manage_client(caller, &current.record)?;
            let (new, extra) = change(&current.record)?;
            let audit = self.audit.ok(
                &caller.id,
                action,
                &target(&current.record, &new),
                creds.request_id,
            );
            if self.store.replace_client(&current, &new, audit).await? == Swap::Done {
                self.clients.set(new.clone());
                self.note_client_tokens(&new);
                return Ok((new, extra));
            }
        }
    }

    /// Tells the revocation index which of the client's tokens are revoked.
    pub(crate) fn note_client_tokens(&self, record: &OAuthClientRecord) {
        match revoked_through(record) {
            Some(through) => self
                .revocations
                .revoke_client_tokens(&record.client_id, through),
            None => self.revocations.forget_client(&record.client_id),
        }
    }

    /// `UpdateClient`. Disabling revokes the client's tokens at once;
    /// enabling it again leaves those issued until then revoked. Returns
    /// the client, with a secret if the update gave it its first one.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT, NOT_FOUND,
    /// storage.
    pub async fn update_client(
        &self,
        creds: &Credentials<'_>,
        client_id: &str,
        update: ClientUpdate,
    ) -> Result<CreatedClient, Error> {
        let caller = self.client_admin(creds).await?;
        let checked = check_update(&update)?;
        let secret = Secret::generate_client_secret()?;
        let now = self.clock.now();
        let (record, minted) = self
            .change_client(
                creds,
                &caller,
                client_id,
                "client.updated",
                |old| {
                    let shape = merged(old, &checked);
                    client_rules::check_combination(&shape)?;
                    policy::may_grant(&caller, &shape.allowed_scopes)?;
                    let mut r = old.clone();
                    set_shape(&mut r, shape);
                    let mut minted = false;
                    if !r.token_endpoint_auth_method.uses_secret() {
                        r.secret_hash = None;
                        r.secret_prefix = None;
                        r.previous_secret = None;
                    } else if r.secret_hash.is_none() {
                        r.secret_hash = Some(secret.hash());
                        r.secret_prefix = Some(secret.display_prefix());
                        minted = true;
                    }
                    if let Some(v) = checked.skip_consent {
                        r.skip_consent = v;
                    }
                    match (old.disabled, checked.disabled) {
                        (false, Some(true)) => r.disabled = true,
                        (true, Some(false)) => {
                            r.disabled = false;
                            r.tokens_valid_after = Some(now);
                        }
                        _ => {}
                    }
                    r.updated_at = now;
                    Ok((r, minted))
                },
                changes,
            )
            .await?;
        tracing::info!(client_id = %record.client_id, disabled = record.disabled, "oauth client updated");
        Ok(CreatedClient {
            record,
            secret: minted.then_some(secret),
        })
    }

    /// `RotateClientSecret`: a new secret; the old one keeps working for
    /// `grace_seconds` (at most 30 days).
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT, NOT_FOUND,
    /// FAILED_PRECONDITION for a client without a secret, storage.
    pub async fn rotate_client_secret(
        &self,
        creds: &Credentials<'_>,
        client_id: &str,
        grace_seconds: u32,
    ) -> Result<CreatedClient, Error> {
        let caller = self.client_admin(creds).await?;
        if grace_seconds > MAX_ROTATION_GRACE {
            return Err(Error::invalid(
                "grace_seconds",
                format!("must be at most {MAX_ROTATION_GRACE} (30 days)"),
            ));
        }
        let secret = Secret::generate_client_secret()?;
        let now = self.clock.now();
        let (record, ()) = self
            .change_client(
                creds,
                &caller,
                client_id,
                "client.secret_rotated",
                |old| {
                    if !old.token_endpoint_auth_method.uses_secret() {
                        return Err(Error::refused(
                            Reason::ClientHasNoSecret,
                            format!(
                                "OAuth client {} authenticates with {}, not a client secret; it has none to rotate",
                                old.client_id,
                                old.token_endpoint_auth_method.as_str()
                            ),
                        ));
                    }
                    let mut r = old.clone();
                    r.previous_secret = r.secret_hash.filter(|_| grace_seconds > 0).map(|h| {
                        PreviousSecret {
                            secret_hash: h,
                            valid_until: now + i64::from(grace_seconds),
                        }
                    });
                    r.secret_hash = Some(secret.hash());
                    r.secret_prefix = Some(secret.display_prefix());
                    r.secret_rotated_at = Some(now);
                    r.updated_at = now;
                    Ok((r, ()))
                },
                |_, new| format!("{} (grace {grace_seconds} s)", new.client_id),
            )
            .await?;
        tracing::info!(client_id = %record.client_id, grace_seconds, "oauth client secret rotated");
        Ok(CreatedClient {
            record,
            secret: Some(secret),
        })
    }

    /// `DeleteClient`: the client is gone, its tokens verify as REVOKED at
    /// once, and every session whose `client_id` is the client's is
    /// revoked. Returns the deleted client and how many sessions this call
    /// revoked.
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, INVALID_ARGUMENT, NOT_FOUND,
    /// storage.
    pub async fn delete_client(
        &self,
        creds: &Credentials<'_>,
        client_id: &str,
    ) -> Result<(OAuthClientRecord, u32), Error> {
        let caller = self.client_admin(creds).await?;
        check_id("client_id", client_id)?;
        let record = {
            let _one = self.client_writes.lock().await;
            loop {
                let current = self
                    .store
                    .client(client_id)
                    .await?
                    .ok_or_else(|| client_not_found(client_id))?;
                policy::may_manage_client(&caller, &current.record)?;
                let audit =
                    self.audit
                        .ok(&caller.id, "client.deleted", client_id, creds.request_id);
                let now = self.clock.now();
                if self.store.delete_client(&current, now, audit).await? == Swap::Done {
                    self.clients.remove(client_id);
                    self.revocations.revoke_deleted_client(client_id, now);
                    break current.record;
                }
            }
        };
        tracing::info!(client_id, "oauth client deleted");
        // After the delete: a crash in between leaves the client's tokens
        // revoked by its id, and the next maintenance pass finishes this.
        let sessions_revoked = self
            .revoke_sessions_of_client(&caller.id, client_id, creds.request_id)
            .await?;
        Ok((record, sessions_revoked))
    }

    /// Maintenance: finishes the session cascade of every deleted client
    /// (nothing to do unless a crash interrupted one), and forgets the
    /// deleted clients whose tokens have all expired (deleted at least the
    /// maximum token lifetime ago). Returns how many were forgotten.
    pub(crate) async fn sweep_deleted_clients(&self) -> Result<usize, Error> {
        let now = self.clock.now();
        let max_ttl = i64::from(self.settings.max_ttl);
        let mut expired = Vec::new();
        for (client_id, deleted_at) in self.store.deleted_clients().await? {
            self.revoke_sessions_of_client("system", &client_id, "")
                .await?;
            if now >= deleted_at.saturating_add(max_ttl) {
                expired.push(client_id);
            }
        }
        if expired.is_empty() {
            return Ok(0);
        }
        let n = self.store.forget_deleted_clients(&expired).await?;
        for client_id in &expired {
            self.revocations.forget_client(client_id);
        }
        Ok(n)
    }

    /// The OAuth client with this id, from memory (for the token endpoint:
    /// a public or `private_key_jwt` client, whose credential is not a
    /// secret).
    pub fn oauth_client(&self, client_id: &str) -> Option<Arc<OAuthClientRecord>> {
        self.clients.get(client_id)
    }

    /// Authenticates an OAuth client by its id and secret, presented with
    /// `method` (`client_secret_basic` or `client_secret_post`), from
    /// memory and in constant time; a rotated-out secret works until its
    /// grace period ends. The caller (the token endpoint) answers every
    /// refusal with `invalid_client`, and counts it against the peer as
    /// failed authentications are.
    ///
    /// # Errors
    /// Why the client is not authenticated.
    pub fn authenticate_client_secret(
        &self,
        client_id: &str,
        secret: &str,
        method: AuthMethod,
    ) -> Result<Arc<OAuthClientRecord>, ClientAuthError> {
        self.clients
            .authenticate(client_id, secret, method, self.clock.now())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::Clock;
    use crate::config::Config;
    use crate::core::InactiveReason;
    use crate::store::{Durability, SessionRecord};

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_dynamic_registration_gets_the_allowed_resources_or_names_some_of_them() {
        let listed = vec![
            "https://a.example/mcp".to_owned(),
            "https://b.example".to_owned(),
        ];
        let a = vec!["https://a.example/mcp".to_owned()];
        let other = vec!["https://evil.example".to_owned()];
        // No list: the registration's own, unchecked; none stays none.
        assert_eq!(dynamic_resources(other.clone(), &[]).unwrap(), other);
        assert!(dynamic_resources(Vec::new(), &[]).unwrap().is_empty());
        // A list: all of it for none, a listed one kept, another refused.
        assert_eq!(dynamic_resources(Vec::new(), &listed).unwrap(), listed);
        assert_eq!(dynamic_resources(a.clone(), &listed).unwrap(), a);
        match dynamic_resources([a, other].concat(), &listed) {
            Err(Error::InvalidArgument { field, message }) => {
                assert_eq!(field, "allowed_resources");
                assert!(message.contains("https://evil.example"), "{message}");
                assert!(message.contains("dcr_allowed_resources"), "{message}");
            }
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    async fn open(dir: &std::path::Path, clock: &Clock) -> (Core, Option<Secret>) {
        let config = Config::for_test(dir).unwrap();
        let store = crate::store::open(dir, Durability::Durable).unwrap();
        Core::open(store, clock.clone(), &config).await.unwrap()
    }

    fn creds(authorization: &str) -> Credentials<'_> {
        Credentials {
            authorization: Some(authorization),
            authorization_count: 1,
            ..Credentials::default()
        }
    }

    fn confidential() -> NewClient {
        NewClient {
            name: "billing".into(),
            grant_types: vec!["client_credentials".into()],
            allowed_scopes: vec!["tools:read".into()],
            allowed_resources: vec!["https://mcp.example".into()],
            token_endpoint_auth_method: "client_secret_basic".into(),
            ..NewClient::default()
        }
    }

    /// A token with `client_id` = the client, in a stored session (as the
    /// browser flow will make) or in none (as client_credentials will).
    async fn token(core: &Core, client_id: &str, stored_session: bool) -> (String, String) {
        let now = core.clock.now();
        let session = SessionRecord {
            session_id: new_id("ses_").unwrap(),
            subject: client_id.to_owned(),
            client_id: client_id.to_owned(),
            scopes: vec!["tools:read".into()],
            audience: "https://mcp.example".into(),
            created_at: now,
            expires_at: now + 600,
            revoked_at: None,
            session_expires_at: now + 3600,
            last_refreshed_at: now,
            token_ttl: 600,
            oauth: false,
            resources: Vec::new(),
            refresh_tokens: vec![],
        };
        if stored_session {
            let audit = core.audit.ok("test", "session.created", "t", "");
            core.store.insert_session(&session, audit).await.unwrap();
        }
        let token = core
            .tokens
            .issue(&session, &session.scopes, now, now + 600)
            .unwrap();
        (token, session.session_id)
    }

    async fn verdict(core: &Core, admin: &str, token: &str) -> Result<(), InactiveReason> {
        let check = crate::core::TokenCheck {
            token,
            audience: "",
            required_scopes: &[],
            client_address: "",
        };
        core.verify_token(&creds(admin), check)
            .await
            .unwrap()
            .claims
            .map(|_| ())
    }

    #[tokio::test]
    async fn disabling_or_deleting_a_client_revokes_its_tokens_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(NOW);
        let (core, primary) = open(dir.path(), &clock).await;
        let admin = format!("Bearer {}", primary.unwrap().expose());
        let created = core
            .create_client(&creds(&admin), confidential())
            .await
            .unwrap();
        let id = created.record.client_id.clone();
        let (no_session, _) = token(&core, &id, false).await;
        let (with_session, sid) = token(&core, &id, true).await;
        let (other, _) = token(&core, "key_someone", false).await;
        for t in [&no_session, &with_session, &other] {
            assert_eq!(verdict(&core, &admin, t).await, Ok(()));
        }

        let disable = ClientUpdate {
            disabled: Some(true),
            ..ClientUpdate::default()
        };
        core.update_client(&creds(&admin), &id, disable)
            .await
            .unwrap();
        for t in [&no_session, &with_session] {
            assert_eq!(
                verdict(&core, &admin, t).await,
                Err(InactiveReason::Revoked)
            );
        }
        assert_eq!(verdict(&core, &admin, &other).await, Ok(()));

        // Enabled again: the old tokens stay revoked, new ones are good.
        clock.advance(Duration::from_secs(5));
        let enable = ClientUpdate {
            disabled: Some(false),
            ..ClientUpdate::default()
        };
        let enabled = core
            .update_client(&creds(&admin), &id, enable)
            .await
            .unwrap();
        assert_eq!(enabled.record.tokens_valid_after, Some(NOW + 5));
        assert!(enabled.secret.is_none());
        for t in [&no_session, &with_session] {
            assert_eq!(
                verdict(&core, &admin, t).await,
                Err(InactiveReason::Revoked)
            );
        }
        clock.advance(Duration::from_secs(1));
        let (fresh, _) = token(&core, &id, false).await;
        assert_eq!(verdict(&core, &admin, &fresh).await, Ok(()));

        // Deleted: every token revoked, the session too, across a restart.
        let (_, revoked) = core.delete_client(&creds(&admin), &id).await.unwrap();
        assert_eq!(revoked, 1, "the session whose client_id is the client's");
        assert!(core.revocations.contains(&sid));
        assert_eq!(
            verdict(&core, &admin, &fresh).await,
            Err(InactiveReason::Revoked)
        );
        drop(core);
        let (core, _) = open(dir.path(), &clock).await;
        assert_eq!(
            verdict(&core, &admin, &fresh).await,
            Err(InactiveReason::Revoked)
        );
        assert_eq!(
            verdict(&core, &admin, &with_session).await,
            Err(InactiveReason::Revoked)
        );
        assert!(core.oauth_client(&id).is_none());

        // Once every token it could have had has expired, the deleted
        // client is forgotten.
        assert_eq!(core.sweep_deleted_clients().await.unwrap(), 0);
        clock.advance(Duration::from_secs(u64::from(core.settings.max_ttl)));
        assert_eq!(core.sweep_deleted_clients().await.unwrap(), 1);
        assert!(core.store.deleted_clients().await.unwrap().is_empty());
        assert_eq!(
            verdict(&core, &admin, &fresh).await,
            Err(InactiveReason::Expired)
        );
    }

    #[tokio::test]
    async fn a_re_enabled_client_keeps_its_cut_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(NOW);
        let (core, primary) = open(dir.path(), &clock).await;
        let admin = format!("Bearer {}", primary.unwrap().expose());
        let id = core
            .create_client(&creds(&admin), confidential())
            .await
            .unwrap()
            .record
            .client_id;
        let (old, _) = token(&core, &id, false).await;
        for disabled in [true, false] {
            let u = ClientUpdate {
                disabled: Some(disabled),
                ..ClientUpdate::default()
            };
            core.update_client(&creds(&admin), &id, u).await.unwrap();
        }
        clock.advance(Duration::from_secs(1));
        let (new, _) = token(&core, &id, false).await;
        drop(core);
        let (core, _) = open(dir.path(), &clock).await;
        assert_eq!(
            verdict(&core, &admin, &old).await,
            Err(InactiveReason::Revoked)
        );
        assert_eq!(verdict(&core, &admin, &new).await, Ok(()));
    }

    #[tokio::test]
    async fn a_crash_between_delete_and_cascade_is_finished_by_maintenance() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(NOW);
        let (core, primary) = open(dir.path(), &clock).await;
        let admin = format!("Bearer {}", primary.unwrap().expose());
        let id = core
            .create_client(&creds(&admin), confidential())
            .await
            .unwrap()
            .record
            .client_id;
        let (_, sid) = token(&core, &id, true).await;
        // The delete as the store saw it, without the cascade after it.
        let current = core.store.client(&id).await.unwrap().unwrap();
        let audit = core.audit.ok("test", "client.deleted", &id, "");
        assert_eq!(
            core.store
                .delete_client(&current, NOW, audit)
                .await
                .unwrap(),
            Swap::Done
        );
        drop(core);
        let (core, _) = open(dir.path(), &clock).await;
        assert!(!core.revocations.contains(&sid));
        core.sweep_deleted_clients().await.unwrap();
        assert!(core.revocations.contains(&sid));
        let session = core.store.session(&sid).await.unwrap().unwrap().record;
        assert!(session.revoked_at.is_some());
    }

    #[tokio::test]
    async fn updates_mint_or_drop_secrets_with_the_method() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::manual(NOW);
        let (core, primary) = open(dir.path(), &clock).await;
        let admin = format!("Bearer {}", primary.unwrap().expose());
        let public = NewClient {
            name: "desktop".into(),
            redirect_uris: vec!["http://127.0.0.1:33418/callback".into()],
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            allowed_scopes: vec!["tools:read".into()],
            token_endpoint_auth_method: "none".into(),
            ..NewClient::default()
        };
        let created = core.create_client(&creds(&admin), public).await.unwrap();
        assert!(created.secret.is_none());
        assert!(created.record.secret_hash.is_none());
        let id = created.record.client_id;
        let err = core
            .rotate_client_secret(&creds(&admin), &id, 0)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), Reason::ClientHasNoSecret);

        let to_post = ClientUpdate {
            token_endpoint_auth_method: Some("client_secret_post".into()),
            ..ClientUpdate::default()
        };
        let updated = core
            .update_client(&creds(&admin), &id, to_post)
            .await
            .unwrap();
        let secret = updated.secret.expect("a first secret, shown once");
        let m = AuthMethod::ClientSecretPost;
        assert!(
            core.authenticate_client_secret(&id, secret.expose(), m)
                .is_ok()
        );

        let back = ClientUpdate {
            token_endpoint_auth_method: Some("none".into()),
            ..ClientUpdate::default()
        };
        let updated = core.update_client(&creds(&admin), &id, back).await.unwrap();
        assert!(updated.secret.is_none());
        assert!(updated.record.secret_hash.is_none());
        assert_eq!(
            core.authenticate_client_secret(&id, secret.expose(), m)
                .unwrap_err(),
            ClientAuthError::WrongMethod
        );
    }
}
