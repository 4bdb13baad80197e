//! What can stop the server from starting or serving (as opposed to the
//! domain errors of single requests, `core::Error`).

use crate::config::ConfigError;
use crate::files::FileError;
use crate::store::StoreError;
use crate::tls::TlsError;

/// Starting, serving or stopping the server failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The core could not be opened on the store.
    #[error(transparent)]
    Core(#[from] crate::core::Error),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// TLS material could not be made or loaded.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A file or directory could not be made.
    #[error(transparent)]
    File(#[from] FileError),
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The gRPC transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

impl Error {
    /// An I/O error with context.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
