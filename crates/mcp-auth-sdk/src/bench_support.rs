//! Fixtures for `cargo bench` (benches/verify.rs): verifiers wired up
//! without an mcp-auth server, so criterion can time the verification
//! paths alone. Not part of the supported API.

use crate::claims::{TokenKind, Verified};
use crate::clock::Clock;
use crate::error::BuildError;
use crate::verifier::Verifier;

/// An offline verifier (no revocation stream) of tokens for `resource`
/// from `issuer`, over the fixed JWK Set document `jwks`. Its token cache
/// is off, so every verification checks the signature.
///
/// # Errors
/// The document holds no usable key.
pub async fn offline_verifier(
    resource: &str,
    issuer: &str,
    jwks: &str,
    clock: Clock,
) -> Result<Verifier, BuildError> {
    offline_verifier_caching(resource, issuer, jwks, clock, false).await
}

/// [`offline_verifier`], with its token cache on (10 s) when `cache`.
///
/// # Errors
/// The document holds no usable key.
pub async fn offline_verifier_caching(
    resource: &str,
    issuer: &str,
    jwks: &str,
    clock: Clock,
    cache: bool,
) -> Result<Verifier, BuildError> {
    let ttl = std::time::Duration::from_secs(if cache { 10 } else { 0 });
    Verifier::builder(resource)
        .issuer(issuer)
        .clock(clock)
        .token_cache_ttl(ttl)
        .build_with_jwks(jwks.to_owned())
        .await
}

/// Caches `verified` as mcp-auth's verdict on `credential`, as an
/// answered `VerifyToken` would.
pub fn seed_verdict(verifier: &Verifier, credential: &str, verified: Verified) {
    verifier.seed(credential, verified, 0);
}

/// What `VerifyToken` says of an active API key `id` with `scopes`.
pub fn api_key_verified(id: &str, scopes: &[&str]) -> Verified {
    Verified {
        kind: TokenKind::ApiKey,
        subject: id.to_owned(),
        client_id: id.to_owned(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        audience: String::new(),
        issuer: String::new(),
        session_id: String::new(),
        token_id: String::new(),
        expires_at: 0,
    }
}
