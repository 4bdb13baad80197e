//! What a verification costs the MCP server: the offline check of a fresh
//! access token through `Verifier::verify` (form, key, signature, claims,
//! audience, window), against the bare Ed25519 signature check it
//! contains (`mcp_auth_token`'s `BareSignature`), and a cached verdict
//! (what an online-verified token or an API key costs after its first
//! `VerifyToken`).
//! `cargo bench -p mcp-auth-sdk --bench verify`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use mcp_auth_sdk::bench_support::{
    api_key_verified, offline_verifier, offline_verifier_caching, seed_verdict,
};
use mcp_auth_sdk::{Clock, Mode, Verifier};
use mcp_auth_token::JwkSet;
use serde_json::json;

const ISS: &str = "https://auth.example";
const AUD: &str = "https://mcp.example/mcp";
const NOW: i64 = 1_800_000_000;

/// A JWK Set document and a token in mcp-auth's form, signed by its key.
fn key_and_token() -> (String, String) {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("key");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key");
    let jwks = json!({"keys": [{
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "k1",
        "x": URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
    }]})
    .to_string();
    let header = json!({"typ": "at+jwt", "alg": "EdDSA", "kid": "k1"});
    let claims = json!({
        "iss": ISS, "sub": "alice", "aud": AUD, "exp": NOW + 900, "iat": NOW,
        "nbf": NOW, "jti": "at_0123456789abcdefghijkl", "sid": "ses_0123456789abcdefghijkl",
        "client_id": "key_0123456789abcdefghijkl", "scope": "tools:read tools:write",
    });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = pair.sign(input.as_bytes());
    (
        jwks,
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref())),
    )
}

fn verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (jwks, token) = key_and_token();

    let offline = rt
        .block_on(offline_verifier(AUD, ISS, &jwks, Clock::manual(NOW)))
        .expect("verifier");
    assert!(rt.block_on(offline.verify(&token, None)).is_ok());
    c.bench_function("offline verify (fresh token)", |b| {
        b.iter(|| rt.block_on(offline.verify(&token, None)).expect("accepted"))
    });

    let caching = rt
        .block_on(offline_verifier_caching(
            AUD,
            ISS,
            &jwks,
            Clock::manual(NOW),
            true,
        ))
        .expect("verifier");
    c.bench_function("offline verify (token seen within 10 s)", |b| {
        b.iter(|| rt.block_on(caching.verify(&token, None)).expect("accepted"))
    });

    let set = JwkSet::from_json(&jwks, &[ISS]).expect("jwks");
    let bare = set.bare_signature(&token).expect("signature");
    c.bench_function("bare signature check (Ed25519)", |b| {
        b.iter(|| assert!(bare.verify()))
    });

    // Online: nothing listens on port 1, so only a cache hit answers.
    let online = rt
        .block_on(
            Verifier::builder(AUD)
                .issuer(ISS)
                .mode(Mode::Online)
                .grpc("https://127.0.0.1:1")
                .api_key("mcp_sk_bench")
                .clock(Clock::manual(NOW))
                .build(),
        )
        .expect("verifier");
    let verdict = rt.block_on(offline.verify(&token, None)).expect("accepted");
    seed_verdict(&online, &token, verdict);
    c.bench_function("cached verdict (token)", |b| {
        b.iter(|| rt.block_on(online.verify(&token, None)).expect("cached"))
    });
    let api_key = "mcp_sk_0123456789abcdefghijklmnopqrstuvwxyzABCDEF";
    seed_verdict(
        &online,
        api_key,
        api_key_verified("key_0123456789abcdefghijkl", &["tools:read"]),
    );
    c.bench_function("cached verdict (API key)", |b| {
        b.iter(|| rt.block_on(online.verify(api_key, None)).expect("cached"))
    });
}

criterion_group!(benches, verify);
criterion_main!(benches);
