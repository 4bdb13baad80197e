//! `mcp-auth store ...`: offline commands on the store itself. `store
//! keygen FILE` makes the key-ring key a PostgreSQL store seals its
//! signing keys with (config `store_key_file`). `store migrate` copies a
//! stopped server's data directory store into an empty PostgreSQL database
//! ([`crate::store::migrate`]), verifies the audit chain of both sides
//! ([`crate::core::audit::verify_store`]) and prints what it copied. The
//! database's URL is never printed: it may carry a password. `store
//! backup DIR` asks a running server for a backup of its store
//! (`AdminService.BackupStore`), checks it and writes it to
//! `DIR/store.backup` (mode 0600); `store restore DIR --data-dir NEW`
//! (offline) restores one into a new data directory
//! ([`crate::store::backup`]), verifies the restored audit chain and
//! prints what it holds.

use std::path::Path;

use super::output::time;
use super::{CliError, GlobalOpts, Output, StoreCommand};
use crate::core::audit::{AuditVerifyError, verify_store};
use crate::secret::Secret;
use crate::store::Location;
use crate::store::backup;
use crate::store::migrate::{Counts, Migration};
use crate::store::ring_key::{RingKey, RingKeyError, keygen};

/// Runs a `store` subcommand.
pub(super) async fn run(
    cmd: StoreCommand,
    opts: &GlobalOpts,
    out: &Output,
) -> Result<u8, CliError> {
    match cmd {
        StoreCommand::Keygen { file, force } => {
            keygen(&file, force).map_err(ring_key_error)?;
            #[derive(serde::Serialize)]
            struct Written {
                path: std::path::PathBuf,
                mode: &'static str,
            }
            let written = Written {
                path: file,
                mode: "0600",
            };
            // Never the key itself: it stays in the file.
            out.print(&written, |w| {
                outln!("wrote a new store key to {} (mode 0600)", w.path.display());
                outln!(
                    "give every replica this same file as store_key_file, and back it up apart from the database"
                );
            })?;
            Ok(0)
        }
        StoreCommand::Migrate {
            from,
            to,
            store_key_file,
        } => {
            let key = RingKey::from_file(&store_key_file).map_err(ring_key_error)?;
            migrate(&from, &to, key, out).await
        }
        StoreCommand::Backup { dir } => take_backup(&dir, opts, out).await,
        StoreCommand::Restore { dir, data_dir } => restore(&dir, &data_dir, out).await,
    }
}

/// What `store backup` prints (`--json` as is).
#[derive(serde::Serialize)]
struct Written {
    path: std::path::PathBuf,
    bytes: u64,
    sha256: String,
    header: backup::Header,
}

/// `store backup DIR`: the server's backup, checked, into
/// `DIR/store.backup`.
async fn take_backup(dir: &Path, opts: &GlobalOpts, out: &Output) -> Result<u8, CliError> {
    // Before asking the server: a directory that will be refused.
    backup::check_target(dir)?;
    let mut stream = opts.client().await?.backup_store().await?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await? {
        bytes.extend_from_slice(&chunk.data);
    }
    // The file as the server sent it, checked before it is kept.
    let header = backup::decode(&bytes)?.header;
    crate::files::make_private_dir(dir).map_err(file_error)?;
    let path = dir.join(backup::FILE_NAME);
    crate::files::write_private(&path, &bytes).map_err(file_error)?;
    let written = Written {
        bytes: bytes.len() as u64,
        sha256: backup::sha256_hex(&bytes),
        path,
        header,
    };
    out.print(&written, |w| {
        outln!(
            "wrote {} ({} bytes, mode 0600: it holds the private signing keys)",
            w.path.display(),
            w.bytes
        );
        outln!(
            "backup of the {} store at {}: {} records in {} collections",
            w.header.backend,
            time(w.header.created_at),
            w.header.records,
            w.header.collections
        );
        outln!("sha256 {}", w.sha256);
        outln!("not in it: the data directory's tls/ and primary.key; keep those yourself");
    })?;
    Ok(0)
}

/// A file or directory that cannot be written, as the CLI says it.
fn file_error(e: crate::files::FileError) -> CliError {
    CliError::Io {
        context: format!("writing {}", e.path.display()),
        source: e.source,
    }
}

/// What `store restore` prints (`--json` as is).
#[derive(serde::Serialize)]
struct Restored<'a> {
    data_dir: &'a Path,
    header: &'a backup::Header,
    restored: &'a Counts,
    audit_chain: Chain,
}

/// `store restore DIR --data-dir NEW`.
async fn restore(dir: &Path, data_dir: &Path, out: &Output) -> Result<u8, CliError> {
    let file = dir.join(backup::FILE_NAME);
    let restored = backup::restore(&file, data_dir).await?;
    let (records, after_seq) = verify_store(&*restored.store).await.map_err(|e| {
        chain_error(
            e,
            "the restored",
            "delete the new data directory and restore another backup",
        )
    })?;
    let shown = Restored {
        data_dir,
        header: &restored.header,
        restored: &restored.counts,
        audit_chain: Chain {
            intact: true,
            records,
            after_seq,
        },
    };
    out.print(&shown, |r| {
        outln!(
            "restored the backup of {} (mcp-auth {}) into {}:",
            time(r.header.created_at),
            r.header.mcp_auth_version,
            r.data_dir.display()
        );
        for (what, n) in r.restored.kinds() {
            if !what.ends_with(" seq") {
                outln!("  {what:<24}{n:>10}");
            }
        }
        let noun = if records == 1 { "record" } else { "records" };
        outln!("audit chain intact: {records} {noun} after seq {after_seq}");
        outln!(
            "copy tls/ from the old data directory (or configure tls_cert and tls_key) before serving; after restoring an old backup, rotate the signing key (see docs/operations/backup-and-upgrade.md)"
        );
    })?;
    Ok(0)
}

/// A key-ring key that cannot be written or read, as the CLI says it.
fn ring_key_error(e: RingKeyError) -> CliError {
    match e {
        RingKeyError::Io { path, source } => CliError::Io {
            context: format!("{}", path.display()),
            source,
        },
        other => CliError::Usage(other.to_string()),
    }
}

/// What `store migrate` prints (`--json` as is).
#[derive(serde::Serialize)]
struct Migrated<'a> {
    /// Records copied, per kind (the same on both sides).
    copied: &'a Counts,
    /// The copy's audit chain, verified from its anchor.
    audit_chain: Chain,
    /// Old-layout refresh tokens the database does not know.
    legacy_refresh_tokens: u64,
}

#[derive(serde::Serialize)]
struct Chain {
    intact: bool,
    records: u64,
    after_seq: u64,
}

async fn migrate(from: &Path, to: &Secret, key: RingKey, out: &Output) -> Result<u8, CliError> {
    // Never the value in a message: it may hold a password.
    let url = match Location::parse(to.expose()) {
        Ok(Location::Postgres(url)) => url,
        Ok(Location::DataDir) => {
            return Err(CliError::Usage(
                "--to (MCP_AUTH_STORE) must name the PostgreSQL database to copy into, a postgres:// URL".to_owned(),
            ));
        }
        Err(message) => return Err(CliError::Usage(format!("--to: {message}"))),
    };
    let migration = Migration::open(from, &url, key).await?;
    // A broken chain would be copied broken: refuse while nothing is
    // written.
    verify_store(migration.source())
        .await
        .map_err(|e| chain_error(e, "the data directory's", "nothing was copied"))?;
    let report = migration.copy().await?;
    let (records, after_seq) = verify_store(migration.target()).await.map_err(|e| {
        chain_error(
            e,
            "the copy's",
            "drop the database's copy before trying again",
        )
    })?;
    let shown = Migrated {
        copied: &report.counts,
        audit_chain: Chain {
            intact: true,
            records,
            after_seq,
        },
        legacy_refresh_tokens: report.legacy_refresh_tokens,
    };
    out.print(&shown, |m| {
        outln!("copied {} into the PostgreSQL database:", from.display());
        // The chain's seqs are in the last line.
        for (what, n) in m.copied.kinds() {
            if !what.ends_with(" seq") {
                outln!("  {what:<24}{n:>10}");
            }
        }
        let noun = if records == 1 { "record" } else { "records" };
        outln!("audit chain intact: {records} {noun} after seq {after_seq}");
    })?;
    if report.legacy_refresh_tokens > 0 {
        eprintln!(
            "note: {} refresh tokens issued by an mcp-auth older than the session-named tokens were not copied (the database does not know them); their clients must sign in again",
            report.legacy_refresh_tokens
        );
    }
    Ok(0)
}

/// A chain that does not verify (or cannot be read), naming which side.
fn chain_error(e: AuditVerifyError, side: &str, then: &str) -> CliError {
    match e {
        AuditVerifyError::Broken(broken) => {
            CliError::Usage(format!("{side} audit chain is broken: {broken}; {then}"))
        }
        AuditVerifyError::Open(message) => CliError::Usage(format!("{message}; {then}")),
    }
}
