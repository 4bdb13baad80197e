//! Between generated protobuf messages and domain types, in both
//! directions; nothing else in the crate touches `pb` shapes outside the
//! adapter and the CLI.

use crate::ca::spiffe_id;
use crate::core::{
    Caller, CallerKind, ClientUpdate, CreatedClient, InactiveReason, IssuedSession, NewClient,
    Revocation, RevocationBatch, RevocationTarget, TokenKind, Verdict,
};
use crate::pb;
use crate::store::{
    ApiKeyRecord, AuditRecord, IdentityRecord, OAuthClientRecord, RateLimit, SessionRecord,
    Standing, UserRecord,
};

/// A request's rate limit (validated by the core).
pub(crate) fn rate_limit_from_pb(limit: Option<pb::RateLimit>) -> Option<RateLimit> {
    limit.map(|l| RateLimit {
        requests_per_second: l.requests_per_second,
        burst: l.burst,
    })
}

pub(crate) fn rate_limit_to_pb(limit: Option<RateLimit>) -> Option<pb::RateLimit> {
    limit.map(|l| pb::RateLimit {
        requests_per_second: l.requests_per_second,
        burst: l.burst,
    })
}

/// A standing as the wire says it.
fn standing_to_pb(s: Standing) -> pb::RecordStatus {
    match s {
        Standing::Active => pb::RecordStatus::Active,
        Standing::Expired => pb::RecordStatus::Expired,
        Standing::Revoked => pb::RecordStatus::Revoked,
    }
}

/// A key as shown at `now` (its status is where it stands then).
pub(crate) fn key_to_pb(r: ApiKeyRecord, now: i64) -> pb::ApiKey {
    pb::ApiKey {
        status: standing_to_pb(r.standing(now)).into(),
        key_id: r.key_id,
        name: r.name,
        scopes: r.scopes,
        prefix: r.prefix,
        created_at: r.created_at,
        expires_at: r.expires_at,
        revoked: r.revoked_at.is_some(),
        rotated_at: r.rotated_at.unwrap_or_default(),
        rate_limit: rate_limit_to_pb(r.rate_limit),
    }
}

/// A client as shown: never its secret, only the secret's prefix.
pub(crate) fn client_to_pb(r: OAuthClientRecord) -> pb::OAuthClient {
    pb::OAuthClient {
        client_id: r.client_id,
        name: r.name,
        redirect_uris: r.redirect_uris,
        grant_types: r
            .grant_types
            .iter()
            .map(|g| g.as_str().to_owned())
            .collect(),
        allowed_scopes: r.allowed_scopes,
        allowed_resources: r.allowed_resources,
        token_endpoint_auth_method: r.token_endpoint_auth_method.as_str().to_owned(),
        jwks: r.jwks.unwrap_or_default(),
        secret_prefix: r.secret_prefix.unwrap_or_default(),
        created_at: r.created_at,
        updated_at: r.updated_at,
        disabled: r.disabled,
        origin: r.origin.as_str().to_owned(),
        last_grant_at: r.last_grant_at.unwrap_or_default(),
        secret_rotated_at: r.secret_rotated_at.unwrap_or_default(),
        previous_secret_valid_until: r.previous_secret.map(|p| p.valid_until).unwrap_or_default(),
        tokens_valid_after: r.tokens_valid_after.unwrap_or_default(),
        skip_consent: r.skip_consent,
    }
}

/// A client with the secret this call made, shown once (empty if none).
pub(crate) fn created_client_to_pb(c: CreatedClient) -> pb::CreateClientResponse {
    pb::CreateClientResponse {
        secret: c.secret.map(|s| s.expose().to_owned()).unwrap_or_default(),
        client: Some(client_to_pb(c.record)),
    }
}

/// A CreateClient request (checked by the core).
pub(crate) fn new_client_from_pb(r: pb::CreateClientRequest) -> NewClient {
    NewClient {
        name: r.name,
        redirect_uris: r.redirect_uris,
        grant_types: r.grant_types,
        allowed_scopes: r.allowed_scopes,
        allowed_resources: r.allowed_resources,
        token_endpoint_auth_method: r.token_endpoint_auth_method,
        jwks: Some(r.jwks).filter(|j| !j.is_empty()),
        skip_consent: r.skip_consent,
    }
}

/// An UpdateClient request: what is set changes.
pub(crate) fn client_update_from_pb(r: pb::UpdateClientRequest) -> ClientUpdate {
    let list = |l: Option<pb::StringList>| l.map(|l| l.values);
    ClientUpdate {
        name: r.name,
        redirect_uris: list(r.redirect_uris),
        grant_types: list(r.grant_types),
        allowed_scopes: list(r.allowed_scopes),
        allowed_resources: list(r.allowed_resources),
        token_endpoint_auth_method: r.token_endpoint_auth_method,
        jwks: r.jwks,
        disabled: r.disabled,
        skip_consent: r.skip_consent,
    }
}

/// A remembered consent as shown.
pub(crate) fn consent_to_pb(r: crate::store::ConsentRecord) -> pb::Consent {
    pb::Consent {
        client_id: r.client_id,
        scopes: r.scopes,
        resources: r.resources,
        granted_at: r.granted_at,
        updated_at: r.updated_at,
    }
}

/// A user as shown: never its password hash.
pub(crate) fn user_to_pb(r: UserRecord) -> pb::User {
    pb::User {
        user_id: r.user_id,
        username: r.username,
        disabled: r.disabled,
        created_at: r.created_at,
        updated_at: r.updated_at,
        password_changed_at: r.password_changed_at,
    }
}

pub(crate) fn identity_to_pb(trust_domain: &str, r: IdentityRecord) -> pb::Identity {
    pb::Identity {
        spiffe_id: spiffe_id(trust_domain, &r.name),
        name: r.name,
        scopes: r.scopes,
        disabled: r.disabled,
        created_at: r.created_at,
        updated_at: r.updated_at,
        rate_limit: rate_limit_to_pb(r.rate_limit),
    }
}

/// A session as shown at `now`.
pub(crate) fn session_info(r: SessionRecord, now: i64) -> pb::SessionInfo {
    pb::SessionInfo {
        status: standing_to_pb(r.standing(now)).into(),
        session_id: r.session_id,
        subject: r.subject,
        client_id: r.client_id,
        scopes: r.scopes,
        audience: r.audience,
        created_at: r.created_at,
        expires_at: r.session_expires_at,
        revoked: r.revoked_at.is_some(),
        last_refreshed_at: r.last_refreshed_at,
    }
}

pub(crate) fn session_to_pb(s: IssuedSession) -> pb::Session {
    pb::Session {
        refresh_token: s.refresh_token.expose().to_owned(),
        session_id: s.record.session_id,
        access_token: s.access_token,
        token_type: "Bearer".to_owned(),
        expires_at: s.expires_at,
        scopes: s.scopes,
        subject: s.record.subject,
        audience: s.record.audience,
        issued_at: s.issued_at,
        client_id: s.record.client_id,
        session_expires_at: s.record.session_expires_at,
    }
}

pub(crate) fn caller_to_pb(c: Caller) -> pb::WhoAmIResponse {
    let kind = match c.kind {
        CallerKind::ApiKey => pb::who_am_i_response::Kind::ApiKey,
        CallerKind::Identity => pb::who_am_i_response::Kind::Identity,
    };
    pb::WhoAmIResponse {
        kind: kind.into(),
        client_id: c.client_id,
        name: c.name,
        scopes: c.scopes,
        expires_at: c.expires_at,
        rate_limit: rate_limit_to_pb(c.rate_limit),
    }
}

/// A batch of the revocation feed as the wire says it.
pub(crate) fn batch_to_pb(b: RevocationBatch) -> pb::RevocationBatch {
    pb::RevocationBatch {
        epoch: b.epoch.to_string(),
        position: b.position,
        snapshot: b.snapshot,
        snapshot_continues: b.snapshot_continues,
        revocations: b.revocations.into_iter().map(revocation_to_pb).collect(),
    }
}

fn revocation_to_pb(r: Revocation) -> pb::Revocation {
    use pb::revocation::Target;
    let (target, issued_through) = match r.target {
        RevocationTarget::Session(id) => (Target::SessionId(id), 0),
        RevocationTarget::Token(jti) => (Target::TokenId(jti), 0),
        RevocationTarget::Client {
            client_id,
            issued_through,
        } => (Target::ClientId(client_id), issued_through),
        RevocationTarget::ApiKey(id) => (Target::ApiKeyId(id), 0),
    };
    pb::Revocation {
        target: Some(target),
        expires_at: r.expires_at,
        issued_through,
    }
}

/// VerifyToken's verdict as the wire says it.
pub(crate) fn verdict_to_pb(v: Verdict) -> pb::VerifyTokenResponse {
    let token_kind = match v.kind {
        TokenKind::AccessToken => pb::TokenKind::AccessToken,
        TokenKind::ApiKey => pb::TokenKind::ApiKey,
    };
    match v.claims {
        Ok(c) => pb::VerifyTokenResponse {
            active: true,
            reason: pb::TokenReason::Unspecified.into(),
            claims: Some(pb::TokenClaims {
                subject: c.subject,
                scopes: c.scopes,
                audience: c.audience,
                session_id: c.session_id,
                client_id: c.client_id,
                issued_at: c.issued_at,
                expires_at: c.expires_at,
                issuer: c.issuer,
            }),
            token_kind: token_kind.into(),
        },
        Err(reason) => pb::VerifyTokenResponse {
            active: false,
            reason: inactive_reason_to_pb(reason).into(),
            claims: None,
            token_kind: token_kind.into(),
        },
    }
}

fn inactive_reason_to_pb(r: InactiveReason) -> pb::TokenReason {
    match r {
        InactiveReason::Expired => pb::TokenReason::Expired,
        InactiveReason::Revoked => pb::TokenReason::Revoked,
        InactiveReason::BadSignature => pb::TokenReason::BadSignature,
        InactiveReason::Malformed => pb::TokenReason::Malformed,
        InactiveReason::WrongAudience => pb::TokenReason::WrongAudience,
        InactiveReason::InsufficientScope => pb::TokenReason::InsufficientScope,
        InactiveReason::NotYetValid => pb::TokenReason::NotYetValid,
        InactiveReason::UnknownKey => pb::TokenReason::UnknownKey,
        InactiveReason::WrongIssuer => pb::TokenReason::WrongIssuer,
        InactiveReason::UnknownApiKey => pb::TokenReason::UnknownApiKey,
        InactiveReason::RotatedOut => pb::TokenReason::RotatedOut,
    }
}

pub(crate) fn event_to_pb(e: AuditRecord) -> pb::AuditEvent {
    pb::AuditEvent {
        seq: e.seq,
        time: e.time,
        actor: e.actor,
        action: e.action,
        target: e.target,
        outcome: e.outcome,
        request_id: e.request_id,
        prev_hash: e.prev_hash,
        hash: e.hash,
    }
}

/// The domain record of a listed event, for verifying a chain client-side.
pub fn event_from_pb(e: pb::AuditEvent) -> AuditRecord {
    AuditRecord {
        seq: e.seq,
        time: e.time,
        actor: e.actor,
        action: e.action,
        target: e.target,
        outcome: e.outcome,
        request_id: e.request_id,
        prev_hash: e.prev_hash,
        hash: e.hash,
    }
}

/// The server's status as `GetStatus` answers it.
pub(crate) fn status_to_pb(s: crate::core::status::ServerStatus) -> pb::ServerStatus {
    let addr = |a: Option<std::net::SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    pb::ServerStatus {
        version: s.version.to_owned(),
        commit: s.commit.to_owned(),
        now: s.now,
        started_at: s.serving.started_at,
        uptime_seconds: s.uptime_seconds,
        store_backend: s.store_backend.to_owned(),
        not_ready: s.not_ready.unwrap_or_default().to_owned(),
        signing_keys: s
            .signing_keys
            .into_iter()
            .map(|k| pb::SigningKeyStatus {
                kid: k.kid,
                alg: k.alg.to_owned(),
                created_at: k.created_at,
                age_seconds: k.age_seconds,
                state: k.state.as_str().to_owned(),
                retired_at: k.retired_at.unwrap_or_default(),
                removed_after: k.removed_after.unwrap_or_default(),
            })
            .collect(),
        next_rotation_at: s.next_rotation_at.unwrap_or_default(),
        counts: Some(pb::StatusCounts {
            live_sessions: s.counts.live_sessions,
            api_keys: s.counts.api_keys,
            oauth_clients: s.counts.oauth_clients,
            identities: s.counts.identities,
            users: s.counts.users,
            audit_chain_length: s.counts.audit_chain_length,
        }),
        listeners: Some(pb::ListenerAddresses {
            grpc: addr(s.serving.grpc),
            http: addr(s.serving.http),
            metrics: addr(s.serving.metrics),
        }),
    }
}
