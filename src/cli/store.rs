//! `mcp-auth store ...`: offline commands on the store itself. `store
//! keygen FILE` makes the key-ring key a PostgreSQL store seals its
//! signing keys with (config `store_key_file`).

use super::{CliError, Output, StoreCommand};
use crate::store::ring_key::{RingKeyError, keygen};

/// Runs a `store` subcommand.
pub(super) fn run(cmd: StoreCommand, out: &Output) -> Result<u8, CliError> {
    match cmd {
        StoreCommand::Keygen { file, force } => {
            keygen(&file, force).map_err(|e| match e {
                RingKeyError::Io { path, source } => CliError::Io {
                    context: format!("writing {}", path.display()),
                    source,
                },
                other => CliError::Usage(other.to_string()),
            })?;
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
    }
}
