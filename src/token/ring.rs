//! The key ring: the active signing key and the retired ones that still
//! verify, with the JWK Set document that publishes them and the verifier
//! built from that same document (so the server checks its own tokens
//! exactly as an offline verifier does).

use std::collections::HashMap;

use mcp_auth_token::JwkSet;

use super::TokenError;
use super::keys::LoadedKey;
use crate::store::SigningKeyRecord;

/// The signing keys: one active, plus retired ones that still verify.
pub(crate) struct KeyRing {
    active: String,
    keys: HashMap<String, LoadedKey>,
    /// The JWK Set document, built once.
    jwks: String,
    /// The verifier of that document.
    verifier: JwkSet,
}

impl KeyRing {
    /// The ring of `records`, which must hold exactly one active key;
    /// tokens are accepted from any of `issuers`.
    ///
    /// # Errors
    /// A key cannot be parsed, or none is active.
    pub fn from_records(
        records: Vec<SigningKeyRecord>,
        issuers: &[&str],
    ) -> Result<Self, TokenError> {
        let mut keys = HashMap::new();
        let mut active_kid = None;
        for r in records {
            if r.retired_at.is_none() {
                active_kid = Some(r.kid.clone());
            }
            keys.insert(r.kid.clone(), LoadedKey::from_record(r)?);
        }
        let jwks = jwks_json(&keys);
        let verifier =
            JwkSet::from_json(&jwks, issuers).map_err(|e| TokenError::Key(e.to_string()))?;
        Ok(KeyRing {
            active: active_kid.ok_or(TokenError::NoActiveKey)?,
            keys,
            jwks,
            verifier,
        })
    }

    /// The records of every key in the ring.
    pub fn records(&self) -> Vec<SigningKeyRecord> {
        self.keys.values().map(|k| k.record.clone()).collect()
    }

    /// The active key's id and when it was created.
    pub fn active_key(&self) -> Option<(&str, i64)> {
        self.keys
            .get(&self.active)
            .map(|k| (k.record.kid.as_str(), k.record.created_at))
    }

    /// The active key's id.
    pub fn active_kid(&self) -> &str {
        &self.active
    }

    pub(super) fn active(&self) -> Result<&LoadedKey, TokenError> {
        self.keys.get(&self.active).ok_or(TokenError::NoActiveKey)
    }

    /// The public keys as a JWK Set document, active key first.
    pub fn jwks_json(&self) -> &str {
        &self.jwks
    }

    /// The verifier of [`KeyRing::jwks_json`].
    pub fn verifier(&self) -> &JwkSet {
        &self.verifier
    }
}

fn jwks_json(keys: &HashMap<String, LoadedKey>) -> String {
    let mut keys: Vec<&LoadedKey> = keys.values().collect();
    keys.sort_by_key(|k| (k.record.retired_at.is_some(), -k.record.created_at));
    let set = serde_json::json!({ "keys": keys.iter().map(|k| &k.jwk).collect::<Vec<_>>() });
    set.to_string()
}
