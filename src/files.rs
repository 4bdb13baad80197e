//! Files the service writes: private ones (keys, secrets) mode 0600,
//! public ones 0644, both written atomically; directories it creates mode
//! 0700.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A file or directory could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// The cause.
    pub source: std::io::Error,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError {
        path: path.to_owned(),
        source,
    }
}

/// Creates `dir` (and parents) if missing; a directory this creates is
/// mode 0700.
///
/// # Errors
/// The directory cannot be created.
pub fn create_private_dir(dir: &Path) -> Result<(), FileError> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(io(dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    Ok(())
}

/// Creates `dir` (and parents) if missing, and makes it mode 0700 even
/// if it was there (an empty directory about to hold secrets).
///
/// # Errors
/// The directory cannot be created or its mode set.
pub fn make_private_dir(dir: &Path) -> Result<(), FileError> {
    create_private_dir(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

/// Writes a file readable by the owner only (mode 0600), atomically: a
/// temporary file is written, synced and renamed over `path`.
///
/// # Errors
/// The file cannot be written.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<(), FileError> {
    write_with_mode(path, contents, 0o600)
}

/// Writes a file readable by everyone (mode 0644), atomically.
///
/// # Errors
/// The file cannot be written.
pub fn write_public(path: &Path, contents: &[u8]) -> Result<(), FileError> {
    write_with_mode(path, contents, 0o644)
}

fn write_with_mode(path: &Path, contents: &[u8], mode: u32) -> Result<(), FileError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(contents).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))?;
    Ok(())
}
