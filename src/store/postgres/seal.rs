//! A signing key as the `signing_keys` table holds it: the record's
//! fields, its private key sealed with the key-ring key
//! ([`RingKey`]; AES-256-GCM, its kid as associated data) in place of
//! `private_pkcs8`:
//!
//! ```json
//! {"kid": "…", "alg": "EdDSA", "created_at": 1700000000, "retired_at": null,
//!  "seal": "aes-256-gcm/v1", "sealed_pkcs8": "<base64 of nonce, ciphertext and tag>"}
//! ```
//!
//! A row in any other form is refused, a key in clear included: whoever
//! can write the table cannot plant a signing key of their own.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::store::model::{SigningAlg, SigningKeyRecord};
use crate::store::ring_key::RingKey;
use crate::store::{StoreError, StoreResult};

/// The `seal` of rows this version writes and reads.
pub(super) const SEAL_V1: &str = "aes-256-gcm/v1";

/// The stored form.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    kid: String,
    alg: SigningAlg,
    created_at: i64,
    retired_at: Option<i64>,
    seal: String,
    sealed_pkcs8: String,
}

fn corrupt(message: String) -> StoreError {
    StoreError::Corrupt {
        what: "signing key",
        message,
    }
}

/// `record` as its row holds it, its private key sealed with `key`.
///
/// # Errors
/// The random source failed.
pub(super) fn seal(key: &RingKey, record: &SigningKeyRecord) -> StoreResult<serde_json::Value> {
    let sealed = key.seal(record.kid.as_bytes(), &record.private_pkcs8)?;
    serde_json::to_value(Sealed {
        kid: record.kid.clone(),
        alg: record.alg,
        created_at: record.created_at,
        retired_at: record.retired_at,
        seal: SEAL_V1.to_owned(),
        sealed_pkcs8: STANDARD.encode(sealed),
    })
    .map_err(|e| StoreError::Backend(format!("encode: {e}")))
}

/// The record a row holds, its private key opened with `key`.
///
/// # Errors
/// [`StoreError::Unsealable`] if the key does not open it (another
/// key-ring key, or an altered row); [`StoreError::Corrupt`] for a row in
/// another form (a private key in clear among them).
pub(super) fn open(key: &RingKey, row: serde_json::Value) -> StoreResult<SigningKeyRecord> {
    if let Some(kid) = row
        .get("private_pkcs8")
        .and(row.get("kid"))
        .and_then(|k| k.as_str())
    {
        return Err(corrupt(format!(
            "{kid} holds its private key in clear (private_pkcs8), not sealed with the store key; this mcp-auth reads only sealed keys"
        )));
    }
    let stored: Sealed = serde_json::from_value(row).map_err(|e| corrupt(e.to_string()))?;
    if stored.seal != SEAL_V1 {
        return Err(corrupt(format!(
            "{} is sealed as {:?}, which this mcp-auth does not know (it knows {SEAL_V1})",
            stored.kid, stored.seal
        )));
    }
    let bytes = STANDARD
        .decode(&stored.sealed_pkcs8)
        .map_err(|e| corrupt(format!("{}: sealed_pkcs8: {e}", stored.kid)))?;
    let private = key.open(stored.kid.as_bytes(), &bytes).map_err(|e| {
        StoreError::Unsealable(format!(
            "signing key {} does not open: {e} (every replica needs the same key file)",
            stored.kid
        ))
    })?;
    Ok(SigningKeyRecord {
        kid: stored.kid,
        alg: stored.alg,
        private_pkcs8: private.to_vec(),
        created_at: stored.created_at,
        retired_at: stored.retired_at,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn record(kid: &str) -> SigningKeyRecord {
        SigningKeyRecord {
            kid: kid.to_owned(),
            alg: SigningAlg::EdDSA,
            private_pkcs8: b"\x30\x2e\x02\x01\x00 pretend DER".to_vec(),
            created_at: 1_700_000_000,
            retired_at: Some(1_700_000_100),
        }
    }

    #[test]
    fn a_row_holds_the_fields_and_the_sealed_key_never_the_key() {
        let key = RingKey::generate().unwrap();
        let r = record("kid-a");
        let row = seal(&key, &r).unwrap();
        let obj = row.as_object().unwrap();
        let mut fields: Vec<&str> = obj.keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "alg",
                "created_at",
                "kid",
                "retired_at",
                "seal",
                "sealed_pkcs8"
            ]
        );
        assert_eq!(row["seal"], SEAL_V1);
        let text = row.to_string();
        assert!(!text.contains(&STANDARD.encode(&r.private_pkcs8)), "{text}");
        let back = open(&key, row).unwrap();
        assert_eq!(back.kid, r.kid);
        assert_eq!(back.alg, r.alg);
        assert_eq!(back.private_pkcs8, r.private_pkcs8);
        assert_eq!(back.created_at, r.created_at);
        assert_eq!(back.retired_at, r.retired_at);
    }

    #[test]
    fn another_key_is_unsealable_and_says_so() {
        let row = seal(&RingKey::generate().unwrap(), &record("kid-a")).unwrap();
        let err = open(&RingKey::generate().unwrap(), row).unwrap_err();
        assert!(matches!(err, StoreError::Unsealable(_)), "{err}");
        let text = err.to_string();
        assert!(
            text.starts_with(
                "the signing keys in the database cannot be opened with this store_key_file: "
            ),
            "{text}"
        );
        assert!(text.contains("kid-a"), "{text}");
    }

    #[test]
    fn a_sealed_key_moved_to_another_kid_or_altered_does_not_open() {
        let key = RingKey::generate().unwrap();
        let mut moved = seal(&key, &record("kid-a")).unwrap();
        moved["kid"] = "kid-b".into();
        assert!(matches!(open(&key, moved), Err(StoreError::Unsealable(_))));

        let row = seal(&key, &record("kid-a")).unwrap();
        let mut bytes = STANDARD
            .decode(row["sealed_pkcs8"].as_str().unwrap())
            .unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x80;
        let mut tampered = row.clone();
        tampered["sealed_pkcs8"] = STANDARD.encode(&bytes).into();
        assert!(matches!(
            open(&key, tampered),
            Err(StoreError::Unsealable(_))
        ));
    }

    #[test]
    fn rows_in_another_form_are_corrupt_a_clear_key_among_them() {
        let key = RingKey::generate().unwrap();
        let clear = serde_json::to_value(record("kid-a")).unwrap();
        let err = open(&key, clear).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("in clear"), "{err}");

        let row = seal(&key, &record("kid-a")).unwrap();
        let mut other = row.clone();
        other["seal"] = "rot13".into();
        let err = open(&key, other).unwrap_err();
        assert!(err.to_string().contains("rot13"), "{err}");
        let mut bad = row.clone();
        bad["sealed_pkcs8"] = "%%%".into();
        assert!(matches!(open(&key, bad), Err(StoreError::Corrupt { .. })));
        let mut extra = row;
        extra["private_pkcs8"] = serde_json::json!([1, 2, 3]);
        assert!(matches!(open(&key, extra), Err(StoreError::Corrupt { .. })));
    }
}
