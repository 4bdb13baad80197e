//! The core: every operation of the service on domain types, under every
//! transport. Callers hand it [`Credentials`] and plain inputs; it
//! resolves who is calling ([`authn`]), checks what they may do
//! ([`policy`]), decides, and writes through the [`Store`]. It names no
//! transport and no storage engine; errors are the domain [`Error`], which
//! each adapter maps to its wire form in one place.
//!
//! The in-memory indexes the hot path reads (API keys by secret hash,
//! identity grants, OAuth clients, revoked certificates, sessions and
//! client tokens) are loaded from the store at [`Core::open`] and kept in
//! step by the core's own writes. User accounts are read from the store
//! when needed (signing in is rare next to token checks).

pub(crate) mod api_keys;
pub mod audit;
pub(crate) mod authn;
pub(crate) mod authorize;
pub(crate) mod backup;
pub(crate) mod cimd;
pub(crate) mod client_assertion;
pub(crate) mod client_auth;
pub(crate) mod client_index;
pub(crate) mod client_rules;
pub(crate) mod clients;
pub(crate) mod code_grant;
pub(crate) mod codes;
pub(crate) mod consents;
pub mod credentials;
pub(crate) mod delegated_login;
pub mod error;
pub(crate) mod fields;
pub(crate) mod follow;
pub(crate) mod grants;
pub mod health;
pub(crate) mod identities;
pub(crate) mod interactions;
pub mod limits;
pub mod maintenance;
pub(crate) mod oauth_tokens;
pub(crate) mod passwords;
pub mod pkce;
pub(crate) mod policy;
pub(crate) mod principal;
pub(crate) mod refresh;
pub(crate) mod refresh_replays;
pub(crate) mod revocations;
pub(crate) mod sessions;
pub(crate) mod signing;
pub mod status;
pub(crate) mod transient;
pub(crate) mod users;
pub(crate) mod verify;
pub(crate) mod watch;
pub(crate) mod whoami;

use std::sync::Arc;

pub use self::api_keys::{CreatedApiKey, NewApiKey};
pub use self::authorize::{AuthorizationRequest, AuthorizeRefusal, CheckedAuthorization};
pub use self::client_assertion::JWT_BEARER_ASSERTION;
pub use self::client_auth::ClientCredential;
pub use self::client_index::ClientAuthError;
pub(crate) use self::client_rules::{jwks_member, self_registered_scopes};
pub use self::clients::{ClientUpdate, CreatedClient, NewClient};
pub use self::code_grant::CodeExchange;
pub use self::codes::ApprovedAuthorization;
pub use self::credentials::Credentials;
pub use self::delegated_login::{LOGIN_CONTINUE_PATH, LoginRequest, REJECT_ERRORS};
pub use self::error::{Error, Kind, Reason};
pub use self::grants::{ClientCredentialsRequest, GrantedToken};
pub use self::identities::IdentityGrant;
pub use self::interactions::{Decision, Interaction, SignedIn, SignedInUser};
pub use self::oauth_tokens::{Introspection, Introspector};
pub use self::principal::CallerKind;
pub use self::revocations::{Revocation, RevocationTarget};
pub use self::sessions::{IssuedSession, NewSession};
pub use self::verify::{InactiveReason, TokenCheck, TokenKind, Verdict, VerifiedClaims};
pub use self::watch::{Resume, RevocationBatch, RevocationWatch};
pub use self::whoami::Caller;
use crate::clock::Clock;
use crate::config::Config;
use crate::secret::Secret;
use crate::store::Store;
use crate::token::TokenIssuer;

/// The settings operations read, from the configuration.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// Token lifetime when a request asks for 0, seconds.
    pub default_ttl: u32,
    /// Longest token lifetime a request may ask for, seconds.
    pub max_ttl: u32,
    /// Longest (and default) session lifetime, seconds.
    pub max_session_lifetime: u32,
    /// Idle timeout of a session, seconds.
    pub session_idle_timeout: u32,
    /// Grace window for re-presenting a spent refresh token, seconds.
    pub refresh_reuse_grace: u32,
    /// The same, at the token endpoint (`grant_type=refresh_token`).
    pub oauth_refresh_grace: u32,
    /// SPIFFE trust domain of client certificate identities.
    pub trust_domain: String,
    /// Resources a dynamic registration may name, and gets when it names
    /// none (`dcr_allowed_resources`); empty: its own.
    pub dcr_allowed_resources: Vec<String>,
    /// The server runs on its generated development TLS (a local run):
    /// self-registered and metadata-document clients given no resources
    /// may ask for a loopback MCP server's URL.
    pub development: bool,
    /// How long a revocation stream may stay quiet before it carries a
    /// heartbeat.
    pub revocation_heartbeat: std::time::Duration,
    /// Days between scheduled signing-key rotations; 0 never.
    pub signing_key_rotation_days: u32,
}

/// The service's state and operations.
pub struct Core {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Clock,
    pub(crate) settings: Settings,
    pub(crate) tokens: TokenIssuer,
    pub(crate) keys: api_keys::ApiKeyIndex,
    pub(crate) identities: identities::IdentityIndex,
    pub(crate) clients: client_index::ClientIndex,
    /// Clients described by metadata documents, fetched and cached.
    pub(crate) metadata_clients: cimd::MetadataClients,
    pub(crate) revocations: Arc<revocations::RevocationIndex>,
    /// Where this replica stands in a shared store's change feed.
    pub(crate) feed: follow::Feed,
    pub(crate) limits: limits::Limits,
    /// Answers of recent refreshes, for repeats within the grace window.
    pub(crate) refresh_replays: refresh_replays::RefreshReplays,
    /// Browser interactions under way, and login sessions (in the store).
    pub(crate) interactions: interactions::Interactions,
    /// Authorization codes issued and not yet forgotten (in the store).
    pub(crate) codes: codes::AuthorizationCodes,
    /// Client assertions seen, for `jti` replay.
    pub(crate) assertions: client_assertion::SeenAssertions,
    pub(crate) audit: audit::AuditTrail,
    /// Hashing and checking user passwords, a bounded number at a time.
    pub(crate) passwords: passwords::Passwords,
    /// Readiness, and the figures the metrics show.
    pub(crate) health: health::Health,
    /// One API-key write at a time, so the index sees them in order.
    key_writes: tokio::sync::Mutex<()>,
    /// One identity write at a time, likewise.
    identity_writes: tokio::sync::Mutex<()>,
    /// One OAuth client write at a time, likewise.
    client_writes: tokio::sync::Mutex<()>,
    /// One key-ring change (rotation, pruning) at a time.
    key_changes: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Core {
    /// The core over `store`: loads the key ring (creating the first
    /// signing key), the API keys, identity grants, OAuth clients and
    /// revocations into memory. On a store with no API key at all, creates the primary key
    /// (scope `admin`) and returns its secret, once.
    ///
    /// # Errors
    /// Storage failed, or a stored key cannot be parsed.
    pub async fn open(
        store: Arc<dyn Store>,
        clock: Clock,
        config: &Config,
    ) -> Result<(Core, Option<Secret>), Error> {
        // Replicas starting together on one database: one at a time makes
        // the first signing key and the primary key.
        store.begin_startup().await?;
        let opened = Core::load(store.clone(), clock, config).await;
        store.end_startup().await;
        opened
    }

    /// [`Core::open`], under the startup lock.
    async fn load(
        store: Arc<dyn Store>,
        clock: Clock,
        config: &Config,
    ) -> Result<(Core, Option<Secret>), Error> {
        // Where the change feed stands before anything is read: a change
        // committed while loading is applied again, never missed.
        let position = store.change_position().await?;
        let feed = follow::Feed::new(&*store, position, config.store_max_staleness);
        let now = clock.now();
        let ring = signing::load_ring(&*store, config.signing_alg, &config.issuer, now).await?;
        let audit = audit::AuditTrail::new(store.clone(), clock.clone());
        let mut key_records = store.api_keys().await?;
        let primary = if key_records.is_empty() {
            let created =
                api_keys::create_admin_key(&*store, &audit, now, "primary", "system").await?;
            key_records.push(created.record);
            Some(created.secret)
        } else {
            None
        };
        let identities =
            identities::IdentityIndex::new(store.identities().await?, store.revoked_certs().await?);
        let revocations = revocations::RevocationIndex::new(new_epoch()?, config.max_token_ttl);
        for (id, expires_at) in store.revoked_sessions().await? {
            revocations.load_session(id, expires_at);
        }
        let clients = store.clients().await?;
        for c in &clients {
            if let Some(through) = clients::revoked_through(c) {
                revocations.load_client(c.client_id.clone(), through);
            }
        }
        for (jti, exp) in store.revoked_tokens().await? {
            revocations.load_token(jti, exp);
        }
        for (client_id, deleted_at) in store.deleted_clients().await? {
            revocations.load_deleted_client(client_id, deleted_at);
        }
        for k in key_records.iter().filter(|k| k.revoked_at.is_some()) {
            revocations.load_api_key(k.key_id.clone(), k.expires_at);
        }
        if !config.dcr_default_scopes.is_empty() {
            client_rules::scopes(&config.dcr_default_scopes)
                .map_err(|e| Error::invalid("dcr_default_scopes", e.to_string()))?;
        }
        client_rules::resources(&config.dcr_allowed_resources)
            .map_err(|e| Error::invalid("dcr_allowed_resources", e.to_string()))?;
        let metadata_clients = metadata_clients(config)?;
        let core = Core {
            clients: client_index::ClientIndex::new(clients),
            metadata_clients,
            tokens: TokenIssuer::new(
                ring,
                config.issuer.clone(),
                config.signing_alg,
                config.max_token_ttl,
            ),
            keys: api_keys::ApiKeyIndex::new(key_records),
            identities,
            revocations: Arc::new(revocations),
            feed,
            limits: limits::Limits::new(
                clock.clone(),
                config.default_rate_limit,
                config.auth_failures_per_minute,
                config.dcr_registrations_per_hour,
            ),
            assertions: client_assertion::SeenAssertions::default(),
            codes: codes::AuthorizationCodes::new(store.clone()),
            interactions: interactions::Interactions::new(store.clone()),
            refresh_replays: refresh_replays::RefreshReplays::default(),
            audit,
            passwords: passwords::Passwords::default(),
            health: health::Health::default(),
            settings: Settings {
                default_ttl: config.default_token_ttl,
                max_ttl: config.max_token_ttl,
                max_session_lifetime: config.max_session_lifetime,
                session_idle_timeout: config.session_idle_timeout,
                refresh_reuse_grace: config.refresh_reuse_grace,
                oauth_refresh_grace: config.oauth_refresh_grace,
                trust_domain: config.trust_domain.clone(),
                dcr_allowed_resources: config.dcr_allowed_resources.clone(),
                development: config.tls == crate::config::TlsMode::Generated,
                revocation_heartbeat: config.revocation_heartbeat,
                signing_key_rotation_days: config.signing_key_rotation_days,
            },
            key_writes: tokio::sync::Mutex::new(()),
            identity_writes: tokio::sync::Mutex::new(()),
            client_writes: tokio::sync::Mutex::new(()),
            key_changes: tokio::sync::Mutex::new(()),
            store,
            clock,
        };
        Ok((core, primary))
    }

    /// The time now, by the one clock (Unix seconds): adapters use it to
    /// tell where a record stands when they show it.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The SPIFFE trust domain of client certificate identities.
    pub fn trust_domain(&self) -> &str {
        &self.settings.trust_domain
    }

    /// Makes every write so far durable (at shutdown).
    ///
    /// # Errors
    /// Storage failed.
    pub async fn flush(&self) -> Result<(), Error> {
        Ok(self.store.flush().await?)
    }
}

/// A fresh epoch for this run of the revocation feed: 128 bits from the OS
/// CSPRNG, in hex.
fn new_epoch() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(crate::secret::hex(&bytes))
}

/// The metadata-document clients `config` asks for: fetched under the
/// SSRF guard with the document size cap, or none when `cimd` is off.
fn metadata_clients(config: &Config) -> Result<cimd::MetadataClients, Error> {
    let policy = config.cimd.then(|| crate::fetch::FetchPolicy {
        timeout: config.cimd_fetch_timeout,
        max_bytes: cimd::MAX_DOCUMENT_BYTES,
        testing_ca: config.cimd_testing_ca.as_ref().map(|(_, pem)| pem.clone()),
    });
    if let (true, Some((path, _))) = (config.cimd, &config.cimd_testing_ca) {
        tracing::warn!(
            ca = %path.display(),
            "cimd_testing_ca is set: client metadata documents may be fetched from LOOPBACK addresses and this CA is trusted for them; this setting is for tests only, never for a real deployment"
        );
    }
    cimd::MetadataClients::new(
        policy,
        cimd::CimdSettings {
            allowed_hosts: config.cimd_allowed_hosts.clone(),
            default_scopes: config.dcr_default_scopes.clone(),
            allowed_resources: config.cimd_allowed_resources.clone(),
        },
    )
    .map_err(|message| Error::invalid("cimd_testing_ca", message))
}

/// Creates a key with scope `admin` directly in `store` (a stopped
/// server's), audited as made offline, for when every admin key is lost or
/// revoked. Returns the key id and the secret, which is written nowhere.
///
/// # Errors
/// Storage or the random source failed.
pub async fn recover_admin_key(
    store: Arc<dyn Store>,
    clock: &Clock,
) -> Result<(String, Secret), Error> {
    let now = clock.now();
    let name = format!("recovery-{now}");
    let audit = audit::AuditTrail::new(store.clone(), clock.clone());
    let created =
        api_keys::create_admin_key(&*store, &audit, now, &name, "offline-recovery").await?;
    tracing::warn!(key_id = %created.record.key_id, "created a recovery admin key offline");
    Ok((created.record.key_id, created.secret))
}
