//! Why a command failed, and how a server's refusal is described to the
//! person at the terminal.

use tonic::Status;
use tonic_types::StatusExt;

use super::API_KEY_ENV;
use crate::grpc::client::ClientError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with an error.
    #[error("{}", describe(.0))]
    Rpc(Box<Status>),
    /// The server could not be reached.
    #[error("cannot connect to {server}: {}", chain(.source))]
    Connect {
        /// The server URL.
        server: String,
        /// The cause.
        source: tonic::transport::Error,
    },
    /// A local file or stream could not be used.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The command line or environment is not usable.
    #[error("{0}")]
    Usage(String),
    /// The server itself failed (for `serve`).
    #[error(transparent)]
    Server(#[from] crate::Error),
}

impl From<Status> for CliError {
    fn from(s: Status) -> Self {
        CliError::Rpc(Box::new(s))
    }
}

impl From<ClientError> for CliError {
    /// In the command line's words: the flags and variables to change.
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::InvalidApiKey => CliError::Usage(format!(
                "{API_KEY_ENV} holds characters not allowed in a header"
            )),
            ClientError::CertNeedsTls => {
                CliError::Usage("--cert needs TLS: use an https:// --server".to_owned())
            }
            ClientError::ReadCa { path, source } => CliError::Io {
                context: format!(
                    "reading the CA certificate {} (set --ca or MCP_AUTH_CA)",
                    path.display()
                ),
                source,
            },
            ClientError::ReadIdentity { path, source } => CliError::Io {
                context: format!("reading {}", path.display()),
                source,
            },
            ClientError::Transport { server, source } => CliError::Connect { server, source },
        }
    }
}

/// An error and its causes, `outer: inner: innermost`.
fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// A refusal as `Code [REASON]: message`.
fn describe(status: &Status) -> String {
    let reason = status
        .get_details_error_info()
        .map(|i| format!(" [{}]", i.reason))
        .unwrap_or_default();
    format!("{:?}{reason}: {}", status.code(), status.message())
}
