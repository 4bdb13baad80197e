//! Protect an MCP server with mcp-auth.
//!
//! An MCP server receives `Authorization: Bearer <credential>` from its
//! callers: an access token (an RFC 9068 JWT from mcp-auth's sessions or
//! OAuth) or an API key (`mcp_sk_...`). This crate decides whether to serve
//! them, and answers the way the MCP authorization spec and RFC 6750 say
//! when not:
//!
//! - [`Verifier`] verifies a credential: offline from mcp-auth's JWK Set,
//!   offline with mcp-auth's revocation stream (the default), or online
//!   with `VerifyToken`. Audience checks are always on.
//! - [`McpAuthLayer`] is a `tower::Layer` for HTTP MCP servers (axum,
//!   rmcp's streamable HTTP service, any hyper service): it serves the
//!   RFC 9728 protected resource metadata, checks per-tool scopes
//!   ([`ScopeMap`]), answers 401/403/429/503 with the right
//!   `WWW-Authenticate`, and hands handlers the [`Verified`] claims in the
//!   request's extensions.
//! - [`grpc::McpAuthInterceptor`] does the same for gRPC MCP servers.
//!
//! # Layout
//! - [`verifier`]: the [`Verifier`] and its modes (offline JWKS, the
//!   revocation stream, online `VerifyToken`, caches).
//! - [`claims`]: what a verified credential says ([`Verified`]).
//! - [`error`]: why a credential was refused, or why no verdict was
//!   possible ([`VerifyError`]).
//! - [`clock`]: the one source of time (system, or manual in tests).
//! - [`scopes`]: which scopes each MCP tool, resource and prompt needs.
//! - [`jsonrpc`]: what an MCP request asks for, from its `Mcp-Method` /
//!   `Mcp-Name` headers or its JSON-RPC body.
//! - [`challenge`]: `WWW-Authenticate` values (RFC 6750, RFC 9728).
//! - [`metadata`]: the protected resource metadata document (RFC 9728).
//! - [`layer`]: the tower layer for HTTP MCP servers.
//! - [`grpc`]: the tonic interceptor for gRPC MCP servers.
//! - `bench_support`: fixtures for the benches (hidden, not supported).

#![forbid(unsafe_code)]

pub mod challenge;
pub mod claims;
pub mod clock;
pub mod error;
pub mod grpc;
pub mod jsonrpc;
pub mod layer;
pub mod metadata;
pub mod scopes;
pub mod verifier;

#[doc(hidden)]
pub mod bench_support;

/// mcp-auth's gRPC contract: client code generated from `proto/`.
pub(crate) mod pb {
    #![allow(
        missing_docs,
        clippy::all,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )]
    tonic::include_proto!("mcp_auth.v1");
}

pub use claims::{TokenKind, Verified};
pub use clock::Clock;
pub use error::{BuildError, Rejection, VerifyError};
pub use grpc::{GrpcProtection, GrpcScopes, McpAuthInterceptor};
pub use layer::{McpAuthLayer, Protection};
pub use metadata::ResourceMetadata;
pub use scopes::ScopeMap;
pub use verifier::{Mode, OnStale, RevocationStatus, Verifier, VerifierBuilder};
