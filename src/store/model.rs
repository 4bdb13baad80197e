//! The records that cross the storage boundary, shared by the core above it
//! and every backend below it. Plain data: no behaviour that needs the
//! core, no storage engine.

use serde::{Deserialize, Serialize};

use crate::secret::{SecretHash, hex};

/// Algorithm of a signing key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SigningAlg {
    /// Ed25519 (JOSE `EdDSA`).
    #[default]
    EdDSA,
    /// ECDSA P-256 with SHA-256.
    ES256,
}

impl SigningAlg {
    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::EdDSA => "EdDSA",
            SigningAlg::ES256 => "ES256",
        }
    }
}

/// A request rate: sustained requests per second and burst size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub requests_per_second: u32,
    /// Requests that may arrive at once.
    pub burst: u32,
}

/// Largest rate or burst a credential may be given.
pub const MAX_RATE: u32 = 1_000_000;

impl RateLimit {
    /// The limit if both values are 1 to [`MAX_RATE`].
    ///
    /// # Errors
    /// What is wrong, for the caller to put in its own error.
    pub fn checked(self) -> Result<Self, String> {
        let ok = |v: u32| (1..=MAX_RATE).contains(&v);
        if ok(self.requests_per_second) && ok(self.burst) {
            Ok(self)
        } else {
            Err(format!(
                "requests_per_second and burst must be 1 to {MAX_RATE}"
            ))
        }
    }
}

/// A stored API key. The secret itself is never stored, only its hash.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiKeyRecord {
    /// `key_` and 22 base62 characters.
    pub key_id: String,
    /// What the operator called it.
    pub name: String,
    /// The scopes the key holds.
    pub scopes: Vec<String>,
    /// `mcp_sk_` and the first characters of the current secret.
    pub prefix: String,
    /// Unix seconds.
    pub created_at: i64,
    /// 0 means never.
    pub expires_at: i64,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// When its secret was last rotated.
    pub rotated_at: Option<i64>,
    /// Hash of the current secret.
    pub secret_hash: SecretHash,
    /// The secret replaced by the last rotation, valid until `valid_until`.
    pub previous: Option<PreviousSecret>,
    /// Overrides the server's default request rate.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

/// Where a key or session stands at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Usable.
    Active,
    /// Its lifetime has ended.
    Expired,
    /// Revoked; wins over expired.
    Revoked,
}

impl ApiKeyRecord {
    /// Where the key stands at `now` (Unix seconds).
    pub fn standing(&self, now: i64) -> Standing {
        if self.revoked_at.is_some() {
            Standing::Revoked
        } else if self.expires_at != 0 && now >= self.expires_at {
            Standing::Expired
        } else {
            Standing::Active
        }
    }

    /// The hashes of its live secrets: the current one and the previous
    /// one while it is in its grace period.
    pub fn hashes(&self) -> impl Iterator<Item = &SecretHash> {
        std::iter::once(&self.secret_hash).chain(self.previous.as_ref().map(|p| &p.secret_hash))
    }
}

/// A rotated-out secret still inside its grace period.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PreviousSecret {
    /// Its hash.
    pub secret_hash: SecretHash,
    /// Unix seconds; the secret fails from this instant on.
    pub valid_until: i64,
}

/// A stored session: what its tokens say, whether it was revoked, and its
/// refresh tokens. One record holds everything about a session, so
/// creating or refreshing one is one write.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionRecord {
    /// `ses_` and 22 base62 characters.
    pub session_id: String,
    /// Who the session speaks for.
    pub subject: String,
    /// Id of the credential that created it.
    pub client_id: String,
    /// The scopes of the session (a refresh may narrow a token's).
    pub scopes: Vec<String>,
    /// The resource its tokens are for.
    pub audience: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Expiry of the newest access token (no token of the session lives
    /// longer).
    pub expires_at: i64,
    /// When it was revoked.
    pub revoked_at: Option<i64>,
    /// Absolute end of the session: no refresh after it.
    #[serde(default)]
    pub session_expires_at: i64,
    /// Last CreateSession or RefreshSession; the idle timeout counts from
    /// here.
    #[serde(default)]
    pub last_refreshed_at: i64,
    /// Lifetime of the session's access tokens, as asked at creation;
    /// 0 (older records) means the server default.
    #[serde(default)]
    pub token_ttl: u32,
    /// The session's refresh tokens, oldest first: the live one last, the
    /// spent ones before it (kept for reuse detection, at most
    /// [`REFRESH_HISTORY`]).
    #[serde(default)]
    pub refresh_tokens: Vec<RefreshToken>,
    /// Started by an OAuth grant at the token endpoint: its client
    /// refreshes it there (`grant_type=refresh_token`), never with
    /// RefreshSession.
    #[serde(default)]
    pub oauth: bool,
    /// The resources an OAuth grant approved (RFC 8707); a refresh may
    /// ask for a token for any of them. Empty: only `audience`.
    #[serde(default)]
    pub resources: Vec<String>,
}

impl SessionRecord {
    /// Where the session stands at `now` (Unix seconds): expired once its
    /// absolute end has passed.
    pub fn standing(&self, now: i64) -> Standing {
        if self.revoked_at.is_some() {
            Standing::Revoked
        } else if now >= self.session_expires_at {
            Standing::Expired
        } else {
            Standing::Active
        }
    }
}

/// Spent refresh tokens a session remembers for reuse detection. A token
/// spent longer ago than the last this many refreshes is no longer
/// recognised at all (REFRESH_TOKEN_INVALID instead of
/// REFRESH_TOKEN_REUSED).
pub const REFRESH_HISTORY: usize = 32;

/// A refresh token of a session, by the hash of its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshToken {
    /// SHA-256 of the token.
    pub hash: SecretHash,
    /// Unix seconds.
    pub issued_at: i64,
    /// When it was exchanged; a second exchange after this (outside the
    /// grace window) is reuse.
    pub spent_at: Option<i64>,
}

/// The scopes granted to an mTLS identity.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdentityRecord {
    /// The identity's name (the last segment of its SPIFFE id).
    pub name: String,
    /// The scopes it holds.
    pub scopes: Vec<String>,
    /// A disabled identity is refused.
    pub disabled: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// Overrides the server's default request rate.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

/// An OAuth 2.1 grant type a client may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    /// `client_credentials`: a confidential client gets a token for itself.
    ClientCredentials,
    /// `authorization_code`: the browser flow (with PKCE).
    AuthorizationCode,
    /// `refresh_token`: trading a refresh token for fresh tokens.
    RefreshToken,
}

impl GrantType {
    /// Every grant type, in the order lists show them.
    pub const ALL: [GrantType; 3] = [
        GrantType::ClientCredentials,
        GrantType::AuthorizationCode,
        GrantType::RefreshToken,
    ];

    /// The OAuth name, e.g. `client_credentials`.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::RefreshToken => "refresh_token",
        }
    }

    /// The grant type of an OAuth name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == name)
    }
}

/// How a client authenticates at the token endpoint
/// (`token_endpoint_auth_method`, RFC 7591).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// The secret in HTTP Basic authentication.
    #[default]
    ClientSecretBasic,
    /// The secret in the request body.
    ClientSecretPost,
    /// A JWT signed with a key of the client's registered JWK Set
    /// (RFC 7523).
    PrivateKeyJwt,
    /// None: a public client (a native or browser app).
    None,
}

impl AuthMethod {
    /// Every method, in the order lists show them.
    pub const ALL: [AuthMethod; 4] = [
        AuthMethod::ClientSecretBasic,
        AuthMethod::ClientSecretPost,
        AuthMethod::PrivateKeyJwt,
        AuthMethod::None,
    ];

    /// The OAuth name, e.g. `client_secret_basic`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
            AuthMethod::None => "none",
        }
    }

    /// The method of an OAuth name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// Whether clients of this method authenticate with a client secret
    /// (and so have one).
    pub fn uses_secret(self) -> bool {
        matches!(
            self,
            AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
        )
    }

    /// Whether clients of this method are confidential (can keep a
    /// credential): every method but `none`.
    pub fn is_confidential(self) -> bool {
        self != AuthMethod::None
    }
}

/// How an OAuth client came to be.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientOrigin {
    /// Created by an admin (`CreateClient`, `mcp-auth client create`).
    #[default]
    Registered,
    /// Registered by the client itself (RFC 7591 Dynamic Client
    /// Registration).
    Dynamic,
    /// Described by the client's metadata document at its `client_id`
    /// URL; never stored, only cached in memory.
    MetadataDocument,
}

impl ClientOrigin {
    /// `registered`, `dynamic` or `metadata_document`.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientOrigin::Registered => "registered",
            ClientOrigin::Dynamic => "dynamic",
            ClientOrigin::MetadataDocument => "metadata_document",
        }
    }
}

/// A stored OAuth client. Its secret, if it has one, is stored only
/// hashed. Fields added after the first version default when absent, so
/// older records read back.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OAuthClientRecord {
    /// `cli_` and 22 base62 characters.
    pub client_id: String,
    /// What the operator (or the registering client) called it.
    pub name: String,
    /// Hash of the current secret; `None` for a client whose method uses
    /// no secret (`none`, `private_key_jwt`).
    #[serde(default)]
    pub secret_hash: Option<SecretHash>,
    /// `mcp_cs_` and the first characters of the current secret, to
    /// recognise it; `None` without a secret.
    #[serde(default)]
    pub secret_prefix: Option<String>,
    /// The secret replaced by the last rotation, valid until its
    /// `valid_until`.
    #[serde(default)]
    pub previous_secret: Option<PreviousSecret>,
    /// When the secret was last rotated.
    #[serde(default)]
    pub secret_rotated_at: Option<i64>,
    /// Where the authorization endpoint may send the browser back to:
    /// `https`, or `http` on a loopback host; matched exactly.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// The grants the client may use.
    #[serde(default)]
    pub grant_types: Vec<GrantType>,
    /// Application scopes its tokens may carry.
    #[serde(default)]
    pub allowed_scopes: Vec<String>,
    /// Resources (RFC 8707) its tokens may be for; each becomes an `aud`.
    #[serde(default)]
    pub allowed_resources: Vec<String>,
    /// How it authenticates at the token endpoint.
    #[serde(default)]
    pub token_endpoint_auth_method: AuthMethod,
    /// Its public keys, a JWK Set as JSON text (for `private_key_jwt`).
    #[serde(default)]
    pub jwks: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last change.
    pub updated_at: i64,
    /// A disabled client gets no tokens, and its tokens verify as REVOKED.
    #[serde(default)]
    pub disabled: bool,
    /// Set when a disabled client is enabled again: its tokens issued at
    /// or before this second stay REVOKED.
    #[serde(default)]
    pub tokens_valid_after: Option<i64>,
    /// Registered by an admin or dynamically.
    #[serde(default)]
    pub origin: ClientOrigin,
    /// When it last completed a grant (for pruning dynamic registrations
    /// that never did).
    #[serde(default)]
    pub last_grant_at: Option<i64>,
    /// A first-party client: its authorizations skip the consent page.
    #[serde(default)]
    pub skip_consent: bool,
}

impl OAuthClientRecord {
    /// Whether the client may use `grant`.
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
}

/// A built-in user account: someone who signs in with a username and a
/// password at the authorization server's login page. The password is
/// stored only as its Argon2id hash (a PHC string), which `Debug` never
/// shows. Fields added after the first version default when absent.
#[derive(Clone, Serialize, Deserialize)]
pub struct UserRecord {
    /// `usr_` and 22 base62 characters.
    pub user_id: String,
    /// Unique, 1 to 64 characters of `a-z 0-9 . _ - @`, stored lowercase.
    pub username: String,
    /// The password's Argon2id hash as a PHC string
    /// (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`).
    pub password_hash: String,
    /// A disabled user cannot sign in.
    #[serde(default)]
    pub disabled: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last change.
    #[serde(default)]
    pub updated_at: i64,
    /// Unix seconds of the last password change (creation counts).
    #[serde(default)]
    pub password_changed_at: i64,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("user_id", &self.user_id)
            .field("username", &self.username)
            .field("password_hash", &"[redacted]")
            .field("disabled", &self.disabled)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .field("password_changed_at", &self.password_changed_at)
            .finish()
    }
}

/// A user's remembered consent to one OAuth client: the scopes approved
/// with "remember", per resource. A later authorization of that client
/// asking for no more than these skips the consent page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    /// The user (the tokens' `sub`).
    pub subject: String,
    /// The client.
    pub client_id: String,
    /// The scopes approved, sorted.
    pub scopes: Vec<String>,
    /// The resources they were approved for, sorted.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Unix seconds of the first approval.
    pub granted_at: i64,
    /// Unix seconds of the last one.
    pub updated_at: i64,
}

impl ConsentRecord {
    /// Whether it covers `scopes` for `resource`.
    pub fn covers(&self, scopes: &[String], resource: &str) -> bool {
        self.resources.iter().any(|r| r == resource)
            && scopes.iter().all(|s| self.scopes.contains(s))
    }
}

/// A revoked client certificate.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RevokedCert {
    /// Lowercase hex.
    pub serial: String,
    /// Unix seconds.
    pub revoked_at: i64,
}

/// A stored signing key, private part included. Lives only in the store,
/// which keeps it from other users (the sled backend's directory is mode
/// 0700; the PostgreSQL backend stores the private part sealed with the
/// key-ring key, never in clear).
#[derive(Clone, Serialize, Deserialize)]
pub struct SigningKeyRecord {
    /// The RFC 7638 thumbprint of its public key.
    pub kid: String,
    /// Its algorithm.
    pub alg: SigningAlg,
    /// PKCS#8 DER private key.
    pub private_pkcs8: Vec<u8>,
    /// Unix seconds.
    pub created_at: i64,
    /// When it stopped being the active key; `None` while active.
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for SigningKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeyRecord")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("private_pkcs8", &"[redacted]")
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

/// An event for the audit trail, before the store gives it its place in
/// the chain. Never a secret, a token or key material: only ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// Unix seconds.
    pub time: i64,
    /// Who: a key id, an identity name, or `peer:<address>`.
    pub actor: String,
    /// What, e.g. `api_key.created`.
    pub action: String,
    /// On what: an id, never a secret.
    pub target: String,
    /// `ok`, or the refusal's reason.
    pub outcome: String,
    /// The request's id.
    pub request_id: String,
}

/// One record of the hash-chained audit trail.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// Unix seconds.
    pub time: i64,
    /// Who: a key id, an identity name, or `peer:<address>` when
    /// unauthenticated.
    pub actor: String,
    /// What, e.g. `api_key.created`.
    pub action: String,
    /// On what: an id, never a secret.
    pub target: String,
    /// `ok`, or the refusal's reason.
    pub outcome: String,
    /// The RPC's request id.
    pub request_id: String,
    /// Hex SHA-256 of the previous record (or of the anchor), empty for the
    /// first record ever.
    pub prev_hash: String,
    /// Hex SHA-256 of this record's other fields and `prev_hash`.
    pub hash: String,
}

impl AuditRecord {
    /// `entry` as the record at `seq` following a record whose hash is
    /// `prev_hash`, with its own hash computed.
    pub fn seal(entry: AuditEntry, seq: u64, prev_hash: String) -> Self {
        let mut record = AuditRecord {
            seq,
            time: entry.time,
            actor: entry.actor,
            action: entry.action,
            target: entry.target,
            outcome: entry.outcome,
            request_id: entry.request_id,
            prev_hash,
            hash: String::new(),
        };
        record.hash = record.compute_hash();
        record
    }

    /// The hash this record should carry.
    pub fn compute_hash(&self) -> String {
        // The canonical form is the JSON array of the fields in this order;
        // serialised from borrowed fields, without building a JSON value.
        let canonical = serde_json::to_vec(&(
            self.seq,
            self.time,
            &self.actor,
            &self.action,
            &self.target,
            &self.outcome,
            &self.request_id,
            &self.prev_hash,
        ))
        .unwrap_or_default();
        hex(SecretHash::of(&canonical).as_bytes())
    }
}

/// The chain's starting point after pruning: the last pruned record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditAnchor {
    /// Seq of the last pruned record (0 if nothing was pruned).
    pub seq: u64,
    /// Its hash (empty if nothing was pruned).
    pub hash: String,
}

/// A record as it was read, with the version a conditional write compares
/// against (see `Store::replace_api_key`, `Store::replace_session`).
#[derive(Clone, Debug)]
pub struct Versioned<T> {
    /// The record.
    pub record: T,
    /// Opaque to everyone but the backend that read it.
    pub version: Version,
}

/// What a backend needs to tell whether a record changed since it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version(pub(crate) Vec<u8>);

/// Whether a conditional write happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub enum Swap {
    /// The record was unchanged since it was read, and is now replaced.
    Done,
    /// Someone changed (or removed) the record first; nothing was written.
    Conflict,
}

/// Where a listing goes on: opaque to the caller, which hands back what a
/// page returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor(pub(crate) String);

impl Cursor {
    /// The cursor as text, to hand to a client.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A cursor a client handed back.
    pub fn from_client(text: String) -> Self {
        Cursor(text)
    }
}

/// Which sessions a listing returns.
#[derive(Clone, Debug, Default)]
pub struct SessionFilter {
    /// Only this subject's.
    pub subject: Option<String>,
    /// Only those created by this credential.
    pub client_id: Option<String>,
}

/// One page of a listing.
#[derive(Clone, Debug)]
pub struct Page<T> {
    /// The items, in a stable order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// What a transient entry is: the browser flow's state in progress, kept in
/// the store so that every replica of a shared one sees it (see
/// `Store::put_transient`). Each kind is a namespace of keys of its own.
/// Entries are neither audited nor in the change feed: whoever needs one
/// reads it from the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TransientKind {
    /// A sign-in and consent under way, by its id.
    Interaction,
    /// A signed-in browser's login session, by its token's hash.
    LoginSession,
    /// A login challenge or verifier, by its hash.
    Ticket,
    /// An authorization code, pending or spent, by its hash.
    Code,
}

impl TransientKind {
    /// Every kind.
    pub const ALL: [TransientKind; 4] = [
        TransientKind::Interaction,
        TransientKind::LoginSession,
        TransientKind::Ticket,
        TransientKind::Code,
    ];

    /// Its stored number (never reused for another kind).
    pub fn number(self) -> u8 {
        match self {
            TransientKind::Interaction => 1,
            TransientKind::LoginSession => 2,
            TransientKind::Ticket => 3,
            TransientKind::Code => 4,
        }
    }
}
