//! `AdminService.GetStatus`: what an operator asks of a running server
//! first. Its version and uptime, which store it runs on, its key ring
//! (each key's age and state, the next scheduled rotation), the counts of
//! what it holds, and the addresses it listens on. Everything but the
//! user count is read from memory; the server hands the core its start
//! time and listener addresses when it begins serving ([`Core::note_serving`]).

use std::net::SocketAddr;

use crate::core::error::Error;
use crate::core::principal::STATUS_READ;
use crate::core::{Core, Credentials, policy};

/// When the server began serving, and where: what only the server knows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Serving {
    /// Unix seconds, by the server's clock.
    pub started_at: i64,
    /// The gRPC listener's address.
    pub grpc: Option<SocketAddr>,
    /// The HTTP (OAuth) listener's address; `None` when not served.
    pub http: Option<SocketAddr>,
    /// The metrics listener's address; `None` when not served.
    pub metrics: Option<SocketAddr>,
}

/// Whether a signing key signs new tokens or only verifies old ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Signs every new token.
    Active,
    /// Verifies the tokens it signed until they have all expired.
    Retired,
}

impl KeyState {
    /// `active` or `retired`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Retired => "retired",
        }
    }
}

/// One signing key of the ring, never its private part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyStatus {
    /// Its key id, as in the JWK Set.
    pub kid: String,
    /// Its algorithm, e.g. `EdDSA`.
    pub alg: &'static str,
    /// Unix seconds.
    pub created_at: i64,
    /// Seconds since it was created.
    pub age_seconds: i64,
    /// Active or retired.
    pub state: KeyState,
    /// When it was retired (retired keys only).
    pub retired_at: Option<i64>,
    /// When maintenance removes it from the JWK Set: its retirement plus
    /// the longest token lifetime (retired keys only).
    pub removed_after: Option<i64>,
}

/// The counts of what the server holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Sessions that can still be refreshed, as the last full
    /// maintenance sweep counted them; `None` before the first.
    pub live_sessions: Option<u64>,
    /// API keys accepted now (neither revoked nor expired).
    pub api_keys: u64,
    /// OAuth clients registered.
    pub oauth_clients: u64,
    /// Identity grants.
    pub identities: u64,
    /// User accounts.
    pub users: u64,
    /// Records in the audit chain since it began; `None` when the store
    /// cannot tell without a query.
    pub audit_chain_length: Option<u64>,
}

/// What `GetStatus` answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerStatus {
    /// This build's version (`CARGO_PKG_VERSION`).
    pub version: &'static str,
    /// The git commit it was built from, or `unknown`.
    pub commit: &'static str,
    /// The server's clock now, Unix seconds.
    pub now: i64,
    /// When it began serving and where.
    pub serving: Serving,
    /// Seconds since it began serving.
    pub uptime_seconds: i64,
    /// The store backend: `sled` or `postgres`.
    pub store_backend: &'static str,
    /// Whether it is ready (as `/readyz` says), and why not.
    pub not_ready: Option<&'static str>,
    /// The key ring, the active key first, then the retired ones newest
    /// first.
    pub signing_keys: Vec<KeyStatus>,
    /// When maintenance rotates the active key next (the first pass at
    /// or after this time); `None` when rotation is off
    /// (`signing_key_rotation_days = 0`).
    pub next_rotation_at: Option<i64>,
    /// What it holds.
    pub counts: Counts,
}

impl Core {
    /// Notes when and where the server began serving, for `GetStatus`.
    /// The first note stands.
    pub fn note_serving(
        &self,
        grpc: SocketAddr,
        http: Option<SocketAddr>,
        metrics: Option<SocketAddr>,
    ) {
        let serving = Serving {
            started_at: self.clock.now(),
            grpc: Some(grpc),
            http,
            metrics,
        };
        let _ = self.health.serving.set(serving);
    }

    /// `AdminService.GetStatus`. Needs `status:read` (which `admin`
    /// implies).
    ///
    /// # Errors
    /// Authentication, PERMISSION_DENIED, storage (counting users).
    pub async fn status(&self, creds: &Credentials<'_>) -> Result<ServerStatus, Error> {
        let caller = self.authenticate(creds).await?;
        policy::require(&caller, STATUS_READ)?;
        let now = self.clock.now();
        let serving = self.health.serving.get().copied().unwrap_or_default();
        let max_ttl = i64::from(self.settings.max_ttl);
        let mut signing_keys: Vec<KeyStatus> = self
            .tokens
            .ring()
            .records()
            .into_iter()
            .map(|r| KeyStatus {
                age_seconds: (now - r.created_at).max(0),
                state: if r.retired_at.is_none() {
                    KeyState::Active
                } else {
                    KeyState::Retired
                },
                removed_after: r.retired_at.map(|t| t + max_ttl),
                retired_at: r.retired_at,
                alg: r.alg.as_str(),
                created_at: r.created_at,
                kid: r.kid,
            })
            .collect();
        signing_keys.sort_by(|a, b| {
            (a.state != KeyState::Active)
                .cmp(&(b.state != KeyState::Active))
                .then(b.created_at.cmp(&a.created_at))
                .then(a.kid.cmp(&b.kid))
        });
        let days = i64::from(self.settings.signing_key_rotation_days);
        let next_rotation_at = (days > 0)
            .then(|| {
                self.tokens
                    .ring()
                    .active_key()
                    .map(|(_, c)| c + days * 86_400)
            })
            .flatten();
        let gauges = self.gauges();
        let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let counts = Counts {
            live_sessions: gauges.sessions,
            api_keys: gauges.api_keys,
            oauth_clients: gauges.clients,
            identities: as_u64(self.identities.len()),
            users: as_u64(self.store.users().await?.len()),
            audit_chain_length: gauges.audit_chain_length,
        };
        Ok(ServerStatus {
            version: crate::version::VERSION,
            commit: crate::version::COMMIT,
            now,
            uptime_seconds: if serving.started_at > 0 {
                (now - serving.started_at).max(0)
            } else {
                0
            },
            serving,
            store_backend: self.store.backend(),
            not_ready: self.readiness().err().map(|r| r.as_str()),
            signing_keys,
            next_rotation_at,
            counts,
        })
    }
}
