//! Backups of a running server's store (`mcp-auth store backup`) and
//! restoring one into a fresh data directory (`mcp-auth store restore`).
//!
//! A backup is one file, [`FILE_NAME`], of this versioned format (all
//! integers big endian):
//!
//! ```text
//! magic              16 bytes  "mcp-auth-backup\n"
//! header length       4 bytes
//! header                       JSON: format_version (1), mcp_auth_version,
//!                              created_at (Unix seconds), backend ("sled"),
//!                              collections, records
//! per collection:
//!   name length       4 bytes
//!   name                       UTF-8, e.g. "api_keys"
//!   pairs             8 bytes
//!   per pair:         4 bytes key length, key, 4 bytes value length, value
//! checksum           32 bytes  SHA-256 of every byte before it
//! ```
//!
//! The collections are the backend's own (for the embedded store, its
//! trees, records as it stores them), taken at one point in time by the
//! backend ([`Store::backup`](super::Store::backup)); the file holds the
//! private signing keys, so it is written mode 0600. Restoring checks the
//! magic, the checksum and the format version before anything is written,
//! refuses a target data directory that holds anything, writes the
//! collections into a new database there and reads it back through the
//! backend as a server would, counting what it holds ([`restore`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::digest;
use serde::{Deserialize, Serialize};

use super::migrate::Counts;
use super::{Store, StoreError};

/// The backup file's name in a backup directory.
pub const FILE_NAME: &str = "store.backup";

/// The first bytes of every backup file.
const MAGIC: &[u8; 16] = b"mcp-auth-backup\n";

/// The format this build writes, and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// Length of the SHA-256 trailer.
const CHECKSUM_LEN: usize = 32;

/// What a backup file says of itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The file's format ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// The mcp-auth that wrote it.
    pub mcp_auth_version: String,
    /// When the snapshot was taken, Unix seconds by the server's clock.
    pub created_at: i64,
    /// The backend it was taken of, and can be restored into: `sled`.
    pub backend: String,
    /// How many collections follow.
    pub collections: u64,
    /// How many key/value pairs, over all collections.
    pub records: u64,
}

/// One collection of a backup: its name and its key/value pairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collection {
    /// The backend's name for it.
    pub name: String,
    /// Its pairs, in the backend's order.
    pub pairs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A decoded, checked backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    /// What it says of itself.
    pub header: Header,
    /// Its collections.
    pub collections: Vec<Collection>,
}

/// Why a backup could not be taken, read or restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The file does not start as a backup does.
    #[error("not an mcp-auth store backup (its first bytes are not the backup format's)")]
    NotABackup,
    /// The content does not match its checksum: changed or cut short.
    #[error(
        "the backup is damaged: its content does not match its SHA-256 checksum (changed or cut short since it was written); nothing was restored"
    )]
    Checksum,
    /// Written by a newer mcp-auth, in a format this one does not know.
    #[error(
        "the backup's format is version {0}, newer than this mcp-auth reads ({FORMAT_VERSION}): restore it with the mcp-auth that wrote it or a newer one"
    )]
    TooNew(u32),
    /// The checksum matches but the content does not parse (a bug, or a
    /// file made to look like a backup).
    #[error("the backup is malformed: {0}")]
    Malformed(String),
    /// The backup is of another backend than this one restores into.
    #[error("the backup is of a {0} store; store restore restores embedded (sled) stores only")]
    WrongBackend(String),
    /// The backup directory holds no backup file.
    #[error(
        "{}: no backup here (store backup writes {FILE_NAME} in its directory)",
        .0.display()
    )]
    NoBackup(PathBuf),
    /// The target data directory holds something already.
    #[error(
        "{}: the target data directory is not empty; store restore writes only into a new or empty directory",
        .0.display()
    )]
    NotEmpty(PathBuf),
    /// A file or directory could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The SHA-256 of `bytes`, hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::secret::hex(digest::digest(&digest::SHA256, bytes).as_ref())
}

/// Writes the backup of `collections`, taken at `created_at` of
/// `backend`, in the format above, checksum included.
pub fn encode<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    backend: &str,
    created_at: i64,
    collections: &[(String, Vec<(K, V)>)],
) -> Result<Vec<u8>, BackupError> {
    let records: usize = collections.iter().map(|(_, pairs)| pairs.len()).sum();
    let header = Header {
        format_version: FORMAT_VERSION,
        mcp_auth_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at,
        backend: backend.to_owned(),
        collections: collections.len() as u64,
        records: records as u64,
    };
    let header =
        serde_json::to_vec(&header).map_err(|e| BackupError::Malformed(format!("header: {e}")))?;
    let body: usize = collections
        .iter()
        .map(|(name, pairs)| {
            12 + name.len()
                + pairs
                    .iter()
                    .map(|(k, v)| 8 + k.as_ref().len() + v.as_ref().len())
                    .sum::<usize>()
        })
        .sum();
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + body + CHECKSUM_LEN);
    out.extend_from_slice(MAGIC);
    put_bytes(&mut out, &header)?;
    for (name, pairs) in collections {
        put_bytes(&mut out, name.as_bytes())?;
        out.extend_from_slice(&(pairs.len() as u64).to_be_bytes());
        for (k, v) in pairs {
            put_bytes(&mut out, k.as_ref())?;
            put_bytes(&mut out, v.as_ref())?;
        }
    }
    let sum = digest::digest(&digest::SHA256, &out);
    out.extend_from_slice(sum.as_ref());
    Ok(out)
}

/// A length-prefixed byte string.
fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), BackupError> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| BackupError::Malformed("a record longer than 4 GiB".to_owned()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
    Ok(())
}

/// Checks and decodes a backup file's bytes: its magic, then its
/// checksum, then its format version, then the content.
///
/// # Errors
/// [`BackupError::NotABackup`], [`BackupError::Checksum`],
/// [`BackupError::TooNew`] or [`BackupError::Malformed`].
pub fn decode(bytes: &[u8]) -> Result<Backup, BackupError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(BackupError::NotABackup);
    }
    if bytes.len() < MAGIC.len() + 4 + CHECKSUM_LEN {
        return Err(BackupError::Checksum);
    }
    let (content, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    if digest::digest(&digest::SHA256, content).as_ref() != sum {
        return Err(BackupError::Checksum);
    }
    let mut r = Reader {
        rest: &content[MAGIC.len()..],
    };
    let header = r.bytes("header")?;
    // The version first, so that a newer header says so rather than
    // failing to parse.
    #[derive(Deserialize)]
    struct Version {
        format_version: u32,
    }
    let version: Version = serde_json::from_slice(header)
        .map_err(|e| BackupError::Malformed(format!("header: {e}")))?;
    if version.format_version > FORMAT_VERSION {
        return Err(BackupError::TooNew(version.format_version));
    }
    let header: Header = serde_json::from_slice(header)
        .map_err(|e| BackupError::Malformed(format!("header: {e}")))?;
    let mut collections = Vec::new();
    let mut records = 0u64;
    for _ in 0..header.collections {
        let name = String::from_utf8(r.bytes("collection name")?.to_vec())
            .map_err(|_| BackupError::Malformed("a collection name is not UTF-8".to_owned()))?;
        let count = r.u64("pair count")?;
        let mut pairs = Vec::new();
        for _ in 0..count {
            let k = r.bytes("key")?.to_vec();
            let v = r.bytes("value")?.to_vec();
            pairs.push((k, v));
        }
        records += count;
        collections.push(Collection { name, pairs });
    }
    if !r.rest.is_empty() {
        return Err(BackupError::Malformed(format!(
            "{} bytes after the last collection",
            r.rest.len()
        )));
    }
    if records != header.records {
        return Err(BackupError::Malformed(format!(
            "{records} records, the header says {}",
            header.records
        )));
    }
    Ok(Backup {
        header,
        collections,
    })
}

/// Reads length-prefixed fields off the content.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], BackupError> {
        if self.rest.len() < n {
            return Err(BackupError::Malformed(format!("cut short in a {what}")));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn u64(&mut self, what: &str) -> Result<u64, BackupError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    fn bytes(&mut self, what: &str) -> Result<&'a [u8], BackupError> {
        let b = self.take(4, what)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b);
        let n = usize::try_from(u32::from_be_bytes(a)).unwrap_or(usize::MAX);
        self.take(n, what)
    }
}

/// What [`restore`] did.
pub struct Restored {
    /// What the backup said of itself.
    pub header: Header,
    /// What the restored store holds, read back through the backend.
    pub counts: Counts,
    /// The restored store, open (for verifying its audit chain).
    pub store: Arc<dyn Store>,
}

impl std::fmt::Debug for Restored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restored")
            .field("header", &self.header)
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

/// Whether `dir` may be restored into: missing, or an empty directory.
///
/// # Errors
/// [`BackupError::NotEmpty`], or it cannot be read.
pub fn check_target(dir: &Path) -> Result<(), BackupError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(BackupError::NotEmpty(dir.to_owned())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(BackupError::Io {
            context: format!("reading {}", dir.display()),
            source,
        }),
    }
}

/// Restores the backup file `file` into the new data directory `dir`
/// (missing or empty; made mode 0700): checks the file
/// whole before anything is written, writes its collections into a new
/// database in `dir/db`, then opens that as a server would and counts
/// what it holds. Verifying the audit chain is the caller's (the core's
/// `audit::verify_store`), on the store returned.
///
/// # Errors
/// The file cannot be read or fails its checks, `dir` is not empty, or
/// the store cannot be written or read back.
pub async fn restore(file: &Path, dir: &Path) -> Result<Restored, BackupError> {
    check_target(dir)?;
    let bytes = std::fs::read(file).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => {
            BackupError::NoBackup(file.parent().unwrap_or(file).to_owned())
        }
        _ => BackupError::Io {
            context: format!("reading {}", file.display()),
            source,
        },
    })?;
    let backup = decode(&bytes)?;
    drop(bytes);
    if backup.header.backend != "sled" {
        return Err(BackupError::WrongBackend(backup.header.backend));
    }
    crate::files::make_private_dir(dir).map_err(|e| BackupError::Io {
        context: format!("creating {}", e.path.display()),
        source: e.source,
    })?;
    let header = backup.header.clone();
    super::sled::import(dir, backup.collections)?;
    let (store, counts) = super::sled::open_counted(dir).await?;
    Ok(Restored {
        header,
        counts,
        store,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let collections = vec![
            (
                "api_keys".to_owned(),
                vec![(b"key_1".to_vec(), b"{}".to_vec())],
            ),
            ("empty".to_owned(), vec![]),
        ];
        encode("sled", 1_700_000_000, &collections).unwrap()
    }

    #[test]
    fn a_backup_reads_back_as_written() {
        let b = decode(&sample()).unwrap();
        assert_eq!(b.header.format_version, FORMAT_VERSION);
        assert_eq!(b.header.backend, "sled");
        assert_eq!(b.header.created_at, 1_700_000_000);
        assert_eq!((b.header.collections, b.header.records), (2, 1));
        assert_eq!(b.collections[0].name, "api_keys");
        assert_eq!(b.collections[0].pairs[0].0, b"key_1");
        assert!(b.collections[1].pairs.is_empty());
    }

    #[test]
    fn any_changed_or_missing_byte_fails_the_checksum() {
        let good = sample();
        for at in [MAGIC.len(), good.len() / 2, good.len() - 1] {
            let mut bad = good.clone();
            bad[at] ^= 1;
            assert!(matches!(decode(&bad), Err(BackupError::Checksum)), "{at}");
        }
        assert!(matches!(
            decode(&good[..good.len() - 1]),
            Err(BackupError::Checksum)
        ));
        assert!(matches!(
            decode(b"something else entirely"),
            Err(BackupError::NotABackup)
        ));
    }

    #[test]
    fn a_newer_format_is_named() {
        let header = br#"{"format_version":2}"#;
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&(header.len() as u32).to_be_bytes());
        bytes.extend_from_slice(header);
        let sum = digest::digest(&digest::SHA256, &bytes);
        bytes.extend_from_slice(sum.as_ref());
        assert!(matches!(decode(&bytes), Err(BackupError::TooNew(2))));
    }

    #[test]
    fn only_an_empty_or_missing_directory_is_a_target() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_target(dir.path()).is_ok());
        assert!(check_target(&dir.path().join("new")).is_ok());
        std::fs::write(dir.path().join("x"), b"x").unwrap();
        assert!(matches!(
            check_target(dir.path()),
            Err(BackupError::NotEmpty(_))
        ));
    }
}
