//! `mcp-auth store ...`: offline commands on the store itself. `store
//! keygen FILE` makes the key-ring key a PostgreSQL store seals its
//! signing keys with (config `store_key_file`). `store migrate` copies a
//! stopped server's data directory store into an empty PostgreSQL database
//! ([`crate::store::migrate`]), verifies the audit chain of both sides
//! ([`crate::core::audit::verify_store`]) and prints what it copied. The
//! database's URL is never printed: it may carry a password.

use std::path::Path;

use super::{CliError, Output, StoreCommand};
use crate::core::audit::{AuditVerifyError, verify_store};
use crate::secret::Secret;
use crate::store::Location;
use crate::store::migrate::{Counts, Migration};
use crate::store::ring_key::{RingKey, RingKeyError, keygen};

/// Runs a `store` subcommand.
pub(super) async fn run(cmd: StoreCommand, out: &Output) -> Result<u8, CliError> {
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
    }
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
