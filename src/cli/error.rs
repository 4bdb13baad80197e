//! Why a command failed, and how it is told to the person at the
//! terminal (or, with `--json`, to a script): one sentence naming what to
//! change, never a Rust `Debug` dump, never the same cause twice.

use tonic::Status;
use tonic_types::StatusExt;

use super::API_KEY_ENV;
use crate::grpc::client::ClientError;
use crate::grpc::status::code_name;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The server answered with an error.
    #[error("{}", describe(.0))]
    Rpc(Box<Status>),
    /// The server could not be reached.
    #[error("cannot connect to {server}: {}", explain_connect(.source))]
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
    /// Copying a store refused or failed (for `store migrate`).
    #[error(transparent)]
    Migrate(#[from] crate::store::migrate::MigrateError),
    /// A backup could not be written, read or restored (`store backup`,
    /// `store restore`).
    #[error(transparent)]
    Backup(#[from] crate::store::backup::BackupError),
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

/// Prints `err` to standard error: `error: ...`, or with `json` one JSON
/// object `{"error": {"code", "reason", "message"}}` (code and reason only
/// for a server's refusal).
pub fn report(err: &CliError, json: bool) {
    if !json {
        eprintln!("error: {err}");
        return;
    }
    let mut body = serde_json::Map::new();
    if let CliError::Rpc(status) = err {
        body.insert("code".into(), code_name(status.code()).into());
        if let Some(info) = status.get_details_error_info() {
            body.insert("reason".into(), info.reason.into());
        }
        body.insert("message".into(), status.message().into());
    } else {
        body.insert("message".into(), err.to_string().into());
    }
    let value = serde_json::json!({ "error": body });
    eprintln!("{value}");
}

/// A refusal as `CODE [REASON]: message`, e.g.
/// `PERMISSION_DENIED [INSUFFICIENT_SCOPE]: cannot grant scope ...`.
fn describe(status: &Status) -> String {
    let reason = status
        .get_details_error_info()
        .map(|i| format!(" [{}]", i.reason))
        .unwrap_or_default();
    if reason.is_empty()
        && matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Cancelled | tonic::Code::Unknown
        )
    {
        // Not the server's answer: the transport gave up mid-call (a
        // protocol mismatch, the server stopped, the connection cut).
        let causes = match std::error::Error::source(status) {
            Some(source) => format!("{}: {}", status.message(), chain(source)),
            None => status.message().to_owned(),
        };
        let explained = transport_message(&causes);
        if explained != causes {
            return explained;
        }
        return format!("{}: {causes}", code_name(status.code()));
    }
    format!("{}{reason}: {}", code_name(status.code()), status.message())
}

/// A transport failure in words that say what to change.
fn explain_connect(err: &tonic::transport::Error) -> String {
    transport_message(&chain(err))
}

/// Known transport causes, told plainly; anything else as the chain of
/// causes without repeats.
fn transport_message(causes: &str) -> String {
    let lower = causes.to_ascii_lowercase();
    let has = |needle: &str| lower.contains(&needle.to_ascii_lowercase());
    if has("UnknownIssuer") || has("BadSignature") && has("certificate") {
        "the server's certificate is not signed by the CA given with --ca (or MCP_AUTH_CA); point it at the CA that signed the server's certificate".to_owned()
    } else if has("NotValidForName") || has("not valid for name") {
        "the server's certificate is not valid for the host name in --server; use a name the certificate lists (the development certificate lists localhost, 127.0.0.1 and ::1)".to_owned()
    } else if has("Expired") && has("certificate") {
        "the server's certificate has expired".to_owned()
    } else if has("h2 protocol error")
        || has("frame with invalid size")
        || has("connection error") && has("http2")
    {
        "the server did not speak plaintext HTTP/2: if it uses TLS, use an https:// --server URL"
            .to_owned()
    } else if has("connection closed") || has("connection reset") || has("Broken pipe") {
        "the server closed the connection: if it uses TLS, use an https:// --server URL (a plaintext http:// client is cut off by a TLS server); or the server stopped".to_owned()
    } else if has("InvalidContentType") || has("corrupt message") || has("CorruptMessage") {
        "the server did not answer TLS: for a server started with --plaintext, use an http:// --server URL".to_owned()
    } else if has("scheme is missing")
        || has("invalid uri")
        || has("InvalidUri")
        || has("invalid URL")
    {
        "--server must be a URL such as https://localhost:50051".to_owned()
    } else if has("Connection refused") || has("ConnectionRefused") {
        "nothing is listening there (is `mcp-auth serve` running, and is --server right?)"
            .to_owned()
    } else if has("dns error") || has("failed to lookup address") {
        "the host name in --server cannot be resolved".to_owned()
    } else if has("CertificateRequired") || has("certificate required") {
        "the server asked for a client certificate this command did not send".to_owned()
    } else {
        causes.to_owned()
    }
}

/// An error and its causes, `outer: inner: innermost`, each cause once
/// (transport errors often repeat their source in their own message).
fn chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause: Option<&dyn std::error::Error> = Some(err);
    while let Some(c) = cause {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.retain(|p| !text.contains(p.as_str()));
            parts.push(text);
        }
        cause = c.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for E {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|e| e as _)
        }
    }

    #[test]
    fn a_cause_is_said_once() {
        let e = E(
            "transport error",
            Some(Box::new(E(
                "invalid peer certificate: UnknownIssuer",
                Some(Box::new(E("invalid peer certificate: UnknownIssuer", None))),
            ))),
        );
        assert_eq!(
            chain(&e),
            "transport error: invalid peer certificate: UnknownIssuer"
        );
        let e = E(
            "invalid URL, scheme is missing",
            Some(Box::new(E("invalid URL, scheme is missing", None))),
        );
        assert_eq!(chain(&e), "invalid URL, scheme is missing");
    }

    #[test]
    fn known_causes_name_what_to_change() {
        assert!(transport_message("x: invalid peer certificate: UnknownIssuer").contains("--ca"));
        assert!(
            transport_message("transport error: h2 protocol error: http2 error")
                .contains("https://")
        );
        assert!(
            transport_message("invalid URL, scheme is missing").contains("--server must be a URL")
        );
        assert!(
            transport_message("tcp connect error: Connection refused (os error 111)")
                .contains("mcp-auth serve")
        );
        assert_eq!(transport_message("something new"), "something new");
    }
}
