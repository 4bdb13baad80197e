//! mcp-auth: a token service for MCP servers.
//!
//! Backend services exchange an API key or a mutual-TLS client certificate
//! for a short-lived signed access token (a JWT per RFC 9068) with
//! `TokenService.CreateSession`; MCP servers check those tokens with
//! `TokenService.VerifyToken`, or offline with the public keys from
//! `TokenService.GetJwks`. Admins manage API keys, identities, OAuth
//! clients, user accounts, signing keys and read the audit trail. Everything is served
//! over gRPC with TLS and persisted in one embedded data directory; the
//! OAuth face (authorization server metadata, the JWK Set, the token
//! endpoint) is served over HTTPS by a second listener on the same core.
//!
//! # Layout
//! One folder per layer; each file one concern. Dependencies point down
//! this list, never up.
//! - `fuzzing` (only with the `fuzzing` feature, which only the fuzz
//!   crate in `fuzz/` enables; above everything, used by nothing): the
//!   fuzz targets' entry points into the parsers a request reaches before
//!   any store or network (`authorization` values, form and registration
//!   bodies, metadata documents, client assertions, PEM and DER), the
//!   gRPC ones (request decoding and checks, `authorization` metadata)
//!   in the adapter, `grpc::fuzzing`, re-exported.
//! - [`grpc`]: the gRPC adapter. One file per service, each RPC written
//!   once: split the request into credentials and message ([`grpc::call`]),
//!   call the core, convert ([`grpc::convert`]); the one `Status` mapping
//!   ([`grpc::status`]); the codec every message goes through (`codec`:
//!   prost's, a request that does not decode INVALID_ARGUMENT); and the typed [`grpc::client`] that the CLI,
//!   `bench` and the tests share.
//! - [`http`]: the HTTP adapter, beside `grpc`: the axum router of the
//!   OAuth endpoints, one file each (`metadata`, `jwks`, `token`,
//!   `introspect`, `revoke`, `register`), the browser flow's pages
//!   (`authorize`, `signin`, `consent`, `login_continue`; their HTML in
//!   `pages`, cookies and CSRF in `browser`), client authentication at the
//!   endpoints, the request's credentials (`http::credentials`), strict
//!   form bodies (`http::form`), the one OAuth error mapping
//!   (`http::error`) and the common layers (request id, log line,
//!   headers, CORS; request metrics by route in `http::metrics`). Only it
//!   and `server` name axum.
//! - [`server`]: opening the data directory, serving gRPC and HTTP on
//!   listeners the caller bound within connection bounds (count, handshake
//!   time, idle time; hyper and TLS for HTTP in `http_listener`), the
//!   per-RPC layers (log line; metrics in `rpc_metrics`), the metrics
//!   listener (`metrics_listener`: `/metrics`, `/healthz`, `/readyz`),
//!   graceful shutdown of all (readiness ends first).
//! - [`cli`]: the `mcp-auth` command line: `serve`, one file per noun of
//!   the client commands, `bench`, and `store migrate` (offline).
//! - [`core`]: every operation on domain types. [`core::Credentials`] in,
//!   domain records and [`core::Error`] out. Who is calling (`authn`),
//!   what they may do (`policy`), API keys, sessions and the refresh
//!   decision, identities, OAuth clients (`clients`, their field rules in
//!   `client_rules`, the in-memory `client_index`; authenticating them at
//!   the OAuth endpoints in `client_auth` and `client_assertion`; clients
//!   described by metadata documents at their `https` client ids in
//!   `cimd`), the OAuth grants (`grants`: client_credentials;
//!   `code_grant` with `codes` and `pkce`: the authorization code and
//!   refresh grants; `refresh_replays` for racing refreshes), the browser
//!   flow (`authorize`: the authorization request; `interactions`: the
//!   sign-in and the decision; `consents`: remembered consent; the
//!   flow's state in progress, interactions, login sessions and codes,
//!   typed onto the store's transient entries by `transient`),
//!   `VerifyToken`'s verdict on access tokens and API keys (`verify`),
//!   introspection and revocation (`oauth_tokens`), the built-in user
//!   accounts (`users`; their passwords hashed with Argon2id off the
//!   runtime in `passwords`), signing in at the operator's application
//!   instead (`delegated_login`, the login challenges of
//!   `OAuthService`), `whoami`, the server's own `status`,
//!   what verification treats as revoked and the feed of its changes
//!   (`revocations`; a verifier's stream of it in `watch`), keeping a
//!   replica's memory current from a shared store's change feed and
//!   failing closed when cut off from it (`follow`), signing keys,
//!   the audit trail, rate limits and maintenance; readiness and the
//!   figures of the metrics' gauges (`health`); a backup of the store
//!   (`backup`). Names no transport and
//!   no storage engine.
//! - [`fetch`]: outbound HTTPS fetches of documents a caller names (client
//!   metadata documents), guarded against SSRF (`fetch::guard`: public
//!   addresses only, checked after resolution). Names no type of ours
//!   above it.
//! - `token`: signing keys, the key ring and its JWK Set, issuing access
//!   tokens; verifying goes through the `mcp-auth-token` crate (the
//!   verifier that works from a JWK Set alone, shared with `bench` and the
//!   SDK).
//! - [`store`]: the storage boundary: one async trait (with transient
//!   entries, compared and swapped on their value, for the browser flow in
//!   progress: `sled::transient`, `postgres::transient`), the records both
//!   sides share ([`store::model`]), the conformance suite every backend
//!   runs, and the backends: [`store::sled`], embedded, the default for one
//!   process; [`store::postgres`], a PostgreSQL database several replicas
//!   share (tokio-postgres, a deadpool pool, embedded migrations; its
//!   signing keys sealed in `postgres::seal` with the key-ring key of
//!   [`store::ring_key`], read from `store_key_file`; the feed of
//!   changes replicas follow, [`store::changes`], written in each write's
//!   transaction and listened for in `postgres::listen`; unconditional
//!   writes committed together in `postgres::group`); and
//!   [`store::migrate`], copying a stopped server's data directory into
//!   an empty PostgreSQL database; [`store::backup`], the backup file of a
//!   running embedded store (taken under its write lock in `sled::backup`)
//!   and restoring one into a new data directory. Only this folder names a
//!   storage engine.
//! - [`config`]: the validated server configuration, merged from defaults,
//!   a TOML file, `MCP_AUTH_*` variables and flags.
//! - [`tls`]: server certificates, including the generated development CA;
//!   [`ca`]: the CA for mutual TLS, issuing client and server certificates
//!   (within the CA's lifetime and a cap) and reading identities out of
//!   presented ones.
//! - [`telemetry`]: every metric's name and meaning, the fixed label
//!   values, the process's Prometheus recorder (the `metrics` facade
//!   records to it from `core`, `store` and the layers) and a scrape
//!   rendered with one server's gauges. Names no type of ours.
//! - [`clock`]: the one source of time, settable in tests; [`secret`]:
//!   secrets from the OS CSPRNG, kept out of logs and `Debug`; [`files`]:
//!   private and public files written atomically; [`untrusted`]: caller
//!   text made safe to show, escaped in log fields and cut short in error
//!   messages; [`version`]: the package version and the git commit of
//!   the build.
//! - [`pb`]: the generated protobuf and gRPC code.

#![forbid(unsafe_code)]

#[doc(hidden)]
pub mod bench_support;
pub mod ca;
pub mod cli;
pub mod clock;
pub mod config;
pub mod core;
pub mod fetch;
pub mod files;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod grpc;
pub mod http;
pub mod secret;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
pub(crate) mod token;
pub mod untrusted;
pub mod version;

/// Generated protobuf messages and gRPC clients and servers for
/// `mcp_auth.v1`.
#[allow(missing_docs, clippy::all, clippy::unwrap_used, clippy::expect_used)]
pub mod pb {
    tonic::include_proto!("mcp_auth.v1");

    /// A request carrying a password, shown without it.
    macro_rules! debug_without_password {
        ($message:ident, $($field:ident),*) => {
            impl std::fmt::Debug for $message {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.debug_struct(stringify!($message))
                        $(.field(stringify!($field), &self.$field))*
                        .field("password", &"[redacted]")
                        .finish()
                }
            }
        };
    }
    debug_without_password!(CreateUserRequest, username);
    debug_without_password!(SetPasswordRequest, user_id);

    /// Encoded file descriptor set, for gRPC reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("mcp_auth_descriptor");

    /// How enum fields print in JSON: by name, not number.
    pub(crate) mod json {
        use serde::Serializer;

        /// `active`, `expired`, `revoked` (`unspecified` for a value this
        /// build does not know).
        pub(crate) fn record_status<S: Serializer>(v: &i32, s: S) -> Result<S::Ok, S::Error> {
            let name = match super::RecordStatus::try_from(*v) {
                Ok(super::RecordStatus::Active) => "active",
                Ok(super::RecordStatus::Expired) => "expired",
                Ok(super::RecordStatus::Revoked) => "revoked",
                _ => "unspecified",
            };
            s.serialize_str(name)
        }

        /// `api_key` or `identity`.
        pub(crate) fn caller_kind<S: Serializer>(v: &i32, s: S) -> Result<S::Ok, S::Error> {
            use super::who_am_i_response::Kind;
            let name = match Kind::try_from(*v) {
                Ok(Kind::ApiKey) => "api_key",
                Ok(Kind::Identity) => "identity",
                _ => "unspecified",
            };
            s.serialize_str(name)
        }

        /// The reason's name, e.g. `WRONG_AUDIENCE`.
        pub(crate) fn token_reason<S: Serializer>(v: &i32, s: S) -> Result<S::Ok, S::Error> {
            let name = super::TokenReason::try_from(*v)
                .map(|r| r.as_str_name())
                .unwrap_or("TOKEN_REASON_UNSPECIFIED");
            s.serialize_str(name)
        }

        /// The kind's name, e.g. `API_KEY`.
        pub(crate) fn token_kind<S: Serializer>(v: &i32, s: S) -> Result<S::Ok, S::Error> {
            let name = super::TokenKind::try_from(*v)
                .map(|r| r.as_str_name())
                .unwrap_or("TOKEN_KIND_UNSPECIFIED");
            s.serialize_str(name)
        }
    }
}

pub use clock::Clock;
pub use config::Config;
pub use secret::Secret;
pub use server::{Error, Listeners, Server};
pub use store::SigningAlg;
