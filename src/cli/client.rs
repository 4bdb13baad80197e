//! Client subcommands: connect to a running server, call one RPC, print
//! the answer as text or JSON.

use std::io::Read;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};
use tonic_types::StatusExt;

use super::{
    AuditCommand, CertCommand, ClientOpts, IdentityCommand, KeyCommand, SessionCommand,
    TokenCommand,
};
use crate::ca::{ClientCertRequest, init_ca, issue_client_cert};
use crate::pb;
use crate::pb::api_key_service_client::ApiKeyServiceClient;
use crate::pb::audit_service_client::AuditServiceClient;
use crate::pb::identity_service_client::IdentityServiceClient;
use crate::pb::key_service_client::KeyServiceClient;
use crate::pb::token_service_client::TokenServiceClient;

/// Environment variable holding the API key client commands send.
pub const API_KEY_ENV: &str = "MCP_AUTH_API_KEY";

/// Exit status of `token verify` for a token that is not active.
const EXIT_INACTIVE: u8 = 3;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with an error.
    #[error("{}", describe(.0))]
    Rpc(Box<Status>),
    /// The server could not be reached.
    #[error("cannot connect to {server}: {}", chain(.source))]
    Connect {
        /// The server URL.
        server: String,
        /// The cause.
        source: tonic::transport::Error,
    },
    /// A local file or stream could not be used.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The command line or environment is not usable.
    #[error("{0}")]
    Usage(String),
    /// The server itself failed (for `serve`).
    #[error(transparent)]
    Server(#[from] crate::Error),
}

impl From<Status> for CliError {
    fn from(s: Status) -> Self {
        CliError::Rpc(Box::new(s))
    }
}

/// An error and its causes, `outer: inner: innermost`.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// The server's `retry-after`, in seconds, on a `RATE_LIMITED` refusal.
pub(super) fn retry_after(status: &Status) -> Option<u64> {
    if status.code() != tonic::Code::ResourceExhausted {
        return None;
    }
    status
        .metadata()
        .get("retry-after")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn describe(status: &Status) -> String {
    let reason = status
        .get_details_error_info()
        .map(|i| format!(" [{}]", i.reason))
        .unwrap_or_default();
    format!("{:?}{reason}: {}", status.code(), status.message())
}

pub(super) async fn connect(opts: &ClientOpts) -> Result<Channel, CliError> {
    let connect_err = |source| CliError::Connect {
        server: opts.server.clone(),
        source,
    };
    if opts.cert.is_some() && !opts.server.starts_with("https://") {
        return Err(CliError::Usage(
            "--cert needs TLS: use an https:// --server".to_owned(),
        ));
    }
    let mut endpoint = Endpoint::from_shared(opts.server.clone()).map_err(connect_err)?;
    if opts.server.starts_with("https://") {
        let ca = std::fs::read(&opts.ca).map_err(|source| CliError::Io {
            context: format!(
                "reading the CA certificate {} (set --ca or MCP_AUTH_CA)",
                opts.ca.display()
            ),
            source,
        })?;
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        if let (Some(cert), Some(key)) = (&opts.cert, &opts.key) {
            let read = |path: &std::path::PathBuf| {
                std::fs::read(path).map_err(|source| CliError::Io {
                    context: format!("reading {}", path.display()),
                    source,
                })
            };
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        endpoint = endpoint.tls_config(tls).map_err(connect_err)?;
    }
    endpoint.connect().await.map_err(connect_err)
}

/// A request carrying the API key from `MCP_AUTH_API_KEY`, or no
/// credential metadata when a client certificate authenticates instead.
pub(super) fn authed<T>(opts: &ClientOpts, message: T) -> Result<Request<T>, CliError> {
    if opts.cert.is_some() {
        return Ok(Request::new(message));
    }
    let key = std::env::var(API_KEY_ENV).map_err(|_| {
        CliError::Usage(format!(
            "set {API_KEY_ENV} to an API key, e.g. export {API_KEY_ENV}=$(cat data/primary.key)"
        ))
    })?;
    let value = MetadataValue::try_from(format!("Bearer {}", key.trim())).map_err(|_| {
        CliError::Usage(format!(
            "{API_KEY_ENV} holds characters not allowed in a header"
        ))
    })?;
    let mut req = Request::new(message);
    req.metadata_mut().insert("authorization", value);
    Ok(req)
}

/// Prints `value` as JSON with `--json`, else as `text` writes it.
fn show<T: serde::Serialize>(json: bool, value: &T, text: impl FnOnce(&T)) -> Result<(), CliError> {
    if json {
        print_json(value)
    } else {
        text(value);
        Ok(())
    }
}

pub(super) fn print_json<T: serde::Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Usage(format!("cannot print JSON: {e}")))?;
    outln!("{text}");
    Ok(())
}

fn time(unix: i64) -> String {
    if unix == 0 {
        return "never".to_owned();
    }
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

fn print_key(k: &pb::ApiKey) {
    outln!("key id:     {}", k.key_id);
    outln!("name:       {}", k.name);
    outln!("scopes:     {}", k.scopes.join(","));
    outln!("prefix:     {}", k.prefix);
    outln!("created:    {}", time(k.created_at));
    outln!("expires:    {}", time(k.expires_at));
    outln!("revoked:    {}", k.revoked);
    match &k.rate_limit {
        Some(l) => outln!("rate limit: {}/s, burst {}", l.requests_per_second, l.burst),
        None => outln!("rate limit: server default"),
    }
}

fn print_created(resp: &pb::CreateApiKeyResponse, json: bool) -> Result<(), CliError> {
    if json {
        return print_json(resp);
    }
    if let Some(k) = &resp.api_key {
        print_key(k);
    }
    outln!();
    outln!("secret (shown only now; store it safely):");
    outln!("{}", resp.secret);
    Ok(())
}

pub(super) async fn key(cmd: KeyCommand) -> Result<u8, CliError> {
    match cmd {
        KeyCommand::Create {
            name,
            scopes,
            expires_in,
            rate_limit,
            opts,
        } => {
            let expires_at = match expires_in {
                None | Some(0) => 0,
                Some(secs) => {
                    let secs = i64::try_from(secs)
                        .map_err(|_| CliError::Usage("--expires-in is too large".to_owned()))?;
                    OffsetDateTime::now_utc()
                        .unix_timestamp()
                        .saturating_add(secs)
                }
            };
            let req = authed(
                &opts,
                pb::CreateApiKeyRequest {
                    name,
                    scopes,
                    expires_at,
                    rate_limit,
                },
            )?;
            let resp = ApiKeyServiceClient::new(connect(&opts).await?)
                .create_api_key(req)
                .await?
                .into_inner();
            print_created(&resp, opts.json)?;
        }
        KeyCommand::List { opts } => {
            let req = authed(&opts, pb::ListApiKeysRequest {})?;
            let resp = ApiKeyServiceClient::new(connect(&opts).await?)
                .list_api_keys(req)
                .await?
                .into_inner();
            if opts.json {
                print_json(&resp)?;
            } else {
                outln!(
                    "{:<26} {:<20} {:<12} {:<8} {:<20} SCOPES",
                    "KEY ID",
                    "NAME",
                    "PREFIX",
                    "STATUS",
                    "EXPIRES"
                );
                for k in &resp.api_keys {
                    let status = if k.revoked { "revoked" } else { "active" };
                    outln!(
                        "{:<26} {:<20} {:<12} {:<8} {:<20} {}",
                        k.key_id,
                        k.name,
                        k.prefix,
                        status,
                        time(k.expires_at),
                        k.scopes.join(",")
                    );
                }
            }
        }
        KeyCommand::Revoke {
            key_id,
            no_cascade,
            opts,
        } => {
            let req = authed(
                &opts,
                pb::RevokeApiKeyRequest {
                    key_id,
                    cascade: Some(!no_cascade),
                },
            )?;
            let resp = ApiKeyServiceClient::new(connect(&opts).await?)
                .revoke_api_key(req)
                .await?
                .into_inner();
            if opts.json {
                print_json(&resp)?;
            } else if let Some(k) = &resp.api_key {
                if no_cascade {
                    outln!(
                        "revoked API key {} ({}); its sessions are kept",
                        k.key_id,
                        k.name
                    );
                } else {
                    outln!(
                        "revoked API key {} ({}) and {}",
                        k.key_id,
                        k.name,
                        plural(resp.sessions_revoked, "of its sessions")
                    );
                }
            }
        }
        KeyCommand::Update {
            key_id,
            rate_limit,
            opts,
        } => {
            let req = authed(&opts, pb::UpdateApiKeyRequest { key_id, rate_limit })?;
            let k = ApiKeyServiceClient::new(connect(&opts).await?)
                .update_api_key(req)
                .await?
                .into_inner();
            show(opts.json, &k, print_key)?;
        }
        KeyCommand::Rotate {
            key_id,
            grace_seconds,
            opts,
        } => {
            let req = authed(
                &opts,
                pb::RotateApiKeyRequest {
                    key_id,
                    grace_seconds,
                },
            )?;
            let resp = ApiKeyServiceClient::new(connect(&opts).await?)
                .rotate_api_key(req)
                .await?
                .into_inner();
            if !opts.json {
                if grace_seconds == 0 {
                    outln!("rotated; the previous secret no longer works\n");
                } else {
                    outln!("rotated; the previous secret works for {grace_seconds} more seconds\n");
                }
            }
            print_created(&resp, opts.json)?;
        }
    }
    Ok(0)
}

/// "1 session", "2 sessions", "0 of its sessions"...
fn plural(n: u32, what: &str) -> String {
    if n == 1 {
        format!("1 {}", what.replace("sessions", "session"))
    } else {
        format!("{n} {what}")
    }
}

fn print_session(s: &pb::Session, json: bool) -> Result<(), CliError> {
    if json {
        return print_json(s);
    }
    outln!("session id:    {}", s.session_id);
    outln!("subject:       {}", s.subject);
    outln!("audience:      {}", s.audience);
    outln!("scopes:        {}", s.scopes.join(","));
    outln!("expires:       {}", time(s.expires_at));
    outln!("session ends:  {}", time(s.session_expires_at));
    outln!("access token:");
    outln!("{}", s.access_token);
    outln!("refresh token (single use):");
    outln!("{}", s.refresh_token);
    Ok(())
}

/// `value`, or standard input when it is `None` or `-`.
pub(super) fn arg_or_stdin(value: Option<String>, what: &str) -> Result<String, CliError> {
    match value.as_deref() {
        None | Some("-") => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|source| CliError::Io {
                    context: format!("reading {what} from standard input"),
                    source,
                })?;
            Ok(s.trim().to_owned())
        }
        Some(t) => Ok(t.to_owned()),
    }
}

pub(super) async fn session(cmd: SessionCommand) -> Result<u8, CliError> {
    match cmd {
        SessionCommand::Create {
            subject,
            scopes,
            audience,
            ttl_seconds,
            session_lifetime_seconds,
            opts,
        } => {
            let req = authed(
                &opts,
                pb::CreateSessionRequest {
                    subject,
                    scopes,
                    audience,
                    ttl_seconds,
                    session_lifetime_seconds,
                },
            )?;
            let s = TokenServiceClient::new(connect(&opts).await?)
                .create_session(req)
                .await?
                .into_inner();
            print_session(&s, opts.json)?;
        }
        SessionCommand::Refresh {
            refresh_token,
            scopes,
            opts,
        } => {
            let refresh_token = arg_or_stdin(refresh_token, "the refresh token")?;
            // The refresh token is the credential: no API key is sent (a
            // client certificate given with --cert still is).
            let req = Request::new(pb::RefreshSessionRequest {
                refresh_token,
                scopes,
            });
            let s = TokenServiceClient::new(connect(&opts).await?)
                .refresh_session(req)
                .await?
                .into_inner();
            print_session(&s, opts.json)?;
        }
        SessionCommand::List {
            subject,
            client_id,
            opts,
        } => {
            let client = TokenServiceClient::new(connect(&opts).await?);
            let mut all = Vec::new();
            let mut page_token = String::new();
            loop {
                let req = authed(
                    &opts,
                    pb::ListSessionsRequest {
                        subject: subject.clone(),
                        client_id: client_id.clone(),
                        page_token,
                        page_size: 500,
                    },
                )?;
                let page = client.clone().list_sessions(req).await?.into_inner();
                all.extend(page.sessions);
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            if opts.json {
                print_json(&all)?;
            } else {
                outln!(
                    "{:<26} {:<20} {:<26} {:<8} {:<20} SCOPES",
                    "SESSION ID",
                    "SUBJECT",
                    "CLIENT ID",
                    "STATUS",
                    "EXPIRES"
                );
                let now = OffsetDateTime::now_utc().unix_timestamp();
                for s in &all {
                    let status = if s.revoked {
                        "revoked"
                    } else if s.expires_at <= now {
                        "expired"
                    } else {
                        "active"
                    };
                    outln!(
                        "{:<26} {:<20} {:<26} {:<8} {:<20} {}",
                        s.session_id,
                        s.subject,
                        s.client_id,
                        status,
                        time(s.expires_at),
                        s.scopes.join(",")
                    );
                }
            }
        }
        SessionCommand::RevokeAll { subject, opts } => {
            let req = authed(
                &opts,
                pb::RevokeSessionsRequest {
                    subject: subject.clone(),
                },
            )?;
            let resp = TokenServiceClient::new(connect(&opts).await?)
                .revoke_sessions(req)
                .await?
                .into_inner();
            show(opts.json, &resp, |r| {
                outln!("revoked {} of {subject}", plural(r.revoked, "sessions"));
            })?;
        }
        SessionCommand::Revoke { session_id, opts } => {
            let req = authed(
                &opts,
                pb::RevokeSessionRequest {
                    session_id: session_id.clone(),
                },
            )?;
            let resp = TokenServiceClient::new(connect(&opts).await?)
                .revoke_session(req)
                .await?
                .into_inner();
            show(opts.json, &resp, |r| {
                outln!("revoked session {session_id} at {}", time(r.revoked_at));
            })?;
        }
    }
    Ok(0)
}

pub(super) async fn token(cmd: TokenCommand) -> Result<u8, CliError> {
    let TokenCommand::Verify {
        token,
        audience,
        required_scopes,
        opts,
    } = cmd;
    let token = arg_or_stdin(token, "the token")?;
    let req = authed(
        &opts,
        pb::VerifyTokenRequest {
            token,
            audience,
            required_scopes,
        },
    )?;
    let resp = TokenServiceClient::new(connect(&opts).await?)
        .verify_token(req)
        .await?
        .into_inner();
    let reason = resp.reason().as_str_name();
    if opts.json {
        let mut value = serde_json::to_value(&resp)
            .map_err(|e| CliError::Usage(format!("cannot print JSON: {e}")))?;
        if resp.active {
            if let Some(obj) = value.as_object_mut() {
                obj.remove("reason");
            }
        } else {
            value["reason"] = reason.into();
        }
        print_json(&value)?;
    } else if let (true, Some(c)) = (resp.active, &resp.claims) {
        outln!("active:     true");
        outln!("subject:    {}", c.subject);
        outln!("audience:   {}", c.audience);
        outln!("scopes:     {}", c.scopes.join(","));
        outln!("session id: {}", c.session_id);
        outln!("client id:  {}", c.client_id);
        outln!("issued:     {}", time(c.issued_at));
        outln!("expires:    {}", time(c.expires_at));
    } else {
        outln!("active:     false");
        outln!("reason:     {reason}");
    }
    Ok(if resp.active { 0 } else { EXIT_INACTIVE })
}

pub(super) async fn jwks(opts: ClientOpts) -> Result<u8, CliError> {
    let resp = TokenServiceClient::new(connect(&opts).await?)
        .get_jwks(pb::GetJwksRequest {})
        .await?
        .into_inner();
    let value: serde_json::Value = serde_json::from_str(&resp.jwks_json)
        .map_err(|e| CliError::Usage(format!("server sent a JWKS that is not JSON: {e}")))?;
    print_json(&value)?;
    Ok(0)
}

pub(super) async fn cert(cmd: CertCommand) -> Result<u8, CliError> {
    match cmd {
        CertCommand::InitCa {
            out,
            name,
            days,
            force,
        } => {
            let info = init_ca(&out, &name, days, force).map_err(ca_err)?;
            outln!("created CA {name:?}");
            outln!(
                "certificate: {} (give this to servers as client_ca)",
                info.cert_path.display()
            );
            outln!(
                "private key: {} (mode 0600; keep it offline)",
                info.key_path.display()
            );
            outln!("sha256:      {}", info.fingerprint_sha256);
            outln!("expires:     {}", time(info.not_after.unix_timestamp()));
        }
        CertCommand::Issue {
            name,
            ca_dir,
            out,
            days,
            trust_domain,
            force,
            json,
        } => {
            if days == 0 {
                return Err(CliError::Usage("--days must be at least 1".to_owned()));
            }
            let req = ClientCertRequest::for_days(&name, &trust_domain, days);
            let issued = issue_client_cert(&ca_dir, &out, &req, force).map_err(ca_err)?;
            if json {
                print_json(&issued)?;
            } else {
                outln!("identity:    {}", issued.identity);
                outln!("serial:      {}", issued.serial);
                outln!("sha256:      {}", issued.fingerprint_sha256);
                outln!("expires:     {}", issued.not_after);
                outln!("certificate: {}", issued.cert_path.display());
                outln!("private key: {} (mode 0600)", issued.key_path.display());
            }
        }
        CertCommand::Revoke { serial, opts } => {
            let req = authed(&opts, pb::RevokeCertificateRequest { serial })?;
            let resp = IdentityServiceClient::new(connect(&opts).await?)
                .revoke_certificate(req)
                .await?
                .into_inner();
            show(opts.json, &resp, |r| {
                outln!("revoked certificate {} at {}", r.serial, time(r.revoked_at));
            })?;
        }
    }
    Ok(0)
}

fn ca_err(e: crate::ca::CaError) -> CliError {
    CliError::Usage(e.to_string())
}

fn print_identity(i: &pb::Identity) {
    let status = if i.disabled { "disabled" } else { "enabled" };
    outln!(
        "{:<24} {:<9} {:<44} {}",
        i.name,
        status,
        i.spiffe_id,
        i.scopes.join(",")
    );
}

pub(super) async fn identity(cmd: IdentityCommand) -> Result<u8, CliError> {
    match cmd {
        IdentityCommand::Set {
            name,
            scopes,
            disabled,
            rate_limit,
            opts,
        } => {
            let req = authed(
                &opts,
                pb::SetIdentityRequest {
                    name,
                    scopes,
                    disabled,
                    rate_limit,
                },
            )?;
            let resp = IdentityServiceClient::new(connect(&opts).await?)
                .set_identity(req)
                .await?
                .into_inner();
            show(opts.json, &resp, print_identity)?;
        }
        IdentityCommand::List { opts } => {
            let req = authed(&opts, pb::ListIdentitiesRequest {})?;
            let resp = IdentityServiceClient::new(connect(&opts).await?)
                .list_identities(req)
                .await?
                .into_inner();
            if opts.json {
                print_json(&resp)?;
            } else {
                outln!("{:<24} {:<9} {:<44} SCOPES", "NAME", "STATUS", "SPIFFE ID");
                for i in &resp.identities {
                    print_identity(i);
                }
            }
        }
        IdentityCommand::Delete {
            name,
            no_cascade,
            opts,
        } => {
            let req = authed(
                &opts,
                pb::DeleteIdentityRequest {
                    name: name.clone(),
                    cascade: Some(!no_cascade),
                },
            )?;
            let resp = IdentityServiceClient::new(connect(&opts).await?)
                .delete_identity(req)
                .await?
                .into_inner();
            if opts.json {
                print_json(&resp)?;
            } else if no_cascade {
                outln!("deleted identity {name}; its sessions are kept");
            } else {
                outln!(
                    "deleted identity {name} and revoked {} of its sessions",
                    resp.sessions_revoked
                );
            }
        }
    }
    Ok(0)
}

pub(super) async fn rotate_signing_key(opts: ClientOpts) -> Result<u8, CliError> {
    let req = authed(&opts, pb::RotateSigningKeyRequest {})?;
    let resp = KeyServiceClient::new(connect(&opts).await?)
        .rotate_signing_key(req)
        .await?
        .into_inner();
    show(opts.json, &resp, |r| {
        outln!("active signing key: {}", r.kid);
        outln!(
            "retired:            {} (verifies its tokens until they expire)",
            r.previous_kid
        );
    })?;
    Ok(0)
}

pub(super) async fn audit(cmd: AuditCommand) -> Result<u8, CliError> {
    match cmd {
        AuditCommand::List {
            since,
            actor,
            action,
            opts,
        } => {
            let events = all_audit_events(&opts, since, &actor, &action).await?.0;
            if opts.json {
                print_json(&events)?;
            } else {
                outln!(
                    "{:>6} {:<20} {:<28} {:<24} {:<20} TARGET",
                    "SEQ",
                    "TIME",
                    "ACTOR",
                    "ACTION",
                    "OUTCOME"
                );
                for e in &events {
                    outln!(
                        "{:>6} {:<20} {:<28} {:<24} {:<20} {}",
                        e.seq,
                        time(e.time),
                        e.actor,
                        e.action,
                        e.outcome,
                        e.target
                    );
                }
            }
            Ok(0)
        }
        AuditCommand::Verify { data_dir, opts } => {
            let verdict = match data_dir {
                Some(dir) => match crate::audit::verify_data_dir(&dir) {
                    Ok((n, anchor)) => Ok((n, anchor)),
                    Err(crate::audit::AuditVerifyError::Broken(b)) => Err(b),
                    Err(e) => return Err(CliError::Usage(e.to_string())),
                },
                None => {
                    let (events, anchor) = all_audit_events(&opts, 0, "", "").await?;
                    let records: Vec<_> = events
                        .into_iter()
                        .map(crate::service::audit::event_from_pb)
                        .collect();
                    let anchor_seq = anchor.seq;
                    crate::audit::verify_chain(&anchor, &records).map(|n| (n, anchor_seq))
                }
            };
            match verdict {
                Ok((n, anchor)) => {
                    let records = if n == 1 { "record" } else { "records" };
                    outln!("audit chain intact: {n} {records} after seq {anchor}");
                    Ok(0)
                }
                Err(broken) => {
                    outln!("audit chain BROKEN: {broken}");
                    Ok(1)
                }
            }
        }
    }
}

/// Every audit event matching the filters, and the chain's anchor.
async fn all_audit_events(
    opts: &ClientOpts,
    since: i64,
    actor: &str,
    action: &str,
) -> Result<(Vec<pb::AuditEvent>, crate::audit::AuditAnchor), CliError> {
    let client = AuditServiceClient::new(connect(opts).await?);
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let req = authed(
            opts,
            pb::ListAuditEventsRequest {
                since,
                actor: actor.to_owned(),
                action: action.to_owned(),
                page_token,
                page_size: 1000,
            },
        )?;
        let page = client.clone().list_audit_events(req).await?.into_inner();
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            let anchor = crate::audit::AuditAnchor {
                seq: page.anchor_seq,
                hash: page.anchor_hash,
            };
            return Ok((events, anchor));
        }
        page_token = page.next_page_token;
    }
}
