//! The key-ring key (config `store_key_file`): 32 bytes that seal the
//! private parts of the signing keys a shared database holds, so the
//! database (its backups, its replicas, whoever can read its tables) never
//! has them in clear. AES-256-GCM (aws-lc-rs), a fresh random 96-bit nonce
//! per seal, the key's kid as associated data, so a sealed key cannot be
//! moved to another key's row; any change to a sealed value makes it fail
//! to open.
//!
//! The file is the standard base64 of the 32 bytes (padded or not,
//! whitespace around it ignored), mode 0600: [`keygen`] writes one
//! (`mcp-auth store keygen FILE`), [`RingKey::from_file`] reads one and
//! refuses a file others may read. The bytes live in a buffer wiped when
//! the key is dropped; `Debug` never shows them.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine;
use base64::alphabet::STANDARD;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use zeroize::Zeroizing;

/// Bytes in a key-ring key.
pub const KEY_LEN: usize = 32;

/// The most a key file is read of: the base64 of 32 bytes is 44
/// characters; more than this is not a key file.
const MAX_FILE_LEN: u64 = 1024;

/// Base64 as the key file may hold it: standard alphabet, padding
/// optional.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What to do when a PostgreSQL store has no key-ring key: one sentence,
/// shared by the configuration check and the store's opening.
pub const MISSING: &str = "the PostgreSQL store needs store_key_file (--store-key-file, MCP_AUTH_STORE_KEY_FILE): the key that seals the signing keys in the database; make one with `mcp-auth store keygen FILE` and give every replica the same file";

/// The key-ring key could not be read, made or used.
#[derive(Debug, thiserror::Error)]
pub enum RingKeyError {
    /// A PostgreSQL store was opened without one.
    #[error("{MISSING}")]
    Missing,
    /// The file could not be read or written.
    #[error("store_key_file {}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file may be read by others.
    #[error(
        "store_key_file {} has mode {mode:o}: the store key must be readable by its owner only (chmod 600 {})",
        .path.display(), .path.display()
    )]
    Loose {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file does not hold a key.
    #[error(
        "store_key_file {} is not a store key: expected the base64 of 32 bytes, as `mcp-auth store keygen` writes ({message})",
        .path.display()
    )]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong, never the file's content.
        message: String,
    },
    /// `keygen` would overwrite a file.
    #[error("{} exists; pass --force to overwrite it (the signing keys sealed with the old key cannot be opened with a new one)", .0.display())]
    Exists(PathBuf),
    /// The OS random source failed.
    #[error("random source: {0}")]
    Random(#[from] getrandom::Error),
    /// aws-lc refused to seal (it never does with a 32-byte key).
    #[error("sealing with the store key failed")]
    Seal,
}

/// A sealed value does not open: sealed with another key, under another
/// kid, or altered since. AES-GCM cannot tell these apart.
#[derive(Debug, thiserror::Error)]
#[error("it was sealed with another key, or altered")]
pub struct Unopenable;

/// The key-ring key. `Debug` shows nothing of it; its bytes are wiped on
/// drop.
#[derive(Clone)]
pub struct RingKey {
    bytes: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for RingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RingKey([redacted])")
    }
}

impl RingKey {
    /// A fresh key from the OS CSPRNG.
    ///
    /// # Errors
    /// The operating system's random source failed.
    pub fn generate() -> Result<Self, RingKeyError> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        getrandom::fill(bytes.as_mut())?;
        Ok(RingKey { bytes })
    }

    /// Reads the key file at `path`: refused if its mode lets anyone but
    /// its owner read it, or if it does not hold the base64 of exactly 32
    /// bytes.
    ///
    /// # Errors
    /// [`RingKeyError::Io`], [`RingKeyError::Loose`] or
    /// [`RingKeyError::Malformed`].
    pub fn from_file(path: &Path) -> Result<Self, RingKeyError> {
        let io = |source| RingKeyError::Io {
            path: path.to_owned(),
            source,
        };
        // The mode of the file opened, not of whatever the path names a
        // moment later.
        let file = std::fs::File::open(path).map_err(io)?;
        let mode = file.metadata().map_err(io)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(RingKeyError::Loose {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
        let mut text = Zeroizing::new(Vec::new());
        file.take(MAX_FILE_LEN + 1)
            .read_to_end(&mut text)
            .map_err(io)?;
        let malformed = |message: &str| RingKeyError::Malformed {
            path: path.to_owned(),
            message: message.to_owned(),
        };
        if text.len() as u64 > MAX_FILE_LEN {
            return Err(malformed("the file is too long"));
        }
        let trimmed = text.trim_ascii();
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        // Decoded into a buffer one byte longer than a key, so a longer
        // value is told apart from one that fits.
        let mut decoded = Zeroizing::new([0u8; KEY_LEN + 1]);
        match LENIENT.decode_slice(trimmed, decoded.as_mut()) {
            Ok(KEY_LEN) => bytes.copy_from_slice(&decoded[..KEY_LEN]),
            Ok(n) => return Err(malformed(&format!("it holds {n} bytes, not 32"))),
            Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
                return Err(malformed("it holds more than 32 bytes"));
            }
            Err(base64::DecodeSliceError::DecodeError(_)) => {
                return Err(malformed("it is not base64"));
            }
        }
        Ok(RingKey { bytes })
    }

    /// The key as its file holds it: padded standard base64 and a newline.
    pub fn file_text(&self) -> Zeroizing<String> {
        // Sized up front: a buffer that grew would leave a copy behind.
        let mut text = Zeroizing::new(String::with_capacity(KEY_LEN * 4 / 3 + 4));
        general_purpose::STANDARD.encode_string(self.bytes.as_ref(), &mut text);
        text.push('\n');
        text
    }

    /// The AEAD key; only fails if aws-lc refuses a 32-byte AES-256 key.
    fn aead(&self) -> Result<LessSafeKey, aws_lc_rs::error::Unspecified> {
        // The key schedule lives in aws-lc, which clears what it frees.
        UnboundKey::new(&AES_256_GCM, self.bytes.as_ref()).map(LessSafeKey::new)
    }

    /// `plaintext` sealed under `aad`: a fresh random nonce, then the
    /// ciphertext and its tag.
    ///
    /// # Errors
    /// The OS random source failed, or aws-lc did.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, RingKeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce)?;
        let tag_len = AES_256_GCM.tag_len();
        // Encrypted where it lies, so no copy of the plaintext is left.
        let mut sealed = Vec::with_capacity(NONCE_LEN + plaintext.len() + tag_len);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plaintext);
        let failed = |_| RingKeyError::Seal;
        let tag = self
            .aead()
            .map_err(failed)?
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut sealed[NONCE_LEN..],
            )
            .map_err(failed)?;
        sealed.extend_from_slice(tag.as_ref());
        Ok(sealed)
    }

    /// The plaintext of what [`RingKey::seal`] made of it under `aad`.
    ///
    /// # Errors
    /// [`Unopenable`]: another key, another `aad`, or any change to
    /// `sealed`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, Unopenable> {
        if sealed.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(Unopenable);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| Unopenable)?;
        let mut body = Zeroizing::new(body.to_vec());
        let plain_len = self
            .aead()
            .map_err(|_| Unopenable)?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| Unopenable)?
            .len();
        // Shortened in place; the whole buffer is wiped on drop.
        body.truncate(plain_len);
        Ok(body)
    }
}

/// Writes a fresh key to `path` (mode 0600, atomically), unless a file is
/// there and `force` is false: `mcp-auth store keygen`.
///
/// # Errors
/// [`RingKeyError::Exists`], the random source failed, or the file cannot
/// be written.
pub fn keygen(path: &Path, force: bool) -> Result<RingKey, RingKeyError> {
    if !force && path.exists() {
        return Err(RingKeyError::Exists(path.to_owned()));
    }
    let key = RingKey::generate()?;
    crate::files::write_private(path, key.file_text().as_bytes()).map_err(|e| {
        RingKeyError::Io {
            path: e.path,
            source: e.source,
        }
    })?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn seal_and_open_round_trip_with_a_fresh_nonce_each_time() {
        let key = RingKey::generate().unwrap();
        let secret = b"private key DER".as_slice();
        let a = key.seal(b"kid-1", secret).unwrap();
        let b = key.seal(b"kid-1", secret).unwrap();
        assert_eq!(a.len(), NONCE_LEN + secret.len() + 16);
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN], "a fresh nonce per seal");
        assert!(!a.windows(secret.len()).any(|w| w == secret));
        assert_eq!(key.open(b"kid-1", &a).unwrap().as_slice(), secret);
        assert_eq!(key.open(b"kid-1", &b).unwrap().as_slice(), secret);
    }

    #[test]
    fn another_key_another_kid_or_any_change_does_not_open() {
        let key = RingKey::generate().unwrap();
        let sealed = key.seal(b"kid-1", b"private key DER").unwrap();
        let other = RingKey::generate().unwrap();
        assert!(other.open(b"kid-1", &sealed).is_err(), "another key");
        assert!(key.open(b"kid-2", &sealed).is_err(), "another kid");
        for at in [0, NONCE_LEN, sealed.len() - 1] {
            let mut tampered = sealed.clone();
            tampered[at] ^= 1;
            assert!(key.open(b"kid-1", &tampered).is_err(), "byte {at} changed");
        }
        assert!(key.open(b"kid-1", &sealed[..sealed.len() - 1]).is_err());
        assert!(key.open(b"kid-1", &sealed[..NONCE_LEN]).is_err());
        assert!(key.open(b"kid-1", b"").is_err());
    }

    #[test]
    fn keygen_writes_a_0600_file_that_reads_back_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.key");
        let key = keygen(&path, false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text.len(),
            45,
            "{text:?}: 44 base64 characters and a newline"
        );
        let read = RingKey::from_file(&path).unwrap();
        let sealed = key.seal(b"k", b"x").unwrap();
        assert_eq!(read.open(b"k", &sealed).unwrap().as_slice(), b"x");

        let err = keygen(&path, false).unwrap_err();
        assert!(matches!(err, RingKeyError::Exists(_)), "{err}");
        assert!(err.to_string().contains("--force"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "unchanged");
        keygen(&path, true).unwrap();
        assert_ne!(std::fs::read_to_string(&path).unwrap(), text, "replaced");
    }

    #[test]
    fn the_file_is_base64_of_32_bytes_padded_or_not_whitespace_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let key = RingKey::generate().unwrap();
        let padded = key.file_text();
        let bare = padded.trim().trim_end_matches('=').to_owned();
        let sealed = key.seal(b"k", b"x").unwrap();
        for (i, text) in [
            padded.to_string(),
            bare.clone(),
            format!("  \n{bare}\r\n\n"),
        ]
        .iter()
        .enumerate()
        {
            let path = write(dir.path(), &format!("k{i}"), text, 0o600);
            let read = RingKey::from_file(&path).unwrap();
            assert!(read.open(b"k", &sealed).is_ok(), "{text:?}");
        }
        let short = general_purpose::STANDARD.encode([7u8; 31]);
        let long = general_purpose::STANDARD.encode([7u8; 33]);
        let longer = general_purpose::STANDARD.encode([7u8; 48]);
        for (text, says) in [
            (short.as_str(), "31 bytes"),
            (long.as_str(), "33 bytes"),
            (longer.as_str(), "more than 32 bytes"),
            ("not base64!", "not base64"),
            ("", "0 bytes"),
        ] {
            let path = write(dir.path(), "bad", text, 0o600);
            let err = RingKey::from_file(&path).unwrap_err();
            let message = err.to_string();
            assert!(matches!(err, RingKeyError::Malformed { .. }), "{message}");
            assert!(message.contains(says), "{message}");
            assert!(message.contains("store keygen"), "{message}");
        }
        let path = write(dir.path(), "huge", &"A".repeat(4096), 0o600);
        assert!(matches!(
            RingKey::from_file(&path),
            Err(RingKeyError::Malformed { .. })
        ));
    }

    #[test]
    fn a_file_others_may_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let text = RingKey::generate().unwrap().file_text();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            let path = write(dir.path(), "store.key", &text, mode);
            let err = RingKey::from_file(&path).unwrap_err();
            assert!(
                matches!(err, RingKeyError::Loose { mode: m, .. } if m == mode),
                "{err}"
            );
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
        let path = write(dir.path(), "store.key", &text, 0o400);
        assert!(RingKey::from_file(&path).is_ok());
        let err = RingKey::from_file(&dir.path().join("absent")).unwrap_err();
        assert!(matches!(err, RingKeyError::Io { .. }), "{err}");
        assert!(err.to_string().starts_with("store_key_file "), "{err}");
    }

    #[test]
    fn debug_shows_nothing_of_the_key() {
        let key = RingKey::generate().unwrap();
        let text = key.file_text();
        let shown = format!("{key:?}");
        assert_eq!(shown, "RingKey([redacted])");
        assert!(!shown.contains(text.trim()));
    }
}
