//! JWTs: access tokens as `mcp-auth-token` parses and verifies them (the
//! verifier of the server, `bench` and the SDK), their JWK Sets, and
//! client assertions (`private_key_jwt`) as the token endpoint checks
//! them. `data[0]` picks the mode (modulo 5), the rest is its input:
//! 0: a token, verified against a fixed JWK Set; 1: a JWK Set, then a
//! token verified against it; 2: `header NUL payload` (JSON), signed here
//! with the set's key, verified, its window and lifetime checked; 3:
//! `header NUL payload`, signed here, as a client assertion; 4: an
//! assertion as sent.
#![no_main]

use std::sync::OnceLock;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use mcp_auth_token::{JwkSet, check_lifetime, check_window_with_leeway, vouched_claims};

const ISSUER: &str = "https://auth.example.com";
const CLIENT_ID: &str = "fuzz-client";

struct Fixed {
    key: Ed25519KeyPair,
    jwks: String,
    set: JwkSet,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let key = Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).expect("a seed");
        let x = URL_SAFE_NO_PAD.encode(key.public_key().as_ref());
        let jwks = format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"sig","kid":"k1","x":"{x}"}}]}}"#
        );
        let set = JwkSet::from_json(&jwks, &[ISSUER]).expect("the fixed set");
        Fixed { key, jwks, set }
    })
}

/// `header.payload.signature`, signed with the fixed key.
fn signed(header: &[u8], payload: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = fixed().key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

fn split_nul(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    }
}

fn verify(set: &JwkSet, token: &str) {
    if let Ok(claims) = set.verify(token) {
        let _ = claims.scopes().count();
        let _ = claims.session_id();
        for now in [i64::MIN, -1, 0, claims.iat, claims.exp, i64::MAX] {
            for leeway in [i64::MIN, 0, 60, i64::MAX] {
                let _ = check_window_with_leeway(&claims, now, leeway);
            }
        }
        for max in [i64::MIN, 0, 3600, i64::MAX] {
            let _ = check_lifetime(&claims, max);
        }
    }
    let _ = vouched_claims(token);
    if let Some(bare) = set.bare_signature(token) {
        let _ = bare.verify();
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match mode % 5 {
        0 => {
            verify(&fixed().set, &text);
            let _ = mcp_auth_token::es256::is_low_s(rest);
            let mut sig = rest.to_vec();
            mcp_auth_token::es256::normalize(&mut sig);
        }
        1 => {
            let (jwks, token) = split_nul(rest);
            if let Ok(mut set) = JwkSet::from_json(&String::from_utf8_lossy(jwks), &[ISSUER]) {
                let _ = (set.len(), set.is_empty(), set.contains("k1"));
                verify(&set, &String::from_utf8_lossy(token));
                set.remove_key("k1");
            }
        }
        2 => {
            let (header, payload) = split_nul(rest);
            verify(&fixed().set, &signed(header, payload));
        }
        3 => {
            let (header, payload) = split_nul(rest);
            let assertion = signed(header, payload);
            // Times the server's clock can show (no overflow is ours to
            // find at the ends of `i64`'s range of clocks).
            for now in [0, 1_700_000_000, 4_102_444_800] {
                mcp_auth::fuzzing::client_assertion(CLIENT_ID, &fixed().jwks, &assertion, now);
            }
        }
        _ => {
            mcp_auth::fuzzing::client_assertion(CLIENT_ID, &fixed().jwks, &text, 1_700_000_000);
        }
    }
});
