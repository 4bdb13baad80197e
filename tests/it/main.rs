//! Integration tests: the real server on `127.0.0.1:0` with a temporary
//! data directory, reached over real TLS by a tonic client. One test binary
//! with submodules, to keep linking cheap.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod api_keys;
mod audit;
mod browser_flow;
mod cimd;
mod cli_face;
mod clients;
mod code_grant;
mod contract;
mod crash_loop;
mod dcr;
mod delegated_login;
mod docs;
mod durability;
mod error_table;
mod errors;
mod hardening;
mod hostile;
mod http;
mod lifecycle;
mod limits;
mod logs;
mod mcp_server;
mod metrics;
mod mtls;
mod oauth;
mod packaging;
mod pg_cluster;
mod postgres;
mod readme;
mod real_browser;
mod refresh;
mod replica_faults;
mod replicas;
mod revocation_stream;
mod rmcp_client;
mod sdk_verifier;
mod server_cert;
mod sessions;
mod signing;
mod status;
mod store_backup;
mod store_migrate;
mod users;
mod verify;
mod verify_api_keys;
mod walkthrough;
