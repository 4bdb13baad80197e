//! An MCP server protected by mcp-auth: the notes server of `notes.rs` on
//! streamable HTTP, behind `mcp-auth-sdk`'s layer.
//!
//! ```sh
//! cargo run --release -- serve        # mcp-auth, in another terminal
//! MCP_SERVER_API_KEY=mcp_sk_... cargo run --example mcp_server
//! ```
//!
//! The API key is the MCP server's own, with scope `tokens:verify`. Its
//! callers send `Authorization: Bearer` with an API key, a session token
//! or an OAuth access token meant for its resource URL.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use mcp_auth_sdk::{Mode, OnStale, Verifier};

mod notes;

/// How the server verifies access tokens.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum VerifyMode {
    /// From the JWK Set alone.
    Offline,
    /// From the JWK Set and mcp-auth's revocation stream (the default).
    Revocations,
    /// VerifyToken for each token (briefly cached).
    Online,
}

#[derive(Parser, Debug)]
#[command(about = "An MCP server protected by mcp-auth")]
struct Args {
    /// Address to listen on (plain HTTP: put TLS in front in production).
    #[arg(long, env = "MCP_EXAMPLE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// This server's resource URL, as tokens name it in `aud`. Default:
    /// `http://LISTEN/mcp`.
    #[arg(long, env = "MCP_EXAMPLE_RESOURCE")]
    resource: Option<String>,
    /// mcp-auth's issuer URL.
    #[arg(
        long,
        env = "MCP_AUTH_ISSUER",
        default_value = "https://localhost:8443"
    )]
    issuer: String,
    /// mcp-auth's gRPC address (the CLI's `MCP_AUTH_SERVER` too).
    #[arg(
        long,
        env = "MCP_AUTH_SERVER",
        default_value = "https://localhost:50051"
    )]
    grpc: String,
    /// The CA certificate of mcp-auth's TLS (its development CA by default).
    #[arg(long, env = "MCP_AUTH_CA", default_value = "data/tls/ca.pem")]
    ca: PathBuf,
    /// This server's own API key, with scope `tokens:verify`.
    #[arg(
        long,
        env = "MCP_SERVER_API_KEY",
        hide_env_values = true,
        default_value = ""
    )]
    api_key: String,
    /// How access tokens are verified.
    #[arg(long, value_enum, default_value = "revocations")]
    mode: VerifyMode,
    /// Serve with no protection at all (no API key needed), only to
    /// measure what the layer costs. Never in production.
    #[arg(long, hide = true)]
    unprotected_for_benchmarks: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    let resource = args
        .resource
        .unwrap_or_else(|| format!("http://{addr}/mcp"));
    // rmcp accepts requests whose `Host` is the resource's host or the
    // address listened on (its guard against DNS rebinding).
    let host = url::Url::parse(&resource)?
        .host_str()
        .unwrap_or_default()
        .to_owned();
    let hosts = vec![host, addr.ip().to_string()];
    if args.unprotected_for_benchmarks {
        eprintln!("UNPROTECTED (for benchmarks): anyone may call the tools");
        println!("MCP server on http://{addr}/mcp");
        axum::serve(listener, notes::unprotected_app("/mcp", hosts)).await?;
        return Ok(());
    }
    if args.api_key.is_empty() {
        return Err("set MCP_SERVER_API_KEY (or --api-key): this server's own key, with scope tokens:verify".into());
    }
    let mode = match args.mode {
        VerifyMode::Offline => Mode::Offline,
        VerifyMode::Online => Mode::Online,
        VerifyMode::Revocations => Mode::OfflineWithRevocations {
            staleness: std::time::Duration::from_secs(30),
            on_stale: OnStale::Online,
        },
    };
    let verifier = Verifier::builder(&resource)
        .issuer(&args.issuer)
        .grpc(&args.grpc)
        .ca_pem(std::fs::read(&args.ca)?)
        .api_key(args.api_key)
        .mode(mode)
        .build()
        .await?;
    let host = resource
        .split_once("://")
        .map(|(_, rest)| rest.split(['/', ':']).next().unwrap_or_default().to_owned())
        .unwrap_or_default();
    let app = notes::app(
        notes::protection(verifier)?,
        vec![host, addr.ip().to_string()],
    );
    println!("MCP server on http://{addr} (resource {resource})");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
