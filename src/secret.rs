//! Secrets: generated from the OS CSPRNG, hashed for storage, compared in
//! constant time, and never shown by `Debug` or `Display`.

use std::fmt;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

/// Prefix of every API key secret.
pub const API_KEY_PREFIX: &str = "mcp_sk_";

/// Prefix of every refresh token.
pub const REFRESH_TOKEN_PREFIX: &str = "mcp_rt_";

/// Prefix of every OAuth client secret.
pub const CLIENT_SECRET_PREFIX: &str = "mcp_cs_";

/// Prefix of every OAuth authorization code.
pub const AUTHORIZATION_CODE_PREFIX: &str = "mcp_ac_";

/// Number of base62 characters after the prefix: 43 × log2(62) ≈ 256 bits.
pub const API_KEY_RANDOM_CHARS: usize = 43;

/// Characters of a secret kept in clear (with the prefix) to recognise a key.
pub const DISPLAY_PREFIX_CHARS: usize = 4;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A secret string (an API key secret). Its `Debug` and `Display` print
/// `[redacted]`; read it with [`Secret::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a string that is a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// A fresh API key secret: `mcp_sk_` and 43 base62 characters from the
    /// OS CSPRNG.
    ///
    /// # Errors
    /// Fails only if the operating system's random source fails.
    pub fn generate_api_key() -> Result<Self, getrandom::Error> {
        Self::generate(API_KEY_PREFIX)
    }

    /// A fresh refresh token: `mcp_rt_` and 43 base62 characters (256
    /// bits) from the OS CSPRNG.
    ///
    /// # Errors
    /// Fails only if the operating system's random source fails.
    pub fn generate_refresh_token() -> Result<Self, getrandom::Error> {
        Self::generate(REFRESH_TOKEN_PREFIX)
    }

    /// A fresh OAuth client secret: `mcp_cs_` and 43 base62 characters
    /// (256 bits) from the OS CSPRNG.
    ///
    /// # Errors
    /// Fails only if the operating system's random source fails.
    pub fn generate_client_secret() -> Result<Self, getrandom::Error> {
        Self::generate(CLIENT_SECRET_PREFIX)
    }

    fn generate(prefix: &str) -> Result<Self, getrandom::Error> {
        let mut s = String::with_capacity(prefix.len() + API_KEY_RANDOM_CHARS);
        s.push_str(prefix);
        s.push_str(&random_base62(API_KEY_RANDOM_CHARS)?);
        Ok(Self(s))
    }

    /// The secret itself. Call only where it must leave the process: in the
    /// one response that returns it, or in a request header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 of the secret, the only form in which it is stored.
    pub fn hash(&self) -> SecretHash {
        SecretHash::of(self.0.as_bytes())
    }

    /// The recognisable start of an API key or client secret (`mcp_sk_`
    /// or `mcp_cs_` and a few characters), safe to show and store.
    pub fn display_prefix(&self) -> String {
        self.0
            .chars()
            .take(API_KEY_PREFIX.len() + DISPLAY_PREFIX_CHARS)
            .collect()
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// SHA-256 of a secret. Equality is constant-time. Stored as 43
/// base64url characters (records written before this read back too: they
/// hold the 32 bytes as a JSON array of numbers, more than twice as long).
#[derive(Clone, Copy)]
pub struct SecretHash(pub(crate) [u8; 32]);

impl serde::Serialize for SecretHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 43];
        let n = URL_SAFE_NO_PAD
            .encode_slice(self.0, &mut buf)
            .map_err(serde::ser::Error::custom)?;
        let text = std::str::from_utf8(&buf[..n]).map_err(serde::ser::Error::custom)?;
        s.serialize_str(text)
    }
}

impl<'de> serde::Deserialize<'de> for SecretHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SecretHash;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a SHA-256 digest (base64url, or 32 numbers)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SecretHash, E> {
                URL_SAFE_NO_PAD
                    .decode(v)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .map(SecretHash)
                    .ok_or_else(|| E::custom("not a base64url SHA-256 digest"))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SecretHash, A::Error> {
                let mut out = [0u8; 32];
                for (i, b) in out.iter_mut().enumerate() {
                    *b = seq
                        .next_element()?
                        .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<u8>()?.is_some() {
                    return Err(serde::de::Error::invalid_length(33, &self));
                }
                Ok(SecretHash(out))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl SecretHash {
    /// Hashes `bytes` with SHA-256.
    pub fn of(bytes: &[u8]) -> Self {
        let d = digest::digest(&digest::SHA256, bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Self(out)
    }

    /// The raw digest, used as a storage index key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for SecretHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SecretHash {}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash([redacted])")
    }
}

/// `n` base62 characters from the OS CSPRNG, uniformly distributed
/// (rejection sampling: bytes of 248 and above are drawn again).
///
/// # Errors
/// Fails only if the operating system's random source fails.
pub fn random_base62(n: usize) -> Result<String, getrandom::Error> {
    let mut out = vec![0u8; n];
    fill_base62(&mut out)?;
    // Every byte is an ASCII letter or digit.
    Ok(out.into_iter().map(char::from).collect())
}

/// Fills `out` with base62 characters from the OS CSPRNG (rejection
/// sampling, so every character is equally likely), without allocating.
///
/// # Errors
/// The OS random source failed.
pub fn fill_base62(out: &mut [u8]) -> Result<(), getrandom::Error> {
    let mut buf = [0u8; 64];
    let mut at = 0;
    while at < out.len() {
        getrandom::fill(&mut buf)?;
        for b in buf {
            if at == out.len() {
                break;
            }
            if b < 248 {
                out[at] = BASE62[usize::from(b % 62)];
                at += 1;
            }
        }
    }
    Ok(())
}

/// Lowercase hex without separators; how serials and hashes are shown
/// and stored.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn hashes_are_stored_as_base64url_and_old_arrays_still_read() {
        let h = super::SecretHash::of(b"mcp_sk_example");
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json.len(), 2 + 43, "{json}");
        assert!(serde_json::from_str::<super::SecretHash>(&json).unwrap() == h);
        let legacy = serde_json::to_string(&h.as_bytes().to_vec()).unwrap();
        assert!(serde_json::from_str::<super::SecretHash>(&legacy).unwrap() == h);
        for bad in [r#""abc""#, "[1,2,3]", &format!("[{}]", ["7"; 33].join(","))] {
            assert!(
                serde_json::from_str::<super::SecretHash>(bad).is_err(),
                "{bad}"
            );
        }
    }

    use super::*;

    #[test]
    fn api_key_secret_has_prefix_length_and_alphabet() {
        let s = Secret::generate_api_key().unwrap();
        let body = s.expose().strip_prefix(API_KEY_PREFIX).unwrap();
        assert_eq!(body.len(), API_KEY_RANDOM_CHARS);
        assert!(body.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(s, Secret::generate_api_key().unwrap());
    }

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let s = Secret::generate_api_key().unwrap();
        let body = &s.expose()[API_KEY_PREFIX.len()..];
        assert!(!format!("{s:?}").contains(body));
        assert!(!format!("{s}").contains(body));
        assert!(!format!("{:?}", s.hash()).contains(body));
    }

    #[test]
    fn client_secret_has_prefix_length_and_alphabet() {
        let s = Secret::generate_client_secret().unwrap();
        let body = s.expose().strip_prefix(CLIENT_SECRET_PREFIX).unwrap();
        assert_eq!(body.len(), API_KEY_RANDOM_CHARS);
        assert!(body.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(s.display_prefix().len(), CLIENT_SECRET_PREFIX.len() + 4);
        assert!(!format!("{s:?}").contains(body));
    }

    #[test]
    fn display_prefix_is_short() {
        let s = Secret::new("mcp_sk_abcdefgh");
        assert_eq!(s.display_prefix(), "mcp_sk_abcd");
    }

    #[test]
    fn hex_is_lowercase_without_separators() {
        assert_eq!(hex(&[0x00, 0x0a, 0xff, 0x5c]), "000aff5c");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn hash_equality() {
        assert_eq!(SecretHash::of(b"a"), SecretHash::of(b"a"));
        assert_ne!(SecretHash::of(b"a"), SecretHash::of(b"b"));
    }
}
