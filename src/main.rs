//! The `mcp-auth` binary: parses the command line, sets up logging, and
//! hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = mcp_auth::cli::Cli::parse();
    let filter = EnvFilter::try_from_env("MCP_AUTH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = cli.log_format == mcp_auth::cli::LogFormat::Json;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    match mcp_auth::cli::run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
