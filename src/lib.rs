//! mcp-auth: a token service for MCP servers.
//!
//! Backend services exchange an API key for a short-lived signed access token
//! (a JWT per RFC 9068) with `TokenService.CreateSession`; MCP servers check
//! those tokens with `TokenService.VerifyToken`, or offline with the public
//! keys from `TokenService.GetJwks`. Admins manage API keys through
//! `ApiKeyService`. Everything is served over gRPC with TLS and persisted in
//! one embedded data directory.
//!
//! # Layout
//! - [`config`]: the validated server configuration, merged from defaults, a
//!   TOML file, `MCP_AUTH_*` variables and flags.
//! - [`clock`]: the one source of time, settable in tests.
//! - [`secret`]: secrets from the OS CSPRNG, kept out of logs and `Debug`.
//! - `store`: the storage boundary; sled lives behind it and nowhere else.
//! - `token`: signing keys, the key ring, JWT issuing and verifying, JWKS.
//! - [`limits`]: per-caller rate limits and the per-address throttle on
//!   failed authentication.
//! - [`audit`]: the hash-chained audit trail of security events.
//! - `auth`: who is calling (the one place credentials are resolved) and
//!   what they may do (the one place scopes are checked).
//! - `service`: one file per gRPC service; converts between protobuf and
//!   domain types at the edge.
//! - [`tls`]: server certificates, including the generated development CA.
//! - [`ca`]: the CA for mutual TLS: issuing client certificates for service
//!   identities and reading identities out of presented ones.
//! - [`server`]: opening the data directory, serving, graceful shutdown.
//! - [`maintenance`]: the background pass that rotates and retires signing
//!   keys and removes sessions that can no longer matter.
//! - [`grpc`]: the gRPC adapter; for now the typed [`grpc::client::Client`]
//!   that the CLI and `bench` call the server through.
//! - [`cli`]: the `mcp-auth` command line (server and client subcommands).
//! - [`error`]: the domain error and its one mapping to `tonic::Status`.
//! - [`pb`]: the generated protobuf and gRPC code.

#![forbid(unsafe_code)]

pub mod audit;
pub(crate) mod auth;
#[doc(hidden)]
pub mod bench_support;
pub mod ca;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod grpc;
pub mod limits;
pub mod maintenance;
pub mod secret;
pub mod server;
pub(crate) mod service;
pub(crate) mod store;
pub mod tls;
pub(crate) mod token;

/// Generated protobuf messages and gRPC clients and servers for
/// `mcp_auth.v1`.
#[allow(missing_docs, clippy::all, clippy::unwrap_used, clippy::expect_used)]
pub mod pb {
    tonic::include_proto!("mcp_auth.v1");

    /// Encoded file descriptor set, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("mcp_auth_descriptor");
}

pub use clock::Clock;
pub use config::Config;
pub use error::Error;
pub use secret::Secret;
pub use server::Server;
pub use token::SigningAlg;
