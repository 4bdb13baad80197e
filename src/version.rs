//! What this build is: the package version and the git commit it was
//! built from (set by `build.rs`; `unknown` when built without git), as
//! `mcp-auth --version` prints them.

/// The package version, e.g. `0.1.0`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The abbreviated git commit this binary was built from, or `unknown`.
pub const COMMIT: &str = env!("MCP_AUTH_GIT_COMMIT");

/// Version and commit in one line, e.g. `0.1.0 (commit 40fa84c1d2e3)`.
pub const LONG: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("MCP_AUTH_GIT_COMMIT"),
    ")"
);
