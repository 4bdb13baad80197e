//! Fixtures for `cargo bench` (benches/verify.rs): verifiers wired up
//! without an mcp-auth server, so criterion can time the verification
//! paths alone. Not part of the supported API.

use crate::claims::Verified;
use crate::clock::Clock;
use crate::error::BuildError;
use crate::verifier::Verifier;

/// An offline verifier (no revocation stream) of tokens for `resource`
/// from `issuer`, over the fixed JWK Set document `jwks`.
///
/// # Errors
/// The document holds no usable key.
pub async fn offline_verifier(
    resource: &str,
    issuer: &str,
    jwks: &str,
    clock: Clock,
) -> Result<Verifier, BuildError> {
    Verifier::builder(resource)
        .issuer(issuer)
        .clock(clock)
        .build_with_jwks(jwks.to_owned())
        .await
}

/// Caches `verified` as mcp-auth's verdict on `credential`, as an
/// answered `VerifyToken` would.
pub fn seed_verdict(verifier: &Verifier, credential: &str, verified: Verified) {
    verifier.seed(credential, verified, 0);
}
