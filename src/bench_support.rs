//! Fixtures for `cargo bench` (benches/hot_path.rs): the hot-path pieces
//! wired up on a temporary data directory, so criterion can time them
//! without a server. Not part of the supported API.

use std::path::Path;

use crate::audit::{AuditEvent, AuditLog};
use crate::clock::Clock;
use crate::limits::{Limits, RateLimit};
use crate::secret::SecretHash;
use crate::store::{ApiKeyRecord, SessionRecord, Store};
use crate::token::{KeyRing, RevocationIndex, SigningAlg, TokenIssuer};

/// The pieces a request touches, ready to time.
pub struct Fixture {
    limits: Limits,
    audit: AuditLog,
    issuer: TokenIssuer,
    session: SessionRecord,
    store: Store,
    clock: Clock,
    revocations: RevocationIndex,
    key_hash: SecretHash,
}

impl Fixture {
    /// Builds the fixture in `dir` (a fresh temporary directory).
    ///
    /// # Errors
    /// Storage or key generation failed.
    pub async fn new(dir: &Path, alg: SigningAlg) -> Result<Self, crate::Error> {
        let clock = Clock::system();
        let store = Store::open(dir)?;
        let ring = KeyRing::load_or_create(&store, alg, clock.now()).await?;
        let now = clock.now();
        // 1000 API keys, and 10,000 revoked sessions in the index.
        let mut key_hash = SecretHash::of(b"");
        for i in 0..1000 {
            key_hash = SecretHash::of(format!("mcp_sk_bench{i}").as_bytes());
            store
                .insert_api_key(&ApiKeyRecord {
                    key_id: format!("key_bench{i}"),
                    name: "bench".to_owned(),
                    scopes: vec!["sessions:create".to_owned(), "tokens:verify".to_owned()],
                    prefix: "mcp_sk_bench".to_owned(),
                    created_at: now,
                    expires_at: 0,
                    revoked_at: None,
                    rotated_at: None,
                    secret_hash: key_hash,
                    previous: None,
                    rate_limit: None,
                })
                .await?;
        }
        let revocations = RevocationIndex::default();
        for i in 0..10_000 {
            revocations.insert(&format!("ses_revoked{i}"));
        }
        Ok(Fixture {
            revocations,
            key_hash,
            limits: Limits::new(
                clock.clone(),
                Some(RateLimit {
                    requests_per_second: 1_000_000,
                    burst: 1_000_000,
                }),
                10,
            ),
            audit: AuditLog::open(store.clone(), clock.clone())?,
            issuer: TokenIssuer::new(ring, "mcp-auth".to_owned(), alg),
            session: SessionRecord {
                session_id: "ses_0123456789abcdefghijkl".to_owned(),
                subject: "user-42".to_owned(),
                client_id: "key_0123456789abcdefghijkl".to_owned(),
                scopes: vec!["tools:read".to_owned(), "tools:call".to_owned()],
                audience: "https://mcp.example.com".to_owned(),
                created_at: now,
                expires_at: now + 900,
                revoked_at: None,
                session_expires_at: now + 86_400,
                last_refreshed_at: now,
                refresh_hashes: vec![],
                token_ttl: 900,
            },
            store,
            clock,
        })
    }

    /// One rate-limit check for a known caller.
    pub fn limiter_check(&self) -> bool {
        self.limits.check_caller("key_bench", None).is_ok()
    }

    /// One audit record appended (not flushed).
    pub fn audit_append(&self) {
        self.audit.append_unflushed(AuditEvent {
            actor: "key_bench",
            action: "session.created",
            target: "ses_0123456789abcdefghijkl",
            outcome: "ok",
            request_id: "bench",
        });
    }

    /// Signs one access token.
    ///
    /// # Errors
    /// Signing failed.
    pub fn sign(&self) -> Result<String, crate::Error> {
        let s = &self.session;
        Ok(self
            .issuer
            .issue(s, &s.scopes, self.clock.now(), s.expires_at)?)
    }

    /// Verifies one access token (signature, issuer, time); after the
    /// first call, from the verified-token cache.
    pub fn verify(&self, token: &str) -> bool {
        self.issuer.verify(token, self.clock.now()).is_ok()
    }

    /// Verifies one access token without the cache: parse, key lookup,
    /// signature, claims.
    pub fn verify_uncached(&self, token: &str) -> bool {
        self.issuer.verify_uncached(token).is_ok()
    }

    /// Looks up an API key by its secret's hash (among 1000 keys).
    pub fn api_key_lookup(&self) -> bool {
        matches!(self.store.api_key_by_hash(&self.key_hash), Ok(Some(_)))
    }

    /// Looks a session up in the revocation index (10,000 revoked).
    pub fn revocation_lookup(&self) -> bool {
        self.revocations.contains(&self.session.session_id)
    }

    /// One session write, not flushed.
    ///
    /// # Errors
    /// Storage failed.
    pub fn session_write(&self, n: u64) -> Result<(), crate::Error> {
        let mut s = self.session.clone();
        s.session_id = format!("ses_bench_nf_{n}");
        self.store.insert_session(&s, None)?;
        Ok(())
    }

    /// One durable session write (insert and flush).
    ///
    /// # Errors
    /// Storage failed.
    pub async fn durable_write(&self, n: u64) -> Result<(), crate::Error> {
        let mut s = self.session.clone();
        s.session_id = format!("ses_bench_{n}");
        self.store.insert_session(&s, None)?;
        self.store.flush().await?;
        Ok(())
    }
}
