//! Fixtures for `cargo bench` (benches/hot_path.rs): the hot-path pieces
//! wired up on a temporary data directory, so criterion can time them
//! without a server. Not part of the supported API.

use std::path::Path;
use std::sync::Arc;

use crate::clock::Clock;
use crate::core::api_keys::ApiKeyIndex;
use crate::core::limits::Limits;
use crate::core::revocations::RevocationIndex;
use crate::secret::SecretHash;
use crate::store::{
    ApiKeyRecord, AuditEntry, Durability, RefreshToken, SessionRecord, SigningAlg, Store,
};
use crate::token::{KeyRing, TokenIssuer, generate_signing_key};

/// The pieces a request touches, ready to time.
pub struct Fixture {
    limits: Limits,
    issuer: TokenIssuer,
    session: SessionRecord,
    durable: Arc<dyn Store>,
    unflushed: Arc<dyn Store>,
    clock: Clock,
    keys: ApiKeyIndex,
    revocations: RevocationIndex,
    key_hash: SecretHash,
}

fn entry(action: &str) -> AuditEntry {
    AuditEntry {
        time: 0,
        actor: "key_bench".to_owned(),
        action: action.to_owned(),
        target: "ses_0123456789abcdefghijkl".to_owned(),
        outcome: "ok".to_owned(),
        request_id: "bench".to_owned(),
    }
}

impl Fixture {
    /// Builds the fixture in `dir` (a fresh temporary directory).
    ///
    /// # Errors
    /// Storage or key generation failed.
    pub async fn new(dir: &Path, alg: SigningAlg) -> Result<Self, crate::Error> {
        let clock = Clock::system();
        let now = clock.now();
        let durable = crate::store::open(&dir.join("durable"), Durability::Durable)?;
        let unflushed = crate::store::open(&dir.join("unflushed"), Durability::Unsafe)?;
        let issuer = "https://bench.example";
        let ring = KeyRing::from_records(
            vec![generate_signing_key(alg, now).map_err(crate::core::Error::from)?],
            &TokenIssuer::accepted_issuers(issuer),
        )
        .map_err(crate::core::Error::from)?;
        // 1000 API keys, and 10,000 revoked sessions in the index.
        let mut key_hash = SecretHash::of(b"");
        let mut records = Vec::new();
        for i in 0..1000 {
            key_hash = SecretHash::of(format!("mcp_sk_bench{i}").as_bytes());
            records.push(ApiKeyRecord {
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
            });
        }
        let revocations = RevocationIndex::new("bench".to_owned(), 3600);
        for i in 0..10_000 {
            revocations.load_session(format!("ses_revoked{i}"), now + 3600);
        }
        Ok(Fixture {
            revocations,
            key_hash,
            keys: ApiKeyIndex::new(records),
            limits: Limits::new(
                clock.clone(),
                Some(crate::store::RateLimit {
                    requests_per_second: 1_000_000,
                    burst: 1_000_000,
                }),
                10,
                crate::config::DEFAULT_DCR_REGISTRATIONS_PER_HOUR,
            ),
            issuer: TokenIssuer::new(
                ring,
                issuer.to_owned(),
                alg,
                crate::config::DEFAULT_MAX_TOKEN_TTL,
            ),
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
                token_ttl: 900,
                oauth: false,
                resources: Vec::new(),
                refresh_tokens: vec![RefreshToken {
                    hash: SecretHash::of(b"mcp_rt_bench"),
                    issued_at: now,
                    spent_at: None,
                }],
            },
            durable,
            unflushed,
            clock,
        })
    }

    /// One rate-limit check for a known caller.
    pub fn limiter_check(&self) -> bool {
        self.limits.check_caller("key_bench", None).is_ok()
    }

    /// One audit record appended (not flushed).
    pub async fn audit_append(&self) {
        let _ = self
            .unflushed
            .append_audit(entry("session.created"), false)
            .await;
    }

    /// Signs one access token.
    ///
    /// # Errors
    /// Signing failed.
    pub fn sign(&self) -> Result<String, crate::core::Error> {
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
        self.keys.get(&self.key_hash).is_some()
    }

    /// Looks a session up in the revocation index (10,000 revoked).
    pub fn revocation_lookup(&self) -> bool {
        self.revocations.contains(&self.session.session_id)
    }

    /// One session write with its audit record, not flushed.
    ///
    /// # Errors
    /// Storage failed.
    pub async fn session_write(&self, n: u64) -> Result<(), crate::Error> {
        let mut s = self.session.clone();
        s.session_id = format!("ses_bench_nf_{n}");
        self.unflushed
            .insert_session(&s, entry("session.created"))
            .await?;
        Ok(())
    }

    /// One durable session write with its audit record.
    ///
    /// # Errors
    /// Storage failed.
    pub async fn durable_write(&self, n: u64) -> Result<(), crate::Error> {
        let mut s = self.session.clone();
        s.session_id = format!("ses_bench_{n}");
        self.durable
            .insert_session(&s, entry("session.created"))
            .await?;
        Ok(())
    }
}
