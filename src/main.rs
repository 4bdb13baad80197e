//! The `mcp-auth` binary: parses the command line, sets up logging, and
//! hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of the system allocator: the embedded store copies
/// tree nodes and h2 buffers frames, and glibc's malloc and free were 15%
/// of the server's CPU when creating sessions.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = mcp_auth::cli::Cli::parse();
    let filter = EnvFilter::try_from_env("MCP_AUTH_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = cli.global.log_format == mcp_auth::cli::LogFormat::Json;
    let json_errors = cli.global.json;
    // Log lines are written by a thread of their own, which drains every
    // queued line into one buffer and writes it at once: one write(2) per
    // burst instead of one per line on the request path. Never lossy: when
    // 128k lines are queued, callers wait. The guard flushes at exit.
    let (writer, _flush_at_exit) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("mcp-auth-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    match mcp_auth::cli::run(cli).await {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            mcp_auth::cli::report(&err, json_errors);
            ExitCode::FAILURE
        }
    }
}
