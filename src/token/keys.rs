//! Signing keys: generating them (the `kid` is the RFC 7638 thumbprint),
//! parsing a stored key once, and signing access tokens with it.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::{AccessClaims, TOKEN_TYPE, TokenError};
use crate::secret::SecretHash;
use crate::store::{SigningAlg, SigningKeyRecord};

/// A private key parsed once, when the ring is loaded. (jsonwebtoken
/// takes the PKCS#8 bytes and parses them again on every signature, which
/// for Ed25519 costs as much as the signature itself; so tokens are
/// assembled here and only verified with jsonwebtoken.)
pub(super) enum Signer {
    Ed25519(Ed25519KeyPair),
    Es256(EcdsaKeyPair),
}

/// A signing key ready to use.
pub(super) struct LoadedKey {
    pub(super) record: SigningKeyRecord,
    signer: Signer,
    /// The JOSE header of this key's tokens, base64url-encoded.
    header_b64: String,
    pub(super) jwk: serde_json::Value,
}

/// The JOSE header of every token (RFC 9068 section 2.1).
#[derive(Serialize)]
struct JoseHeader<'a> {
    typ: &'a str,
    alg: &'a str,
    kid: &'a str,
}

impl LoadedKey {
    pub(super) fn from_record(record: SigningKeyRecord) -> Result<Self, TokenError> {
        let (_, jwk_members) = public_jwk(record.alg, &record.private_pkcs8)?;
        let signer = match record.alg {
            SigningAlg::EdDSA => Signer::Ed25519(
                Ed25519KeyPair::from_pkcs8(&record.private_pkcs8)
                    .map_err(|e| TokenError::Key(format!("ed25519: {e}")))?,
            ),
            SigningAlg::ES256 => Signer::Es256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &record.private_pkcs8)
                    .map_err(|e| TokenError::Key(format!("p-256: {e}")))?,
            ),
        };
        let header = serde_json::to_vec(&JoseHeader {
            typ: TOKEN_TYPE,
            alg: record.alg.as_str(),
            kid: &record.kid,
        })
        .map_err(|e| TokenError::Sign(e.to_string()))?;
        let mut jwk = jwk_members;
        if let Some(obj) = jwk.as_object_mut() {
            obj.insert("kid".to_owned(), record.kid.clone().into());
            obj.insert("alg".to_owned(), record.alg.as_str().into());
            obj.insert("use".to_owned(), "sig".into());
        }
        Ok(LoadedKey {
            record,
            signer,
            header_b64: URL_SAFE_NO_PAD.encode(header),
            jwk,
        })
    }

    /// A compact JWS (RFC 7515 section 7.1) of `claims` under this key.
    pub(super) fn sign(&self, claims: &AccessClaims) -> Result<String, TokenError> {
        let payload = serde_json::to_vec(claims).map_err(|e| TokenError::Sign(e.to_string()))?;
        let mut token = String::with_capacity(self.header_b64.len() + payload.len() * 4 / 3 + 100);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = match &self.signer {
            Signer::Ed25519(kp) => kp.sign(token.as_bytes()).as_ref().to_vec(),
            Signer::Es256(kp) => {
                let mut signature = kp
                    .sign(&SystemRandom::new(), token.as_bytes())
                    .map_err(|e| TokenError::Sign(format!("p-256: {e}")))?
                    .as_ref()
                    .to_vec();
                // aws-lc returns either of the two valid `s`; verifiers
                // accept only the low one, so a token has one encoding.
                mcp_auth_token::es256::normalize(&mut signature);
                signature
            }
        };
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}

/// The public key bytes and the required JWK members (RFC 7638 order) of a
/// PKCS#8 private key.
fn public_jwk(alg: SigningAlg, pkcs8: &[u8]) -> Result<(Vec<u8>, serde_json::Value), TokenError> {
    match alg {
        SigningAlg::EdDSA => {
            let kp = Ed25519KeyPair::from_pkcs8(pkcs8)
                .map_err(|e| TokenError::Key(format!("ed25519: {e}")))?;
            let public = kp.public_key().as_ref().to_vec();
            let jwk = serde_json::json!({
                "crv": "Ed25519",
                "kty": "OKP",
                "x": URL_SAFE_NO_PAD.encode(&public),
            });
            Ok((public, jwk))
        }
        SigningAlg::ES256 => {
            let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8)
                .map_err(|e| TokenError::Key(format!("p-256: {e}")))?;
            let public = kp.public_key().as_ref().to_vec();
            // Uncompressed point: 0x04 || x (32) || y (32).
            if public.len() != 65 || public[0] != 4 {
                return Err(TokenError::Key(
                    "p-256 public key is not uncompressed".to_owned(),
                ));
            }
            let jwk = serde_json::json!({
                "crv": "P-256",
                "kty": "EC",
                "x": URL_SAFE_NO_PAD.encode(&public[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&public[33..]),
            });
            Ok((public, jwk))
        }
    }
}

/// The RFC 7638 JWK thumbprint: SHA-256 of the required members in
/// lexicographic order, without whitespace, base64url-encoded.
fn thumbprint(alg: SigningAlg, public: &[u8]) -> String {
    let canonical = match alg {
        SigningAlg::EdDSA => format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(public)
        ),
        SigningAlg::ES256 => format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            URL_SAFE_NO_PAD.encode(public.get(1..33).unwrap_or_default()),
            URL_SAFE_NO_PAD.encode(public.get(33..).unwrap_or_default())
        ),
    };
    URL_SAFE_NO_PAD.encode(SecretHash::of(canonical.as_bytes()).as_bytes())
}

/// A new signing key; its `kid` is its RFC 7638 JWK thumbprint.
///
/// # Errors
/// Key generation failed.
pub(crate) fn generate_signing_key(
    alg: SigningAlg,
    now: i64,
) -> Result<SigningKeyRecord, TokenError> {
    let rng = SystemRandom::new();
    let pkcs8 = match alg {
        SigningAlg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|e| TokenError::Key(format!("ed25519: {e}")))?,
        SigningAlg::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| TokenError::Key(format!("p-256: {e}")))?,
    };
    let private_pkcs8 = pkcs8.as_ref().to_vec();
    let (public, _) = public_jwk(alg, &private_pkcs8)?;
    let kid = thumbprint(alg, &public);
    Ok(SigningKeyRecord {
        kid,
        alg,
        private_pkcs8,
        created_at: now,
        retired_at: None,
    })
}

/// Retires the active key in `records` (if any) and appends a new key of
/// `alg`; returns the records that changed.
pub(crate) fn rotate_records(
    records: &mut Vec<SigningKeyRecord>,
    alg: SigningAlg,
    now: i64,
) -> Result<Vec<SigningKeyRecord>, TokenError> {
    let mut changed = Vec::new();
    for r in records.iter_mut().filter(|r| r.retired_at.is_none()) {
        r.retired_at = Some(now);
        changed.push(r.clone());
    }
    let new = generate_signing_key(alg, now)?;
    tracing::info!(kid = %new.kid, alg = alg.as_str(), "created signing key");
    changed.push(new.clone());
    records.push(new);
    Ok(changed)
}
